"""The block-by-block emulation check (signoff/emulation.py) on a chip whose layer block computes
the wrong thing: the block is named, the logits fail, and a clean chip passes."""

import numpy as np

from taalas_compile.backend.netlist import read_netlist
from taalas_compile.chip_dir import chip_die, read_manifest
from taalas_compile.signoff.emulation import StreamingEmulation
from taalas_compile.signoff.findings import Findings


def check(out, swap: tuple[str, str] | None = None) -> tuple[dict, Findings]:
    man = read_manifest(out)
    pl, roms, _ = read_netlist(out)
    if swap:  # two tiles' ROMs exchanged: gate and up projections trade places
        a, b = swap
        roms = {**roms, a: roms[b], b: roms[a]}
    em = StreamingEmulation(out, man, pl, chip_die(out, man), tokens=4)
    try:
        for block in dict.fromkeys(t.block for t in pl.tiles):
            em.add(block, {t.name: roms[t.name] for t in pl.tiles if t.block == block})
        f = Findings()
        return em.result(f, structural=False), f
    finally:
        em.close()


def test_a_clean_chip_passes_block_by_block(compiled):
    res, f = check(compiled)
    assert res["ran"] and f.items == [], [v.message for v in f.items]
    assert res["teacher_forced"] and [b["block"] for b in res["blocks"]] == ["io", "head", "L0", "L1", "tail"]
    assert all(b["exact"] for b in res["blocks"]) and res["exact"] and res["end_to_end"]["exact"]


def test_a_wrong_block_is_named(compiled):
    res, f = check(compiled, ("L1.gate_proj.r0c0", "L1.up_proj.r0c0"))
    blocks = [v for v in f.items if v.category == "emulation.exact" and v.where]
    assert [v.where for v in blocks] == ["L1"], [v.message for v in f.items]
    assert "block L1 given the reference's input" in blocks[0].message and "first difference at [" in blocks[0].message
    assert res["exact"] and not res["end_to_end"]["exact"]  # the tail given the reference's input is right; the chip end to end is not
    assert np.isfinite(res["end_to_end"]["vs_float"]["max_logit_diff"])
