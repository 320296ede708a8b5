"""The quantized reference: the PyTorch model running exactly the etched codes and scales, with
the die's activation arithmetic (`quant/arith.py`; docs/die-model.md, "Arithmetic"). The emulator
must agree with it. Also the entry point that gives a chip's codes (`etched_codes`: the streamed
quantizer with calibration data, round-to-nearest without; called through `etch.py`) and the
measured-sensitivity callback.

- Weight matrices are codes x fp16 group scales; the embedding lookup returns a dequantized row.
- Norm gains are fp16; RoPE inverse frequencies fp32.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import networkx as nx
import torch
from torch import nn

from taalas_compile.config.recipe import QuantCfg
from taalas_compile.model.llama import Llama, build_model
from taalas_compile.model.weights import WeightSource
from taalas_compile.quant.arith import QLinear, quantize_activation
from taalas_compile.quant.bits import weight_params
from taalas_compile.quant.cache import cache_key, cached_json, stream_store, weights_id
from taalas_compile.quant.calibrate import Calibration, gptq_model
from taalas_compile.quant.codes import QTensor, QuantSpec, round_fp16
from taalas_compile.quant.etched import Etched
from taalas_compile.quant.proxy import measure_proxy
from taalas_compile.quant.sensitivity import measure_sensitivity
from taalas_compile.quant.stream import StreamResult, quantize_stream, resolve_device
from taalas_compile.quant.tune import tune_end_to_end

__all__ = [
    "QLinear",
    "build_quant_model",
    "etched_codes",
    "quantize_activation",
    "quantize_in_memory",
    "sensitivity_of",
    "weights_id",
]


def etched_codes(source: WeightSource, specs: dict[str, QuantSpec], cfg: QuantCfg, calib: Calibration | None, act_bits: int,
                 store: Path | None = None, *, device: str = "auto", bar: Callable | None = None,
                 on_unit: Callable[[str], None] = lambda unit: None) -> tuple[Etched, StreamResult | None]:
    """Where every planned tensor's etched codes come from. Without calibration data (or with
    method "rtn"): round-to-nearest + clip search of the checkpoint, by whoever reads them. With it:
    the streamed quantizer (`quant/stream.py`) writes one file per unit into `store` (default: the
    quant cache, `$TAALAS_CACHE/stream`; with the cache off, a temporary directory the caller owns)."""
    if calib is None or cfg.method == "rtn":
        return Etched(source, dict(specs), cfg.clip_search), None
    if store is None:
        store = stream_store() or Path(tempfile.mkdtemp(prefix="taalas-quant-"))
    res = quantize_stream(source, specs, cfg, calib, act_bits, store, device=device, bar=bar, on_unit=on_unit)
    return res.etched, res


def quantize_in_memory(source: WeightSource, specs: dict[str, QuantSpec], cfg: QuantCfg, calib: Calibration,
                       act_bits: int) -> dict[str, QTensor]:
    """The former whole-model path (GPTQ over the model in memory, then end-to-end tuning), kept to
    check the streamed quantizer against (tests/quant/test_stream_quant.py) and for benchmarks."""
    qw = gptq_model(source, specs, calib, act_bits, damp=cfg.damp, act_order=cfg.act_order, clip_search=cfg.clip_search,
                    correct=cfg.correct, make_qlinear=lambda q: QLinear(q, act_bits),
                    act_quant=lambda x, group: quantize_activation(x, group, act_bits))
    return tune_end_to_end(source, qw, calib.tokens, act_bits, steps=cfg.tune_steps, lr=cfg.tune_lr, batch=cfg.tune_batch,
                           codes_lr=cfg.tune_codes_lr)


def sensitivity_of(source: WeightSource, calib: Calibration | None, cfg: QuantCfg, act_bits: int):
    """The measured-sensitivity callback `allocate_bits` takes (None without calibration data)."""
    if calib is None:
        return None
    kind = sensitivity_kind(source, cfg)
    s = calib.tokens.shape[1]
    windows = cfg.sensitivity_windows if kind == "kl" else max(1, min(cfg.sensitivity_windows, -(-PROXY_TOKENS // s)))
    tokens = calib.tokens[:windows]

    def measure(names: list[str], options: list[QuantSpec]) -> dict[str, list[float]]:
        key = cache_key(f"sensitivity-{kind}", {"weights": weights_id(source), "calib": tokens, "act_bits": act_bits, "names": names,
                                                "options": [[o.bits, o.group] for o in options], "clip": cfg.clip_search})
        if kind == "hessian":
            return cached_json(key, lambda: measure_proxy(source, names, options, tokens, cfg.clip_search, resolve_device(cfg.device)))
        return cached_json(key, lambda: measure_sensitivity(source, names, options, tokens, cfg.clip_search,
                                                            lambda q: QLinear(q, act_bits)))

    return measure


PROXY_TOKENS = 4096  # calibration tokens the proxy's float pass runs on (whole windows, at least one)


def sensitivity_kind(source: WeightSource, cfg: QuantCfg) -> str:
    """"kl" (a forward pass per tensor and option) or "hessian" (one streamed pass, quant/proxy.py)."""
    if cfg.sensitivity != "auto":
        return cfg.sensitivity
    return "kl" if source.args.n_params <= cfg.kl_max_weights else "hessian"


def build_quant_model(source: WeightSource, qweights: dict[str, QTensor], act_bits: int) -> Llama:
    """The float model with every planned tensor replaced by its etched form, on the quantizer's
    fast stand-in for the die's arithmetic (QLinear: differentiable, not bit-exact); for the
    quantizer's own measurements. The reference a chip is held to is `quant/golden.build_golden_model`."""
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
