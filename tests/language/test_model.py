"""VisionLanguageModel: generation with and without cache, save/load, the loss, image placeholders, text only."""
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModelForImageTextToText, LlamaForCausalLM

from vlm.language import ImageTokenMismatchError, VisionLanguageConfig, VisionLanguageModel
from vlm.language.processor import IGNORE_INDEX, PromptTooLongError, VisionLanguageProcessor
from vlm.language.projector import pixel_shuffle_tokens
from vlm.language.prompts import caption_prompt, target_text, vqa_prompt

from .tiny import CAPTIONS, memorizing_model, random_images, tiny_model


def _batch(processor, count=3):
    prompts = [caption_prompt(), vqa_prompt('what color is the circle?'), vqa_prompt('how many stars are there?')]
    return processor(prompts[:count], random_images(count), padding_side='left')


def test_image_token_count_follows_resolution():
    model, processor = tiny_model()
    assert processor.image_processor.tokens_per_image == (32 // 16) ** 2  # patch 8, pixel shuffle 2
    features = model.get_image_features(torch.randn(2, 3, 64, 96))
    assert features.shape == (2, (64 // 16) * (96 // 16), model.config.text_config.hidden_size)
    assert model.config.image_tokens(64, 96) == 24


def test_pixel_shuffle_groups_neighbouring_tokens():
    grid = torch.arange(2 * 4 * 4, dtype=torch.float).view(1, 2, 4, 4)  # (B, C, h, w)
    tokens = pixel_shuffle_tokens(grid, 2)  # (1, 4, 8)
    assert tokens.shape == (1, 4, 8)
    # first token: channel 0 then channel 1 of the top-left 2x2 block, row-major
    assert tokens[0, 0].tolist() == [0, 1, 4, 5, 16, 17, 20, 21]
    assert tokens[0, 1].tolist() == [2, 3, 6, 7, 18, 19, 22, 23]


def test_kv_cache_generation_equals_no_cache_greedy_generation():
    model, processor = tiny_model()
    inputs = _batch(processor)
    assert (inputs['attention_mask'][:, 0] == 0).any(), 'left padding expected in this batch'
    cached = model.generate(**inputs, max_new_tokens=12, do_sample=False, use_cache=True, min_new_tokens=12)
    uncached = model.generate(**inputs, max_new_tokens=12, do_sample=False, use_cache=False, min_new_tokens=12)
    assert torch.equal(cached, uncached)


def test_batched_left_padded_generation_equals_one_by_one():
    model, processor = tiny_model()
    inputs = _batch(processor)
    batched = model.generate(**inputs, max_new_tokens=8, do_sample=False, min_new_tokens=8)
    new_tokens = batched[:, inputs['input_ids'].shape[1]:]
    prompts = [caption_prompt(), vqa_prompt('what color is the circle?'), vqa_prompt('how many stars are there?')]
    for i, (prompt, image) in enumerate(zip(prompts, random_images(3))):
        single = processor([prompt], [image])
        out = model.generate(**single, max_new_tokens=8, do_sample=False, min_new_tokens=8)
        assert torch.equal(out[0, single['input_ids'].shape[1]:], new_tokens[i])


def test_save_pretrained_then_from_pretrained_gives_identical_logits_and_generations(tmp_path):
    model, processor = tiny_model()
    inputs = _batch(processor)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert (tmp_path / 'model.safetensors').is_file() and (tmp_path / 'tokenizer.json').is_file()
    assert AutoConfig.from_pretrained(tmp_path).model_type == VisionLanguageConfig.model_type
    loaded = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, VisionLanguageModel)
    reloaded_processor = VisionLanguageProcessor.from_pretrained(tmp_path)
    again = reloaded_processor([caption_prompt(), vqa_prompt('what color is the circle?'),
                                vqa_prompt('how many stars are there?')], random_images(3))
    assert torch.equal(again['input_ids'], inputs['input_ids'])
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, loaded(**inputs).logits)
    first = model.generate(**inputs, max_new_tokens=10, do_sample=False)
    second = loaded.generate(**inputs, max_new_tokens=10, do_sample=False)
    assert torch.equal(first, second)


def test_loss_counts_only_target_tokens():
    model, processor = tiny_model()
    prompts = [caption_prompt(), vqa_prompt('what color is the circle?')]
    targets = [target_text(CAPTIONS[0]), target_text('red')]
    batch = processor(prompts, random_images(2), targets, padding_side='right')
    labels = batch['labels']
    eos = processor.tokenizer.eos_token_id
    for row, target in zip(range(2), targets):
        expected = processor.tokenizer(target, add_special_tokens=False).input_ids + [eos]
        assert labels[row][labels[row] != IGNORE_INDEX].tolist() == expected
    # image placeholders, prompt text and padding never count
    assert (labels[batch['input_ids'] == processor.image_token_id] == IGNORE_INDEX).all()
    assert (labels[batch['attention_mask'] == 0] == IGNORE_INDEX).all()
    with torch.no_grad():
        output = model(**batch)
        logits = output.logits[:, :-1]  # position t predicts token t + 1
        shifted = labels[:, 1:]
        by_hand = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), shifted.reshape(-1),
                                  ignore_index=IGNORE_INDEX)
        assert torch.allclose(output.loss, by_hand, atol=1e-6)
        # changing a prompt token's label to a real id would change the loss: the ignore really ignores
        changed = labels.clone()
        changed[0, 3] = 5
        assert not torch.allclose(model(**{**batch, 'labels': changed}).loss, output.loss)


