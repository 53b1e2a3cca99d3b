"""Max |difference| between each pre-LN ViT family and its exact RoPE / RMSNorm conversion (`vlm convert`).

Random timm sources (no download) with every tensor moved far from its initial value (norm weights and biases,
LayerScale, tokens, position embeddings, RoPE frequencies), so a skipped step would show; features
(`forward_features`) compared in float32 at the source's size and at a non-square other size. With
`--dinov2 DIR` also the real DINOv2-small folder of `vlm weights dinov2-small`. The measurement is
`vlm.encoder.conversion_error`.

    python -m benchmarks.experiments.conversion_error [--dinov2 weights/dinov2-small]
"""
from __future__ import annotations

import argparse
from typing import Optional, Sequence

from vlm.encoder.conversion_error import conversion_errors


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--dinov2', help='the folder of `vlm weights dinov2-small`')
    args = parser.parse_args(argv)
    print('| source | image sizes | max abs difference of the features (fp32) |\n| --- | --- | --- |')
    for row in conversion_errors(args.dinov2):
        print(f"| {row['source']} | {row['sizes']} | {row['error']:.1e} |")


if __name__ == '__main__':
    main()
