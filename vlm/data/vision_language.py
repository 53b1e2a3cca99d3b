"""`VisionLanguageDataModule`: COCO captions, VQAv2 and LLaVA conversations over one image folder per split, mixed by
weights for training."""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Sequence, Tuple

from torch.utils.data import ConcatDataset, Dataset, Sampler

from . import transforms as T
from .captions import CocoCaptions
from .collate import collate_records
from .conversations import LlavaConversations
from .datamodule_base import VlmDataModule
from .instance_tags import InstanceImages, InstanceIndex, WithInstances
from .sampling import MixtureShuffle
from .texts import dataset_texts
from .vqa import VqaV2

TASKS = ('captions', 'vqa', 'conversations', 'instances')


class VisionLanguageDataModule(VlmDataModule):
    """Image-text data for captioning, VQA and conversations: COCO captions, VQAv2 (questions + annotations) and
    LLaVA-format conversation JSON (`vlm.data.conversations`), each over a split's image folder. The model's task
    hands the loaders its collators (`set_collate_fns`, a `vlm.language.VisionLanguageCollator` per split:
    tokenisation and the loss mask run in the loader workers); without them a batch is `collate_records`' list of
    the records (`vlm.language.records`).

    tasks: which of 'captions', 'vqa', 'conversations' and 'instances' to train on; val_tasks: which to validate on
        (default: the same). 'instances': the images of a COCO instances JSON (`train_instances` / `val_instances`)
        with their objects, no text: what a model's cell tagger learns from (`vlm.data.instance_tags`), mirrored
        at random in training.
    attach_instances: caption and VQA records also carry their image's objects, read from the instances JSON of
        their split by image id: a model with a tagger then gets the images' tag targets (its tag loss beside the
        text loss, or, with `tags.source: annotations`, the ground-truth tags themselves).
    mixture_weights: with several tasks, how often a training sample comes from each, e.g. {captions: 1,
        conversations: 3} (`vlm.data.sampling.MixtureShuffle`; each task's records in a fresh permutation, again
        when it runs out); default: every record once an epoch. samples_per_epoch: the epoch length under weights
        (default: all records of all tasks).
    vqa_image_filename: e.g. 'COCO_train2014_{image_id:012d}.jpg' for the VQAv2 2014 images;
    val_vqa_image_filename: the validation images' pattern when it differs ('COCO_val2014_{image_id:012d}.jpg').
    train_conversations / val_conversations: conversation files; their image paths are relative to
        conversation_images ({'train': ..., 'val': ...}, default the split's `*_images` folder).
    group_by_image: training VQA records hold all the questions of one image (`VqaV2(group_by_image=True)`), as
        caption records hold all its captions, so the model can encode the image once for several of its texts
        (`VisionLanguageTask.texts_per_image`); validation keeps one record per question.
    """

    collate_fn = staticmethod(collate_records)

    def __init__(
            self,
            root: str = 'data/coco',
            tasks: Tuple[str, ...] = ('captions', 'vqa'),
            val_tasks: Optional[Tuple[str, ...]] = None,
            mixture_weights: Optional[Dict[str, float]] = None,
            samples_per_epoch: Optional[int] = None,
            train_images: str = 'train2017',
            val_images: str = 'val2017',
            train_captions: str = 'annotations/captions_train2017.json',
            val_captions: str = 'annotations/captions_val2017.json',
            train_questions: str = 'v2_OpenEnded_mscoco_train2014_questions.json',
            val_questions: str = 'v2_OpenEnded_mscoco_val2014_questions.json',
            train_answers: str = 'v2_mscoco_train2014_annotations.json',
            val_answers: str = 'v2_mscoco_val2014_annotations.json',
            train_conversations: str = 'llava_instruct_150k.json',
            val_conversations: str = 'llava_instruct_val.json',
            conversation_images: Optional[Dict[str, str]] = None,
            train_instances: str = 'annotations/instances_train2017.json',
            val_instances: str = 'annotations/instances_val2017.json',
            attach_instances: bool = False,
            vqa_image_filename: str = '{image_id:012d}.jpg',
            val_vqa_image_filename: Optional[str] = None,
            group_by_image: bool = False,
            **kwargs: Any,
    ) -> None:
        super().__init__(root, **kwargs)
        self.save_hyperparameters()
        self.tasks = self._check_tasks(tasks, 'tasks')
        self.val_tasks = self._check_tasks(val_tasks or tasks, 'val_tasks')
        self.mixture_weights = self._check_weights(mixture_weights)
        self.paths = {
            'train': {'images': train_images, 'captions': train_captions, 'questions': train_questions,
                      'answers': train_answers, 'conversations': train_conversations, 'instances': train_instances},
            'val': {'images': val_images, 'captions': val_captions, 'questions': val_questions,
                    'answers': val_answers, 'conversations': val_conversations, 'instances': val_instances},
        }
        for split, folder in (conversation_images or {}).items():
            if split not in self.paths:
                raise ValueError(f"conversation_images: unknown split {split!r} (expected 'train' / 'val')")
            self.paths[split]['conversation_images'] = folder
        self.vqa_image_filename = {'train': vqa_image_filename,
                                   'val': val_vqa_image_filename or vqa_image_filename}
        self.transform = T.vision_language()
        self.collate_fns: Dict[str, Callable] = {}

    @staticmethod
    def _check_tasks(tasks: Sequence[str], name: str) -> Tuple[str, ...]:
        unknown = set(tasks) - set(TASKS)
        if unknown or not tasks:
            raise ValueError(f'{name} must be a non-empty subset of {TASKS}, got {tuple(tasks)}')
        return tuple(tasks)

    def _check_weights(self, weights: Optional[Mapping[str, float]]) -> Optional[Dict[str, float]]:
        if weights is None:
            return None
        if set(weights) != set(self.tasks):
            raise ValueError(f'mixture_weights must give a weight to each of the tasks {self.tasks}, got '
                             f'{dict(weights)}')
        return {task: float(weights[task]) for task in self.tasks}

    def set_collate_fns(self, train: Callable, evaluate: Callable) -> None:
        """The collators of the training split and of the evaluation splits (val, test, predict)."""
        self.collate_fns = {'train': train, 'val': evaluate, 'test': evaluate, 'predict': evaluate}

    def collate_for(self, split: str) -> Callable:
        return self.collate_fns.get(split, collate_records)

    def _part(self, split: str, task: str) -> Dataset:
        paths = self.paths[split]
        images = self.path(paths['images'])
        if task == 'instances':
            return InstanceImages(images, self.path(paths['instances']), self.transform, self.skip_bad_samples,
                                  hflip=split == 'train')
        if task == 'captions':
            return self._with_instances(split, CocoCaptions(images, self.path(paths['captions']), self.transform,
                                                            self.skip_bad_samples))
        if task == 'vqa':
            return self._with_instances(split, VqaV2(
                images, self.path(paths['questions']), self.path(paths['answers']), self.vqa_image_filename[split],
                self.transform, self.skip_bad_samples, group_by_image=self.hparams.group_by_image and split == 'train'))
        folder = self.path(paths['conversation_images']) if 'conversation_images' in paths else images
        return LlavaConversations(folder, self.path(paths['conversations']), self.transform, self.skip_bad_samples)

    def _with_instances(self, split: str, dataset: Dataset) -> Dataset:
        if not self.hparams.attach_instances:
            return dataset
        return WithInstances(dataset, InstanceIndex(self.path(self.paths[split]['instances'])))

    def _dataset(self, split: str) -> Dataset:
        parts = [self._part(split, task) for task in (self.tasks if split == 'train' else self.val_tasks)]
        return parts[0] if len(parts) == 1 else ConcatDataset(parts)

    def train_sampler(self, dataset: Dataset, seed: int) -> Sampler:
        """By `mixture_weights` when given, else every record once an epoch."""
        if self.mixture_weights is None:
            return super().train_sampler(dataset, seed)
        parts = dataset.datasets if isinstance(dataset, ConcatDataset) else [dataset]
        return MixtureShuffle([len(part) for part in parts], list(self.mixture_weights.values()), seed,
                              self.hparams.samples_per_epoch, self._trainer_epoch)

    def training_texts(self) -> Iterator[str]:
        """The training split's captions, questions with their answers and conversations, in prompt form, read
        from the annotation files alone (no image is opened): what a tokenizer is trained on, at any stage."""
        self.ensure_data()
        return dataset_texts(self.datasets.get('train') or self._dataset('train'))

    def setup(self, stage: str) -> None:
        self.ensure_data()
        if stage == 'fit':
            self.datasets['train'] = self._dataset('train')
        if stage in ('fit', 'validate', 'test', 'predict'):
            dataset = self._dataset('val')
            self.datasets['val'] = self.datasets['test'] = self.datasets['predict'] = dataset
        self.report_load_skips()
