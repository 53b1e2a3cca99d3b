"""Inference precisions (fp32, bf16, int8 weights): the same greedy answers, the bytes they save, the options."""
import pytest
import torch
from safetensors import safe_open

from vlm.errors import InputError
from vlm.language.inference import VisionLanguagePredictor
from vlm.language.precision import PRECISIONS, set_inference_precision, weight_bytes_per_token

from .tiny import CAPTIONS, memorizing_model, random_images, tiny_model

pytest.importorskip('torchao')


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A tiny model that learned four image-caption pairs (its answers have margins, as a trained model's do),
    saved as `vlm export` writes it, and its four images."""
    images = random_images(4, seed=1)
    model, processor = memorizing_model(images, CAPTIONS[:4])
    folder = tmp_path_factory.mktemp('trained')
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder, images


@pytest.mark.parametrize('precision', PRECISIONS)
def test_every_precision_gives_the_answers_of_fp32(trained, precision):
    folder, images = trained
    predictor = VisionLanguagePredictor.from_pretrained(folder, precision=precision)
    assert predictor.caption(images, max_new_tokens=16) == CAPTIONS[:4]  # what fp32 learned, word for word
    decoder = predictor.model.language_model
    expected = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'int8': torch.bfloat16}[precision]
    assert decoder.model.norm.weight.dtype == expected
    assert predictor.model.encoder.patch_embed.proj.weight.dtype == torch.float32  # once per image: kept exact
    if precision == 'int8':
        assert type(decoder.model.layers[0].mlp.up_proj.weight).__name__ == 'Int8Tensor'
        assert type(decoder.lm_head.weight).__name__ == 'Int8Tensor'
        assert decoder.get_input_embeddings().weight.dtype == torch.bfloat16  # the lookup table stays a table


def test_bytes_read_per_token_halve_in_bf16_and_quarter_in_int8():
    sizes = {}
    for precision in PRECISIONS:
        model, _ = tiny_model()
        sizes[precision] = weight_bytes_per_token(set_inference_precision(model, precision))
    decoder = tiny_model()[0].language_model
    embeddings = decoder.get_input_embeddings().weight
    fp32 = 4 * (sum(p.numel() for p in decoder.parameters()) - embeddings.numel() + embeddings.numel())  # tied head
    fp32 += sum(b.numel() * b.element_size() for b in decoder.buffers())
    assert sizes['fp32'] == fp32
    assert sizes['bf16'] < 0.51 * sizes['fp32']
    assert sizes['int8'] < 0.6 * sizes['bf16']


def test_a_bf16_folder_loads_as_bf16_and_answers_as_fp32(trained, tmp_path):
    folder, images = trained
    predictor = VisionLanguagePredictor.from_pretrained(folder)
    predictor.model.to(torch.bfloat16).save_pretrained(tmp_path / 'bf16')  # as `vlm export --precision bf16`
    predictor.processor.save_pretrained(tmp_path / 'bf16')
    with safe_open(str(tmp_path / 'bf16' / 'model.safetensors'), 'pt') as file:
        assert {file.get_slice(k).get_dtype() for k in file.keys()} == {'BF16'}
    loaded = VisionLanguagePredictor.from_pretrained(tmp_path / 'bf16')  # no precision: as stored
    assert loaded.model.language_model.lm_head.weight.dtype == torch.bfloat16
    assert loaded.model.encoder.patch_embed.proj.weight.dtype == torch.float32  # computes in fp32 at prefill
    assert loaded.caption(images, max_new_tokens=16) == CAPTIONS[:4]


def test_an_unknown_precision_is_refused_in_one_line(trained):
    with pytest.raises(InputError, match='--precision must be one of fp32, bf16, int8'):
        VisionLanguagePredictor.from_pretrained(trained[0], precision='fp16')


def test_vlm_caption_takes_precision(trained, capsys, tmp_path):
    from PIL import Image

    from vlm.cli.generate import caption

    folder, images = trained
    paths = []
    for index, image in enumerate(images[:2]):
        paths.append(str(tmp_path / f'{index}.png'))
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(paths[-1])
    assert caption(['--model', str(folder), '--precision', 'int8', '--max-new-tokens', '16', *paths]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split('\t')[1] for line in lines] == CAPTIONS[:2]
