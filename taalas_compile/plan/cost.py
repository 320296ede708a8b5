"""What a chip costs and what a million tokens cost on it and on the GPU baseline (data only).

    dies per wafer = π (d/2)² / A - π d / √(2A)            (Hennessy & Patterson, Computer Architecture, ch. 1)
    die yield      = ((1 - e^(-A D0)) / (A D0))²            (Murphy's model, Proc. IEEE 52(12), 1964)
    per die        = wafer / (dies per wafer x yield) + package and test + two custom masks / volume
    $/s            = hardware / amortization + watts x $/kWh; $/million tokens = $/s / tokens/s x 1e6

The chip serves as many sequences of the plan's context as its SRAM holds (plan/curves.py); the
GPU baseline serves the same throughput with as many replicas as it takes (plan/baseline.py).
"""

from __future__ import annotations

import math

from taalas_compile.die.geometry import Geometry
from taalas_compile.errors import UserError
from taalas_compile.plan.baseline import H100_SXM, TAALAS_CLAIM, gpu_serving
from taalas_compile.plan.curves import serving_at
from taalas_compile.plan.figures import fig, table
from taalas_compile.plan.subject import Subject
from taalas_compile.plan.whatif import PlanInputs

YEAR_S = 365.25 * 86400


def dies_per_wafer(wafer_mm: float, die_mm2: float) -> int:
    return max(0, math.floor(math.pi * (wafer_mm / 2) ** 2 / die_mm2 - math.pi * wafer_mm / math.sqrt(2 * die_mm2)))


def murphy_yield(die_mm2: float, defects_per_cm2: float) -> float:
    ad = die_mm2 / 100 * defects_per_cm2
    return 1.0 if ad == 0 else ((1 - math.exp(-ad)) / ad) ** 2


def users_of(s: Subject, inputs: PlanInputs) -> int:
    """Sequences of the plan's context both sides serve: as many as the chip's SRAM holds (--what-if users=N)."""
    return int(inputs.get("users", max(serving_at(s, s.context)["users"], 1)))


