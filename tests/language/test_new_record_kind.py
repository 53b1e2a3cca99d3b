"""A new image-text format with its own record kind and its own score, written in this file alone: a dataset of
images with their object counts, a `CountRecord` that says what it teaches and asks, a `CountReference` scored by a
mean-absolute-error metric registered by name. The vision-language task trains on it, validates it and writes its
predictions with no change anywhere in vlm."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, Iterator, List, Optional

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, Dataset
from torchmetrics import Metric

from vlm.callbacks.prediction_writer import PredictionWriter
from vlm.data.texts import dataset_texts
from vlm.evaluation.text_metrics import TEXT_METRICS
from vlm.language.prompts import conversation
from vlm.language.records import Choose, ImageTextRecord, Prompt, Reference, Sample
from vlm.tasks import VisionLanguageTask

from .tiny import TINY_DECODER, TINY_ENCODER

QUESTION = 'How many squares?'
WORDS = ['zero', 'one', 'two', 'three']


class CountError(Metric):
    """update(answers, counts) -> compute(): {'count_mae': mean |answered - true| count, a wrong word counting as
    the true count}."""

    def __init__(self) -> None:
        super().__init__()
        self.add_state('error', default=torch.tensor(0.0), dist_reduce_fx='sum')
        self.add_state('total', default=torch.tensor(0.0), dist_reduce_fx='sum')

    def update(self, answers: List[str], counts: List[int]) -> None:
        for answer, count in zip(answers, counts):
            word = answer.strip().lower()
            self.error += abs(WORDS.index(word) - count) if word in WORDS else count
            self.total += 1

    def compute(self) -> Dict[str, torch.Tensor]:
        return {'count_mae': self.error / self.total}


@dataclass
class CountReference(Reference):
    image_id: int
    count: int

    metric: ClassVar[str] = 'counting'
    results_file: ClassVar[str] = 'count_results.json'

    def score(self, metric: Any, text: str) -> None:
        metric.update([text], [self.count])

    def result(self, text: str) -> Dict[str, Any]:
        return {'image_id': self.image_id, 'answer': text}


@dataclass
class CountRecord(ImageTextRecord):
    image: Any
    image_id: int
    count: int
    instances: Optional[Dict[str, Any]] = None

    @property
    def images(self) -> List[Any]:
        return [self.image]

    def training_samples(self, choose: Choose, packing: str = 'sequences') -> List[Sample]:
        return [self.validation_sample()]

    def validation_sample(self) -> Sample:
        return conversation([(QUESTION, WORDS[self.count])]), [self.image]

    def prompts(self) -> List[Prompt]:
        return [Prompt(conversation([(QUESTION, None)]), [self.image], CountReference(self.image_id, self.count))]

    def corpus(self) -> Iterator[str]:
        yield f'{QUESTION} {WORDS[self.count]}'


def squares(count: int, seed: int) -> torch.Tensor:
    """(3, 32, 32) uint8: `count` white 6x6 squares on black, in distinct cells of a 4x4 grid."""
    image = torch.zeros(3, 32, 32, dtype=torch.uint8)
    cells = torch.randperm(16, generator=torch.Generator().manual_seed(seed))[:count]
    for cell in cells.tolist():
        row, col = divmod(cell, 4)
        image[:, row * 8 + 1:row * 8 + 7, col * 8 + 1:col * 8 + 7] = 255
    return image


class CountingImages(Dataset):
    """Eight generated images with their square counts: the new format's reader."""

    def __init__(self) -> None:
        self.counts = [k % 4 for k in range(8)]

    def __len__(self) -> int:
        return len(self.counts)

    def __getitem__(self, index: int) -> CountRecord:
        return CountRecord(squares(self.counts[index], index), index, self.counts[index])

    def text_records(self) -> Iterator[CountRecord]:
        return (CountRecord(None, index, count) for index, count in enumerate(self.counts))


