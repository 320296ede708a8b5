"""verify: sign-off of a compile output directory, from the files on disk only.

1. netlist: the ROM images it points to hash to what it recorded.
2. layout: one top cell, shapes on the two custom layers only.
3. DRC: the die's rules on the two layers (KLayout).
4. LVS: extracted ROM digits vs the netlist's, cell by cell; extracted nets vs the netlist's.
5. emulation: the emulator runs the *extracted* chip, teacher-forced on the quantized reference's
   greedy tokens; its greedy choices must equal the reference's and its logits stay within
   `LOGIT_TOLERANCE` of the largest |logit|. Its accuracy against the float model is reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from taalas_compile.backend.netlist import read_block_roms, read_netlist
from taalas_compile.emulator.chip import from_extraction
from taalas_compile.emulator.run import Emulator
from taalas_compile.emulator.tiles import EmulationError
from taalas_compile.model.generate import greedy
from taalas_compile.reference import (
    build_references,
    chip_die,
    inputs_of_chip,
    read_manifest,
)
from taalas_compile.signoff.drc import check_drc
from taalas_compile.signoff.extract import extract, read_layout
from taalas_compile.signoff.findings import Findings, Violation
from taalas_compile.signoff.lvs import check_netlist_roms, compare_nets, compare_roms
from taalas_compile.signoff.markers import write_results
from taalas_compile.signoff.oasis_read import read_cells
from taalas_compile.signoff.rom_cells import check_rom_cells, layout_of_cells
from taalas_compile.timing import step_timer

# int8 activations make the arithmetic discontinuous: emulator and reference agree bit for bit
# until a float-ordering difference flips one rounding, after which logits differ by about one
# activation step (~1% of their range on stories260K). 5% leaves margin and still catches any
# functional error (a wrong weight, a swapped net).
LOGIT_TOLERANCE = 0.05
KLAYOUT_MAX_DIGITS = 50_000_000  # above this, OASIS chips are signed off cell by cell (rom_cells.py)


def _kl_top1(p_logits: np.ndarray, q_logits: np.ndarray) -> tuple[float, float]:
    p = torch.log_softmax(torch.from_numpy(p_logits).double(), -1)
    q = torch.log_softmax(torch.from_numpy(q_logits).double(), -1)
    kl = (p.exp() * (p - q)).sum(-1).mean().item()
    return kl, float((p.argmax(-1) == q.argmax(-1)).double().mean())


def emulation_check(out: Path, man: dict, pl, ex, die, tokens: int, f: Findings) -> dict:
    inp = inputs_of_chip(out, man)
    refs = build_references(inp)
    bos = man.get("bos_id", 1)
    ref_tokens = greedy(refs.quant_model, [bos], tokens)
    seq = [bos] + ref_tokens[:-1]
    try:
        emu = Emulator(from_extraction(pl, ex.roms, ex.nets, die))
        emu_logits = emu.teacher_forced(seq)
    except EmulationError as e:
        f.add(Violation("emulation.error", str(e), 0, 0))
        return {"ran": False, "error": str(e)}
    with torch.no_grad():
        x = torch.tensor([seq])
        q_logits = refs.quant_model(x)[0].numpy()
        f_logits = refs.float_model(x)[0].numpy()
    emu_tokens = emu_logits.argmax(-1).tolist()
    diff = float(np.abs(emu_logits - q_logits).max())
    scale = float(np.abs(q_logits).max())
    if emu_tokens != ref_tokens:
        k = next(i for i, (a, b) in enumerate(zip(emu_tokens, ref_tokens)) if a != b)
        f.add(Violation("emulation.tokens", f"greedy token {k}: emulator {emu_tokens[k]}, quantized reference {ref_tokens[k]}", 0, 0))
    if diff > LOGIT_TOLERANCE * scale:
        f.add(Violation("emulation.logits", f"max |logit difference| {diff:.4g} > {LOGIT_TOLERANCE:.0%} of {scale:.4g}", 0, 0))
    kl_f, top1_f = _kl_top1(f_logits, emu_logits)
    return {
        "ran": True, "tokens": len(seq), "greedy_match": emu_tokens == ref_tokens,
        "max_logit_diff": diff, "logit_scale": scale, "tolerance": LOGIT_TOLERANCE,
        "vs_float": {"kl": kl_f, "top1_agreement": top1_f},
        "emulator_tokens": emu_tokens, "reference_tokens": ref_tokens,
    }


def verify(out: Path, tokens: int = 8, step: Callable[[str], None] = lambda s: None) -> dict:
    t0 = time.perf_counter()
    man = read_manifest(out)
    _, _, doc = read_netlist(out, roms=False)
    if doc["masks"].endswith(".oas") and man["figures"]["fit"]["digits_total"] > KLAYOUT_MAX_DIGITS:
        return verify_streaming(out, man, tokens, step, t0)
    pl, roms, doc = read_netlist(out)
    die = chip_die(out, man)
    f = Findings()
    seconds: dict[str, float] = {}
    timed = step_timer(seconds, step)

    timed("netlist", check_netlist_roms, pl, roms, doc, f)
    lay = timed("read masks", read_layout, out / doc["masks"], die, f)
    timed("drc", check_drc, lay.metal, lay.vias, die, f)
    ex = timed("extract", extract, lay, die, f, {t.site: t.name for t in pl.tiles})
    timed("lvs", lambda: (compare_roms(pl, roms, ex, die, f), compare_nets(pl, ex, die, f)))
    structural = f.count("layout") + f.count("lvs") + f.count("netlist")
    emu = {"ran": False, "skipped": "layout/LVS errors"} if structural else timed("emulate", emulation_check, out, man, pl, ex, die, tokens, f)
    extracted = {"sites_with_cells": len(ex.roms), "nets": len(ex.nets),
                 "vias": int(lay.flat_vias.count()), "metal_shapes": int(lay.flat_metal.count())}
    top = lay.layout.top_cells()[0].name if lay.layout.top_cells() else "TOP"
    return finish(out, doc, f, emu, extracted, seconds, t0, top)


def verify_streaming(out: Path, man: dict, tokens: int, step: Callable[[str], None], t0: float) -> dict:
    """Sign-off of a chip too large for a layout database: the OASIS masks are read one cell at a
    time; ROM tiles are checked against the netlist block by block (`rom_cells.py`), the routing
    and top cell go through KLayout DRC and net extraction as on a small chip."""
    pl, _, doc = read_netlist(out, roms=False)
    die = chip_die(out, man)
    f = Findings()
    seconds: dict[str, float] = {}
    timed = step_timer(seconds, step)
    path = out / doc["masks"]

    def images_of(block: str) -> dict:
        imgs = read_block_roms(out, doc, block)
        check_netlist_roms(pl, imgs, {"tiles": [t for t in doc["tiles"] if t["block"] == block]}, f)
        return imgs

    rc = timed("read masks, check ROM tiles", check_rom_cells, read_cells(path), pl, images_of, die, f)
    allowed = {(die.layers.via.layer, die.layers.via.datatype), (die.layers.metal.layer, die.layers.metal.datatype)}
    for c in rc.other:
        for key in set(c.rects) - allowed:
            x0, y0, *_ = c.rects[key][0].tolist()
            f.add(Violation("layout.layer", f"shapes on layer {key[0]}/{key[1]} in {c.name}, not one of the two custom layers", x0, y0))
    tops = [c.name for c in rc.other if c.name.startswith("CHIP_")]
    if len(tops) != 1:
        f.add(Violation("layout.top", f"expected one top cell, found {len(tops)}", 0, 0))
    lay = timed("read routing", layout_of_cells, rc.other, tops[0] if tops else "TOP", path, die)
    timed("drc", check_drc, lay.metal, lay.vias, die, f)
    ex = timed("extract", extract, lay, die, f, {t.site: t.name for t in pl.tiles})
    timed("lvs", compare_nets, pl, ex, die, f)
    emu = {"ran": False, "skipped": f"whole-chip emulation of {man['figures']['fit']['digits_total']:,} digit cells does not fit "
                                    "in memory; streaming emulation block by block is not built yet"}
    extracted = {"sites_with_cells": rc.tiles, "nets": len(ex.nets), "vias": rc.vias + int(lay.flat_vias.count()) + rc.cells,
                 "metal_shapes": rc.cells + int(lay.flat_metal.count())}
    return finish(out, doc, f, emu, extracted, seconds, t0, tops[0] if tops else "TOP")


def finish(out: Path, doc: dict, f: Findings, emu: dict, extracted: dict, seconds: dict, t0: float, top: str) -> dict:
    checks = [
        {"name": "netlist", "passed": f.count("netlist") == 0, "violations": f.count("netlist")},
        {"name": "layers", "passed": f.count("layout") == 0, "violations": f.count("layout")},
        {"name": "drc", "passed": f.count("drc") == 0, "violations": f.count("drc")},
        {"name": "lvs", "passed": f.count("lvs") == 0, "violations": f.count("lvs")},
        {"name": "emulation", "passed": emu.get("ran", False) and f.count("emulation") == 0, "violations": f.count("emulation")},
    ]
    res = {
        "format": "taalas-signoff", "version": 1, "dir": str(out),
        "passed": all(c["passed"] for c in checks),
        "checks": checks,
        "counts": dict(sorted(f.counts.items())),
        "violations": [v.as_dict() for v in f.items],
        "emulation": emu,
        "extracted": extracted,
        "seconds": {**seconds, "total": time.perf_counter() - t0},
    }
    res["reports"] = {k: str(out / "signoff" / k) for k in ("signoff.json", "violations.lyrdb")}
    write_results(out, res, top, doc["masks"])
    return res
