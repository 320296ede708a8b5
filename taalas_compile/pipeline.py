"""The compile pipeline, top to bottom: one named step per line, each a function of the previous
step's IR. `Compiled` keeps every IR so tests and tools can look at any stage."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import networkx as nx
import numpy as np
import torch

from taalas_compile.backend.masks import write_lyp, write_masks
from taalas_compile.backend.netlist import write_netlist
from taalas_compile.backend.render import render_floorplan
from taalas_compile.backend.roms import build_roms
from taalas_compile.backend.volume import check_resources
from taalas_compile.die.geometry import Geometry
from taalas_compile.files import replace_dir, staging_dir
from taalas_compile.frontend.ir import graph_to_json
from taalas_compile.frontend.lower import lower_args
from taalas_compile.inputs import Inputs, calibration_of
from taalas_compile.manifest import manifest
from taalas_compile.mapper.ir import Placement
from taalas_compile.mapper.place import map_graph
from taalas_compile.mapper.refine import refine_placement
from taalas_compile.mapper.route import Routing, route_nets
from taalas_compile.model.llama import build_model
from taalas_compile.model.perplexity import compare
from taalas_compile.quant.calibrate import Calibration
from taalas_compile.quant.codes import QTensor, QuantSpec
from taalas_compile.quant.plan import Allocation, allocate_bits
from taalas_compile.quant.reference import (
    build_quant_model,
    quantize_weights,
    sensitivity_of,
)
from taalas_compile.timing import step_timer

MASKS = "chip.gds"


@dataclass
class Compiled:
    graph: nx.DiGraph  # model IR
    plan: dict[str, QuantSpec]  # bits per tensor
    qweights: dict[str, QTensor]  # codes and scales
    placement: Placement  # tiles on sites, nets
    routing: Routing  # channel routes
    roms: dict[str, np.ndarray]  # ROM image per tile
    seconds: dict[str, float] = field(default_factory=dict)
    allocation: Allocation | None = None  # how bits were decided (policy, method, notes, sensitivity)
    calib: Calibration | None = None  # calibration windows (None: round-to-nearest fallback)
    quality: dict | None = None  # float vs quantized on the calibration windows


def compile_ir(inp: Inputs, step: Callable[[str], None] = lambda s: None, check: Callable | None = None) -> Compiled:
    """Everything up to (not including) writing files. `check(placement)` runs before the
    weights are quantized (the disk and memory pre-flight; a measured bit policy has read them
    once already to measure sensitivity)."""
    t: dict[str, float] = {}
    timed = step_timer(t, step)
    r, die, src = inp.recipe, inp.die, inp.source
    act_bits = die.arith.act_bits
    graph = timed("lower", lower_args, src.args)  # PyTorch -> layer dataflow graph
    calib = timed("calibration data", calibration_of, inp)  # token windows, or None (RTN fallback)
    sens = sensitivity_of(src, calib, r.quant, act_bits)  # ΔKL per tensor and option, measured on demand
    alloc = timed(f"assign bits ({r.quant.policy})", allocate_bits, graph, r.quant, die, sens)  # bits + group per tensor
    for note in alloc.notes:
        step(f"note: {note}")
    plan = alloc.plan
    placement = timed("map", map_graph, graph, plan, die, r.target)  # tiles on sites, nets
    placement = timed("place", refine_placement, placement, die)  # less wirelength, same sites' kinds
    routing = timed("route", route_nets, placement, die)  # nets on channels and feedthroughs
    if check is not None:
        check(placement)
    qweights = timed(f"quantize ({alloc.method})", quantize_weights, src, plan, r.quant, calib, act_bits)  # codes + fp16 scales
    quality = timed("measure quality", calib_quality, src, qweights, calib, act_bits)  # float vs quantized, calibration windows
    roms = timed("encode roms", build_roms, graph, placement, die, qweights, src)  # ROM image per tile
    return Compiled(graph, plan, qweights, placement, routing, roms, t, alloc, calib, quality)


def calib_quality(src, qweights: dict[str, QTensor], calib: Calibration | None, act_bits: int) -> dict | None:
    """Perplexity float vs quantized, KL and top-1 agreement on the calibration windows (None without)."""
    if calib is None:
        return None
    with torch.no_grad():
        res = compare(build_model(src), build_quant_model(src, qweights, act_bits), calib.tokens.tolist())
    return {"on": "calibration windows", **res, "ppl_increase": res["ppl_quant"] / res["ppl_float"] - 1}


def compile_chip(inp: Inputs, out: Path, step: Callable[[str], None] = lambda s: None) -> dict:
    """Compile and write `out/`: masks, layer properties, netlist, ROM images, graph, manifest.
    Everything is written into a staging directory that replaces `out` only when complete."""
    c = compile_ir(inp, step, check=lambda pl: check_resources(pl, inp.die, out))
    tmp = staging_dir(out)
    timed = step_timer(c.seconds, step)
    timed("write masks", write_masks, tmp / MASKS, inp.recipe.name, c.placement, c.routing, c.roms, inp.die)
    timed("write netlist", write_netlist, tmp, c.placement, c.roms, inp.die, MASKS)
    write_lyp(tmp / "chip.lyp", inp.die)
    timed("render floorplan", render_floorplan, tmp / MASKS, tmp / "chip.lyp", tmp / "floorplan.png", Geometry(inp.die).size)
    (tmp / "graph.json").write_text(json.dumps(graph_to_json(c.graph), indent=1) + "\n")
    doc = manifest(inp, c, tmp)
    (tmp / "manifest.json").write_text(json.dumps(doc, indent=1) + "\n")
    # the one file that is not reproducible: how long this run took
    run = {"seconds": c.seconds, "router": [asdict(it) for it in c.routing.iterations]}
    (tmp / "run.json").write_text(json.dumps(run, indent=1) + "\n")
    replace_dir(tmp, out)
    return doc
