"""The compile pipeline, top to bottom: one named step per line, each a function of the previous
step's IR. `Compiled` keeps every IR so tests and tools can look at any stage.

`compile_ir` decides everything that needs the whole model (graph, bits, placement, routing, and
the codes when GPTQ quantizes layer by layer); `compile_chip` then cuts the chip into layer-block
jobs (`backend/blocks.py`) that run on any executor, cached by content, and assembles the outputs
in a staging directory that replaces the old one only when complete."""

from __future__ import annotations

import json
import os
import resource
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path

import networkx as nx
import numpy as np

from taalas_compile.backend.blocks import (
    BlockJob,
    BlockResult,
    block_images,
    job_key,
    run_block,
    worker_init,
)
from taalas_compile.backend.masks import assemble_masks, part_chunks, write_lyp
from taalas_compile.backend.netlist import write_netlist
from taalas_compile.backend.render import Figure, legend, render_floorplan
from taalas_compile.backend.roms import const_param
from taalas_compile.backend.volume import auto_jobs, check_resources, output_bytes
from taalas_compile.config.recipe_toml import recipe_toml
from taalas_compile.die.geometry import Geometry
from taalas_compile.errors import UserError
from taalas_compile.etch import Bits, choose_bits, etch
from taalas_compile.executor import ExecutorCfg, run_jobs
from taalas_compile.files import (
    block_cache,
    check_output_dir,
    output_lock,
    replace_dir,
    staged,
)
from taalas_compile.frontend.ir import graph_to_json
from taalas_compile.inputs import Inputs
from taalas_compile.manifest import RECIPE_FILE, manifest
from taalas_compile.mapper.ir import Placement
from taalas_compile.mapper.place import map_graph
from taalas_compile.mapper.refine import refine_placement
from taalas_compile.mapper.route import Routing, route_nets
from taalas_compile.plan.estimate import fits_one_die, model_fit
from taalas_compile.plan.partition import Cut, partition_model, stage_graph
from taalas_compile.quant.bits import Allocation
from taalas_compile.quant.cache import stream_store
from taalas_compile.quant.calibrate import Calibration
from taalas_compile.quant.codes import QuantSpec
from taalas_compile.quant.etched import Etched
from taalas_compile.quant.stream import StreamResult, replay_quality, resolve_device
from taalas_compile.system.files import NETLIST_FILE, SYSTEM_FILE, write_system_files
from taalas_compile.system.ir import System, system_of
from taalas_compile.timing import step_timer
from taalas_compile.view.overview import write_overview
from taalas_compile.view.session import write_session

MASKS = {"gds": "chip.gds", "oasis": "chip.oas"}
RENDER_FROM_MASKS_DIGITS = 50_000_000  # above this, floorplan.png is drawn from the placement


@dataclass
class Compiled:
    graph: nx.DiGraph  # model IR
    specs: dict[str, QuantSpec]  # bits per tensor
    etched: Etched  # where every tensor's codes come from: unit files (calibrated) or RTN of the checkpoint
    placement: Placement  # tiles on sites, nets
    routing: Routing  # channel routes
    seconds: dict[str, float] = field(default_factory=dict)
    allocation: Allocation | None = None  # how bits were decided (policy, method, notes, sensitivity)
    calib: Calibration | None = None  # calibration windows (None: round-to-nearest fallback)
    quality: dict | None = None  # float vs quantized on the calibration windows
    stream: StreamResult | None = None  # the streamed quantizer's unit files and per-unit figures (calibrated)


@dataclass(frozen=True)
class CompileOptions:
    fmt: str = "gds"  # mask format: "gds" or "oasis"
    executor: ExecutorCfg = field(default_factory=ExecutorCfg)
    on_unit: Callable[[str], None] = lambda unit: None  # after each streamed-quantizer unit (tests interrupt there)
    only_die: int | None = None  # of a multi-die system, build this die alone (the system files too)


