"""Memory and speed switches from a config: `torch.compile` of the encoder (same outputs as eager), bf16-mixed
(bf16 compute, fp32 weights), and gradient accumulation (the same update as one batch of the summed size)."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest
import timm
import torch

from vlm.cli.lightning import VlmCLI
from vlm.encoder import dense_features
from vlm.tasks import ImageClassifier, ObjectDetector, SemanticSegmenter, VisionLanguageTask
from vlm.tasks.base import compile_blocks

from .in_memory import fit, write_classifier_config

TINY = dict(patch_size=8, img_size=32, depth=2, embed_dim=64, num_heads=2)


# -- torch.compile ----------------------------------------------------------------------------------------------

def test_inductor_compiled_encoder_matches_eager_outputs_and_gradients():
    """The real compiler (inductor, C++ codegen on the CPU) on the blocks of a 2-block encoder: forward,
    backward and `dense_features` (timm's forward_intermediates, what the dense tasks call) agree."""
    torch.manual_seed(0)
    eager = timm.create_model('vlm_vit_tiny_patch16_rope_rms', **TINY, num_classes=3)
    compiled = copy.deepcopy(eager)
    compile_blocks(compiled, backend='inductor')
    assert all(block._compiled_call_impl is not None for block in compiled.blocks)
    images = torch.randn(2, 3, 32, 48)  # not square: RoPE over a 4 x 6 grid
    expected, actual = eager(images), compiled(images)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-4)
    expected.square().sum().backward()
    actual.square().sum().backward()
    for (name, p), q in zip(eager.named_parameters(), compiled.parameters()):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-5, rtol=1e-4, msg=name)
    with torch.no_grad():
        torch.testing.assert_close(dense_features(compiled, images).last, dense_features(eager, images).last,
                                   atol=1e-5, rtol=1e-4)
    assert compiled.state_dict().keys() == eager.state_dict().keys()


class CountingBackend:
    """A `torch.compile` backend that runs the captured graphs as they are and counts them."""

    def __init__(self) -> None:
        self.graphs = 0

    def __call__(self, graph: torch.fx.GraphModule, example_inputs: List[torch.Tensor]) -> Callable:
        self.graphs += 1
        return graph.forward


def _classifier(backend: Callable) -> Any:
    return ImageClassifier(num_classes=3, encoder='vlm_vit_tiny_patch16_rope_rms', encoder_kwargs=TINY,
                           compile_encoder={'backend': backend})


def _detector(backend: Callable) -> Any:
    return ObjectDetector(num_classes=3, encoder='vlm_vit_tiny_patch16_rope_rms', encoder_kwargs=TINY,
                          pyramid_channels=32, min_size=64, max_size=64, compile_encoder={'backend': backend})


def _segmenter(backend: Callable) -> Any:
    return SemanticSegmenter(num_classes=3, encoder='vlm_vit_tiny_patch16_rope_rms', encoder_kwargs=TINY,
                             pyramid_channels=16, head_channels=16, compile_encoder={'backend': backend})


def _vision_language(backend: Callable) -> Any:
    from tests.language.tiny import TINY_DECODER, tiny_tokenizer

    task = VisionLanguageTask(encoder='vlm_vit_tiny_patch16_rope_rms', encoder_kwargs=TINY, decoder=TINY_DECODER,
                              pixel_shuffle=2, image_size=32, compile_encoder={'backend': backend})
    task.build(tiny_tokenizer())
    return task


def _task_outputs(task: Any, images: torch.Tensor) -> List[torch.Tensor]:
    """What each task computes from its encoder: logits, pyramid levels, or the VLM's loss."""
    if isinstance(task, ObjectDetector):
        return list(task.model.backbone(images).values())
    if isinstance(task, VisionLanguageTask):
        from vlm.language.prompts import caption_prompt, target_text

        uint8 = (images[:, :, :32, :32].sigmoid() * 255).to(torch.uint8)
        inputs = task.processor([caption_prompt()] * len(images), list(uint8), [target_text('a red circle')] * len(images),
                                padding_side='right')
        return [task.model(**inputs).loss]
    return [task(images)]


TASKS: Dict[str, tuple] = {
    'classification': (ImageClassifier, _classifier, 'model'),
    'detection': (ObjectDetector, _detector, 'model.backbone.encoder'),
    'segmentation': (SemanticSegmenter, _segmenter, 'model.backbone.encoder'),
    'vision_language': (VisionLanguageTask, _vision_language, 'model.encoder'),
}


