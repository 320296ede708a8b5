"""A NaN or Inf fails sign-off: `judge` flags non-finite logits on either side (a NaN comparison
never fails by itself), and the block-by-block emulator stops at the block that computes one."""

import numpy as np
import pytest

from taalas_compile.backend.netlist import read_netlist
from taalas_compile.backend.roms import build_tile_image
from taalas_compile.die import rom_format as rf
from taalas_compile.die.load import load_die
from taalas_compile.emulator.stream import StreamEmulator
from taalas_compile.emulator.tiles import EmulationError
from taalas_compile.mapper.ir import Role
from taalas_compile.signoff.emulation import judge
from taalas_compile.signoff.findings import Findings


def logits(seed=0):
    return np.random.default_rng(seed).normal(size=(6, 20)).astype(np.float32)


def judged(emu, q, f=None) -> Findings:
    found = Findings()
    judge(emu, q, logits(1) if f is None else f, found)
    return found


def poisoned(x, value, at=(2, 5)):
    x = x.copy()
    x[at] = value
    return x


def test_equal_finite_logits_pass():
    assert judged(logits(), logits()).count() == 0


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("side", ["emulator", "quantized reference"])
def test_a_non_finite_logit_on_either_side_fails(side, value):
    emu, q = logits(), logits()
    if side == "emulator":
        emu = poisoned(emu, value)
    else:
        q = poisoned(q, value)
    f = judged(emu, q)
    msgs = [v.message for v in f.of("emulation.nonfinite")]
    assert msgs == [f"{side} logit [2, 5] = {value}: sign-off needs finite logits"], msgs


def test_a_nan_reference_logit_fails_the_exact_check():
    """A tolerance check `diff > 5% of scale` passed when the scale was NaN; the exact one cannot."""
    q = poisoned(logits(), np.nan, at=(0, 0))
    emu = q.copy()
    emu[0, 0] = 0.0  # the emulator's greedy tokens are the reference's everywhere
    assert judged(emu, q).count("emulation.exact") == 1


def test_one_differing_bit_fails_and_is_named():
    emu, q = logits(), logits()
    emu[3, 7] = np.nextafter(emu[3, 7], np.float32(np.inf))
    (v,) = judged(emu, q).of("emulation.exact")
    assert "first difference at [3, 7]" in v.message and "(1 of 120 values differ)" in v.message


def test_a_nan_float_model_fails():
    assert judged(logits(), logits(), poisoned(logits(1), np.nan)).count("emulation.nonfinite") == 1


@pytest.fixture(scope="module")
def tiny(tiny_chip):
    pl, roms, _ = read_netlist(tiny_chip)
    return pl, roms, load_die("mini")


def by_block(pl) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for t in pl.tiles:
        out.setdefault(t.block, []).append(t.name)
    return out


def test_a_block_computing_nan_is_an_emulation_error(tiny):
    """A norm gain etched as NaN (what a NaN checkpoint made before it was refused at load): the
    block that computes with it is named, the run stops."""
    pl, roms, die = tiny
    norm = next(t for t in pl.tiles if t.role is Role.RMSNORM and t.block == "L1")
    gains = rf.parse_consts(rf.body_flat(roms[norm.name]), norm.program.n, np.float16).copy()
    gains[3] = np.nan
    bad = {**roms, norm.name: build_tile_image(norm, die, None, gains)}
    s = StreamEmulator(pl, die, [1, 5, 9, 200])
    with pytest.raises(EmulationError, match=r"^block L1: .* is not finite"):
        for b, names in by_block(pl).items():
            s.run_block(b, {n: bad[n] for n in names})


def test_a_nan_teacher_is_an_emulation_error(tiny):
    pl, roms, die = tiny
    s = StreamEmulator(pl, die, [1, 5, 9, 200])
    for b, names in by_block(pl).items():
        stage = s.teacher_stage(b)
        teacher = None
        if stage is not None:
            teacher = next(v for n, v in s.values.items() if s.stage_of_net.get(n) == stage).copy()
            teacher[1, 3] = np.nan
        if b == "L0":
            with pytest.raises(EmulationError, match=r"^block L0: the reference's input \[1, 3\] = nan is not finite"):
                s.run_block(b, {n: roms[n] for n in names}, teacher)
            return
        s.run_block(b, {n: roms[n] for n in names}, teacher)
    pytest.fail("no block L0")