def test_images_must_match_their_placeholders():
    model, processor = tiny_model()
    inputs = _batch(processor, count=2)
    with pytest.raises(ImageTokenMismatchError, match='placeholders'):
        model(input_ids=inputs['input_ids'], attention_mask=inputs['attention_mask'],
              pixel_values=inputs['pixel_values'][:1])
    with pytest.raises(ImageTokenMismatchError, match='no image'):
        model(input_ids=inputs['input_ids'], attention_mask=inputs['attention_mask'])
    with pytest.raises(ValueError, match='2 <image> placeholders for 1 images'):
        processor(['<image> and <image> Caption:'], random_images(1))
    with pytest.raises(ValueError, match='2 prompts but 1 images'):
        processor([caption_prompt(), caption_prompt()], random_images(1))


def test_prompt_too_long_is_refused_or_truncated():
    _, processor = tiny_model()  # context of 64 tokens, 4 image tokens
    question = 'what color is the circle? ' * 20
    with pytest.raises(PromptTooLongError, match='exceed the decoder context of 64 tokens'):
        processor([vqa_prompt(question)], random_images(1))
    batch = processor([vqa_prompt(question)], random_images(1), [target_text('red')], truncation=True)
    assert batch['input_ids'].shape[1] == 64
    assert (batch['input_ids'] == processor.image_token_id).sum() == 4  # image tokens are never cut


def test_empty_question_is_refused():
    for question in ('', '   '):
        with pytest.raises(ValueError, match='empty question'):
            vqa_prompt(question)


def test_text_only_prompts_generate():
    model, processor = tiny_model()
    inputs = processor(['Question: what is two plus two? Answer:', 'a red'], padding_side='left')
    assert 'pixel_values' not in inputs
    output = model.generate(**inputs, max_new_tokens=5, do_sample=False, min_new_tokens=5)
    assert output.shape == (2, inputs['input_ids'].shape[1] + 5)
    # the decoder alone gives the same tokens: no image, no difference
    alone = model.language_model.generate(**inputs, max_new_tokens=5, do_sample=False, min_new_tokens=5)
    assert torch.equal(output, alone)
    assert isinstance(model.language_model, LlamaForCausalLM)


def test_sampling_and_beam_search_run():
    model, processor = tiny_model()
    inputs = _batch(processor, count=2)
    torch.manual_seed(0)
    sampled = model.generate(**inputs, max_new_tokens=6, do_sample=True, temperature=0.8, top_p=0.9)
    torch.manual_seed(0)
    assert torch.equal(sampled, model.generate(**inputs, max_new_tokens=6, do_sample=True, temperature=0.8,
                                               top_p=0.9))
    beams = model.generate(**inputs, max_new_tokens=6, num_beams=3, do_sample=False)
    assert beams.shape[0] == 2


