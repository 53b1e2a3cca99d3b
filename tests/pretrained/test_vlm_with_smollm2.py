"""The real SmolLM2 decoder inside the vision-language model: text-only prompts give exactly the bare decoder's
logits and answer; the `<image>` row is the mean of the pretrained rows; prompts use SmolLM2's chat template;
export and reload give identical logits; `vlm ask` with no image answers from the decoder's own knowledge."""
import pytest
import torch
from transformers import LlamaForCausalLM

from vlm.cli import main as vlm_main
from vlm.language.build import build_vision_language_model
from vlm.language.inference import VisionLanguagePredictor
from vlm.language.prompts import text_conversation, vqa_conversation
from vlm.language.tokenizer import load_tokenizer

from .conftest import needs_smollm2

pytestmark = [pytest.mark.pretrained, needs_smollm2]
ENCODER = dict(encoder='vlm_vit_tiny_patch16_rope_rms',
               encoder_kwargs=dict(patch_size=16, img_size=64, depth=1, embed_dim=64, num_heads=2))
QUESTION = 'What is the capital of France?'


@pytest.fixture(scope='module')
def vlm_and_bare(smollm2_folder):
    torch.manual_seed(0)
    tokenizer = load_tokenizer(smollm2_folder)
    model, processor = build_vision_language_model(tokenizer, decoder_path=str(smollm2_folder), pixel_shuffle=2,
                                                   image_size=64, **ENCODER)
    bare = LlamaForCausalLM.from_pretrained(smollm2_folder, local_files_only=True).eval()
    return model.eval(), processor, bare


def test_text_only_prompt_gives_the_bare_decoders_logits_and_answer(vlm_and_bare):
    model, processor, bare = vlm_and_bare
    vocabulary = bare.config.vocab_size
    assert model.config.text_config.vocab_size == vocabulary + 1  # <image> added
    inputs = processor.batch_conversations([text_conversation(QUESTION)], add_generation_prompt=True)
    assert processor.tokenizer.decode(inputs['input_ids'][0]).startswith('<|im_start|>system\n')  # SmolLM2's template
    with torch.no_grad():
        ours = model(input_ids=inputs['input_ids'], attention_mask=inputs['attention_mask']).logits
        theirs = bare(input_ids=inputs['input_ids'], attention_mask=inputs['attention_mask']).logits
    assert torch.equal(ours[..., :vocabulary], theirs)
    predictor = VisionLanguagePredictor(model, processor)
    answer = predictor.complete([QUESTION], max_new_tokens=12)[0]
    with torch.no_grad():
        reference = bare.generate(**inputs, max_new_tokens=12, do_sample=False)
    assert answer == processor.tokenizer.decode(reference[0, inputs['input_ids'].shape[1]:],
                                                skip_special_tokens=True).strip()
    assert 'Paris' in answer


def test_image_token_row_is_the_mean_and_generation_stops_at_the_decoders_eos(vlm_and_bare):
    model, processor, bare = vlm_and_bare
    embeddings = model.get_input_embeddings().weight
    torch.testing.assert_close(embeddings[processor.image_token_id], bare.get_input_embeddings().weight.mean(0))
    assert model.generation_config.eos_token_id == processor.tokenizer.convert_tokens_to_ids('<|im_end|>')
    sample = processor.batch_conversations([vqa_conversation(['what color is the circle?'], ['red'])],
                                           [[torch.zeros(3, 64, 64, dtype=torch.uint8)]], padding_side='right')
    learned = processor.tokenizer.decode(sample['input_ids'][0][sample['labels'][0] != -100])
    assert learned == 'red<|im_end|>\n'  # the assistant's words and the end of its turn, nothing else
    assert (sample['input_ids'][0] == processor.image_token_id).sum() == 4  # 64 px / (16 x 2): 2 x 2 tokens


def test_export_and_reload_give_identical_logits_and_vlm_ask_answers_without_an_image(vlm_and_bare, tmp_path,
                                                                                       capsys):
    model, processor, _ = vlm_and_bare
    out = tmp_path / 'export'
    model.save_pretrained(out)
    processor.save_pretrained(out)
    reloaded = VisionLanguagePredictor.from_pretrained(out)
    inputs = processor.batch_conversations([vqa_conversation(['how many shapes are there?'])],
                                           [[torch.zeros(3, 64, 64, dtype=torch.uint8)]], add_generation_prompt=True)
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, reloaded.model(**inputs).logits)
    assert vlm_main(['ask', '--model', str(out), '--question', QUESTION, '--max-new-tokens', '12']) == 0
    assert 'Paris' in capsys.readouterr().out
