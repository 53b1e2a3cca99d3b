"""Magnitude pruning of the encoder while a task fine-tunes: Lightning's `ModelPruning` aimed at the encoder."""
from __future__ import annotations

from typing import List, Optional, Tuple

import lightning as L
import torch
import torch.nn.utils.prune as prune
from lightning.pytorch.callbacks import ModelPruning
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from torch import nn

from vlm.encoder.sparsity import PRUNING_MODES, channel_coupled_parameters, prunable_parameters, sparsity

__all__ = ['EncoderPruning']


class EncoderPruning(ModelPruning):
    """Prune the task's encoder (`VlmTask.encoder_module()`) during fine-tuning, from a config:

    ```yaml
    trainer:
      callbacks:
        - class_path: vlm.callbacks.EncoderPruning
          init_args: {amount: 0.7, mode: unstructured, start_epoch: 0, end_epoch: 2}
    ```

    amount: the final sparsity, the fraction of the pruned weights that are zero (0 keeps the model dense).
    mode: 'unstructured': L1 magnitude over every `nn.Linear` weight of the blocks (attention qkv / proj, MLP
        fc1 / fc2), the same fraction in each (or one threshold for all with `use_global_unstructured`).
        'channels': structured, L2 norm of each MLP hidden channel (a row of fc1); the channel's fc1 bias and
        fc2 column are zeroed with it, so the block computes as if the channel were removed
        (`vlm.encoder.sparsity.slim_mlp_channels` then removes it for real).
    start_epoch / end_epoch: weights are pruned at the start of each epoch from `start_epoch` to `end_epoch`
        (default: `start_epoch` only, one shot), following the cubic schedule of Zhu & Gupta (2017): at the k-th
        of n pruning epochs the sparsity is amount * (1 - (1 - k / n) ** 3). Each step prunes exactly the count
        of entries (or rows) that reaches its target, so the final sparsity is `amount` up to one entry per
        tensor, also after a resume (the zeros of the restored weights count as pruned).

    Pruning at the start of an epoch means the epoch trains with its masks and its validation and checkpoints
    see the pruned model. Checkpoints hold plain `weight` tensors with the zeros (no `weight_orig` /
    `weight_mask`: ModelPruning's `on_save_checkpoint`), and at the end of fit the pruning is made permanent in
    the module (`prune.remove`), so exported weights are the pruned ones. Logs `train/sparsity` (exact zeros
    over the pruned tensors, `vlm.encoder.sparsity.sparsity`). Not for a task with an EMA of the weights, nor under
    FSDP / DeepSpeed (sharded parameters).
    """

    def __init__(
            self,
            amount: float = 0.5,
            mode: str = 'unstructured',
            start_epoch: int = 0,
            end_epoch: Optional[int] = None,
            use_global_unstructured: bool = False,
            make_pruning_permanent: bool = True,
    ) -> None:
        if not 0 <= amount < 1:
            raise ValueError(f'amount is the final sparsity, in [0, 1); got {amount}')
        if mode not in PRUNING_MODES:
            raise ValueError(f'mode must be one of {PRUNING_MODES}, got {mode!r}')
        if mode == 'channels' and use_global_unstructured:
            raise ValueError("use_global_unstructured is for mode='unstructured'")
        end_epoch = start_epoch if end_epoch is None else end_epoch
        if not 0 <= start_epoch <= end_epoch:
            raise ValueError(f'need 0 <= start_epoch <= end_epoch, got {start_epoch} and {end_epoch}')
        self.final_sparsity, self.mode = amount, mode
        self.start_epoch, self.end_epoch = start_epoch, end_epoch
        structured = mode == 'channels'
        super().__init__(
            pruning_fn='ln_structured' if structured else 'l1_unstructured',
            use_global_unstructured=use_global_unstructured,
            amount=self.target_sparsity,
            make_pruning_permanent=make_pruning_permanent,
            use_lottery_ticket_hypothesis=False,
            pruning_dim=0 if structured else None,
            pruning_norm=2 if structured else None,
        )
        self._coupled: List[Tuple[nn.Linear, nn.Linear]] = []  # (fc1, fc2) pairs, 'channels' mode

    def target_sparsity(self, epoch: int) -> float:
        """The sparsity the pruned tensors have during `epoch` (the cubic schedule)."""
        if epoch < self.start_epoch or self.final_sparsity == 0:
            return 0.0
        steps = self.end_epoch - self.start_epoch + 1
        done = min(epoch, self.end_epoch) - self.start_epoch + 1
        return self.final_sparsity * (1 - (1 - done / steps) ** 3)

    # -- what is pruned: resolved once the task has built its model (after every `setup`) -------------------
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Nothing yet: a task may build its encoder in its own `setup`, which runs after the callbacks'."""

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        encoder = pl_module.encoder_module() if hasattr(pl_module, 'encoder_module') else None
        if encoder is None:
            raise ValueError(f'EncoderPruning needs a vlm task with an encoder, got {type(pl_module).__name__}')
        if getattr(pl_module, 'ema', None) is not None:
            raise ValueError('EncoderPruning does not work with an EMA of the weights (ema_decay): the EMA copy '
                             'would be neither pruned nor aligned with the pruned parameters')
        self._parameters_to_prune = prunable_parameters(encoder, self.mode)
        self._coupled = [(block.mlp.fc1, block.mlp.fc2) for block in encoder.blocks] if self.mode == 'channels' else []
        super().setup(trainer, pl_module, 'fit')  # ModelPruning checks the pairs belong to the module

    def pruned_parameters(self) -> List[Tuple[nn.Module, str]]:
        """Every tensor this callback zeroes: the pruned weights and, for 'channels', fc1 biases and fc2 columns."""
        return list(self._parameters_to_prune) + [pair for fc1, fc2 in self._coupled
                                                  for pair in channel_coupled_parameters(fc1, fc2)]

    def sparsity(self) -> float:
        """Fraction of exact zeros over `pruned_parameters()`."""
        return sparsity(self.pruned_parameters())

    # -- when: at the start of each epoch -------------------------------------------------------------------
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._run_pruning(trainer.current_epoch)
        if self.final_sparsity > 0 and trainer.current_epoch >= self.start_epoch:
            value = self.sparsity()
            pl_module.log('train/sparsity', value, on_step=False, on_epoch=True, sync_dist=True)
            rank_zero_info(f'EncoderPruning: epoch {trainer.current_epoch}, {self.mode} sparsity {value:.4f} '
                           f'(target {self.target_sparsity(trainer.current_epoch):.4f})')

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Not here (ModelPruning's default): pruning happens at the start of the epoch."""

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Not here either."""

    # -- how: exactly the count that reaches the target --------------------------------------------------------
    def apply_pruning(self, amount: float) -> None:
        """Prune the tensors to sparsity `amount`: as many more entries (or rows) as reach it, of the remaining."""
        targets = list(self._parameters_to_prune)
        if self._use_global_unstructured:
            totals = [_units(module, name) for module, name in targets]
            count = round(amount * sum(t for t, _ in totals)) - sum(p for _, p in totals)
            if count > 0:
                prune.global_unstructured(targets, pruning_method=self.pruning_fn, amount=count)
        else:
            for module, name in targets:
                total, pruned = _units(module, name, rows=self.mode == 'channels')
                count = round(amount * total) - pruned
                if count > 0:
                    self.pruning_fn(module, name=name, amount=count)
        for fc1, fc2 in self._coupled:
            _couple_channel_masks(fc1, fc2)


def _units(module: nn.Module, name: str, rows: bool = False) -> Tuple[int, int]:
    """(entries, or rows when `rows`; how many of them the current mask prunes). Without a mask nothing counts
    as pruned: the next prune then ranks all entries, and zeros (of restored weights) come first."""
    mask = getattr(module, f'{name}_mask', None)
    tensor = getattr(module, f'{name}_orig', None) if mask is not None else getattr(module, name)
    if rows:
        total = tensor.shape[0]
        pruned = int((mask.flatten(1) == 0).all(dim=1).sum()) if mask is not None else 0
    else:
        total = tensor.numel()
        pruned = int((mask == 0).sum()) if mask is not None else 0
    return total, pruned


@torch.no_grad()
def _couple_channel_masks(fc1: nn.Linear, fc2: nn.Linear) -> None:
    """Give fc1's bias and fc2's columns the mask of fc1's rows (hidden channels)."""
    alive = fc1.weight_mask.amax(dim=1)  # (hidden,), 1 for a kept channel
    for module, name in channel_coupled_parameters(fc1, fc2):
        mask = alive if name == 'bias' else alive[None, :].expand_as(fc2.weight_orig if hasattr(fc2, 'weight_orig')
                                                                    else fc2.weight)
        if hasattr(module, f'{name}_mask'):
            getattr(module, f'{name}_mask').copy_(mask)
            setattr(module, name, getattr(module, f'{name}_orig') * getattr(module, f'{name}_mask'))
        else:
            prune.custom_from_mask(module, name, mask.clone())
