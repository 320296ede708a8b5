"""The quantizer's fast, differentiable stand-in for the die's MAC arithmetic: what GPTQ, the
sensitivity measurements and the end-to-end tuning run (fake-quantized activations, float matmul).
It rounds activations as the die does (`die/arithmetic.quantize_groups`) but accumulates in float,
so it is not bit-exact; the reference a chip is held to is the golden model (`quant/golden.py`).

- Every MAC tile input is quantized to signed `act_bits` integers with one fp32 scale per weight
  group (absmax / (2^(act_bits-1) - 1), round half to even).
- Weight matrices are codes x fp16 group scales (`QTensor.dequantize`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from taalas_compile.quant.codes import QTensor

_TINY = torch.finfo(torch.float32).tiny  # a zero group's scale: 0 / tiny = 0, as the die gives


def quantize_activation(x: torch.Tensor, group: int, bits: int, inplace: bool = False) -> torch.Tensor:
    """Fake-quantize the last axis of x [..., n] in groups of `group` (last group ragged).

    One new tensor (none with `inplace` on a float32 x whose n is a multiple of `group`: x itself
    is overwritten) and in-place passes over it: this runs on every MAC input of every forward pass."""
    n = x.shape[-1]
    qmax = (1 << (bits - 1)) - 1
    pad = -n % group
    xp = (F.pad(x.float(), (0, pad)) if pad else x.float()).reshape(*x.shape[:-1], -1, group)  # [..., ng, g]
    # absmax per group as max(max, -min): two reductions, no |x| temporary (equal to abs().amax())
    scale = torch.maximum(xp.amax(dim=-1, keepdim=True), xp.amin(dim=-1, keepdim=True).neg_()).div_(qmax)  # fp32 per group
    if inplace and not pad and x.dtype == torch.float32 and xp.data_ptr() == x.data_ptr():
        q = xp.div_(scale.clamp(min=_TINY))
    else:
        q = torch.div(xp, scale.clamp(min=_TINY))
    q = q.round_().clamp_(-qmax, qmax).mul_(scale)
    q = q.reshape(*x.shape[:-1], -1)
    return q[..., :n] if pad else q


class QLinear(nn.Module):
    """y = dequant(W) @ quantize_activation(x): the arithmetic of a MAC tile."""

    def __init__(self, q: QTensor, act_bits: int, device: str | torch.device = "cpu"):
        super().__init__()
        self.register_buffer("weight", q.dequantize().to(device))  # [out, in] float32
        self.group, self.act_bits = q.group, act_bits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(quantize_activation(x, self.group, self.act_bits), self.weight)
