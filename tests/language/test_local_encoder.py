"""A VLM built on a `local-dir:` encoder folder stores the encoder by architecture: its export loads without it."""
import shutil

import timm
import torch
from timm.models import save_for_hf
from transformers import AutoModelForImageTextToText

from vlm.language.prompts import caption_prompt

from .tiny import TINY_ENCODER, random_images, tiny_model


def test_a_local_dir_encoder_is_stored_by_architecture_so_the_model_outlives_the_folder(tmp_path, recwarn):
    folder = tmp_path / 'encoder'
    source = timm.create_model('vlm_vit_tiny_patch16_rope_rms', num_classes=0, **TINY_ENCODER)
    save_for_hf(source, str(folder), model_args={**TINY_ENCODER, 'num_classes': 0})
    model, processor = tiny_model(encoder=f'local-dir:{folder}', encoder_kwargs=None)
    assert model.config.encoder_name == 'vlm_vit_tiny_patch16_rope_rms'
    for key, value in source.state_dict().items():  # the folder's weights were loaded
        assert torch.equal(model.encoder.state_dict()[key], value), key
    inputs = processor([caption_prompt()], random_images(1))
    model.save_pretrained(tmp_path / 'export')
    shutil.rmtree(folder)
    loaded = AutoModelForImageTextToText.from_pretrained(tmp_path / 'export').eval()
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, loaded(**inputs).logits)
    assert not [w for w in recwarn if 'meta parameter' in str(w.message)]
