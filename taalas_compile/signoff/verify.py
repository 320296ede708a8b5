"""verify: sign-off of a compile output directory, from the files on disk only.

0. outputs: every file the manifest records is on disk with its recorded size and sha256.
1. netlist: the ROM images it points to hash to what it recorded.
2. layout: one top cell, shapes on the two custom layers only.
3. DRC: the die's rules on the two layers (KLayout).
4. LVS: extracted ROM digits vs the netlist's, cell by cell; extracted nets vs the netlist's.
5. emulation (`signoff/emulation.py`): the emulator runs the chip as extracted from the masks,
   teacher-forced; its greedy choices and logits must match the quantized reference's. Chips too
   large to decode at once are emulated block by block while their masks are read.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from taalas_compile.backend.netlist import read_netlist
from taalas_compile.chip_dir import check_tokens, chip_die, read_manifest
from taalas_compile.config.die import Die
from taalas_compile.executor import ExecutorCfg
from taalas_compile.mapper.ir import Placement
from taalas_compile.signoff.drc import check_drc
from taalas_compile.signoff.emulation import StreamingEmulation, emulation_check
from taalas_compile.signoff.extract import extract, read_layout
from taalas_compile.signoff.findings import Findings, Violation
from taalas_compile.signoff.lvs import check_netlist_roms, compare_nets, compare_roms
from taalas_compile.signoff.markers import write_results
from taalas_compile.signoff.outputs import check_outputs
from taalas_compile.signoff.rom_blocks import check_rom_blocks, collect, default_jobs
from taalas_compile.signoff.rom_cells import layout_of_cells
from taalas_compile.timing import step_timer

KLAYOUT_MAX_DIGITS = 50_000_000  # above this, OASIS chips are signed off cell by cell (rom_cells.py)


@dataclass
class SignoffRun:
    """One sign-off in progress: the chip directory as read back, the die, and where the findings
    and step times go. Both paths (`verify_whole`, `verify_streaming`) take one."""

    out: Path
    man: dict  # manifest.json, checked (chip_dir.read_manifest)
    pl: Placement  # the netlist's placement
    doc: dict  # netlist.json
    die: Die
    tokens: int  # emulated tokens (teacher-forced)
    step: Callable[[str], None]
    jobs: int | None  # processes reading ROM tiles (streaming path)
    t0: float = field(default_factory=time.perf_counter)
    link: tuple[str | None, bool] = (None, False)  # a die of a system: the stage its incoming link carries, whether it sends one
    f: Findings = field(default_factory=Findings)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def masks(self) -> Path:
        return self.out / self.doc["masks"]

    def timed(self, name: str, fn: Callable, *args):
        """fn(*args), announced as step `name` and timed into `seconds`."""
        return step_timer(self.seconds, self.step)(name, fn, *args)

    def structural(self) -> int:
        """Findings that make emulating pointless: output hashes, layout, LVS, netlist."""
        return sum(self.f.count(k) for k in ("layout", "lvs", "netlist", "manifest"))


def verify(out: Path, tokens: int = 8, step: Callable[[str], None] = lambda s: None, jobs: int | None = 1) -> dict:
    """Sign off the chip in `out`. `jobs`: processes reading the ROM tiles of a chip signed off cell by
    cell (None: `rom_blocks.default_jobs`, by cores and memory); the findings do not depend on it."""
    ExecutorCfg(jobs=jobs)  # --jobs must be at least 1, whichever path the chip takes
    t0 = time.perf_counter()
    man = read_manifest(out)
    check_tokens(man, tokens)  # before minutes of reading and emulation
    pl, _, doc = read_netlist(out, roms=False)
    run = SignoffRun(out, man, pl, doc, chip_die(out, man), tokens, step, jobs, t0)
    if doc["masks"].endswith(".oas") and man["figures"]["fit"]["digits_total"] > KLAYOUT_MAX_DIGITS:
        return verify_streaming(run)
    return verify_whole(run)


def verify_whole(run: SignoffRun) -> dict:
    """Sign-off of a chip a KLayout layout database holds: masks read whole, DRC, extraction, LVS
    against the netlist's ROM images, emulation of the extracted chip."""
    lay, ex = check_whole(run)
    emu = ({"ran": False, "skipped": "output-hash, layout or LVS errors"} if run.structural()
           else run.timed("emulate", emulation_check, run.out, run.man, run.pl, ex, run.die, run.tokens, run.f))
    return finish(run, emu, extracted_figures(lay, ex), top_cell(lay))


def check_whole(run: SignoffRun):
    """Every check of `verify_whole` but the emulation: (layout, extraction)."""
    pl, roms, doc = read_netlist(run.out)
    run.timed("outputs vs manifest", check_outputs, run.out, run.man, run.f)
    run.timed("netlist", check_netlist_roms, pl, roms, doc, run.f)
    lay = run.timed("read masks", read_layout, run.masks, run.die, run.f)
    run.timed("drc", check_drc, lay.metal, lay.vias, run.die, run.f)
    ex = run.timed("extract", extract, lay, run.die, run.f, {t.site: t.name for t in pl.tiles})
    run.timed("lvs", lambda: (compare_roms(pl, roms, ex, run.die, run.f), compare_nets(pl, ex, run.die, run.f)))
    return lay, ex


def extracted_figures(lay, ex) -> dict:
    return {"sites_with_cells": len(ex.roms), "nets": len(ex.nets),
            "vias": int(lay.flat_vias.count()), "metal_shapes": int(lay.flat_metal.count())}


