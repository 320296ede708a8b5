"""Block-by-block emulation (emulator/stream.py): the same arithmetic as the whole-chip emulator,
one layer block at a time, and what it says when blocks come out of order or a block is wrong."""

import numpy as np
import pytest

from taalas_compile.emulator.chip import from_netlist
from taalas_compile.emulator.run import Emulator
from taalas_compile.emulator.stream import StreamEmulator, stage_of
from taalas_compile.emulator.tiles import EmulationError

SEQ = [1, 5, 9, 200, 17, 3]


def blocks(pl) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for t in pl.tiles:
        out.setdefault(t.block, []).append(t.name)
    return out


def run(tiny, roms=None, order=None) -> StreamEmulator:
    pl, base, die = tiny
    roms = roms or base
    s = StreamEmulator(pl, die, SEQ)
    by = blocks(pl)
    for b in order or by:
        s.run_block(b, {n: roms[n] for n in by[b]})
    return s


def test_block_by_block_equals_the_whole_chip_emulator(tiny):
    whole = Emulator(from_netlist(*tiny)).teacher_forced(SEQ)
    s = run(tiny)
    assert s.logits.shape == whole.shape
    np.testing.assert_array_equal(s.logits, whole)  # same arithmetic: bit for bit


def test_blocks_are_named_by_the_stage_they_compute(tiny):
    pl = tiny[0]
    stages = {b: stage_of([t for t in pl.tiles if t.block == b]) for b in blocks(pl)}
    assert stages == {"io": None, "head": "embed", "L0": "layers.0", "L1": "layers.1", "tail": "logits"}


def test_a_block_before_its_input_is_refused(tiny):
    with pytest.raises(EmulationError, match="block L1 reads .* before the block driving it has run"):
        run(tiny, order=["io", "head", "L1", "L0", "tail"])


def test_a_wrong_block_shows_from_that_block_on(tiny):
    pl, roms, die = tiny
    good = StreamEmulator(pl, die, SEQ)
    bad = StreamEmulator(pl, die, SEQ)
    broken = dict(roms)
    img = broken["L1.q_proj.r0c0"].copy()
    img[1:, :8] = img[1:, :8][:, ::-1]  # digits of the first cells of every weight row reversed
    broken["L1.q_proj.r0c0"] = img
    diffs = {}
    for b, names in blocks(pl).items():
        g = good.run_block(b, {n: roms[n] for n in names})
        w = bad.run_block(b, {n: broken[n] for n in names})
        if g.out is not None and g.stage != "logits":
            diffs[b] = float(np.abs(g.out - w.out).max())
    assert diffs["head"] == diffs["L0"] == 0.0 and diffs["L1"] > 0
    assert not np.array_equal(good.logits, bad.logits)


def test_teacher_forcing_gives_a_block_the_teachers_input(tiny):
    pl, roms, die = tiny
    chained = run(tiny)
    s = StreamEmulator(pl, die, SEQ)
    for b, names in blocks(pl).items():
        stage = s.teacher_stage(b)
        # the teacher: what the chained run passed on, scaled, so a forced block sees other numbers
        teacher = None if stage is None else 0.5 * next(v for n, v in chained.values.items() if chained.stage_of_net.get(n) == stage)
        r = s.run_block(b, {n: roms[n] for n in names}, teacher)
        if b == "L0":
            assert stage == "embed" and r.forced is not None and not np.array_equal(r.forced, r.out)
    np.testing.assert_array_equal(s.logits, chained.logits)  # the chained run is not disturbed
    assert s.forced_logits is not None and not np.array_equal(s.forced_logits, s.logits)