def compile_ir(inp: Inputs, step: Callable[[str], None] = lambda s: None, check: Callable | None = None,
               bar: Callable | None = None, store: Path | None = None,
               on_unit: Callable[[str], None] = lambda unit: None, bits: Bits | None = None) -> Compiled:
    """Everything that needs the whole model, up to (not including) the per-block work.
    `check(placement)` runs before any weight is quantized (the disk and memory pre-flight; a
    measured bit policy has read the weights once already to measure sensitivity). With
    calibration data the codes are quantized as a stream through the decoder, one unit (layer) at
    a time, into unit files in `store` (default: the quant cache; `quant_store`). `bits`: the
    allocation when the caller made it already (`choose_bits`)."""
    t: dict[str, float] = {}
    timed = step_timer(t, step)
    bits = bits or choose_bits(inp, timed)  # graph, calibration windows, bits + group per tensor (etch.py)
    announce_notes(bits, step)
    placement, routing = map_chip(bits.graph, bits.specs, inp, timed)
    if check is not None:
        check(placement)
    q = quantize_model(inp, bits, store, timed, t, bar, on_unit)
    return Compiled(bits.graph, bits.specs, q.etched, placement, routing, t, bits.allocation, bits.calib, q.quality, q.stream)


def announce_notes(bits: Bits, step: Callable[[str], None]) -> None:
    for note in bits.allocation.notes:
        step(f"note: {note}")


def map_chip(graph: nx.DiGraph, specs: dict[str, QuantSpec], inp: Inputs, timed: Callable, what: str = "") -> tuple[Placement, Routing]:
    """A model graph (a whole model, or one die's stage of a system) on the die: mapped, placed, routed."""
    die, target = inp.die, inp.recipe.target
    placement = timed(f"map{what}", map_graph, graph, specs, die, target)  # tiles on sites, nets
    placement = timed(f"place{what}", refine_placement, placement, die)  # less wirelength, same sites' kinds
    routing = timed(f"route{what}", route_nets, placement, die)  # nets on channels and feedthroughs
    return placement, routing


@dataclass(frozen=True)
class Quantized:
    etched: Etched
    stream: StreamResult | None
    quality: dict | None


def quantize_model(inp: Inputs, bits: Bits, store: Path | None, timed: Callable, t: dict[str, float],
                   bar: Callable | None = None, on_unit: Callable[[str], None] = lambda unit: None) -> Quantized:
    """The codes of every tensor (etch.py) and the quality measured on the calibration windows."""
    quantize = partial(etch, inp, bits, store, bar=bar, on_unit=on_unit)
    etched, stream = timed(f"quantize ({bits.allocation.method})", quantize)  # codes: unit files (calibrated) or RTN per block
    quality = stream.quality if stream else timed("measure quality", calib_quality, inp.source, etched, bits.calib,
                                                  inp.die.arith.act_bits, inp.recipe.quant.device)
    if stream:
        t |= {f"quantize {u}": s for u, s in stream.seconds.items()}
    return Quantized(etched, stream, quality)


def calib_quality(src, etched: Etched, calib: Calibration | None, act_bits: int, device: str = "auto") -> dict | None:
    """Perplexity float vs quantized, KL and top-1 agreement on the calibration windows (None
    without), both models run layer by layer (`quant/stream.replay_quality`)."""
    if calib is None:
        return None
    res = replay_quality(src, etched, calib, act_bits, resolve_device(device))
    return {"on": "calibration windows", **res, "ppl_increase": res["ppl_quant"] / res["ppl_float"] - 1}


def with_quant_device(inp: Inputs, device: str | None) -> Inputs:
    """`inp` with the streamed quantizer on `device` ("cpu", "cuda", "auto"; None: the recipe's),
    for a `--device` option."""
    if device is None:
        return inp
    quant = inp.recipe.quant.model_copy(update={"device": device})
    return replace(inp, recipe=inp.recipe.model_copy(update={"quant": quant}))


def with_output_format(inp: Inputs, fmt: str) -> Inputs:
    """`inp` with its recipe's [output] format set to `fmt` (a `--format` option)."""
    if fmt == inp.recipe.output.format:
        return inp
    return replace(inp, recipe=inp.recipe.model_copy(update={"output": inp.recipe.output.model_copy(update={"format": fmt})}))


def quant_store(out: Path) -> Path:
    """Where a compile's streamed quantizer writes its unit files: the quant cache (shared with
    verify, eval, generate), or with the cache off `.NAME.quant/` beside the output (kept until the
    compile completes, so an interrupted compile resumes there)."""
    return stream_store() or out.with_name(f".{out.name}.quant")


