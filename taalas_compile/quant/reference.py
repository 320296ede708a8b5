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

from taalas_compile.config.recipe import QuantCfg
from taalas_compile.model.llama import Llama, build_model
from taalas_compile.model.weights import WeightSource
from taalas_compile.quant.cache import cache_key, cached_json, cached_qweights
from taalas_compile.quant.calibrate import Calibration, gptq_model
from taalas_compile.quant.codes import QTensor, QuantSpec, quantize_tensor, round_fp16
from taalas_compile.quant.plan import weight_params
from taalas_compile.quant.sensitivity import measure_sensitivity
from taalas_compile.quant.tune import tune_end_to_end


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


def quantize_weights(source: WeightSource, plan: dict[str, QuantSpec], cfg: QuantCfg, calib: Calibration | None,
                     act_bits: int) -> dict[str, QTensor]:
    """Every planned weight tensor quantized: GPTQ layer by layer when the recipe asks for it and
    there is calibration data, else round-to-nearest with (MSE) clip search, tensor by tensor;
    then, with calibration data and `cfg.tune_steps`, the scales (and codes) fitted end to end. Calibrated
    results are cached by content (`quant/cache.py`)."""
    if calib is None:
        return {name: quantize_tensor(source.get(name), spec, cfg.clip_search) for name, spec in plan.items()}

    def compute() -> dict[str, QTensor]:
        if cfg.method == "gptq":
            qw = gptq_model(source, plan, calib, act_bits, damp=cfg.damp, act_order=cfg.act_order, clip_search=cfg.clip_search,
                            correct=cfg.correct, make_qlinear=lambda q: QLinear(q, act_bits),
                            act_quant=lambda x, group: quantize_activation(x, group, act_bits))
        else:
            qw = {name: quantize_tensor(source.get(name), spec, cfg.clip_search) for name, spec in plan.items()}
        return tune_end_to_end(source, qw, calib.tokens, act_bits, steps=cfg.tune_steps, lr=cfg.tune_lr, batch=cfg.tune_batch,
                               codes_lr=cfg.tune_codes_lr)

    key = cache_key("qweights", {"weights": weights_id(source), "calib": calib.tokens, "act_bits": act_bits,
                                 "plan": {n: [s.bits, s.group] for n, s in plan.items()}, "cfg": cfg.model_dump(mode="json", exclude={"calib"})})
    return cached_qweights(key, compute)


def weights_id(source: WeightSource) -> dict:
    """The weights' identity without the path they were opened by."""
    f = source.fingerprint()
    return {"kind": f.get("kind"), "seed": f.get("seed"), "sha256": [x["sha256"] for x in f.get("files", [])]}


def sensitivity_of(source: WeightSource, calib: Calibration | None, cfg: QuantCfg, act_bits: int):
    """The measured-sensitivity callback `allocate_bits` takes (None without calibration data)."""
    if calib is None:
        return None
    tokens = calib.tokens[: cfg.sensitivity_windows]

    def measure(names: list[str], options: list[QuantSpec]) -> dict[str, list[float]]:
        key = cache_key("sensitivity", {"weights": weights_id(source), "calib": tokens, "act_bits": act_bits, "names": names,
                                        "options": [[o.bits, o.group] for o in options], "clip": cfg.clip_search})
        return cached_json(key, lambda: measure_sensitivity(source, names, options, tokens, cfg.clip_search,
                                                            lambda q: QLinear(q, act_bits)))

    return measure


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
