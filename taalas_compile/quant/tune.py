"""End-to-end tuning: fit the fp16 group scales, and with `codes_lr` > 0 the integer codes too, so
the quantized model's next-token distribution matches the float model's on the calibration windows
(mean KL(p_float || p_quant), Adam with cosine decay).

- Scales: a multiplicative gain per (row, group), Adam on its logarithm.
- Codes (learnt rounding): every code has a latent real value u, initialised to the code (the GPTQ
  result); the forward pass uses round(clamp(u, lo, hi)) and the gradient passes the rounding
  straight through, so a code moves to a neighbour only when the KL keeps pushing it there.
  Adam's step on u is in code units (`codes_lr` ≈ 0.02: a code needs tens of consistent steps to flip).
- The int8 activation rounding passes gradients straight through.

The result is again codes in the bit width's range and fp16 scales, in the same layout, so the
etched format and the emulator are untouched."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from taalas_compile.model.weights import WeightSource
from taalas_compile.quant.arith import quantize_activation
from taalas_compile.quant.calibrate import calib_model
from taalas_compile.quant.codes import FP16_TINY, QTensor, code_range
from taalas_compile.quant.sensitivity import _logprobs

EMBED = "model.embed_tokens.weight"
FP16_MAX = 65504.0


class _Scaled(nn.Module):
    """codes [out, in] x (fp16 scale [out, ng] · exp(log-gain)): a linear or the embedding table.
    The codes are round(clamp(u)) of latent values u [out, in] (straight-through)."""

    def __init__(self, q: QTensor, act_bits: int):
        super().__init__()
        self.u = nn.Parameter(torch.from_numpy(q.codes.astype(np.float32)))
        self.register_buffer("base", torch.from_numpy(q.scales.astype(np.float32)))
        self.log_gain = nn.Parameter(torch.zeros_like(self.base))
        self.group, self.act_bits, self.bits = q.group, act_bits, q.bits
        self.lo, self.hi = code_range(q.bits)

    def scales(self) -> torch.Tensor:
        return self.base * torch.exp(self.log_gain)  # [out, ng]

    def codes(self) -> torch.Tensor:
        c = torch.clamp(self.u, self.lo, self.hi)
        return c + (torch.round(c) - c).detach()  # integer values, straight-through gradient

    def weight(self) -> torch.Tensor:
        return self.codes() * self.scales().repeat_interleave(self.group, dim=1)[:, : self.u.shape[1]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xq = x + (quantize_activation(x, self.group, self.act_bits) - x).detach()  # straight-through
        return F.linear(xq, self.weight())


class _Lookup(nn.Module):
    def __init__(self, table: _Scaled):
        super().__init__()
        self.table = table

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.embedding(tokens, self.table.weight())


def tune_end_to_end(source: WeightSource, qweights: dict[str, QTensor], tokens: torch.Tensor, act_bits: int, *,
                    steps: int, lr: float, batch: int, codes_lr: float = 0.0, seed: int = 0) -> dict[str, QTensor]:
    """qweights with every scale refitted, and with `codes_lr` > 0 the codes as well (else unchanged).
    tokens: [N, S] calibration windows; lr: peak rate of the log-scales, codes_lr: of the latent codes."""
    if steps <= 0:
        return qweights
    torch.manual_seed(seed)
    model = calib_model(source)
    with torch.no_grad():
        ref = _logprobs(model, tokens)  # [N, S, V] float model
    tied = source.args.tie_embeddings
    mods: dict[str, _Scaled] = {}
    for name, mod in list(model.named_modules()):
        if isinstance(mod, nn.Linear):
            w = EMBED if (tied and name == "lm_head") else f"{name}.weight"
            mods.setdefault(w, _Scaled(qweights[w], act_bits))
            parent, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, attr, mods[w])
    mods.setdefault(EMBED, _Scaled(qweights[EMBED], act_bits))
    model.model.embed_tokens = _Lookup(mods[EMBED])
    for p in model.parameters():
        p.requires_grad_(False)
    gains = [m.log_gain for m in mods.values()]
    groups = [{"params": gains, "lr": lr, "peak": lr}]
    if codes_lr > 0:
        groups.append({"params": [m.u for m in mods.values()], "lr": codes_lr, "peak": codes_lr})
    for g in groups:
        for p in g["params"]:
            p.requires_grad_(True)
    opt = torch.optim.Adam(groups)
    gen = torch.Generator().manual_seed(seed)
    n = tokens.shape[0]
    for step in range(steps):
        for group in opt.param_groups:  # cosine decay to zero
            group["lr"] = group["peak"] * 0.5 * (1 + math.cos(math.pi * step / steps))
        idx = torch.randperm(n, generator=gen)[: min(batch, n)]
        logq = torch.log_softmax(model(tokens[idx]).float(), -1)  # [B, S, V]
        r = ref[idx]
        loss = (r.exp() * (r - logq)).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = dict(qweights)
    with torch.no_grad():
        for name, m in mods.items():
            s = m.scales().clamp(FP16_TINY, FP16_MAX).numpy().astype(np.float16)
            c = torch.round(torch.clamp(m.u, m.lo, m.hi)).numpy().astype(np.int8)
            out[name] = QTensor(np.ascontiguousarray(c), s, m.bits, m.group)
    return {name: out[name] for name in qweights}
