"""The 'vocabulary' projector: image tokens as soft look-ups in the decoder's own word embeddings."""
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForImageTextToText

from vlm.language.projector import Projector, soft_vocabulary_lookup
from vlm.language.prompts import caption_prompt, vqa_prompt

from .tiny import random_images, tiny_model


def test_soft_lookup_is_cosine_attention_over_the_word_embeddings():
    generator = torch.Generator().manual_seed(0)
    queries, words = torch.randn(2, 5, 16, generator=generator), torch.randn(40, 16, generator=generator)
    log_scale = torch.tensor(2.0)
    expected = F.scaled_dot_product_attention(  # softmax(scale * q k^T) v, torch's own attention
        F.normalize(queries, dim=-1), F.normalize(words, dim=-1).expand(2, -1, -1), words.expand(2, -1, -1),
        scale=float(log_scale.exp()))
    torch.testing.assert_close(soft_vocabulary_lookup(queries, words, log_scale), expected)
    # a sharp temperature picks the nearest word: the token is that word's own embedding
    sharp = soft_vocabulary_lookup(words[None, :3] * 7, words, torch.tensor(100.0))
    torch.testing.assert_close(sharp[0], words[:3], atol=1e-4, rtol=0)


def test_image_tokens_read_the_decoders_live_input_embeddings():
    """Doubling the embedding matrix doubles a 'vocabulary' projector's tokens (cosine similarities do not
    change, the words they mix do) and leaves an 'mlp' projector's alone."""
    for kind, factor in (('vocabulary', 2.0), ('mlp', 1.0)):
        model, processor = tiny_model(projector=kind)
        pixel_values = processor([caption_prompt()] * 2, random_images(2))['pixel_values']
        with torch.no_grad():
            before = model.get_image_features(pixel_values)  # (2, N, D)
            model.get_input_embeddings().weight.mul_(2)
            after = model.get_image_features(pixel_values)
        torch.testing.assert_close(after, before * factor)
        if kind == 'vocabulary':  # a convex mix is never longer than the longest word
            words = model.get_input_embeddings().weight
            assert float(after.norm(dim=-1).max()) <= float(words.norm(dim=-1).max()) * (1 + 1e-5)


def test_vocabulary_projector_learns_while_the_lookup_leaves_the_embeddings_alone():
    model, processor = tiny_model(projector='vocabulary')
    model.train()
    inputs = processor([caption_prompt()], random_images(1), targets=['a red circle on the left'])
    model.get_input_embeddings().weight.requires_grad_(False)
    model(**inputs).loss.backward()
    assert model.projector.log_inverse_temperature.grad is not None
    assert float(model.projector.fc1.weight.grad.abs().sum()) > 0
    assert any(float(p.grad.abs().sum()) > 0 for p in model.encoder.parameters() if p.grad is not None)


def test_vocabulary_projector_saves_and_loads_with_identical_logits(tmp_path):
    model, processor = tiny_model(projector='vocabulary')
    inputs = processor([caption_prompt(), vqa_prompt('what color is the circle?')], random_images(2))
    model.save_pretrained(tmp_path)
    loaded = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    assert loaded.config.projector == 'vocabulary' and loaded.projector.kind == 'vocabulary'
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, loaded(**inputs).logits)


def test_unknown_projector_is_refused():
    with pytest.raises(ValueError, match="projector must be one of"):
        Projector(8, 8, 8, kind='linear')

