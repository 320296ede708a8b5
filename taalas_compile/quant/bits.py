"""Bit allocation: which bit width each weight tensor gets (an analysis: returns data)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase

import networkx as nx

from taalas_compile.config.die import Die
from taalas_compile.config.recipe import QuantCfg
from taalas_compile.die.rom_format import FP16_DIGITS, digits_per_code
from taalas_compile.errors import UserError
from taalas_compile.frontend.ir import op_node, pipeline_order
from taalas_compile.quant.allocate import knapsack, stored_bits
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
    """The rules policy: per-tensor bits from the recipe's default, then fnmatch patterns (the last match
    wins); every tensor gets the recipe's group size."""
    for pattern, bits in cfg.bits.items():
        if bits not in die.arith.weight_bits:
            raise UserError(f"quant.bits['{pattern}'] = {bits}: die {die.name} etches only {die.arith.weight_bits}-bit codes")
    if cfg.default_bits not in die.arith.weight_bits:
        raise UserError(f"quant.default_bits = {cfg.default_bits}: die {die.name} etches only {die.arith.weight_bits}-bit codes")
    specs = {}
    for name in weight_params(g):
        bits = cfg.default_bits
        for pattern, b in cfg.bits.items():
            if fnmatchcase(name, pattern):
                bits = b
        specs[name] = QuantSpec(bits, cfg.group_size)
    return specs


def bits_per_weight(g: nx.DiGraph, specs: dict[str, QuantSpec], die: Die) -> float:
    """Average stored bits per weight over the quantized tensors, scales counted."""
    sb = SCALE_BITS[die.arith.scale_format]
    total_bits = total_w = 0
    for name, shape in weight_params(g).items():
        spec = specs[name]
        out, n_in = shape
        total_w += out * n_in
        total_bits += out * n_in * spec.bits + out * n_groups(n_in, spec.group) * sb
    return total_bits / max(total_w, 1)


NO_CALIB = "no calibration data"


@dataclass(frozen=True)
class Allocation:
    """Bits and group size per tensor and how they were decided (recorded in the manifest)."""

    specs: dict[str, QuantSpec]  # (bits, group) per weight tensor
    policy: str  # the policy used: "rules" or "measured"
    method: str  # the method the quantizer will use: "rtn" or "gptq"
    notes: tuple[str, ...] = ()  # fallbacks taken, for the terminal and the manifest
    sensitivity: dict[str, list[float]] | None = None  # ΔKL per tensor per option (measured policy)


def die_capacity_bits(die: Die) -> int:
    """Weight bits the die's MAC tiles can hold at most: every data digit cell holds 3 bits."""
    mac = die.tiles.mac
    return len(die.sites("mac")) * (mac.rows - 1) * mac.cols * 3


def check_budget(g: nx.DiGraph, specs: dict[str, QuantSpec], cfg: QuantCfg, die: Die) -> None:
    """A rules allocation over the recipe's bit budget is an error (whether it fits the die's tiles is the
    mapper's exact check, which names the tiles short)."""
    bpw = bits_per_weight(g, specs, die)
    if cfg.budget_bits is not None and bpw > cfg.budget_bits + 1e-9:
        raise UserError(f"quant policy '{cfg.policy}' needs {bpw:.3f} bits/weight, over the recipe's budget_bits = {cfg.budget_bits}")


def allocate_bits(g: nx.DiGraph, cfg: QuantCfg, die: Die, sensitivity: Callable[[list[str], list[QuantSpec]], dict[str, list[float]]] | None) -> Allocation:
    """The recipe's policy. "measured" solves a knapsack over `cfg.options` on `sensitivity(names,
    options)` (ΔKL per tensor and option) under min(budget, die ROM); without calibration data
    (`sensitivity` None) it falls back to the rules."""
    notes: list[str] = []
    method = cfg.method
    if cfg.needs_calibration and sensitivity is None:
        if cfg.method == "gptq":
            notes.append(f"{NO_CALIB}: round-to-nearest with MSE clip search instead of GPTQ")
            method = "rtn"
        if cfg.policy == "measured":
            notes.append(f"{NO_CALIB}: bits from the recipe's rules instead of measured sensitivity")
    if cfg.policy == "rules" or sensitivity is None:
        specs = assign_bits(g, cfg, die)
        check_budget(g, specs, cfg, die)
        return Allocation(specs, "rules", method, tuple(notes))
    options = [QuantSpec(b, gr) for b, gr in cfg.options]
    bad = sorted({o.bits for o in options} - set(die.arith.weight_bits))
    if bad:
        raise UserError(f"quant.options use {bad}-bit codes: die {die.name} etches only {die.arith.weight_bits}-bit codes")
    options = [o for o in options if fits_mac_row(o, die)]
    if not options:
        raise UserError(f"none of quant.options {cfg.options} fits a {die.tiles.mac.cols}-cell MAC tile row of die {die.name}")
    shapes = weight_params(g)
    names = list(shapes)
    sens = sensitivity(names, options)
    sb = SCALE_BITS[die.arith.scale_format]
    costs = [[float(stored_bits(shapes[n], o, sb)) for o in options] for n in names]
    n_weights = sum(math.prod(s) for s in shapes.values())
    budget = min(cfg.budget_bits * n_weights, die_capacity_bits(die))
    try:
        choice = knapsack(costs, [sens[n] for n in names], budget)
    except UserError as e:
        raise UserError(f"quant budget {cfg.budget_bits} bits/weight on die {die.name} (MAC ROM at most {die_capacity_bits(die) / 8e6:,.2f} MB): {e}") from None
    specs = {n: options[k] for n, k in zip(names, choice.picks)}
    return Allocation(specs, "measured", method, tuple(notes), sens)


def fits_mac_row(spec: QuantSpec, die: Die) -> bool:
    """A whole group (its codes and its fp16 scale) must fit one MAC tile ROM row (mapper.mac_blocks)."""
    return spec.group * digits_per_code(spec.bits) + FP16_DIGITS <= die.tiles.mac.cols
