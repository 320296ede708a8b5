"""LoRA adapters in the PEFT format, for the emulator (which loads them into the chip's SRAM) and
the PyTorch reference (which applies them to its linears).

A PEFT adapter directory holds `adapter_config.json` (`r`, `lora_alpha`, `target_modules`, optional
`use_rslora`, `rank_pattern`, `alpha_pattern`) and `adapter_model.safetensors` with keys such as
`base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight` (A [r, in]) and `...lora_B.weight`
(B [out, r]). A layer's output becomes W x + scale * B (A x), scale = alpha / r (alpha / sqrt(r)
with rsLoRA), where r and alpha are the module's own when `rank_pattern` / `alpha_pattern` name it,
as PEFT resolves them (`pattern_key`). A and B are rounded to fp16 on load: the die stores them so
(`[arith] lora_format`).

The chip applies one scale to the whole adapter and reserves one rank for every module, so modules
of a smaller rank are padded with zero rows of A and columns of B (B A is unchanged), and when the
modules' scales differ each B carries its own scale (`Adapter.scale` is then 1).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from taalas_compile.config.recipe import LORA_MODULES
from taalas_compile.errors import UserError
from taalas_compile.model.weights import check_values

KEY = re.compile(r"^base_model\.model\.model\.layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)\.lora_([AB])(?:\.default)?\.weight$")
CONFIG, WEIGHTS = "adapter_config.json", "adapter_model.safetensors"
PEFT_R, PEFT_ALPHA = 8, 8  # LoraConfig's defaults for r and lora_alpha
# adapter_config.json fields that would change the arithmetic, and the values it may have here
_SUPPORTED = {
    "peft_type": ("LORA", None),  # AdaLoRA, LoHa, IA3...: other maths
    "use_dora": (False, None),  # DoRA rescales by a learnt magnitude per output
    "lora_bias": (False, None),  # a bias on lora_B
    "layer_replication": (None, []),  # duplicated decoder layers
}


@dataclass(frozen=True)
class Adapter:
    rank: int  # the largest module rank; every module's A and B are padded to it
    scale: float  # multiplies B (A x)
    targets: tuple[str, ...]  # module names, e.g. ("q_proj", "v_proj")
    weights: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]]  # (layer, module) -> (A [r, in], B [out, r]) fp32, fp16 values


def module_name(layer: int, module: str) -> str:
    """The linear's name in a Hugging Face Llama, e.g. "model.layers.0.self_attn.q_proj"."""
    where = "mlp" if module in ("gate_proj", "up_proj", "down_proj") else "self_attn"
    return f"model.layers.{layer}.{where}.{module}"


def pattern_key(patterns: dict, name: str, field: str) -> str | None:
    """The key of `patterns` that applies to module `name`, as PEFT's `get_pattern_key`
    (peft/utils/other.py, 0.21) finds it: the first key, in the config's order, that as a regular
    expression matches the end of the name after a dot, or all of it."""
    for key in patterns:
        try:
            if re.match(rf"(.*\.)?({key})$", name):
                return key
        except re.error as e:
            raise UserError(f"{field} key {key!r} is not a regular expression ({e})") from None
    return None


def _config(cfg_path: Path) -> tuple[int, float, list[str], dict, dict, bool]:
    """(r, lora_alpha, target_modules, rank_pattern, alpha_pattern, use_rslora), PEFT's defaults
    for what is absent."""
    try:
        cfg = json.loads(cfg_path.read_text())
        r, alpha, targets = int(cfg.get("r", PEFT_R)), float(cfg.get("lora_alpha", PEFT_ALPHA)), cfg["target_modules"]
        ranks, alphas = dict(cfg.get("rank_pattern") or {}), dict(cfg.get("alpha_pattern") or {})
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise UserError(f"LoRA adapter {cfg_path}: not a PEFT adapter config ({e.__class__.__name__}: {e})") from None
    for key, allowed in _SUPPORTED.items():
        if cfg.get(key) not in allowed:
            raise UserError(f"LoRA adapter {cfg_path}: {key} = {cfg[key]!r} is not supported (only {allowed[0]!r})")
    targets = [targets] if isinstance(targets, str) else list(targets)
    bad = [t for t in targets if t not in LORA_MODULES]
    if r <= 0 or bad:
        raise UserError(f"LoRA adapter {cfg_path}: " + (f"rank {r} must be positive" if r <= 0 else
                        f"target_modules {bad} are not Llama linears ({', '.join(LORA_MODULES)})"))
    return r, alpha, targets, ranks, alphas, bool(cfg.get("use_rslora"))


def _fp16(name: str, t: torch.Tensor) -> torch.Tensor:
    """`t` as the die stores it (fp16 values, as float32); NaN, Inf or beyond fp16 refused."""
    return check_values(name, t.float()).half().float()


