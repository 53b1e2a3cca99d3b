"""Conversations through the processor, the collator, the model and `ChatSession`: the loss on the assistant turns
only, each `<image>` bound to its own image, one evaluation prompt per assistant turn, streamed answers equal to
batch generation, and a history trimmed to the context."""
import pytest
import torch

from vlm.errors import InputError
from vlm.evaluation.text_metrics import ConversationAccuracy
from vlm.language.chat_session import ChatSession
from vlm.language.collator import VisionLanguageCollator
from vlm.language.records import ConversationRecord, TurnReference
from vlm.language.inference import VisionLanguagePredictor
from vlm.language.processor import PromptTooLongError
from vlm.language.tokenizer import IGNORE_INDEX

from .tiny import random_images, tiny_model

TWO_IMAGES = [{'role': 'user', 'content': '<image>\n<image>\nwhich has more stars?'},
              {'role': 'assistant', 'content': 'second'},
              {'role': 'user', 'content': 'how many stars are there?'},
              {'role': 'assistant', 'content': 'two'}]


@pytest.fixture(scope='module')
def tiny():
    return tiny_model()


def test_the_loss_is_on_the_assistant_turns_only(tiny):
    _, processor = tiny
    images = random_images(2)
    inputs = processor.batch_conversations([TWO_IMAGES], [images], padding_side='right')
    labels = inputs['labels'][0]
    learned = processor.tokenizer.decode(labels[labels != IGNORE_INDEX])
    assert learned.replace(' ', '') == 'second</s>two</s>'
    image_positions = inputs['input_ids'][0] == processor.image_token_id
    assert int(image_positions.sum()) == 2 * processor.image_processor.tokens_per_image
    assert bool((labels[image_positions] == IGNORE_INDEX).all())


def test_each_placeholder_shows_its_own_image(tiny):
    """The embeddings at the first `<image>` run are the first image's tokens, at the second the second's."""
    model, processor = tiny
    first, second = random_images(2, seed=3)
    inputs = processor.batch_conversations([TWO_IMAGES[:1]], [[first, second]], add_generation_prompt=True)
    with torch.no_grad():
        embeddings = model.get_input_embeddings()(inputs['input_ids'])
        merged, _ = model.merge_image_tokens(inputs['input_ids'], embeddings, inputs['pixel_values'])
        merged = merged[0]
        expected = model.get_image_features(inputs['pixel_values'])  # (2, N, D)
    runs = merged[inputs['input_ids'][0] == processor.image_token_id].view(2, -1, merged.shape[-1])
    torch.testing.assert_close(runs, expected)
    predictor = VisionLanguagePredictor(model, processor)
    swapped = processor.batch_conversations([TWO_IMAGES[:1]], [[second, first]], add_generation_prompt=True)
    with torch.no_grad():
        assert not torch.allclose(model(**inputs).logits[0, -1], model(**swapped).logits[0, -1])
    assert predictor.reply([TWO_IMAGES[:1]], [[first, second]], max_new_tokens=3) == \
        predictor.reply([TWO_IMAGES[:1]], [[first, second]], max_new_tokens=3)


def test_an_image_count_that_differs_from_the_placeholders_is_one_clear_error(tiny):
    model, processor = tiny
    predictor = VisionLanguagePredictor(model, processor)
    with pytest.raises(InputError, match='2 <image> placeholders for 1 images'):
        predictor.reply([TWO_IMAGES[:1]], [random_images(1)])
    with pytest.raises(InputError, match='3 images but no <image> placeholder'):
        predictor.reply([[{'role': 'user', 'content': 'hello'}]], [random_images(3)])


def test_evaluation_asks_every_assistant_turn_given_the_turns_before_it(tiny):
    _, processor = tiny
    images = random_images(2)
    record = ConversationRecord(images, TWO_IMAGES, 'pair')
    batch = VisionLanguageCollator(processor, training=False)([record])
    assert batch['targets'] == [TurnReference('pair', 1, 'second', 2), TurnReference('pair', 3, 'two', 2)]
    prompts = processor.tokenizer.batch_decode(batch['generation_inputs']['input_ids'], skip_special_tokens=False)
    first, second = (prompt.replace(processor.tokenizer.pad_token, '') for prompt in prompts)
    assert first.endswith('which has more stars?') and 'second</s>how many stars are there?' in second
    assert batch['generation_inputs']['pixel_values'].shape[0] == 4  # two images for each of the two prompts


