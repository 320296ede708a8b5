"""Mask data and compile/verify times of a plan: measured on a compiled chip, else estimated with
the estimate's basis stated (data only)."""

from __future__ import annotations

import math
import re

from taalas_compile.backend.volume import mask_bytes_estimate
from taalas_compile.config.recipe import CalibCfg
from taalas_compile.plan.figures import fig, table
from taalas_compile.plan.subject import Subject
from taalas_compile.plan.time_model import (
    MEASURED_WORKERS,
    MEASUREMENTS,
    MODEL,
    QUANT_REF,
    REF,
)
from taalas_compile.plan.whatif import DEFAULT_INPUTS, PlanInputs

VOLUME = "backend/volume.py mask_bytes_estimate(digits, fmt)"


def digits_per_die(s: Subject) -> list[int]:
    return [s.fit(st)["digits_total"] for st in s.stages]


def workers(inputs: PlanInputs) -> int:
    return int(inputs.get("jobs", MEASURED_WORKERS))


def _wref(inputs: PlanInputs) -> str:
    src = inputs.source("jobs")
    return f"{workers(inputs)} worker(s) ({src[1] if src else 'as measured; --what-if jobs=N'})"


def calibrated(s: Subject) -> bool:
    """A calibrated compile: the recipe asks for GPTQ or a measured allocation (with --calib or its [quant.calib])."""
    return s.recipe is not None and s.recipe.quant.needs_calibration


def quantize_estimate(s: Subject) -> tuple[float, int]:
    """Seconds of a calibrated quantization of the recipe's model, and the calibration tokens it assumes."""
    q = s.recipe.quant
    tokens = q.calib.tokens if q.calib is not None else CalibCfg.model_fields["tokens"].default
    layer = [n for t, n in s.numel.items() if t.startswith("model.layers.0.")]
    ends = sum(n for t, n in s.numel.items() if "layers." not in t)
    kl = q.policy == "measured" and (q.sensitivity == "kl" or (q.sensitivity == "auto" and s.params < q.kl_max_weights))
    passes = len(s.numel) * len(q.options) if kl else 0
    return MODEL.quantize_seconds(s.n_layers, sum(layer), ends, tokens, s.params, passes, q.tune_steps), tokens


def times(s: Subject, inputs: PlanInputs = DEFAULT_INPUTS) -> list[dict]:
    """Per die: compile and verify seconds, each with its source (measured on a chip, else the time model)."""
    out = []
    jobs = workers(inputs)
    digits = digits_per_die(s)
    quant = quantize_estimate(s)[0] if s.run is None and calibrated(s) else None
    for st, d in zip(s.stages, digits):
        if s.run is not None:
            c = (math.fsum(s.run["seconds"].values()), "measured", f"{s.chip_dir}/run.json seconds (sum of the compile's steps)")
        else:
            c = (MODEL.compile_seconds(d, jobs), "estimate", f"{REF}; {d:,} digit cells, {_wref(inputs)}")
        if s.signoff is not None:
            v = (s.signoff["seconds"]["total"], "measured", f"{s.chip_dir}/signoff/signoff.json seconds.total")
        else:
            why = "not verified yet; " if s.kind == "chip" else ""
            v = (MODEL.verify_seconds(d, jobs), "estimate", f"{why}{REF}; {d:,} digit cells, {_wref(inputs)}")
        t = {"die": st.index, "compile": c, "verify": v}
        if quant is not None:  # a real checkpoint's compile: its share of the calibrated quantization on top
            t["compile_calibrated"] = (c[0] + quant * d / sum(digits), "estimate", f"{c[2]}; + calibrated quantization, {QUANT_REF}")
        out.append(t)
    return out


def calibration_table() -> dict:
    rows = [[m.what, m.wall_s, m.command, m.where] for m in MEASUREMENTS]
    return table("measured runs the time model is calibrated on", ["run", "wall s", "command", "where"], rows, "measured",
                 "plan/time_model.py MEASUREMENTS (development machine, 2 cores)")


def masks_section(s: Subject, inputs: PlanInputs = DEFAULT_INPUTS) -> dict:
    digits = digits_per_die(s)
    total = sum(digits)
    figs = [fig("digit_cells", "digit cells (all dies)", total, "cells", "computed", "plan/estimate.py fit() digits_total"),
            fig("gds_bytes_estimate", "GDSII volume (all dies)", sum(mask_bytes_estimate(d, "gds") for d in digits), "B", "estimate", VOLUME + ' fmt="gds"'),
            fig("oasis_bytes_estimate", "OASIS volume (all dies)", sum(mask_bytes_estimate(d, "oasis") for d in digits), "B", "estimate", VOLUME + ' fmt="oasis"')]
    for name, meta in s.manifest.get("outputs", {}).items():  # the mask files as written, whatever the format
        fmt = {".gds": "GDSII", ".oas": "OASIS", ".oasis": "OASIS"}.get(name[name.rfind("."):])
        if fmt:
            figs.append(fig(re.sub(r"\W", "_", name) + "_bytes", f"{fmt} file {name} as written", meta["bytes"], "B", "measured",
                            f"{s.chip_dir}/manifest.json outputs[{name}].bytes"))
    tt = times(s, inputs)
    rows = [[t["die"], t["compile"][0], t["compile"][1], t["verify"][0], t["verify"][1]] for t in tt]
    label = "compile time, synthetic weights or quantization cached (all dies)" if "compile_calibrated" in tt[0] else "compile time (all dies)"
    figs += [fig("compile_seconds", label, sum(t["compile"][0] for t in tt), "s", tt[0]["compile"][1], tt[0]["compile"][2]),
             fig("verify_seconds", "verify time (all dies)", sum(t["verify"][0] for t in tt), "s", tt[0]["verify"][1], tt[0]["verify"][2])]
    if "compile_calibrated" in tt[0]:
        q, tokens = quantize_estimate(s)
        figs += [fig("quantize_seconds", f"calibrated quantization ({tokens:,} calibration tokens; cached after the first compile)", q, "s",
                     "estimate", QUANT_REF),
                 fig("compile_seconds_calibrated", "compile time of a checkpoint with calibrated quantization (all dies)",
                     sum(t["compile_calibrated"][0] for t in tt), "s", "estimate", "compile time + calibrated quantization (plan/time_model.py)")]
    tables = {"time_model": calibration_table(), "times": table("compile and verify per die", ["die", "compile s", "compile source", "verify s", "verify source"], rows,
                             tt[0]["compile"][1], tt[0]["compile"][2])}
    if s.run is not None:
        tables["compile_steps"] = table("compile steps as measured", ["step", "seconds"], [[k, v] for k, v in s.run["seconds"].items()],
                                        "measured", f"{s.chip_dir}/run.json")
    if s.signoff is not None:
        tables["verify_steps"] = table("verify steps as measured", ["step", "seconds"], [[k, v] for k, v in s.signoff["seconds"].items()],
                                       "measured", f"{s.chip_dir}/signoff/signoff.json")
    return {"figures": figs, "tables": tables}