def test_overfits_a_few_image_caption_pairs_to_exact_reproduction():
    images = random_images(4, seed=1)
    captions = CAPTIONS[:4]
    model, processor = memorizing_model(images, captions)
    inputs = processor([caption_prompt()] * 4, images)
    output = model.generate(**inputs, max_new_tokens=16, do_sample=False)
    assert processor.decode_generated(output, inputs['input_ids'].shape[1]) == captions


def test_activation_checkpointing_gives_the_same_loss_and_gradients():
    from vlm.tasks import VisionLanguageTask

    from .tiny import TINY_DECODER, TINY_ENCODER, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    results = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        task = VisionLanguageTask(encoder='vlm_vit_tiny_patch16_rope_rms', encoder_kwargs=TINY_ENCODER,
                                  decoder=TINY_DECODER, pixel_shuffle=2, image_size=32,
                                  activation_checkpointing=checkpointing)
        task.build(tokenizer)
        task.train()
        batch = task.processor([caption_prompt()] * 2, random_images(2), [target_text(c) for c in CAPTIONS[:2]],
                               padding_side='right')
        loss = task.model(**batch).loss
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in task.model.parameters() if p.grad is not None]))
    assert task.model.language_model.is_gradient_checkpointing
    assert torch.allclose(results[0][0], results[1][0], atol=1e-6)
    assert len(results[0][1]) == len(results[1][1])
    for plain, recomputed in zip(results[0][1], results[1][1]):
        assert torch.allclose(plain, recomputed, atol=1e-5)


def test_shared_images_are_encoded_once_and_give_the_same_loss_and_logits():
    model, processor = tiny_model()
    images = random_images(2)
    prompts = [caption_prompt(), vqa_prompt('what color is the circle?'), caption_prompt()]
    targets = [target_text(CAPTIONS[0]), target_text('red'), target_text(CAPTIONS[1])]
    shown = [images[0], images[0], images[1]]
    shared = processor(prompts, shown, targets, padding_side='right', share_images=True)
    repeated = processor(prompts, [image.clone() for image in shown], targets, padding_side='right')
    assert shared['pixel_values'].shape[0] == 2 and shared['image_index'].tolist() == [0, 0, 1]
    assert repeated['pixel_values'].shape[0] == 3 and 'image_index' not in repeated
    encoded = []
    original = model.encode_images
    model.encode_images = lambda pixels, *targets: encoded.append(len(pixels)) or original(pixels, *targets)
    with torch.no_grad():
        a, b = model(**shared), model(**repeated)
    assert encoded == [2, 3]
    torch.testing.assert_close(a.logits, b.logits)
    torch.testing.assert_close(a.loss, b.loss)
    with pytest.raises(ImageTokenMismatchError, match='image_index'):
        model(**{**shared, 'image_index': torch.tensor([0, 0, 2])})


def test_labelled_logits_only_gives_the_same_loss_and_gradients():
    """Training runs the output layer only where a label follows: the loss and every gradient equal the full
    logits' (transformers' own loss), with logits for the labelled positions alone."""
    model, processor = tiny_model()
    model.train()
    batch = processor([caption_prompt(), vqa_prompt('what color is the circle?')], random_images(2),
                      [target_text(CAPTIONS[0]), target_text('red')], padding_side='right')
    losses, grads = [], []
    for only in (False, True):
        model.zero_grad()
        output = model(**batch, labelled_logits_only=only)
        output.loss.backward()
        losses.append(output.loss.detach())
        grads.append({name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None})
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-6, atol=1e-6)
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-5, atol=1e-6)
    labelled = int((batch['labels'][:, 1:] != IGNORE_INDEX).sum())
    assert output.logits.shape == (labelled, model.config.text_config.vocab_size)