def cost_section(s: Subject, perf: dict, inputs: PlanInputs) -> dict:
    p = {c.key: c for c in inputs.cost}
    v = {k: c.value for k, c in p.items()}

    def cite(*keys: str) -> str:
        return "; ".join(f"{p[k].label}: {p[k].kind} ({p[k].ref})" for k in keys)

    w, h = Geometry(s.die).size
    mm2 = w * h / 1e12
    dpw = dies_per_wafer(v["wafer_mm"], mm2)
    y = murphy_yield(mm2, v["defects_per_cm2"])
    good = dpw * y
    if good <= 0:
        raise UserError(f"a {mm2:,.0f} mm² die: no good die on a {v['wafer_mm']:g} mm wafer at {v['defects_per_cm2']:g} defects/cm²")
    die_silicon = v["wafer_usd"] / good
    custom = 2 * v["base_mask_set_usd"] / v["masks_per_set"]
    per_die = die_silicon + v["package_test_usd"] + custom / max(v["volume"], 1)
    per_card = per_die + v["card_usd"]
    system = per_card * len(s.stages)
    pf = {f["id"]: f["value"] for f in perf["figures"]}
    served = serving_at(s, s.context)
    chip_usd_s = system / (v["amortization_years"] * YEAR_S) + pf["power_w_aggregate"] * v["usd_per_kwh"] / 3.6e6
    chip_mtok = chip_usd_s / served["tokens_per_s"] * 1e6
    kv_values = s.kv_bytes_per_token * 8 // s.die.arith.kv_bits
    users = users_of(s, inputs)
    g = gpu_serving(s.params, kv_values, s.context, users, v["gpu_memory_fraction"])
    replicas = served["tokens_per_s"] / g.tokens_per_s_aggregate
    gpu_usd_s = g.gpus * (v["gpu_usd"] / (v["amortization_years"] * YEAR_S) + H100_SXM.watts * v["usd_per_kwh"] / 3.6e6)
    gpu_mtok = gpu_usd_s / g.tokens_per_s_aggregate * 1e6
    geo = "plan/cost.py from the die's grid (die/geometry.py)"
    figs = [
        fig("die_mm2", "die area (the die's grid)", mm2, "mm²", "computed", geo),
        fig("dies_per_wafer", "dies per wafer", dpw, "dies", "computed", "π (d/2)²/A - π d/√(2A) (Hennessy & Patterson, ch. 1); " + cite("wafer_mm")),
        fig("die_yield", "die yield", y, "fraction", "computed", "Murphy's model ((1-e^(-A D0))/(A D0))²; " + cite("defects_per_cm2")),
        fig("base_mask_set_usd", "base-die mask set (one-off, not in the per-die cost)", v["base_mask_set_usd"], "USD",
            p["base_mask_set_usd"].kind, p["base_mask_set_usd"].ref),
        fig("custom_masks_usd", "the two custom masks (via + metal) of this model", custom, "USD", "computed",
            "2 x mask set / masks per set (upper masks are coarser than the average: an upper figure); " + cite("base_mask_set_usd", "masks_per_set")),
        fig("wafer_usd", "base wafer, processed", v["wafer_usd"], "USD", p["wafer_usd"].kind, p["wafer_usd"].ref),
        fig("die_silicon_usd", "silicon per good die", die_silicon, "USD", "computed", "wafer / (dies per wafer x yield)"),
        fig("die_usd", "per die (silicon + package and test + custom masks / volume)", per_die, "USD", "computed",
            cite("package_test_usd", "volume")),
        fig("card_usd", f"per card ({len(s.stages)} die{'s' if len(s.stages) > 1 else ''} in all: per card x dies)", per_card, "USD", "computed",
            cite("card_usd")),
        fig("system_usd", "hardware for one copy of the model", system, "USD", "computed", "per card x dies"),
        fig("chip_tokens_per_s_costed", f"tokens/s costed: {served['users']} sequence(s) of {s.context:,} tokens", served["tokens_per_s"], "tokens/s",
            "computed", "plan/curves.py serving_at(): the sequences the SRAM holds at the plan's context"),
        fig("chip_usd_per_mtok", "$ per million tokens, this chip", chip_mtok, "USD", "computed",
            "(hardware / amortization + power pipeline full x $/kWh) / tokens/s; " + cite("amortization_years", "usd_per_kwh")),
        fig("gpu_replica_gpus", f"GPUs per replica: FP8 weights + fp16 KV of {users} x {s.context:,} tokens", g.gpus, "GPUs",
            "computed", "plan/baseline.py gpu_serving(); " + cite("gpu_memory_fraction") + "; " + H100_SXM.citation),
        fig("gpu_tokens_per_s_replica", f"GPU replica tokens/s at {s.context:,} tokens (batch {g.batch:,})", g.tokens_per_s_aggregate, "tokens/s",
            "computed", "min(compute roofline, HBM roofline at the batch its memory holds); " + H100_SXM.citation),
        fig("gpus_same_throughput", "GPUs for the same tokens/s", replicas * g.gpus, "GPUs", "computed", "chip tokens/s / replica tokens/s x GPUs per replica"),
        fig("gpu_usd_per_mtok", "$ per million tokens, GPU baseline", gpu_mtok, "USD", "computed",
            "(GPUs / amortization + 700 W each x $/kWh) / tokens/s; " + cite("gpu_usd", "amortization_years", "usd_per_kwh")),
        fig("cost_ratio", "GPU / chip, $ per million tokens (claim: ~10x cheaper)", gpu_mtok / chip_mtok, "x", "computed",
            "the two figures above; claim: " + TAALAS_CLAIM),
    ]
    params = table("cost parameters (override with --cost FILE.toml or --what-if KEY=VALUE)", ["key", "parameter", "value", "unit", "source"],
                   [[c.key, c.label, c.value, c.unit, f"{c.kind}: {c.ref}"] for c in inputs.cost], "computed", "plan/cost_params.py")
    return {"figures": figs, "tables": {"parameters": params}}

