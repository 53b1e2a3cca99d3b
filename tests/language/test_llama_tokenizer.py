"""A real Llama-layout SentencePiece tokenizer (the one shipped in `mistral-common`) with a tiny random decoder,
and a local 'pretrained Llama directory' as the decoder: the path a user with real weights takes."""
import os
import shutil
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from vlm.language.build import build_vision_language_model
from vlm.language.processor import VisionLanguageProcessor
from vlm.language.prompts import caption_prompt, target_text
from vlm.language.tokenizer import load_tokenizer

from .tiny import TINY_DECODER, TINY_ENCODER, random_images

mistral_common = pytest.importorskip('mistral_common')
pytest.importorskip('sentencepiece')
pytest.importorskip('google.protobuf')


@pytest.fixture(scope='module')
def llama_directory(tmp_path_factory) -> Path:
    """A local Llama directory: the SentencePiece tokenizer (32000 pieces) and a tiny random LlamaForCausalLM."""
    from transformers import LlamaTokenizer

    model_file = Path(mistral_common.__file__).parent / 'data' / 'tokenizer.model.v1'
    directory = tmp_path_factory.mktemp('llama')
    shutil.copy(model_file, directory / 'tokenizer.model')
    tokenizer = LlamaTokenizer.from_pretrained(str(directory))
    torch.manual_seed(0)
    decoder = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), **TINY_DECODER, bos_token_id=1, eos_token_id=2))
    decoder.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    os.remove(directory / 'tokenizer.model')  # what remains is what transformers writes: tokenizer.json + config
    return directory


def test_sentencepiece_tokenizer_matches_sentencepiece(llama_directory):
    import sentencepiece

    model_file = Path(mistral_common.__file__).parent / 'data' / 'tokenizer.model.v1'
    reference = sentencepiece.SentencePieceProcessor(model_file=str(model_file))
    tokenizer = load_tokenizer(llama_directory)
    for text in ('Caption: a red circle', 'Question: how many stars are there? Answer:', 'two'):
        assert tokenizer(text, add_special_tokens=False).input_ids == reference.encode(text)
    assert tokenizer.convert_tokens_to_ids('<image>') == 32000  # added after the 32000 pieces
    assert tokenizer.pad_token_id == 32001


def test_pretrained_decoder_directory_end_to_end(llama_directory, tmp_path):
    tokenizer = load_tokenizer(llama_directory)
    model, processor = build_vision_language_model(
        tokenizer, encoder='vlm_vit_tiny_patch16_rope_rms', encoder_kwargs=TINY_ENCODER,
        decoder_path=str(llama_directory), pixel_shuffle=2, image_size=32)
    pretrained = LlamaForCausalLM.from_pretrained(llama_directory)
    embeddings = model.get_input_embeddings().weight
    assert embeddings.shape[0] == 32002  # grown for <image> and <pad>
    assert torch.equal(embeddings[:32000], pretrained.get_input_embeddings().weight)  # pretrained rows kept

    # train on one caption until the model writes it, then generate it back through save / load
    images = random_images(1)
    batch = processor([caption_prompt()], images, [target_text('a red circle')], padding_side='right')
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(40):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded_processor = VisionLanguageProcessor.from_pretrained(tmp_path)
    from vlm.language import VisionLanguageModel

    loaded = VisionLanguageModel.from_pretrained(tmp_path).eval()
    inputs = loaded_processor([caption_prompt()], images)
    output = loaded.generate(**inputs, max_new_tokens=6, do_sample=False)
    assert loaded_processor.decode_generated(output, inputs['input_ids'].shape[1]) == ['a red circle']
