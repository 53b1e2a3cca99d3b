"""Conversations in LLaVA's format (LLaVA-Instruct, ShareGPT4V): the one reader of the format, and the dataset.

    [{"id": "000000033471",
      "image": "000000033471.jpg"                       (or a list of paths, or absent for a text-only dialogue),
      "conversations": [{"from": "human", "value": "<image>\\nWhat is in the picture?"},
                        {"from": "gpt", "value": "A bus on a street."}, ...]}, ...]

Image paths are relative to an image folder. Roles: 'human' -> user, 'gpt' -> assistant, 'system' -> system (the
'user' / 'assistant' spellings are taken too). The `<image>` placeholders of a record, over all its turns, must
number its images; they are bound to them in order. The loss is taken on the assistant turns only (the chat
template, `vlm.language.chat.render_turns`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Union


from vlm.errors import DataError
from vlm.io.images import load_image_tensor
from vlm.io.json_files import read_json
from vlm.language.chat import Message
from vlm.language.records import ConversationRecord
from vlm.language.tokenizer import IMAGE_TOKEN

from .skipping import SkipCounter, SkipsBadSamples

ROLE_NAMES = {'human': 'user', 'user': 'user', 'gpt': 'assistant', 'assistant': 'assistant', 'system': 'system'}


@dataclass
class Conversation:
    """One checked record: its id, its image paths (resolved under the image folder), its messages."""

    id: str
    images: List[Path]
    messages: List[Message] = field(default_factory=list)


def _image_paths(path: Path, record: Dict[str, Any], where: str, images_dir: Path) -> List[Path]:
    image = record.get('image')
    names = [] if image is None else [image] if isinstance(image, str) else image
    if not isinstance(names, list) or not all(isinstance(name, str) and name for name in names):
        raise DataError(path, f'expected a path or a list of paths, got {image!r}'[:200], record=where, field='image')
    return [images_dir / name for name in names]


def _messages(path: Path, record: Dict[str, Any], where: str) -> List[Message]:
    turns = record.get('conversations')
    if not isinstance(turns, list) or not turns:
        raise DataError(path, 'expected a non-empty list of turns', record=where, field='conversations')
    messages: List[Message] = []
    for index, turn in enumerate(turns):
        place = f'conversations[{index}]'
        if not isinstance(turn, dict):
            raise DataError(path, f'{place} is not an object', record=where, field='conversations')
        role = ROLE_NAMES.get(turn.get('from'))  # type: ignore[arg-type]
        if role is None:
            raise DataError(path, f"{place}: unknown role {turn.get('from')!r} (expected one of "
                            f"{sorted(ROLE_NAMES)})"[:200], record=where, field='from')
        if not isinstance(turn.get('value'), str):
            raise DataError(path, f'{place}: value is not a string', record=where, field='value')
        messages.append({'role': role, 'content': turn['value'].strip()})
    if not any(message['role'] == 'assistant' for message in messages):
        raise DataError(path, 'no gpt turn to learn from', record=where, field='conversations')
    return messages


def check_conversation(path: Path, index: int, record: Any, images_dir: Path, check_files: bool = True
                       ) -> Conversation:
    """Record `index` of `path` as a `Conversation`, or `DataError` naming the file, the record id and the field:
    no or empty conversations, a turn with an unknown role or no text, an `<image>` count that differs from the
    images given, a missing image file."""
    if not isinstance(record, dict):
        raise DataError(path, 'expected an object', record=f'[{index}]')
    where = f"[{index}] (id {record.get('id', '?')!r})"
    if 'id' not in record:
        raise DataError(path, 'missing required field', record=where, field='id')
    images = _image_paths(path, record, where, images_dir)
    messages = _messages(path, record, where)
    placeholders = sum(message['content'].count(IMAGE_TOKEN) for message in messages)
    if placeholders != len(images):
        raise DataError(path, f'{placeholders} {IMAGE_TOKEN} placeholders in the turns for {len(images)} images',
                        record=where, field='image')
    if check_files:
        for image in images:
            if not image.is_file():
                raise DataError(path, f'image file not found: {image}', record=where, field='image')
    return Conversation(str(record['id']), images, messages)


def read_conversations(path: Union[str, Path], images_dir: Union[str, Path],
                       skip_counter: Optional[SkipCounter] = None, check_files: bool = True) -> List[Conversation]:
    """Every record of a LLaVA conversation JSON, checked (`check_conversation`); with `skip_counter` a bad
    record is counted and dropped instead of raising. Duplicate ids are refused."""
    path = Path(path)
    data = read_json(path, 'conversation')
    if not isinstance(data, list):
        raise DataError(path, 'expected a JSON list of conversation records')
    conversations: List[Conversation] = []
    seen: set = set()
    for index, record in enumerate(data):
        try:
            conversation = check_conversation(path, index, record, Path(images_dir), check_files)
            if conversation.id in seen:
                raise DataError(path, f'duplicate id {conversation.id!r}', record=f'[{index}]', field='id')
        except DataError as error:
            if skip_counter is None:
                raise
            skip_counter.add(error)
            continue
        seen.add(conversation.id)
        conversations.append(conversation)
    return conversations


class LlavaConversations(SkipsBadSamples):
    """Item: a `ConversationRecord` of the images ((3, H, W) uint8 tv_tensors.Image after `transform`, one per
    `<image>`), the messages [{'role', 'content'}, ...] and the id: one training sequence (the loss on the assistant
    turns) or, at evaluation, one prompt per assistant turn."""

    def __init__(self, images_dir: Union[str, Path], conversation_file: Union[str, Path],
                 transform: Optional[Callable] = None, skip_bad_samples: bool = False) -> None:
        self.images_dir = Path(images_dir)
        self.path = Path(conversation_file)
        self.transform = transform
        self.skip_bad_samples = skip_bad_samples
        self.skipped = SkipCounter()
        self.records = read_conversations(self.path, self.images_dir, self.skipped if skip_bad_samples else None)

    def __len__(self) -> int:
        return len(self.records)

    def read(self, i: int) -> ConversationRecord:
        record = self.records[i]
        images = []
        try:
            for path in record.images:
                images.append(load_image_tensor(path))
        except DataError as error:
            raise DataError(self.path, f'{error}', record=f'id {record.id!r}', field='image') from None
        if self.transform is not None:
            images = [self.transform(image) for image in images]
        return ConversationRecord(images, [dict(m) for m in record.messages], record.id)

    def text_records(self) -> Iterator[ConversationRecord]:
        """Every record without its images (nothing is opened): what the tokenizer's corpus reads."""
        return (ConversationRecord([], [dict(m) for m in record.messages], record.id) for record in self.records)
