"""Editing written masks for fault injection: chip.gds opened with gdstk, its select vias and
routing wires found by position, the file written back in place."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import gdstk


class Gds:
    """chip.gds of an output directory, opened for editing with gdstk."""

    def __init__(self, out: Path):
        self.path = out / "chip.gds"
        self.lib = gdstk.read_gds(str(self.path))
        self.cells = {c.name: c for c in self.lib.cells}
        (self.top,) = self.lib.top_level()

    def save(self, rehash: bool = True) -> None:
        """Write the edited masks back. `rehash`: record their new size and sha256 in manifest.json,
        so the fault must be caught by the check it targets, not only by verify's hash check."""
        self.lib.write_gds(str(self.path))
        if rehash:
            from taalas_compile.files import sha256_file

            man_path = self.path.parent / "manifest.json"
            man = json.loads(man_path.read_text())
            man["outputs"]["chip.gds"] = {"bytes": self.path.stat().st_size, "sha256": sha256_file(self.path)}
            man_path.write_text(json.dumps(man, indent=1) + "\n")


def tile_of(netlist: dict, name: str) -> dict:
    return next(t for t in netlist["tiles"] if t["name"] == name)


def sel_refs(cell: gdstk.Cell) -> list[gdstk.Reference]:
    """The SEL references of a tile cell, one per select via (repetitions expanded in place)."""
    for ref in list(cell.references):
        if ref.cell_name == "SEL" and ref.repetition.size > 1:
            cell.remove(ref)
            cell.add(*ref.apply_repetition())
    return [r for r in cell.references if r.cell_name == "SEL"]


def sel_in_cell(cell: gdstk.Cell, i: int, j: int, pitch: int) -> gdstk.Reference:
    """The one select-via reference inside digit cell (row i, column j) of a tile cell."""
    hits = [r for r in sel_refs(cell)
            if j * pitch <= r.origin[0] < (j + 1) * pitch and i * pitch <= r.origin[1] < (i + 1) * pitch]
    assert len(hits) == 1, f"cell ({i}, {j}) has {len(hits)} select vias"
    return hits[0]


def site_of(ref: gdstk.Reference, i: int, j: int, geo) -> int:
    p = geo.die.cell.pitch
    off = (round(ref.origin[0]) - j * p, round(ref.origin[1]) - i * p)
    return next(s for s in range(9) if geo.site_center(s) == off)


@dataclass
class Wire:
    rect: gdstk.Polygon
    x0: int
    y0: int
    x1: int
    y1: int
    net: str
    vias: list[int]  # x of the via centres on it, sorted

    @property
    def yc(self) -> int:
        return (self.y0 + self.y1) // 2


def routing_wires(g: Gds, die, netlist: dict) -> list[Wire]:
    """Track wires of the ROUTING cell, each with the net named by the top cell's label on it."""
    ml, md, vl = die.layers.metal.layer, die.layers.metal.datatype, die.layers.via.layer
    rc = g.cells["ROUTING"]
    ref = next(r for r in g.top.references if r.cell_name == "ROUTING")
    assert tuple(ref.origin) == (0, 0) and ref.rotation == 0 and not ref.x_reflection
    nets = {n["name"] for n in netlist["nets"]}
    labels = [(lb.text, lb.origin) for lb in g.top.labels if lb.texttype == die.layers.label_datatype and lb.text in nets]
    vias = [tuple(round(v) for v in p.bounding_box()[0]) for p in rc.polygons if p.layer == vl]
    half = die.rules.via_size // 2
    out = []
    for p in rc.polygons:
        if (p.layer, p.datatype) != (ml, md):
            continue
        (x0, y0), (x1, y1) = ((round(a), round(b)) for a, b in p.bounding_box())
        names = {t for t, (lx, ly) in labels if x0 <= lx <= x1 and y0 <= ly <= y1}
        assert len(names) == 1, (x0, y0, x1, y1, names)
        xs = sorted(vx + half for vx, vy in vias if x0 <= vx + half <= x1 and y0 <= vy + half <= y1)
        out.append(Wire(p, x0, y0, x1, y1, names.pop(), xs))
    return out


def touches(wires: list[Wire], box: tuple[int, int, int, int], but: Wire | None = None) -> bool:
    x0, y0, x1, y1 = box
    return any(w is not but and w.x0 < x1 and x0 < w.x1 and w.y0 < y1 and y0 < w.y1 for w in wires)


def select_via(out: Path, netlist: dict, tile: str, i: int, j: int, geo) -> tuple[Gds, dict, gdstk.Cell, gdstk.Reference, int]:
    """(the opened masks, the tile's netlist entry, its cell, the select via of its digit cell
    (row i, column j), and the via site it sits on)."""
    t = tile_of(netlist, tile)
    g = Gds(out)
    cell = g.cells[t["rom_region"]["cell"]]
    ref = sel_in_cell(cell, i, j, geo.die.cell.pitch)
    return g, t, cell, ref, site_of(ref, i, j, geo)



def move_select_via(out: Path, tile: str, i: int, j: int, geo) -> tuple[int, int]:
    """One wrong via: digit (i, j)'s select via of `tile` moved to the next site, the masks saved
    (rehashed). Its new centre on the die (nm)."""
    from taalas_compile.die.geometry import SITE_OF_DIGIT

    netlist = json.loads((out / "netlist.json").read_text())
    g, t, _, ref, old = select_via(out, netlist, tile, i, j, geo)
    p = geo.die.cell.pitch
    cx, cy = geo.site_center(next(s for s in SITE_OF_DIGIT if s != old))
    ref.origin = (j * p + cx, i * p + cy)
    g.save()
    ox, oy = t["rom_region"]["origin_nm"]
    return ox + j * p + cx, oy + i * p + cy
