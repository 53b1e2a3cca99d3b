"""The `vlm` command: Lightning subcommands (fit / validate / test / predict) and vlm's own tools.

Each subcommand lives in its own module; this file only dispatches, so `vlm --help` stays fast.
"""
from __future__ import annotations

import importlib
import sys
from typing import Callable, Dict, List, Optional, Tuple

# name -> (module, function, one-line help); the function takes the remaining argv
SUBCOMMANDS: Dict[str, Tuple[str, str, str]] = {
    'data': ('vlm.data.cli', 'main', 'generate datasets: `vlm data shapes --out data/shapes`'),
}


def _usage() -> str:
    lines = ['usage: vlm <command> [options]', '', 'commands:']
    width = max(len(name) for name in SUBCOMMANDS)
    lines += [f"  {name:<{width}}  {text}" for name, (_, _, text) in SUBCOMMANDS.items()]
    lines += ['', "`vlm <command> --help` describes a command's options."]
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ('-h', '--help'):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"vlm: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module, function, _ = SUBCOMMANDS[name]
    command: Callable[[List[str]], Optional[int]] = getattr(importlib.import_module(module), function)
    return command(rest) or 0


if __name__ == '__main__':
    sys.exit(main())