@pytest.mark.parametrize('name', list(TASKS))
def test_every_task_compiles_its_encoder_to_the_same_outputs(name):
    """`compile_encoder` compiles exactly the encoder's blocks, in place, the task's own entry point runs them
    compiled (graphs are captured; here by a backend that runs them as captured, without inductor's C++ compile
    time), and the task computes what it did."""
    _, make, encoder_path = TASKS[name]
    torch.manual_seed(0)
    backend = CountingBackend()
    task = make(backend)
    eager = copy.deepcopy(task).eval()
    task.eval().setup('fit')  # VisionLanguageTask compiled in `build`; `setup` is then a no-op for it
    encoder = task.encoder_module()
    assert encoder is task.get_submodule(encoder_path)
    assert all(block._compiled_call_impl is not None for block in encoder.blocks)  # in place
    assert task.state_dict().keys() == eager.state_dict().keys()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        for got, expected in zip(_task_outputs(task, images), _task_outputs(eager, images)):
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert backend.graphs >= 1  # the blocks really ran through torch.compile


# -- bf16-mixed and gradient accumulation, from a config -----------------------------------------------------------

def _config(tmp_path: Path, name: str, **trainer: Any) -> Path:
    trainer = {'max_epochs': 1, 'limit_val_batches': 0,
               'callbacks': [{'class_path': 'tests.tasks.in_memory.RecordTraining'}], **trainer}
    return write_classifier_config(tmp_path, name, TINY, trainer, {'optimization': {'warmup_epochs': 0.5}, 'label_smoothing': 0.0},
                                   n=16)


def _recorder(cli: VlmCLI) -> Any:
    from tests.tasks.in_memory import RecordTraining

    return next(c for c in cli.trainer.callbacks if isinstance(c, RecordTraining))


def test_gradient_accumulation_gives_the_update_of_one_big_batch(tmp_path):
    """2 accumulated batches of 4 = 1 batch of 8: the same weights after every optimizer step and the same lr
    schedule (counted in optimizer steps). The model has no batch-dependent layer (no BatchNorm, no dropout)."""
    config = _config(tmp_path, 'acc')
    big = fit(config, '--data.init_args.batch_size', '8')
    accumulated = fit(config, '--data.init_args.batch_size', '4', '--trainer.accumulate_grad_batches', '2')
    small = fit(config, '--data.init_args.batch_size', '4')  # the control: 4 steps of 4 is another update
    assert big.trainer.global_step == accumulated.trainer.global_step == 2 and small.trainer.global_step == 4
    assert _recorder(big).lrs == pytest.approx(_recorder(accumulated).lrs[1::2], rel=1e-9)
    reference = big.model.state_dict()
    moved = 0
    for key, value in accumulated.model.state_dict().items():
        torch.testing.assert_close(value, reference[key], atol=2e-6, rtol=1e-5, msg=key)
        moved += int(not torch.equal(value, small.model.state_dict()[key]))
    assert moved > 10  # the control differs: the comparison above is not vacuous


def test_bf16_mixed_computes_in_bf16_and_keeps_fp32_weights(tmp_path):
    config = _config(tmp_path, 'bf16')
    fp32 = fit(config, '--trainer.max_steps', '1')
    bf16 = fit(config, '--trainer.max_steps', '1', '--trainer.precision', 'bf16-mixed')
    fp32_run, bf16_run = _recorder(fp32), _recorder(bf16)
    assert set(fp32_run.activation_dtypes) == {torch.float32}
    assert set(bf16_run.activation_dtypes) == {torch.bfloat16}  # the matmuls ran in bf16 under autocast
    assert set(bf16_run.parameter_dtypes) == {torch.float32}  # master weights stay fp32
    # same initial weights and batch: the first loss agrees to bf16 precision, but not bit for bit
    assert bf16_run.losses[0] == pytest.approx(fp32_run.losses[0], rel=2e-2)
    assert bf16_run.losses[0] != fp32_run.losses[0]
    initial = _config(tmp_path, 'init')
    untrained = VlmCLI(args=['--config', str(initial)], run=False).model.state_dict()
    changed = [k for k, v in bf16.model.state_dict().items() if v.dtype == torch.float32 and not torch.equal(v, untrained[k])]
    assert len(changed) > 10  # the optimizer updated the fp32 weights
