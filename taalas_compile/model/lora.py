"""LoRA adapters in the PEFT format, for the emulator (which loads them into the chip's SRAM) and
the PyTorch reference (which applies them to its linears).

A PEFT adapter directory holds `adapter_config.json` (`r`, `lora_alpha`, `target_modules`, optional
`use_rslora`) and `adapter_model.safetensors` with keys such as
`base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight` (A [r, in]) and `...lora_B.weight`
(B [out, r]). A layer's output becomes W x + scale * B (A x), scale = lora_alpha / r (alpha / sqrt(r)
with rsLoRA). A and B are rounded to fp16 on load: the die stores them so (`[arith] lora_format`).
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

KEY = re.compile(r"^base_model\.model\.model\.layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)\.lora_([AB])(?:\.default)?\.weight$")
CONFIG, WEIGHTS = "adapter_config.json", "adapter_model.safetensors"


@dataclass(frozen=True)
class Adapter:
    rank: int
    scale: float  # multiplies B (A x)
    targets: tuple[str, ...]  # module names, e.g. ("q_proj", "v_proj")
    weights: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]]  # (layer, module) -> (A [r, in], B [out, r]) fp32, fp16 values


def load_adapter(path: Path) -> Adapter:
    """Read and check a PEFT LoRA adapter directory."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    cfg_path, w_path = path / CONFIG, path / WEIGHTS
    if not cfg_path.is_file() or not w_path.is_file():
        raise UserError(f"LoRA adapter {path}: needs {CONFIG} and {WEIGHTS} (PEFT format)")
    try:
        cfg = json.loads(cfg_path.read_text())
        r, alpha, targets = int(cfg["r"]), float(cfg.get("lora_alpha", cfg["r"])), cfg["target_modules"]
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"LoRA adapter {cfg_path}: not a PEFT adapter config ({e.__class__.__name__}: {e})") from None
    targets = [targets] if isinstance(targets, str) else list(targets)
    bad = [t for t in targets if t not in LORA_MODULES]
    if r <= 0 or bad:
        raise UserError(f"LoRA adapter {cfg_path}: " + (f"rank {r} must be positive" if r <= 0 else
                        f"target_modules {bad} are not Llama linears ({', '.join(LORA_MODULES)})"))
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
        parts.setdefault((layer, module), {})[ab] = t.float().half().float()
    weights = {}
    for (layer, module), ab in sorted(parts.items()):
        if set(ab) != {"A", "B"}:
            raise UserError(f"LoRA adapter {w_path}: layer {layer} {module} has lora_{'A' if 'A' not in ab else 'B'} missing")
        a, b = ab["A"], ab["B"]
        if a.dim() != 2 or b.dim() != 2 or a.shape[0] != r or b.shape[1] != r:
            raise UserError(f"LoRA adapter {w_path}: layer {layer} {module}: A {tuple(a.shape)}, B {tuple(b.shape)} do not have rank r = {r}")
        weights[(layer, module)] = (a, b)
    scale = alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r
    return Adapter(r, scale, tuple(m for m in LORA_MODULES if m in targets), weights)


def write_adapter(path: Path, weights: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]], rank: int, alpha: float) -> Path:
    """Write `weights` as a PEFT adapter directory (what `load_adapter` reads)."""
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    targets = sorted({m for _, m in weights}, key=LORA_MODULES.index)
    (path / CONFIG).write_text(json.dumps({"peft_type": "LORA", "r": rank, "lora_alpha": alpha, "target_modules": targets}, indent=1) + "\n")
    tensors = {}
    for (layer, module), (a, b) in sorted(weights.items()):
        where = "mlp" if module in ("gate_proj", "up_proj", "down_proj") else "self_attn"
        stem = f"base_model.model.model.layers.{layer}.{where}.{module}"
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
    """Wrap the adapter's linears of `model` (a Llama, float or quantized) in place; returns it."""
    layers = model.model.layers
    for (layer, module), (a, b) in adapter.weights.items():
        if layer >= len(layers):
            raise UserError(f"LoRA adapter has layer {layer}; the model has {len(layers)} layers")
        parent = layers[layer].mlp if module in ("gate_proj", "up_proj", "down_proj") else layers[layer].self_attn
        base = getattr(parent, module)
        w = base.weight
        if (b.shape[0], a.shape[1]) != tuple(w.shape):
            raise UserError(f"LoRA adapter layer {layer} {module}: B A is {b.shape[0]} x {a.shape[1]}, the linear is {w.shape[0]} x {w.shape[1]}")
        setattr(parent, module, LoraLinear(base, a, b, adapter.scale))
    return model