def load_adapter(path: Path) -> Adapter:
    """Read and check a PEFT LoRA adapter directory."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    cfg_path, w_path = path / CONFIG, path / WEIGHTS
    if not cfg_path.is_file() or not w_path.is_file():
        raise UserError(f"LoRA adapter {path}: needs {CONFIG} and {WEIGHTS} (PEFT format)")
    r, alpha, targets, ranks, alphas, rslora = _config(cfg_path)
    try:
        tensors = load_file(str(w_path))
    except (SafetensorError, OSError) as e:
        raise UserError(f"LoRA adapter {w_path}: unreadable ({e})") from None
    parts: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    for key, t in sorted(tensors.items()):
        m = KEY.match(key)
        if m is None:
            raise UserError(f"LoRA adapter {w_path}: unexpected tensor {key} (only lora_A/lora_B of decoder linears)")
        layer, module, ab = int(m[1]), m[2], m[3]
        if module not in targets:
            raise UserError(f"LoRA adapter {w_path}: tensor {key} is for {module}, not in target_modules {targets}")
        parts.setdefault((layer, module), {})[ab] = t
    raw, scales = {}, {}
    for (layer, module), ab in sorted(parts.items()):
        if set(ab) != {"A", "B"}:
            raise UserError(f"LoRA adapter {w_path}: layer {layer} {module} has lora_{'A' if 'A' not in ab else 'B'} missing")
        name = module_name(layer, module)
        rk, ak = pattern_key(ranks, name, "rank_pattern"), pattern_key(alphas, name, "alpha_pattern")
        rm, am = int(ranks[rk]) if rk else r, float(alphas[ak]) if ak else alpha
        if rm <= 0:
            raise UserError(f"LoRA adapter {cfg_path}: rank_pattern[{rk!r}] = {rm} must be positive")
        a, b = ab["A"], ab["B"]
        if a.dim() != 2 or b.dim() != 2 or a.shape[0] != rm or b.shape[1] != rm:
            why = f"rank_pattern[{rk!r}] = {rm}" if rk else f"r = {rm}" + (" (no rank_pattern key matches it)" if ranks else "")
            raise UserError(f"LoRA adapter {w_path}: {name}: A {tuple(a.shape)}, B {tuple(b.shape)} do not have rank {why}")
        raw[(layer, module)] = (a, b)
        scales[(layer, module)] = am / math.sqrt(rm) if rslora else am / rm
    rank = max((a.shape[0] for a, _ in raw.values()), default=r)
    distinct = set(scales.values())
    common = distinct.pop() if len(distinct) == 1 else 1.0  # else each B carries its module's scale
    weights = {}
    for key, (a, b) in raw.items():
        name = module_name(*key)
        fold = scales[key] / common  # 1 unless the modules' scales differ
        a = F.pad(_fp16(f"{name}.lora_A", a), (0, 0, 0, rank - a.shape[0]))
        b = F.pad(_fp16(f"{name}.lora_B", b.float() * fold), (0, rank - b.shape[1]))
        weights[key] = (a, b)
    scale = common if scales else (alpha / math.sqrt(r) if rslora else alpha / r)
    return Adapter(rank, scale, tuple(m for m in LORA_MODULES if m in targets), weights)


def write_adapter(path: Path, weights: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]], rank: int, alpha: float,
                  **config) -> Path:
    """Write `weights` as a PEFT adapter directory (what `load_adapter` reads); `config` adds or
    overrides adapter_config.json fields (e.g. alpha_pattern)."""
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    targets = sorted({m for _, m in weights}, key=LORA_MODULES.index)
    cfg = {"peft_type": "LORA", "r": rank, "lora_alpha": alpha, "target_modules": targets, **config}
    (path / CONFIG).write_text(json.dumps(cfg, indent=1) + "\n")
    tensors = {}
    for (layer, module), (a, b) in sorted(weights.items()):
        stem = f"base_model.model.{module_name(layer, module)}"
        tensors[f"{stem}.lora_A.weight"], tensors[f"{stem}.lora_B.weight"] = a.contiguous(), b.contiguous()
    save_file(tensors, str(path / WEIGHTS))
    return path


class LoraLinear(nn.Module):
    """base(x) + scale * B (A x), with x the linear's own (float) input."""

    def __init__(self, base: nn.Module, a: torch.Tensor, b: torch.Tensor, scale: float):
        super().__init__()
        self.base = base
        self.register_buffer("lora_a", a)  # [r, in]
        self.register_buffer("lora_b", b)  # [out, r]
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + F.linear(F.linear(x, self.lora_a), self.lora_b) * self.scale


def apply_adapter(model: nn.Module, adapter: Adapter) -> nn.Module:
    """Add the adapter to the linears of `model` (a Llama, float or golden) in place; returns it."""
    layers = model.model.layers
    for (layer, module), (a, b) in adapter.weights.items():
        if layer >= len(layers):
            raise UserError(f"LoRA adapter has layer {layer}; the model has {len(layers)} layers")
        parent = layers[layer].mlp if module in ("gate_proj", "up_proj", "down_proj") else layers[layer].self_attn
        base = getattr(parent, module)
        shape = (base.out_features, base.in_features)
        if (b.shape[0], a.shape[1]) != shape:
            raise UserError(f"LoRA adapter layer {layer} {module}: B A is {b.shape[0]} x {a.shape[1]}, the linear is {shape[0]} x {shape[1]}")
        if hasattr(base, "attach_lora"):  # a golden MAC linear (quant/golden.py): the die's LoRA arithmetic
            base.attach_lora(a, b, adapter.scale)
        else:
            setattr(parent, module, LoraLinear(base, a, b, adapter.scale))
    return model
