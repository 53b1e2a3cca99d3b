"""The `vlm` console script: imports vlm without registering its encoders (which imports torch and timm) until a
subcommand needs them, so `vlm --help` and a subcommand's `--help` answer in a fraction of a second."""
import sys


def main() -> int:
    from vlm.cli import main as vlm_main

    return vlm_main(sys.argv[1:])