def test_conversation_accuracy_normalises_and_splits_by_image_count():
    metric = ConversationAccuracy()
    metric.update([('a', 1), ('a', 3), ('b', 1), ('b', 1)], ['Two.', 'red', 'first', 'second'],
                  ['2', 'blue', 'first', 'first'], [1, 1, 2, 2])
    assert metric.compute() == {'chat_acc': 2 / 3, 'chat_acc/1_images': 0.5, 'chat_acc/2_images': 1.0,
                                'chat_acc/number': 1.0, 'chat_acc/number/1_images': 1.0,  # by the reference's type
                                'chat_acc/other': 0.5, 'chat_acc/other/1_images': 0.0, 'chat_acc/other/2_images': 1.0}


@pytest.fixture(scope='module')
def taught():
    """A tiny model taught one two-turn dialogue about an image (150 steps): its answers have several words."""
    model, processor = tiny_model()
    image = random_images(1, seed=5)[0]
    dialogue = [{'role': 'user', 'content': '<image>\nwhat color is the circle?'},
                {'role': 'assistant', 'content': 'a red circle on the left'},
                {'role': 'user', 'content': 'how many stars are there?'}, {'role': 'assistant', 'content': 'two'}]
    batch = processor.batch_conversations([dialogue], [[image]], padding_side='right')
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(150):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), processor, image


def test_a_streamed_chat_answers_as_batch_generation_and_keeps_the_dialogue(taught):
    model, processor, image = taught
    predictor = VisionLanguagePredictor(model, processor)
    session = ChatSession(predictor, max_new_tokens=16)
    session.add_image(image)
    pieces = list(session.send('what color is the circle?'))
    expected = predictor.reply([[{'role': 'user', 'content': '<image>\nwhat color is the circle?'}]], [[image]],
                               max_new_tokens=16)[0]
    assert expected == 'a red circle on the left'
    assert len(pieces) >= 3 and ''.join(pieces) == expected  # streamed word by word
    second = session.send_and_wait('how many stars are there?')
    history = [{'role': 'user', 'content': '<image>\nwhat color is the circle?'},
               {'role': 'assistant', 'content': expected}, {'role': 'user', 'content': 'how many stars are there?'}]
    assert second == predictor.reply([history], [[image]], max_new_tokens=16)[0] == 'two'
    assert [m['role'] for m in session.messages] == ['user', 'assistant'] * 2 and len(session.images) == 1
    session.reset()
    assert session.messages == [] and session.images == [] and session.pending == []


def test_the_history_drops_its_oldest_turns_and_their_images_to_fit_the_context(tiny):
    model, processor = tiny  # a 64-token context; each image takes 4 tokens
    session = ChatSession(VisionLanguagePredictor(model, processor), max_new_tokens=12, system='be brief')
    for turn, image in enumerate(random_images(4, seed=2)):
        session.add_image(image)
        session.send_and_wait(f'is there a square? and a circle? {turn}')
        placeholders = sum(m['content'].count('<image>') for m in session.messages)
        assert placeholders == len(session.images)
        ids, _ = processor.encode_conversation(session.messages[:-1], len(session.images), add_generation_prompt=True)
        assert len(ids) + 12 <= processor.max_length
    assert session.messages[0] == {'role': 'system', 'content': 'be brief'}
    assert session.dropped_turns > 0 and 'oldest' in session.notice() and '64 tokens' in session.notice()
    assert session.messages[-2]['content'].endswith(' 3')
    before = list(session.messages)
    with pytest.raises(PromptTooLongError, match='no room'):
        session.send_and_wait('circle ' * 60)
    assert session.messages == before
    with pytest.raises(InputError, match='empty message'):
        session.send_and_wait('  ')