def top_cell(lay) -> str:
    return lay.layout.top_cells()[0].name if lay.layout.top_cells() else "TOP"


def verify_streaming(run: SignoffRun) -> dict:
    """Sign-off of a chip too large for a layout database: the OASIS masks are read one cell at a
    time; ROM tiles are checked against the netlist block by block in `jobs` worker processes
    (`rom_blocks.py`) and each block's extracted digits go through the emulator as it is read
    (`emulation.StreamingEmulation`); the routing and top cell go through KLayout DRC and net
    extraction as on a small chip. `run.pl`, `run.doc`: the netlist, read without its ROM images."""
    if run.jobs is None:
        run.jobs = default_jobs(run.pl)
    bar = getattr(run.step, "bar", None)
    total = sum(r.get("bytes", 0) for r in run.man.get("outputs", {}).values() if isinstance(r, dict))
    run.timed("outputs vs manifest", check_outputs, run.out, run.man, run.f, bar("hash outputs", total, "B") if bar else (lambda n: None))
    run.step(f"note: ROM tiles read {'in this process' if run.jobs == 1 else f'by {run.jobs} worker processes'} (--jobs)")
    link_stage, sends_link = run.link
    emulation = StreamingEmulation(run.out, run.man, run.pl, run.die, run.tokens, link_stage, sends_link)
    try:
        return _verify_streaming(run, emulation)
    finally:
        emulation.close()


def _verify_streaming(run: SignoffRun, emulation: StreamingEmulation) -> dict:
    bar = getattr(run.step, "bar", None)
    cells = sum(t["rom_region"]["rows"] * t["rom_region"]["cols"] for t in run.doc["tiles"])
    advance = bar("ROM tiles", cells, "cells") if bar else (lambda n: None)
    die, f = run.die, run.f

    def on_block(b) -> None:  # a layer block's extracted digits, while the workers read the next ones
        if b.images:
            emulation.add(b.block, b.images)
            advance(sum(d.size for d in b.images.values()))

    def read_and_emulate():
        blocks, _ = check_rom_blocks(run.out, run.doc, run.masks, run.pl, die, run.jobs)
        return collect(blocks, f, on_block)

    rc = run.timed("read masks, check ROM tiles, emulate block by block", read_and_emulate)
    allowed = {(die.layers.via.layer, die.layers.via.datatype), (die.layers.metal.layer, die.layers.metal.datatype)}
    for c in rc.other:
        for key in set(c.rects) - allowed:
            x0, y0, *_ = c.rects[key][0].tolist()
            f.add(Violation("layout.layer", f"shapes on layer {key[0]}/{key[1]} in {c.name}, not one of the two custom layers", x0, y0))
    tops = [c.name for c in rc.other if c.name.startswith("CHIP_")]
    if len(tops) != 1:
        f.add(Violation("layout.top", f"expected one top cell, found {len(tops)}", 0, 0))
    lay = run.timed("read routing", layout_of_cells, rc.other, tops[0] if tops else "TOP", run.masks, die)
    run.timed("drc", check_drc, lay.metal, lay.vias, die, f)
    ex = run.timed("extract", extract, lay, die, f, {t.site: t.name for t in run.pl.tiles})
    run.timed("lvs", compare_nets, run.pl, ex, die, f)
    emu = run.timed("reference (layer by layer), compare", emulation.result, f, run.structural() > 0)
    extracted = {"sites_with_cells": rc.tiles, "nets": len(ex.nets), "vias": rc.vias + int(lay.flat_vias.count()) + rc.cells,
                 "metal_shapes": rc.cells + int(lay.flat_metal.count())}
    return finish(run, emu, extracted, tops[0] if tops else "TOP")


def finish(run: SignoffRun, emu: dict, extracted: dict, top: str) -> dict:
    """signoff.json and the marker database from the findings; the result."""
    f, out = run.f, run.out
    checks = [
        {"name": "outputs", "passed": f.count("manifest") == 0, "violations": f.count("manifest")},
        {"name": "netlist", "passed": f.count("netlist") == 0, "violations": f.count("netlist")},
        {"name": "layers", "passed": f.count("layout") == 0, "violations": f.count("layout")},
        {"name": "drc", "passed": f.count("drc") == 0, "violations": f.count("drc")},
        {"name": "lvs", "passed": f.count("lvs") == 0, "violations": f.count("lvs")},
        {"name": "emulation", "passed": emu.get("ran", False) and f.count("emulation") == 0, "violations": f.count("emulation")},
    ]
    res = {
        "format": "taalas-signoff", "version": 1, "dir": str(out), "masks": run.doc["masks"],
        "passed": all(c["passed"] for c in checks),
        "checks": checks,
        "counts": dict(sorted(f.counts.items())),
        "violations": [v.as_dict() for v in f.items],
        "emulation": emu,
        "extracted": extracted,
        "seconds": {**run.seconds, "total": time.perf_counter() - run.t0},
    }
    res = finite_json(res)  # a NaN compared nothing: it is a finding (emulation.nonfinite) and null in the JSON
    res["reports"] = {k: str(out / "signoff" / k) for k in ("signoff.json", "violations.lyrdb")}
    write_results(out, res, top, run.doc["masks"])
    return res


def finite_json(x):
    """`x` with every NaN or infinite float replaced by None, so signoff.json stays valid JSON."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: finite_json(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [finite_json(v) for v in x]
    return x