class CountingData(L.LightningDataModule):
    """Loaders of the counting images, collated by the task's collators (vlm's `TakesCollators`), with the texts a
    fresh tokenizer learns (`TextCorpus`)."""

    def __init__(self) -> None:
        super().__init__()
        self.dataset = CountingImages()
        self.collate_fns: Dict[str, Any] = {}

    def set_collate_fns(self, train, evaluate) -> None:
        self.collate_fns = {'train': train, 'evaluate': evaluate}

    def training_texts(self) -> Iterator[str]:
        return dataset_texts(self.dataset)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=4, shuffle=True, collate_fn=self.collate_fns['train'])

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=4, collate_fn=self.collate_fns['evaluate'])

    predict_dataloader = val_dataloader


@pytest.fixture
def counting_metric(monkeypatch):
    monkeypatch.setitem(TEXT_METRICS, 'counting', CountError)


def test_a_format_written_outside_vlm_trains_validates_and_predicts(tmp_path, counting_metric):
    torch.manual_seed(0)
    task = VisionLanguageTask(encoder='vlm_vit_tiny_patch16_rope_rms', encoder_kwargs=TINY_ENCODER,
                              decoder=TINY_DECODER, pixel_shuffle=2, image_size=32, tokenizer_vocab_size=300,
                              monitor='val/count_mae', monitor_mode='min', max_new_tokens=2)
    data = CountingData()
    trainer = L.Trainer(max_steps=1, val_check_interval=1, accelerator='cpu', logger=False, default_root_dir=tmp_path,
                        num_sanity_val_steps=0, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(task, datamodule=data)
    assert trainer.global_step == 1 and torch.isfinite(trainer.callback_metrics['train/loss'])
    # the tokenizer was trained on the records' corpus: the answer words are whole tokens of it
    vocab = task.processor.tokenizer.get_vocab()
    assert all(f'Ġ{word}' in vocab for word in WORDS)
    error = trainer.callback_metrics['val/count_mae']  # every image asked, scored by the registered metric
    assert 0 <= error.item() <= 3 and 'val/vqa_acc' not in trainer.callback_metrics
    checkpoints = [c for c in trainer.callbacks if getattr(c, 'monitor', None) == 'val/count_mae']
    assert checkpoints and checkpoints[0].mode == 'min'  # lower is better: the best checkpoint is the lowest error
    with pytest.raises(ValueError, match='monitor_mode'):
        VisionLanguageTask(monitor='val/count_mae', monitor_mode='lowest')

    trainer = L.Trainer(accelerator='cpu', logger=False, enable_progress_bar=False,
                        callbacks=[PredictionWriter(str(tmp_path / 'predictions'))])
    trainer.predict(task, datamodule=data)
    results = json.loads((tmp_path / 'predictions' / 'count_results.json').read_text())
    assert [entry['image_id'] for entry in results] == list(range(8))
    assert all(isinstance(entry['answer'], str) for entry in results)


def test_the_records_own_texts_are_what_the_collator_learns(counting_metric):
    """The training sequence of a record: its conversation, the loss on its answer only."""
    from .tiny import tiny_model

    from vlm.language.collator import VisionLanguageCollator
    from vlm.language.tokenizer import train_bpe_tokenizer

    dataset = CountingImages()
    tokenizer = train_bpe_tokenizer(list(dataset_texts(dataset)) * 5, vocab_size=300)
    _, processor = tiny_model(tokenizer)
    batch = VisionLanguageCollator(processor, training=True)([dataset[2], dataset[3]])
    labels = batch['inputs']['labels']
    learned = [tokenizer.decode([t for t in row.tolist() if t != -100]) for row in labels]
    assert [text.replace(tokenizer.eos_token, '').strip() for text in learned] == ['two', 'three']
    evaluation = VisionLanguageCollator(processor, training=False)([dataset[2]])
    assert evaluation['targets'] == [CountReference(2, 2)]
