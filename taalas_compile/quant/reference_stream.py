"""The float model and the quantized reference run one layer at a time, for chips too large to hold
as two PyTorch models (llama-3.1-8b: 32 GB of float weights).

Teacher-forced: the whole token sequence goes through a layer at once (causal attention), then the
layer's weights are freed. Every tensor's codes come through `Etched.rows` (quant/etched.py), the
very function the compile's block jobs build the ROM images with — the streamed quantizer's unit
files for calibrated codes, round-to-nearest + clip search of the checkpoint's rows otherwise — so
the codes are the etched ones without holding the model: the embedding reads only the rows of the
tokens fed, the output head one band of rows at a time. The quantized side is the golden model
(`quant/golden.py`: the die's exact arithmetic), layer by layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from taalas_compile.model.llama import DecoderLayer, RMSNorm
from taalas_compile.model.rope import inv_freq
from taalas_compile.model.weights import WeightSource
from taalas_compile.quant.codes import QTensor
from taalas_compile.quant.etched import Etched
from taalas_compile.quant.golden import GoldenRMSNorm, MacLinear, golden

HEAD_BAND = 8192  # output-head rows quantized and applied at a time


@dataclass
class StreamedReference:
    """Per stage ("embed", "layers.0", ...): the quantized reference's hidden state [T, dim];
    and both models' logits [T, vocab]."""

    hidden: dict[str, np.ndarray]
    quant_logits: np.ndarray | None  # None when run only up to a layer (`run_streamed(..., last_layer=)`)
    float_logits: np.ndarray | None


def _layer(source: WeightSource, i: int, linear: Callable[[str], nn.Module]) -> DecoderLayer:
    """Float decoder layer `i` with every linear made by `linear(weight name)`."""
    args = source.args
    with torch.device("meta"):
        layer = DecoderLayer(args)
    p = f"model.layers.{i}."
    for name, mod in list(layer.named_modules()):
        parent, _, attr = name.rpartition(".")
        owner = layer.get_submodule(parent) if parent else layer
        if isinstance(mod, nn.Linear):
            setattr(owner, attr, linear(f"{p}{name}.weight"))
        elif isinstance(mod, RMSNorm):
            mod.weight = nn.Parameter(source.get(f"{p}{name}.weight"), requires_grad=False)
    freq = inv_freq(args)
    layer.self_attn.q_rope.inv_freq = freq.clone()
    layer.self_attn.k_rope.inv_freq = freq.clone()
    return layer.eval()


def _float_linear(source: WeightSource, name: str) -> nn.Module:
    w = source.get(name)
    lin = nn.Linear(w.shape[1], w.shape[0], bias=False, device="meta")
    lin.weight = nn.Parameter(w, requires_grad=False)
    return lin


def float_layer(source: WeightSource, i: int) -> DecoderLayer:
    """Decoder layer `i` of the float model."""
    return _layer(source, i, lambda name: _float_linear(source, name))


def golden_layer(source: WeightSource, i: int, codes_of: Callable[[str], QTensor], act_bits: int, kv_bits: int) -> DecoderLayer:
    """Decoder layer `i` of the quantized reference (the golden model): MAC linears on the codes
    `codes_of(weight name)`, the rest converted by `golden`."""
    return golden(_layer(source, i, lambda name: MacLinear(codes_of(name), act_bits)), _no_linear, act_bits, kv_bits)


def _no_linear(name: str):
    raise AssertionError(f"{name}: the golden layer's linears are made by _layer")


def run_streamed(etched: Etched, tokens: list[int], act_bits: int, kv_bits: int,
                 emit: Callable[[str, np.ndarray], None] = lambda stage, h: None, last_layer: int | None = None) -> StreamedReference:
    """Both models on `tokens` (one sequence, positions 0..T-1), layer by layer, the quantized one
    on the codes `etched` gives. `emit(stage, h)` gets each quantized hidden state as soon as it is
    computed (then "logits"). `last_layer`: stop after that layer (-1: after the embedding), for a
    die of a system that ends there."""
    source = etched.source
    args = source.args
    emb = "model.embed_tokens.weight"
    head = emb if args.tie_embeddings else "lm_head.weight"
    hidden: dict[str, np.ndarray] = {}
    with torch.no_grad():
        rows = [source.rows(emb, t, t + 1) for t in tokens]
        hf = torch.cat(rows)[None]  # [1, T, dim]
        hq = torch.cat([etched.rows(emb, t, t + 1).dequantize() for t in tokens])[None]
        hidden["embed"] = hq[0].numpy().copy()
        emit("embed", hidden["embed"])
        for i in range(args.n_layers if last_layer is None else last_layer + 1):

            hf = float_layer(source, i)(hf)
            hq = golden_layer(source, i, etched.tensor, act_bits, kv_bits)(hq)
            hidden[f"layers.{i}"] = hq[0].numpy().copy()
            emit(f"layers.{i}", hidden[f"layers.{i}"])
        if last_layer is not None:
            return StreamedReference(hidden, None, None)
        gain = source.get("model.norm.weight")
        nf = RMSNorm(args.dim, args.norm_eps)
        nf.weight = nn.Parameter(gain, requires_grad=False)
        xf, xq = nf(hf)[0], GoldenRMSNorm(gain, args.norm_eps)(hq)[0]
        f_logits = np.empty((len(tokens), args.vocab_size), np.float32)
        q_logits = np.empty_like(f_logits)
        for r0 in range(0, args.vocab_size, HEAD_BAND):  # each output row is computed alone: bands join exactly
            w = source.rows(head, r0, r0 + HEAD_BAND)
            f_logits[:, r0 : r0 + len(w)] = F.linear(xf, w).numpy()
            q_logits[:, r0 : r0 + len(w)] = MacLinear(etched.rows(head, r0, r0 + len(w)), act_bits)(xq).numpy()
    emit("logits", q_logits)
    return StreamedReference(hidden, q_logits, f_logits)
