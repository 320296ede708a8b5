"""Mask data and compile/verify times of a plan: measured on a compiled chip, else estimated with
the estimate's basis stated (data only)."""

from __future__ import annotations

import math
import re

from taalas_compile.backend.volume import mask_bytes_estimate
from taalas_compile.plan.figures import fig, table
from taalas_compile.plan.subject import Subject

# docs/performance.md, measured on the development machine: `taalas-compile tiny-llama` 3.0 s and
# `taalas-compile verify out/tiny-llama` 7.1 s for its 214,485 digit cells.
PERF_DIGITS, PERF_COMPILE_S, PERF_VERIFY_S = 214_485, 3.0, 7.1
PERF_REF = "docs/performance.md: tiny-llama compile 3.0 s, verify 7.1 s for 214,485 digit cells, scaled linearly in digit cells"
VOLUME = "backend/volume.py mask_bytes_estimate(digits, fmt)"


def digits_per_die(s: Subject) -> list[int]:
    return [s.fit(st)["digits_total"] for st in s.stages]


def times(s: Subject) -> list[dict]:
    """Per die: compile and verify seconds, each with its source."""
    out = []
    for st, d in zip(s.stages, digits_per_die(s)):
        if s.run is not None:
            c = (math.fsum(s.run["seconds"].values()), "measured", f"{s.chip_dir}/run.json seconds (sum of the compile's steps)")
        else:
            c = (d * PERF_COMPILE_S / PERF_DIGITS, "estimate", PERF_REF)
        if s.signoff is not None:
            v = (s.signoff["seconds"]["total"], "measured", f"{s.chip_dir}/signoff/signoff.json seconds.total")
        else:
            why = "not verified yet; " if s.kind == "chip" else ""
            v = (d * PERF_VERIFY_S / PERF_DIGITS, "estimate", why + PERF_REF)
        out.append({"die": st.index, "compile": c, "verify": v})
    return out


def masks_section(s: Subject) -> dict:
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
    rows = []
    for t in times(s):
        rows.append([t["die"], t["compile"][0], t["compile"][1], t["verify"][0], t["verify"][1]])
    tt = times(s)
    figs += [fig("compile_seconds", "compile time (all dies)", sum(t["compile"][0] for t in tt), "s", tt[0]["compile"][1], tt[0]["compile"][2]),
             fig("verify_seconds", "verify time (all dies)", sum(t["verify"][0] for t in tt), "s", tt[0]["verify"][1], tt[0]["verify"][2])]
    tables = {"times": table("compile and verify per die", ["die", "compile s", "compile source", "verify s", "verify source"], rows,
                             tt[0]["compile"][1], tt[0]["compile"][2])}
    if s.run is not None:
        tables["compile_steps"] = table("compile steps as measured", ["step", "seconds"], [[k, v] for k, v in s.run["seconds"].items()],
                                        "measured", f"{s.chip_dir}/run.json")
    if s.signoff is not None:
        tables["verify_steps"] = table("verify steps as measured", ["step", "seconds"], [[k, v] for k, v in s.signoff["seconds"].items()],
                                       "measured", f"{s.chip_dir}/signoff/signoff.json")
    return {"figures": figs, "tables": tables}
