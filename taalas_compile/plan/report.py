"""The plan document (plan.json, schema docs/plan.schema.json): every analysis of a subject, each
figure with its source. Reproducible: no clock, no absolute timing of the plan itself."""

from __future__ import annotations

import dataclasses
import datetime as dt

from taalas_compile.plan.cost import cost_section, users_of
from taalas_compile.plan.curves import context_curve, users_curve
from taalas_compile.plan.figures import fig, table
from taalas_compile.plan.fitting import fit_section
from taalas_compile.plan.floorplan import floorplan_section
from taalas_compile.plan.masks import masks_section
from taalas_compile.plan.schedule import schedule_section
from taalas_compile.plan.serving import (
    baseline_section,
    capacity_section,
    performance_section,
)
from taalas_compile.plan.subject import Subject
from taalas_compile.plan.whatif import (
    DEFAULT_INPUTS,
    PlanInputs,
    apply_to_die,
    mark_inputs,
)
from taalas_compile.version import __version__

FORMAT, VERSION = "taalas-plan", 1


def partition_section(s: Subject) -> dict:
    rows = [[st.index, st.blocks[0], st.blocks[-1], sum(b.startswith("L") for b in st.blocks),
             sum(t.kind == "mac" for t in st.placement.tiles), sum(t.kind == "vu" for t in st.placement.tiles),
             sum(t.kind == "sram" for t in st.placement.tiles)] for st in s.stages]
    lk = s.die.link
    return {"dies": len(s.stages),
            "figures": [] if lk is None else
            [fig("link_gbytes_per_s", "die-to-die link bandwidth", lk.gbytes_per_s, "GB/s", "die", f"base_die/{s.die.name}.toml [link] gbytes_per_s"),
             fig("link_latency_ns", "die-to-die link latency per hop", lk.latency_ns, "ns", "die", f"base_die/{s.die.name}.toml [link] latency_ns")],
            "tables": {"stages": table("pipeline stages", ["die", "first block", "last block", "layers", "MAC tiles", "vector units", "SRAM tiles"], rows,
                                       "computed", "plan/partition.py partition_model(): fewest dies (or [target] dies), then the smallest largest stage; mapper per stage")}}


def build_plan(s: Subject, start: dt.date | None = None, change_week: float = 4.0, inputs: PlanInputs = DEFAULT_INPUTS) -> dict:
    s = dataclasses.replace(s, die=apply_to_die(s.die, inputs))
    perf = performance_section(s)
    perf["tables"].update(context=context_curve(s), users=users_curve(s))
    chip = {"kind": s.kind, "name": s.name, "die": s.die.name, "dies": len(s.stages),
            "path": str(s.chip_dir) if s.chip_dir is not None else None}
    model = [fig("params", "parameters", s.params, "weights", "measured" if s.kind == "chip" else "computed",
                 "manifest.json figures.params" if s.kind == "chip" else "frontend graph of the recipe's architecture"),
             fig("bits_per_weight", "bits per weight (fp16 scales counted)", s.bits_per_weight, "bits", "measured" if s.kind == "chip" else "computed",
                 "manifest.json figures.bits_per_weight" if s.kind == "chip" else "quant/bits.py bits_per_weight() of the recipe's rules"),
             fig("layers", "decoder layers", s.n_layers, "layers", "computed", "model graph")]
    cost_params = {c.key: c.value for c in inputs.cost}
    doc = {"format": FORMAT, "version": VERSION, "compiler": __version__, "subject": chip,
            "model": {"figures": model},
            "fit": fit_section(s),
            "partition": partition_section(s),
            "floorplan": floorplan_section(s),
            "performance": perf,
            "capacity": capacity_section(s),
            "baseline": baseline_section(s, perf, cost_params["gpu_memory_fraction"], users_of(s, inputs)),
            "cost": cost_section(s, perf, inputs),
            "masks": masks_section(s, inputs),
            "schedule": schedule_section(s, start, change_week, inputs),
            "inputs": {"what_if": [{"key": w.key, "value": w.value} for w in inputs.whatifs], "cost_file": inputs.cost_file}}
    return mark_inputs(doc, inputs)