def block_jobs(c: Compiled, inp: Inputs, fmt: str) -> list[BlockJob]:
    """One job per layer block, in the order the blocks first appear in the placement."""
    by_block: dict[str, list] = {}
    for t in c.placement.tiles:
        by_block.setdefault(t.block, []).append(t)
    jobs = []
    for i, (block, tiles) in enumerate(by_block.items()):
        params = sorted({t.slice.param for t in tiles if t.slice})
        norms = {t.name: p for t in tiles if (p := const_param(c.graph, t))}
        files = {p: f for p, f in c.etched.files.items() if p in params}  # paths of unit files, never arrays
        job = BlockJob(i, block, tuple(tiles), inp.die, fmt, {p: c.specs[p] for p in params},
                       inp.recipe.quant.clip_search, inp.source, norms, files)
        jobs.append(replace(job, key=job_key(job)))
    return jobs


def chip_roms(c: Compiled, inp: Inputs) -> dict[str, np.ndarray]:
    """Every tile's ROM image in memory, block by block as a compile makes them (for small models,
    tests and tools; a compile streams them to disk instead)."""
    return {name: img for job in block_jobs(c, inp, "gds") for name, img in block_images(job).items()}


def run_blocks(jobs: list[BlockJob], cache: Path, ex: ExecutorCfg, bar: Callable | None = None) -> list[BlockResult]:
    """Every block's ROM images (and mask cells) into `cache`, reusing blocks finished earlier."""
    advance = bar("blocks", sum(j.n_weights for j in jobs), "weights") if bar else (lambda n: None)
    return run_jobs(partial(run_block, cache=cache), jobs, ex, on_done=lambda r: advance(r.weights), init=worker_init)


def local_jobs(ex: ExecutorCfg, pl: Placement) -> int:
    """The block workers on this machine: --jobs as given, else as many as cores and memory allow
    (one for a Dask cluster, whose workers run elsewhere)."""
    if ex.kind == "dask":
        return 1
    return ex.jobs if ex.jobs is not None else auto_jobs(pl)


def compile_chip(inp: Inputs, out: Path, step: Callable[[str], None] = lambda s: None,
                 opts: CompileOptions = CompileOptions(), bar: Callable | None = None) -> dict:
    """Compile and write `out/`: masks, layer properties, netlist and ROM images, graph, manifest;
    for a model split over several dies (`system_cuts`), a system directory of one such chip
    directory per die (`opts.only_die`: that die alone) plus the system files (system/files.py).

    Per-block results go to a block cache beside `out` (kept until the compile completes, so an
    interrupted compile resumes there); everything else is written into a staging directory that
    replaces `out` (each die's directory) only when complete. `out` must be new, empty or a previous
    compile's output (`files.check_output_dir`), and one compile at a time writes it
    (`files.output_lock`). `bar(name, total, unit)` returns a progress callback. Returns the
    manifest (of the last die written, for a system)."""
    inp = with_output_format(inp, opts.fmt)  # so recipe.toml and the manifest state the format written
    t: dict[str, float] = {}
    bits = choose_bits(inp, step_timer(t, step))
    cuts = system_cuts(bits, inp)
    inputs = [inp.weights_path, inp.recipe_path, inp.tokenizer_path, inp.calib.path if inp.calib else None]
    if cuts is None:
        if opts.only_die is not None:
            raise UserError(f"--only-die {opts.only_die}: {inp.recipe.name} fits one {inp.die.name} die; compile it without --only-die")
        out = check_output_dir(out, inputs)
        with output_lock(out):
            return _compile_locked(inp, out, step, opts, bar, bits, t)
    system = system_of(inp.recipe.name, inp.die.name, inp.source.args.dim, cuts)
    if opts.only_die is not None and not 0 <= opts.only_die < len(system.dies):
        raise UserError(f"--only-die {opts.only_die}: {inp.recipe.name} is a system of {len(system.dies)} {inp.die.name} dies (0..{len(system.dies) - 1})")
    out = check_output_dir(out, inputs, system=True)
    with output_lock(out):
        return _compile_system(inp, out, step, opts, bar, bits, system, t)


def system_cuts(bits: Bits, inp: Inputs) -> list[Cut] | None:
    """The pipeline stages of a model that takes several dies (`[target] dies`, or it does not fit
    one: plan/partition.partition_model); None for a one-die chip."""
    target = inp.recipe.target
    if target.dies == 1:
        return None
    if target.dies is None:
        _, total, have = model_fit(bits.graph, bits.specs, inp.die, target)
        if fits_one_die(total, have):
            return None
    return partition_model(bits.graph, bits.specs, inp.die, target)


