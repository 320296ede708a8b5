"""Placement report: figures of a three-tile placement on the mini die, worked out by hand."""

from dataclasses import replace

import pytest

from taalas_compile.die.load import load_die
from taalas_compile.die.program import Io, MatVec, RmsNorm
from taalas_compile.mapper.ir import Net, Pin, Placement, Tile
from taalas_compile.mapper.refine import refine_placement
from taalas_compile.plan.placement_report import placement_report

# mini: pitch_x = tile 256 x 192 + 2 x 192 margin + gap (2 x 8 + 1) x 64 = 49,536 + 1,088 = 50,624 nm
#       pitch_y = tile 129 x 192 + 2 x 192 + 384 pin area + channel 48 x 80 + 2 x 80 = 25,536 + 4,000 = 29,536 nm
# pin x = col x 50,624 + 192 + (pin index + 1) x 64: io tok_in 256, tok_out 320; mac in 256, out 320; vu a 256, out 512
PX, PY = 50_624, 29_536


def small() -> Placement:
    mm = MatVec(bits=3, group=32, n_rows=128, n_cols=64, in_off=0, out_off=0)  # 128 x 64 / 512 MACs per cycle = 16 cycles
    norm = RmsNorm(n=64, eps=0.0)  # 64 / 16 lanes = 4 cycles
    tiles = (
        Tile("io", "io", (0, 0), "x", "io", Io(vocab=0)),
        Tile("mm.r0c0", "mac", (1, 0), "mm", "L0", mm),
        Tile("mm.r1c0", "mac", (1, 1), "mm", "L0", mm),
        Tile("norm", "vu", (6, 0), "norm", "L0", norm),
    )
    nets = (
        Net("x", (Pin("io", "tok_out"),), (Pin("mm.r0c0", "in"), Pin("mm.r1c0", "in"))),
        Net("mm", (Pin("mm.r0c0", "out"), Pin("mm.r1c0", "out")), (Pin("norm", "a"),)),
        Net("norm", (Pin("norm", "out"),), (Pin("io", "tok_in"),)),
    )
    return Placement("mini", tiles, nets)


X = (PX + 256) - 320 + PY  # io.tok_out at 320 to both `in` pins at 50,880, rows 0..1 = 80,096
MM = (6 * PX + 256) - (PX + 320) + PY  # both `out` pins at 50,944 to norm.a at 304,000, rows 0..1 = 282,592
NORM = (6 * PX + 512) - 256  # norm.out at 304,256 to io.tok_in at 256, row 0 = 304,000


def test_hand_checked_figures():
    die = load_die("mini")
    r = placement_report(small(), die)
    assert (X, MM, NORM) == (80_096, 282_592, 304_000)
    assert r["hpwl_nm"] == X + MM + NORM == 666_688
    assert r["longest_nets"][0] == {"net": "norm", "hpwl_nm": NORM}
    assert r["utilization"]["mac"] == {"used": 2, "available": 76, "utilization": pytest.approx(2 / 76)}
    assert r["utilization"]["sram"]["used"] == 0 and r["utilization"]["io"]["utilization"] == 1
    assert r["stages"] == [
        {"block": "io", "tiles": 1, "cycles_sum": 0.0, "cycles_critical": 0.0},
        {"block": "L0", "tiles": 3, "cycles_sum": 16 + 16 + 4, "cycles_critical": 16 + 2 + 4},  # a slice, one hop, the norm
    ]
    assert r["worst_stage"] == {"block": "L0", "cycles_critical": 22.0, "cycles_sum": 36.0}
    assert "hpwl_before_nm" not in r


def test_before_and_after():
    die = load_die("mini")
    before = small()
    after = Placement("mini", tuple(replace(t, site=(7, 0)) if t.name == "norm" else t for t in before.tiles), before.nets)
    r = placement_report(after, die, before)
    # the norm one column further right: nets mm and norm each grow by one pitch_x
    assert r["hpwl_before_nm"] == 666_688 and r["hpwl_after_nm"] == 666_688 + 2 * PX
    assert r["hpwl_change"] == pytest.approx(2 * PX / 666_688) and r["tiles_moved"] == 1


def test_refine_brings_the_norm_back():
    die = load_die("mini")
    before = small()
    far = Placement("mini", tuple(replace(t, site=(9, 3)) if t.name == "norm" else t for t in before.tiles), before.nets)
    out = refine_placement(far, die)
    r = placement_report(out, die, far)
    assert r["hpwl_after_nm"] <= 666_688 < r["hpwl_before_nm"]
    assert out.tile("io").site == (0, 0)
