"""RMSNorm with a fused-reduction autograd function, as a drop-in `timm.layers.RmsNorm`.

RMSNorm scales each token by the root mean square of its channels, y = x / sqrt(mean(x^2) + eps) * weight:
no mean subtraction and no bias. timm's eager `RmsNorm` spells this as five separate ops that autograd
records one by one, which on a CPU costs about eight LayerNorms. The function below does one fused
reduction forward (`torch.linalg.vector_norm`) and a hand-written backward. Kept over the library pieces because it
is still the fastest, if only just against torch's (each gap is within this VM's noise on a single run, but every
run measured went the same way), on the 2-core CI machine (torch 2.14.1, timm 1.0.31, 2026-12-06):
- forward + backward on (16, 197, 384) (`python -m benchmarks.speed.encoder_speed --components`): 3.69 ms, against
  3.85 ms for `torch.nn.functional.rms_norm` (1.04x) and 5.84 ms for timm's eager `RmsNorm` (1.58x);
- a ViT-S/16 training step (`python -m benchmarks.speed.encoder_speed`): 0.947 of timm's plain ViT with this norm,
  0.938 with `F.rms_norm` in its place (a 5-round run of the two alone: 0.954 against 0.925).
"""
from __future__ import annotations

from typing import Optional

import torch
from timm.layers import RmsNorm


class _RmsNormFunction(torch.autograd.Function):
    """y = x * rsqrt(mean(x^2) + eps) * weight over the last dim; x: (..., C), weight: (C,)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: Optional[torch.Tensor], eps: float) -> torch.Tensor:
        channels = x.shape[-1]
        mean_square = torch.linalg.vector_norm(x, dim=-1, keepdim=True).square_().div_(channels)  # (..., 1)
        rstd = mean_square.add_(eps).rsqrt_()
        y = x * rstd
        if weight is not None:
            y.mul_(weight)
        ctx.save_for_backward(x, weight, rstd)
        return y

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x, weight, rstd = ctx.saved_tensors
        x_hat = x * rstd  # (..., C)
        grad_weight = None
        if weight is not None:
            if ctx.needs_input_grad[1]:
                grad_weight = (grad_out * x_hat).reshape(-1, x.shape[-1]).sum(0)
            grad_x_hat = grad_out * weight
        else:
            grad_x_hat = grad_out
        grad_x = None
        if ctx.needs_input_grad[0]:
            # d/dx of x * rstd: rstd * (g - x_hat * mean(g * x_hat))
            projection = (grad_x_hat * x_hat).mean(-1, keepdim=True)
            grad_x = (grad_x_hat - x_hat.mul_(projection)).mul_(rstd)
        return grad_x, grad_weight, None


def rms_norm(x: torch.Tensor, weight: Optional[torch.Tensor] = None, eps: float = 1e-6) -> torch.Tensor:
    """RMS-normalise the last dim of `x` (..., C), then scale by `weight` (C,).

    Under autocast the norm runs in float32 and returns float32, as torch does for LayerNorm.
    """
    if torch.is_autocast_enabled(x.device.type):
        with torch.autocast(device_type=x.device.type, enabled=False):
            return _RmsNormFunction.apply(x.float(), None if weight is None else weight.float(), eps)
    return _RmsNormFunction.apply(x, weight, eps)


class FastRmsNorm(RmsNorm):
    """`timm.layers.RmsNorm` (same parameters, same state dict) with the fused forward/backward above."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.normalized_shape) != 1:
            return super().forward(x)
        return rms_norm(x, self.weight, self.eps)


class RmsNormWithBias(FastRmsNorm):
    """y = rms_norm(x) * weight + bias: the final norm of a converted pre-LN ViT, where LayerNorm's bias has no
    reader inside the encoder to fold into (`vlm.encoder.conversion`); on a zero-mean stream it equals the
    source's LayerNorm exactly. State dict: `weight`, `bias`, as LayerNorm's."""

    def __init__(self, channels: int, eps: float = 1e-6, **kwargs) -> None:
        super().__init__(channels, eps=eps, **kwargs)
        self.bias = torch.nn.Parameter(torch.zeros(self.normalized_shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)  # float32 under autocast, as LayerNorm
        return y + self.bias.to(y.dtype)


class RmsNormProjection(torch.nn.Module):
    """RMS-normalise (no weight), then a Linear: the pre-transformer norm of a converted CLIP tower, whose output
    starts the residual stream and so must be centred (the centring and LayerNorm's weight and bias fold into the
    Linear: C diag(w) and C b)."""

    def __init__(self, channels: int, eps: float = 1e-6, **kwargs) -> None:
        super().__init__()
        self.eps = eps
        self.proj = torch.nn.Linear(channels, channels, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(rms_norm(x, None, self.eps))  # (..., C)