def _compile_locked(inp: Inputs, out: Path, step: Callable[[str], None], opts: CompileOptions, bar: Callable | None,
                    bits: Bits, t: dict[str, float]) -> dict:
    ex = opts.executor
    qstore = quant_store(out)
    c = compile_ir(inp, step, check=lambda pl: check_resources(pl, inp.die, out, opts.fmt, local_jobs(ex, pl)), bar=bar,
                   store=qstore, on_unit=opts.on_unit, bits=bits)
    c.seconds = t | c.seconds
    doc = build_chip(inp, c, out, step, opts, bar)
    if qstore != stream_store():  # the compile's own unit files (cache off): done with them
        shutil.rmtree(qstore, ignore_errors=True)
    return doc


def _compile_system(inp: Inputs, out: Path, step: Callable[[str], None], opts: CompileOptions, bar: Callable | None,
                    bits: Bits, system: System, t: dict[str, float]) -> dict:
    """Every die of `system` (or `opts.only_die`) mapped, then the model quantized once, then each
    die built into `out/dieK/` exactly as a one-die chip; the system files next to them."""
    ex = opts.executor
    timed = step_timer(t, step)
    announce_notes(bits, step)
    build = [d for d in system.dies if opts.only_die in (None, d.index)]
    step(f"note: {len(system.dies)} {inp.die.name} dies: " + ", ".join(f"die {d.index} {d.blocks[0]}..{d.blocks[-1]}" for d in system.dies)
         + ("" if opts.only_die is None else f"; building die {opts.only_die} only"))
    mapped = {}
    for d in build:
        g = stage_graph(bits.graph, d.blocks)
        mapped[d.index] = (g, *map_chip(g, bits.specs, inp, timed, f" die {d.index}"))
    sizes = {k: output_bytes(pl, inp.die, opts.fmt) for k, (_, pl, _) in mapped.items()}
    for k, (_, pl, _) in mapped.items():
        check_resources(pl, inp.die, out / f"die{k}", opts.fmt, local_jobs(ex, pl), sum(sizes.values()) - sizes[k])
    qstore = quant_store(out)
    q = quantize_model(inp, bits, qstore, timed, t, bar, opts.on_unit)
    write_system_files(out, system, inp)
    remove_stale(out, system)
    doc: dict = {}
    for d in build:
        g, pl, routing = mapped[d.index]
        params = {p.name for n in g.nodes for p in g.nodes[n]["op"].params}  # the stage's own tensors
        specs = {name: spec for name, spec in bits.specs.items() if name in params}
        c = Compiled(g, specs, q.etched, pl, routing, dict(t), bits.allocation, bits.calib, q.quality, q.stream)
        step(f"die {d.index}: {d.blocks[0]}..{d.blocks[-1]}")
        doc = build_chip(inp, c, out / d.dir, step, opts, bar, {"die": d.index, "dies": len(system.dies), "blocks": list(d.blocks)})
    if qstore != stream_store():
        shutil.rmtree(qstore, ignore_errors=True)
    return doc


def remove_stale(out: Path, system: System) -> None:
    """What an earlier compile left in `out` that is not part of this system (a one-die chip's
    files, dies past the last, a stale sign-off or plan). This system's dies stay until each is
    rebuilt: with --only-die, the others are kept."""
    keep = {SYSTEM_FILE, NETLIST_FILE} | {d.dir for d in system.dies}
    for e in out.iterdir():
        if e.name in keep or e.name.startswith("."):  # .dieK.blocks: a resumed compile's finished blocks
            continue
        if e.is_dir():
            shutil.rmtree(e)
        else:
            e.unlink()


