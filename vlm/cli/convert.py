"""`vlm convert SOURCE --out DIR`: rewrite a pre-LN ViT exactly as a vlm RoPE / RMSNorm encoder folder."""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import List, Optional

from vlm.io.folders import check_output_folder, staged_folder


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog='vlm convert',
        description='Convert a pre-LN ViT (timm VisionTransformer: DeiT, DeiT-III, DINOv2, CLIP, SigLIP; Eva with '
                    'mixed RoPE: the Naver RoPE ViTs) exactly into the vlm RoPE / RMSNorm encoder, as a timm '
                    'model folder that `timm.create_model("local-dir:DIR", pretrained=True)` builds after '
                    '`import vlm`.')
    parser.add_argument('source', help='local-dir:FOLDER (e.g. local-dir:weights/dinov2-small), or a timm name '
                                       'with --weights')
    parser.add_argument('--weights', help='a local weights file of the timm name (.safetensors, .pth, .bin)')
    parser.add_argument('--out', required=True, help='the folder to write')
    parser.add_argument('--overwrite', action='store_true', help='replace a non-empty --out')
    args = parser.parse_args(argv)
    out = Path(args.out)
    folder = args.source[len('local-dir:'):] if args.source.startswith('local-dir:') else None
    check_output_folder(out, args.overwrite, [folder, args.weights])
    import vlm  # noqa: F401  (registers the vlm encoders, so the folder loads back)
    from vlm.encoder.conversion import load_source, write_converted

    start = time.perf_counter()
    source = load_source(args.source, args.weights)
    with staged_folder(out) as staging:  # a failed conversion leaves --out as it was
        loaded, difference = write_converted(source, str(staging), args.source)
    print(f'wrote {out} in {time.perf_counter() - start:.0f} s: {type(loaded).__name__} '
          f'({sum(p.numel() for p in loaded.parameters()) / 1e6:.2f} M parameters), '
          f'features equal to the source\'s to {difference:.1e} (max |difference|, fp32)')
    return 0
