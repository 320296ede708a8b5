"""Measured sensitivity: how much the model's output distribution moves (KL from the float model on
calibration windows) when one weight tensor alone is quantized with one (bits, group) option.

Every tensor and option costs one forward pass over the windows, so this is for models whose
forward pass is cheap (stories260K: 36 tensors x 6 options in seconds); large models use a rules
policy or a Hessian proxy.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from taalas_compile.model.weights import WeightSource
from taalas_compile.quant.calibrate import BATCH, calib_model
from taalas_compile.quant.codes import QTensor, QuantSpec, quantize_tensor

EMBED = "model.embed_tokens.weight"


def _logprobs(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """log p [N, S, V] of `model` on tokens [N, S]."""
    return torch.cat([torch.log_softmax(model(tokens[i : i + BATCH]).float(), -1) for i in range(0, tokens.shape[0], BATCH)])


def kl_from(ref: torch.Tensor, logp: torch.Tensor) -> float:
    """Mean over positions of KL(p_ref || p). ref, logp: [N, S, V] log-probabilities."""
    return float((ref.exp() * (ref - logp)).sum(-1).mean())


@torch.no_grad()
def measure_sensitivity(source: WeightSource, names: list[str], options: list[QuantSpec], tokens: torch.Tensor,
                        clip_search: bool, make_qlinear: Callable[[QTensor], nn.Module]) -> dict[str, list[float]]:
    """{tensor: [ΔKL per option]}: the KL from the float model with only that tensor quantized
    (round-to-nearest + clip search). tokens: [N, S] calibration windows."""
    model = calib_model(source)
    ref = _logprobs(model, tokens)
    out: dict[str, list[float]] = {}
    for name in names:
        w = source.get(name)
        if name == EMBED:  # the lookup table (and the head too when tied)
            emb = model.model.embed_tokens
            keep = emb.weight.data.clone()
            out[name] = []
            for spec in options:
                emb.weight.data.copy_(quantize_tensor(w, spec, clip_search).dequantize())
                out[name].append(kl_from(ref, _logprobs(model, tokens)))
            emb.weight.data.copy_(keep)
            continue
        parent, _, attr = name.removesuffix(".weight").rpartition(".")
        holder = model.get_submodule(parent) if parent else model
        orig = getattr(holder, attr)
        out[name] = []
        for spec in options:
            setattr(holder, attr, make_qlinear(quantize_tensor(w, spec, clip_search)))
            out[name].append(kl_from(ref, _logprobs(model, tokens)))
        setattr(holder, attr, orig)
    return out