def build_chip(inp: Inputs, c: Compiled, out: Path, step: Callable[[str], None], opts: CompileOptions, bar: Callable | None,
               system: dict | None = None) -> dict:
    """The per-block work and the outputs of one chip (a one-die compile, or one die of a system:
    `system` its place, recorded in the manifest), staged and put in place of `out`."""
    ex = replace(opts.executor, jobs=local_jobs(opts.executor, c.placement))
    timed = step_timer(c.seconds, step)
    jobs = timed("plan blocks", block_jobs, c, inp, opts.fmt)
    cache = block_cache(out)
    step(f"blocks on {ex.describe()}")
    t0 = time.perf_counter()
    results = run_blocks(jobs, cache, ex, bar)
    c.seconds["blocks"] = time.perf_counter() - t0
    with staged(out) as tmp:  # removed if the compile stops before it replaces `out`
        masks = MASKS[opts.fmt]
        rom_files = timed("collect roms", collect_roms, results, cache, tmp)
        parts = part_chunks(cache / r.part for r in results)  # the blocks' cells, streamed from the block cache
        name = inp.recipe.name if system is None else f"{inp.recipe.name}_die{system['die']}"
        mask_sha = timed("assemble masks", assemble_masks, tmp / masks, name, c.placement, c.routing, inp.die, opts.fmt, parts)
        metas = {name: m for r in results for name, m in r.tiles.items()}
        timed("write netlist", write_netlist, tmp, c.placement, metas, inp.die, masks, rom_files)
        write_lyp(tmp / "chip.lyp", inp.die)
        timed("write overview", write_overview, tmp / "chip.overview.oas", name, c.placement, c.routing, inp.die)
        write_session(tmp)  # klayout_session.py: masks (or a view) + overview + markers in KLayout
        drawn = tmp / masks if sum(m.digits for m in metas.values()) <= RENDER_FROM_MASKS_DIGITS else None  # billions of vias: the overview alone
        timed("render floorplan", render_floorplan, drawn, tmp / "chip.overview.oas", tmp / "chip.lyp", tmp / "floorplan.png", figure(inp, c, system))
        (tmp / "graph.json").write_text(json.dumps(graph_to_json(c.graph), indent=1) + "\n")
        (tmp / RECIPE_FILE).write_text(recipe_toml(inp.recipe))  # the resolved recipe: the same chip again from it
        doc = manifest(inp, c, tmp, {masks: mask_sha, **{rom_files[r.block]: r.roms_sha256 for r in results}}, system)
        (tmp / "manifest.json").write_text(json.dumps(doc, indent=1) + "\n")
        # the one file that is not reproducible: how this run went
        run = {"seconds": c.seconds, "router": [asdict(it) for it in c.routing.iterations],
               "blocks": [{"block": r.block, "weights": r.weights, "seconds": r.seconds, "reused": r.reused, "peak_rss": r.peak_rss}
                          for r in results],
               "executor": ex.describe(),
               "quantize": None if c.stream is None else {"units": [{"unit": u["unit"], "seconds": c.stream.seconds.get(u["unit"]),
                                                                     "reused": u["unit"] not in c.stream.seconds} for u in c.stream.units],
                                                          "device": str(resolve_device(inp.recipe.quant.device))},
               "peak_rss": {"main": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                            "workers": max((r.peak_rss for r in results), default=0)}}
        (tmp / "run.json").write_text(json.dumps(run, indent=1) + "\n")
        replace_dir(tmp, out)
    shutil.rmtree(cache, ignore_errors=True)
    return doc


def figure(inp: Inputs, c: Compiled, system: dict | None = None) -> Figure:
    """floorplan.png's title and legend."""
    n = inp.source.args.n_params
    params = f"{n / 1e9:.1f} B" if n >= 1e9 else f"{n / 1e6:.1f} M" if n >= 1e6 else f"{n / 1e3:.0f} K"
    where = f"die {inp.die.name}" if system is None else f"die {system['die']} of {system['dies']} ({inp.die.name}, {system['blocks'][0]}..{system['blocks'][-1]})"
    title = f"{inp.recipe.name} on {where}: {params} parameters, {len(c.placement.tiles):,} tiles"
    return Figure(title, Geometry(inp.die).size, legend(inp.die))


def collect_roms(results: list[BlockResult], cache: Path, tmp: Path) -> dict[str, str]:
    """Hard-link (or copy) each block's ROM file into `tmp/roms/`; block -> path relative to tmp."""
    (tmp / "roms").mkdir()
    files = {}
    for r in results:
        rel = f"roms/{r.block}.safetensors"
        try:
            os.link(cache / r.roms, tmp / rel)
        except OSError:
            shutil.copyfile(cache / r.roms, tmp / rel)
        files[r.block] = rel
    return files
