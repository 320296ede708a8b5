"""Bit allocation: which bit width each weight tensor gets (an analysis: returns data)."""

from __future__ import annotations

from fnmatch import fnmatchcase

import networkx as nx

from taalas_compile.config.die import Die
from taalas_compile.config.recipe import QuantCfg
from taalas_compile.errors import UserError
from taalas_compile.frontend.ir import op_node, pipeline_order
from taalas_compile.quant.codes import QuantSpec, n_groups

SCALE_BITS = {"fp16": 16}


def weight_params(g: nx.DiGraph) -> dict[str, tuple[int, ...]]:
    """Quantized parameters (weight matrices) in pipeline order, each once."""
    out: dict[str, tuple[int, ...]] = {}
    for n in pipeline_order(g):
        for p in op_node(g, n).params:
            if p.kind == "weight":
                out.setdefault(p.name, p.shape)
    return out


def assign_bits(g: nx.DiGraph, cfg: QuantCfg, die: Die) -> dict[str, QuantSpec]:
    """Per-tensor bits from the recipe: default, then fnmatch patterns (the last match wins)."""
    for pattern, bits in cfg.bits.items():
        if bits not in die.arith.weight_bits:
            raise UserError(f"quant.bits['{pattern}'] = {bits}: die {die.name} etches only {die.arith.weight_bits}-bit codes")
    if cfg.default_bits not in die.arith.weight_bits:
        raise UserError(f"quant.default_bits = {cfg.default_bits}: die {die.name} etches only {die.arith.weight_bits}-bit codes")
    plan = {}
    for name in weight_params(g):
        bits = cfg.default_bits
        for pattern, b in cfg.bits.items():
            if fnmatchcase(name, pattern):
                bits = b
        plan[name] = QuantSpec(bits, cfg.group_size)
    return plan


def bits_per_weight(g: nx.DiGraph, plan: dict[str, QuantSpec], die: Die) -> float:
    """Average stored bits per weight over the quantized tensors, scales counted."""
    sb = SCALE_BITS[die.arith.scale_format]
    total_bits = total_w = 0
    for name, shape in weight_params(g).items():
        spec = plan[name]
        out, n_in = shape
        total_w += out * n_in
        total_bits += out * n_in * spec.bits + out * n_groups(n_in, spec.group) * sb
    return total_bits / max(total_w, 1)
