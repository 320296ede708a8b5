"""The quantized reference: the PyTorch model running exactly the etched codes and scales, with
the die's activation arithmetic (docs/die-model.md, "Arithmetic"). The emulator must agree with it.

- Every MAC tile input is quantized to signed `act_bits` integers with one fp32 scale per weight
  group (absmax / (2^(act_bits-1) - 1), round half to even).
- Weight matrices are codes x fp16 group scales; the embedding lookup returns a dequantized row.
- Norm gains are fp16; RoPE inverse frequencies fp32.
"""

from __future__ import annotations

import networkx as nx
import torch
import torch.nn.functional as F
from torch import nn

from taalas_compile.model.llama import Llama, build_model
from taalas_compile.model.weights import WeightSource
from taalas_compile.quant.codes import QTensor, QuantSpec, quantize_tensor, round_fp16
from taalas_compile.quant.plan import weight_params


def quantize_activation(x: torch.Tensor, group: int, bits: int) -> torch.Tensor:
    """Fake-quantize the last axis of x [..., n] in groups of `group` (last group ragged)."""
    n = x.shape[-1]
    qmax = (1 << (bits - 1)) - 1
    pad = -n % group
    xp = F.pad(x.float(), (0, pad)).reshape(*x.shape[:-1], -1, group)  # [..., ng, g]
    scale = xp.abs().amax(dim=-1, keepdim=True) / qmax  # fp32 per group
    q = torch.where(scale > 0, torch.round(xp / torch.where(scale > 0, scale, 1.0)), 0.0)
    return (q.clamp(-qmax, qmax) * scale).reshape(*x.shape[:-1], -1)[..., :n]


class QLinear(nn.Module):
    """y = dequant(W) @ quantize_activation(x): the arithmetic of a MAC tile."""

    def __init__(self, q: QTensor, act_bits: int):
        super().__init__()
        self.register_buffer("weight", q.dequantize())  # [out, in] float32
        self.group, self.act_bits = q.group, act_bits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(quantize_activation(x, self.group, self.act_bits), self.weight)


def quantize_weights(source: WeightSource, plan: dict[str, QuantSpec], clip_search: bool) -> dict[str, QTensor]:
    """Every planned weight tensor quantized, tensor by tensor."""
    return {name: quantize_tensor(source.get(name), spec, clip_search) for name, spec in plan.items()}


def build_quant_model(source: WeightSource, qweights: dict[str, QTensor], act_bits: int) -> Llama:
    """The float model with every planned tensor replaced by its etched form."""
    model = build_model(source)
    tied = source.args.tie_embeddings
    with torch.no_grad():
        emb = qweights["model.embed_tokens.weight"]
        model.model.embed_tokens.weight = nn.Parameter(emb.dequantize(), requires_grad=False)
        for name, mod in list(model.named_modules()):
            if isinstance(mod, nn.Linear):
                wname = "model.embed_tokens.weight" if (tied and name == "lm_head") else f"{name}.weight"
                parent, _, attr = name.rpartition(".")
                setattr(model.get_submodule(parent) if parent else model, attr, QLinear(qweights[wname], act_bits))
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(round_fp16(p))
    return model.eval()


def planned_names(g: nx.DiGraph) -> list[str]:
    return list(weight_params(g))
