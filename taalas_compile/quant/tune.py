"""Scale tuning: with the codes fixed (they are the vias), fit every fp16 group scale end to end so
the quantized model's next-token distribution matches the float model's on the calibration windows
(mean KL(p_float || p_quant), Adam on log-scales; the int8 activation rounding passes gradients
straight through). Only scales change, so the etched format and the emulator are untouched."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from taalas_compile.model.weights import WeightSource
from taalas_compile.quant.calibrate import calib_model
from taalas_compile.quant.codes import FP16_TINY, QTensor
from taalas_compile.quant.sensitivity import _logprobs

EMBED = "model.embed_tokens.weight"
FP16_MAX = 65504.0


class _Scaled(nn.Module):
    """codes [out, in] x (fp16 scale [out, ng] · exp(log-gain)): a linear or the embedding table."""

    def __init__(self, q: QTensor, act_bits: int):
        super().__init__()
        self.register_buffer("codes", torch.from_numpy(q.codes.astype(np.float32)))
        self.register_buffer("base", torch.from_numpy(q.scales.astype(np.float32)))
        self.log_gain = nn.Parameter(torch.zeros_like(self.base))
        self.group, self.act_bits = q.group, act_bits

    def scales(self) -> torch.Tensor:
        return self.base * torch.exp(self.log_gain)  # [out, ng]

    def weight(self) -> torch.Tensor:
        return self.codes * self.scales().repeat_interleave(self.group, dim=1)[:, : self.codes.shape[1]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from taalas_compile.quant.reference import quantize_activation

        xq = x + (quantize_activation(x, self.group, self.act_bits) - x).detach()  # straight-through
        return F.linear(xq, self.weight())


class _Lookup(nn.Module):
    def __init__(self, table: _Scaled):
        super().__init__()
        self.table = table

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.embedding(tokens, self.table.weight())


def tune_scales(source: WeightSource, qweights: dict[str, QTensor], tokens: torch.Tensor, act_bits: int, *,
                steps: int, lr: float, batch: int, seed: int = 0) -> dict[str, QTensor]:
    """qweights with every scale refitted; codes unchanged. tokens: [N, S] calibration windows."""
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
    for p in gains:
        p.requires_grad_(True)
    opt = torch.optim.Adam(gains, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    n = tokens.shape[0]
    for step in range(steps):
        for group in opt.param_groups:  # cosine decay to zero
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
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
            q = qweights[name]
            out[name] = QTensor(q.codes, s, q.bits, q.group)
    return {name: out[name] for name in qweights}
