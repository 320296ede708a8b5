"""Fault injection on the written masks: damage one thing in chip.gds of a copy of a compiled chip
and check that sign-off fails with the right category, at the right place.

Each fault is made on the GDSII file as written (read with gdstk, edited, written back to the same
path), so what is tested is the chain masks on disk -> KLayout -> DRC / extraction / LVS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gdstk
import klayout.db as kdb
import pytest
from gds_edit import Gds, Wire, routing_wires, select_via, touches

from taalas_compile.die.geometry import DIGIT_OF_SITE, SITE_OF_DIGIT
from taalas_compile.signoff.extract import fabric_stubs
from taalas_compile.signoff.verify import verify

TOKENS = 4


# --- checking the result --------------------------------------------------------------------------
def run_verify(out: Path) -> dict:
    res = verify(out, tokens=TOKENS)
    assert res["checks"], res
    return res


def check(res: dict, name: str) -> bool:
    return next(c for c in res["checks"] if c["name"] == name)["passed"]


def of(res: dict, category: str) -> list[dict]:
    return [v for v in res["violations"] if v["category"] == category]


def near(v: dict, x: float, y: float, tol: float) -> bool:
    return abs(v["x_nm"] - x) <= tol and abs(v["y_nm"] - y) <= tol


def summary(res: dict) -> str:
    return f"counts={res['counts']} first={res['violations'][:5]}"


# --- the faults -----------------------------------------------------------------------------------
def test_clean_copy_passes(chip_copy):
    res = run_verify(chip_copy)
    assert res["passed"] is True, summary(res)
    assert all(c["passed"] and c["violations"] == 0 for c in res["checks"]), res["checks"]
    assert res["counts"] == {} and res["violations"] == []
    assert res["emulation"]["ran"] and res["emulation"]["greedy_match"]


def test_weight_via_moved(chip_copy, netlist, geo):
    p = geo.die.cell.pitch
    i, j = 5, 7  # row 0 is the header; row i holds weight row i-1, column j its code digit (3-bit)
    g, t, _, ref, old = select_via(chip_copy, netlist, "L0.q_proj.r0c0", i, j, geo)
    assert t["rom_region"]["cell"].startswith("T_L0_q_proj")
    new = next(s for s in SITE_OF_DIGIT if s != old)
    cx, cy = geo.site_center(new)
    ref.origin = (j * p + cx, i * p + cy)
    g.save()

    res = run_verify(chip_copy)
    assert res["passed"] is False
    assert check(res, "drc") and check(res, "layers") and not check(res, "lvs"), summary(res)
    assert res["counts"] == {"lvs.via_moved": 1}, summary(res)
    (v,) = of(res, "lvs.via_moved")
    ox, oy = t["rom_region"]["origin_nm"]
    assert near(v, ox + j * p + cx, oy + i * p + cy, p), v
    assert v["where"] == f"{t['name']} cell ({i}, {j})", v
    sl = t["slice"]
    assert f"weight {sl['param']}[{sl['rows'][0] + i - 1}, {sl['cols'][0] + j}]" in v["message"], v
    assert f"select via on digit {DIGIT_OF_SITE[new]}, expected {DIGIT_OF_SITE[old]}" in v["message"], v
    assert res["emulation"]["ran"] is False  # structural errors skip emulation


def test_weight_via_missing(chip_copy, netlist, geo):
    p = geo.die.cell.pitch
    i, j = 3, 10
    g, t, cell, ref, old = select_via(chip_copy, netlist, "L0.k_proj.r0c0", i, j, geo)
    cx, cy = geo.site_center(old)
    cell.remove(ref)
    g.save()

    res = run_verify(chip_copy)
    assert res["passed"] is False
    assert check(res, "drc") and not check(res, "lvs"), summary(res)
    assert res["counts"] == {"lvs.via_missing": 1}, summary(res)
    (v,) = of(res, "lvs.via_missing")
    ox, oy = t["rom_region"]["origin_nm"]
    assert near(v, ox + j * p + cx, oy + i * p + cy, p), v
    assert v["where"] == f"{t['name']} cell ({i}, {j})", v
    assert f"expected digit {DIGIT_OF_SITE[old]}" in v["message"] and t["slice"]["param"] in v["message"], v


def test_extra_select_via(chip_copy, netlist, geo):
    p = geo.die.cell.pitch
    i, j = 2, 5
    g, t, cell, ref, old = select_via(chip_copy, netlist, "L0.v_proj.r0c0", i, j, geo)
    # a site not next to the existing select via, so the two vias are also far apart
    new = next(s for s in SITE_OF_DIGIT if abs(s % 3 - old % 3) + abs(s // 3 - old // 3) >= 2)
    cx, cy = geo.site_center(new)
    cell.add(gdstk.Reference(ref.cell, (j * p + cx, i * p + cy)))
    g.save()

    res = run_verify(chip_copy)
    assert res["passed"] is False
    assert check(res, "drc") and not check(res, "lvs"), summary(res)
    extra = of(res, "lvs.via_extra")
    assert len(extra) == 1 and res["counts"]["lvs.via_extra"] == 1, summary(res)
    (v,) = extra
    ox, oy = t["rom_region"]["origin_nm"]
    assert near(v, ox + j * p + cx, oy + i * p + cy, p), v
    assert v["where"] == f"{t['name']} cell ({i}, {j})", v
    # whichever of the two vias extraction keeps, nothing else differs
    assert set(res["counts"]) <= {"lvs.via_extra", "lvs.via_moved"}, summary(res)
    for m in of(res, "lvs.via_moved"):
        assert m["where"] == f"{t['name']} cell ({i}, {j})", m


@dataclass
class Cut:
    res: dict
    wire: Wire  # the track wire that was cut
    pin: str  # the pin stub under the via beyond the gap
    gap: tuple[int, int]  # centre of the gap


@pytest.fixture(scope="module")
def cut(copy_of_compiled, netlist, die, geo) -> Cut:
    """A routing wire cut next to its last via (a pin), leaving a DRC-legal gap."""
    out = copy_of_compiled("wire_cut")
    g = Gds(out)
    wires = routing_wires(g, die, netlist)
    stubs = fabric_stubs(die)
    e, space = geo.wire_end, die.rules.metal_space
    gap = 2 * space

    def pin_at_end(w: Wire):
        ch = w.yc // geo.pitch_y
        name = stubs.get((ch, w.vias[-1]))
        return name if name and not name.startswith("ft ") else None

    w = next(w for w in wires if len(w.vias) >= 2 and w.vias[-1] - w.vias[-2] >= 2 * e + gap + 80 and pin_at_end(w))
    xv = w.vias[-1]
    assert w.x1 == xv + e
    # a left piece, a gap of 2 x metal_space, and a square piece that still encloses the last via
    # by via_enclosure: only connectivity changes, no design rule is broken
    ml, md = die.layers.metal.layer, die.layers.metal.datatype
    g.cells["ROUTING"].remove(w.rect)
    g.cells["ROUTING"].add(
        gdstk.rectangle((w.x0, w.y0), (xv - e - gap, w.y1), layer=ml, datatype=md),
        gdstk.rectangle((xv - e, w.y0), (w.x1, w.y1), layer=ml, datatype=md),
    )
    g.save()
    return Cut(run_verify(out), w, pin_at_end(w), (xv - e - gap // 2, w.yc))


def tile_pin(netlist: dict, site_pin: str) -> str:
    """'c,r.pin' (a stub of the die) -> '<tile>.<pin>' (the netlist's name for it)."""
    site, _, pin = site_pin.partition(".")
    name = next(t["name"] for t in netlist["tiles"] if ",".join(map(str, t["site"])) == site)
    return f"{name}.{pin}"


def test_routing_wire_cut(cut, die, netlist):
    res, w = cut.res, cut.wire
    assert res["passed"] is False
    assert check(res, "drc") and check(res, "layers"), summary(res)  # the gap itself is legal
    assert not check(res, "lvs")
    opens = of(res, "lvs.open")
    assert opens and {v["where"] for v in opens} == {w.net}, summary(res)
    assert any(tile_pin(netlist, cut.pin) in v["message"] for v in opens), opens
    # the piece cut off lands on one stub only: dangling, right next to the gap
    dangling = of(res, "lvs.dangling")
    assert len(dangling) == 1 and res["counts"]["lvs.dangling"] == 1, summary(res)
    (d,) = dangling
    assert d["where"] == cut.pin and near(d, *cut.gap, die.cell.pitch), (d, cut.gap)
    assert set(res["counts"]) == {"lvs.open", "lvs.dangling"}, summary(res)


def test_routing_wire_cut_open_is_placed_at_the_cut(cut, die):
    opens = of(cut.res, "lvs.open")
    assert opens and all(near(v, *cut.gap, die.cell.pitch) for v in opens), (opens, cut.gap)


@dataclass
class Short:
    res: dict
    a: Wire
    b: Wire
    bridge: tuple[int, int, int, int]
    wires: list[Wire]


@pytest.fixture(scope="module")
def short(copy_of_compiled, netlist, die, geo) -> Short:
    """A metal bridge between two different nets' wires on adjacent tracks of one channel."""
    out = copy_of_compiled("short")
    g = Gds(out)
    wires = routing_wires(g, die, netlist)
    tp, via_clear = die.routing.track_pitch, 200

    def bridge_x(a: Wire, b: Wire):
        lo, hi = max(a.x0, b.x0), min(a.x1, b.x1)
        if hi - lo < 2000:
            return None
        for x in range((lo + hi) // 2, hi - 500, 97):
            if all(abs(x - v) >= via_clear for v in a.vias + b.vias):
                return x
        return None

    a, b = next((a, b) for a in wires for b in wires if b.yc - a.yc == tp and a.net != b.net and bridge_x(a, b))
    xc, hw = bridge_x(a, b), die.rules.metal_width
    box = (xc - hw, a.yc, xc + hw, b.yc)
    ml, md = die.layers.metal.layer, die.layers.metal.datatype
    g.cells["ROUTING"].add(gdstk.rectangle(box[:2], box[2:], layer=ml, datatype=md))
    g.save()
    return Short(run_verify(out), a, b, box, wires)


def test_routing_short(short):
    res, a, b = short.res, short.a, short.b
    assert res["passed"] is False
    assert check(res, "drc") and check(res, "layers"), summary(res)
    assert res["counts"] == {"lvs.short": 1}, summary(res)
    (v,) = of(res, "lvs.short")
    assert set(v["where"].split(", ")) == {a.net, b.net}, v
    assert a.net in v["message"] and b.net in v["message"], v
    # placed on a piece of metal of the shorted component (any of the two nets' merged shapes)
    pieces = kdb.Region()
    for w in short.wires:
        if w.net in (a.net, b.net):
            pieces.insert(kdb.Box(w.x0, w.y0, w.x1, w.y1))
    pieces.insert(kdb.Box(*short.bridge))
    boxes = [q.bbox() for q in pieces.merged().each()]
    assert any(bx.contains(kdb.Point(v["x_nm"], v["y_nm"])) for bx in boxes), (v, boxes)


def test_routing_short_is_placed_at_the_bridge(short, die):
    x0, y0, x1, y1 = short.bridge
    (v,) = of(short.res, "lvs.short")
    assert near(v, (x0 + x1) / 2, (y0 + y1) / 2, die.cell.pitch), (v, short.bridge)


def _free_spot(wires, geo, die, w: int, h: int) -> tuple[int, int]:
    """Centre of a w x h box inside a channel, at least 2 x metal_space from every wire."""
    m = 2 * die.rules.metal_space
    for ch in range(1, die.grid.n_rows - 1):
        for track in range(die.routing.channel_tracks - 1, 0, -1):
            y = geo.track_y(ch, track)
            for col in range(die.grid.n_cols):
                x = col * geo.pitch_x + geo.tile_w // 2
                if not touches(wires, (x - w // 2 - m, y - h // 2 - m, x + w // 2 + m, y + h // 2 + m)):
                    return x, y
    raise AssertionError("no free spot in any channel")


def test_metal_too_narrow(chip_copy, netlist, die, geo):
    g = Gds(chip_copy)
    wires = routing_wires(g, die, netlist)
    w, h = 400, die.rules.metal_width - 10
    x, y = _free_spot(wires, geo, die, w, h)
    ml, md = die.layers.metal.layer, die.layers.metal.datatype
    g.cells["ROUTING"].add(gdstk.rectangle((x - w // 2, y - h // 2), (x + w // 2, y + h // 2), layer=ml, datatype=md))
    g.save()

    res = run_verify(chip_copy)
    assert res["passed"] is False
    assert not check(res, "drc"), summary(res)
    narrow = of(res, "drc.metal_width")
    assert narrow and all(near(v, x, y, die.cell.pitch) for v in narrow), (narrow, x, y)
    assert set(res["counts"]) - {"drc.metal_width", "lvs.dangling"} == set(), summary(res)


def test_metal_too_close(chip_copy, netlist, die, geo):
    g = Gds(chip_copy)
    wires = routing_wires(g, die, netlist)
    space, mw = die.rules.metal_space, die.rules.metal_width
    w, h = 400, mw
    for wire in wires:
        x = (wire.x0 + wire.x1) // 2
        y0 = wire.y1 + space - 10
        box = (x - w // 2 - 2 * space, y0 - 2 * space, x + w // 2 + 2 * space, y0 + h + 2 * space)
        if wire.x1 - wire.x0 > w + 4 * space and not touches(wires, box, but=wire):
            break
    else:
        raise AssertionError("no wire with free room above it")
    ml, md = die.layers.metal.layer, die.layers.metal.datatype
    g.cells["ROUTING"].add(gdstk.rectangle((x - w // 2, y0), (x + w // 2, y0 + h), layer=ml, datatype=md))
    g.save()

    res = run_verify(chip_copy)
    assert res["passed"] is False
    assert not check(res, "drc"), summary(res)
    close = of(res, "drc.metal_space")
    assert len(close) == 1 and res["counts"]["drc.metal_space"] == 1, summary(res)
    assert near(close[0], x, wire.y1 + (space - 10) / 2, die.cell.pitch), (close, x, wire.y1)
    assert "drc.metal_width" not in res["counts"], summary(res)
    assert set(res["counts"]) - {"drc.metal_space", "lvs.dangling"} == set(), summary(res)


def test_foreign_layer(chip_copy, die, geo):
    g = Gds(chip_copy)
    assert (1, 0) not in {(die.layers.via.layer, die.layers.via.datatype), (die.layers.metal.layer, die.layers.metal.datatype)}
    x, y = geo.tile_box((2, 1))[0] + 1000, geo.tile_box((2, 1))[1] + 1000
    g.top.add(gdstk.rectangle((x - 100, y - 100), (x + 100, y + 100), layer=1, datatype=0))
    g.save()

    res = run_verify(chip_copy)
    assert res["passed"] is False
    assert not check(res, "layers"), summary(res)
    (v,) = of(res, "layout.layer")
    assert "1/0" in v["message"] and near(v, x, y, die.cell.pitch), v
    assert res["counts"] == {"layout.layer": 1}, summary(res)
