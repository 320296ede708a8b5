"""Layout versus schematic: extracted ROM digits and nets against the netlist, cell by cell and
net by net. Every difference is a violation with its place on the die."""

from __future__ import annotations

import numpy as np

from taalas_compile.backend.netlist import rom_sha256
from taalas_compile.config.die import Die
from taalas_compile.die.geometry import Geometry
from taalas_compile.die.rom_format import FP16_DIGITS, NO_CELL, group_layout
from taalas_compile.mapper.ir import Placement, Role, Tile
from taalas_compile.signoff.extract import PAD_ONLY, Extracted
from taalas_compile.signoff.findings import Findings, Violation

MAX_CELLS_PER_TILE = 20


def site_pin(pl: Placement, pin) -> str:
    c, r = pl.tile(pin.tile).site
    return f"{c},{r}.{pin.pin}"


def describe_cell(t: Tile, i: int, j: int) -> str:
    """What a ROM cell holds, in model terms."""
    if i == 0:
        return f"header word {j // 11}"
    if t.role in (Role.MATVEC, Role.LOOKUP) and t.slice is not None:
        code_pos, scale_pos, _ = group_layout(t.words[4], t.group, t.bits)
        r = t.slice.r0 + i - 1
        hit = np.flatnonzero((code_pos == j).any(axis=1))
        if hit.size:
            return f"weight {t.slice.param}[{r}, {t.slice.c0 + int(hit[0])}]"
        g = np.flatnonzero((scale_pos == j).any(axis=1))
        if g.size:
            return f"scale of {t.slice.param}[{r}, group {t.slice.c0 // t.group + int(g[0])}]"
    return f"constant row {i - 1} cell {j}"


def compare_roms(pl: Placement, roms: dict[str, np.ndarray], ex: Extracted, die: Die, f: Findings) -> None:
    geo = Geometry(die)
    p = die.cell.pitch
    sites = {t.site for t in pl.tiles}
    for t in pl.tiles:
        want = roms[t.name]
        got = ex.roms.get(t.site, np.zeros((0, 0), np.uint8))
        h, w = max(want.shape[0], got.shape[0]), max(want.shape[1], got.shape[1])
        a = np.full((h, w), NO_CELL, np.uint8)
        b = a.copy()
        a[: want.shape[0], : want.shape[1]] = want
        b[: got.shape[0], : got.shape[1]] = got
        ox, oy = geo.rom_origin(t.site)
        for i, j in np.argwhere(a != b)[:MAX_CELLS_PER_TILE]:
            e, x = int(a[i, j]), int(b[i, j])
            if e == NO_CELL:
                cat, msg = "lvs.cell_extra", "digit cell drawn where the netlist has none"
            elif x == NO_CELL:
                cat, msg = "lvs.cell_missing", f"digit cell missing (expected digit {e})"
            elif x == PAD_ONLY:
                cat, msg = "lvs.via_missing", f"select via missing (expected digit {e})"
            else:
                cat, msg = "lvs.via_moved", f"select via on digit {x}, expected {e}"
            f.add(Violation(cat, f"{msg}: {describe_cell(t, int(i), int(j))}", ox + int(j) * p + p // 2, oy + int(i) * p + p // 2,
                            f"{t.name} cell ({int(i)}, {int(j)})"))
        n = int((a != b).sum())
        if n > MAX_CELLS_PER_TILE:
            f.add(Violation("lvs.summary", f"{n} differing cells in total", ox, oy, t.name))
    for site, img in ex.roms.items():
        if site not in sites and (img != NO_CELL).any():
            ox, oy = geo.rom_origin(site)
            f.add(Violation("lvs.cell_extra", "digit cells on a site the netlist does not use", ox, oy, f"site {site}"))


def compare_nets(pl: Placement, ex: Extracted, f: Findings) -> None:
    owner: dict[str, str] = {}
    for n in pl.nets:
        for pin in n.pins:
            owner[site_pin(pl, pin)] = n.name
    found: dict[str, list[frozenset[str]]] = {}
    for comp in ex.nets:
        names = sorted({owner.get(p, "?") for p in comp})
        where = ex.pieces.get(comp) or [(0, 0)]
        if len(names) > 1:
            x, y = where[0]
            f.add(Violation("lvs.short", f"nets {' and '.join(names)} are connected", x, y, ", ".join(names)))
        for name in names:
            found.setdefault(name, []).append(comp)
    for n in pl.nets:
        want = {site_pin(pl, p) for p in n.pins}
        comps = [c for c in found.get(n.name, []) if c & want]
        if len(comps) > 1:
            pts = [pt for c in comps for pt in ex.pieces.get(c, [])]
            x, y = pts[0] if pts else (0, 0)
            parts = " | ".join(",".join(sorted(c & want)) for c in comps)
            f.add(Violation("lvs.open", f"net split into {len(comps)} parts: {parts}", x, y, n.name))
        got = set().union(*comps) if comps else set()
        missing = want - got
        if missing and len(comps) <= 1:
            f.add(Violation("lvs.open", f"pins not connected: {', '.join(sorted(missing))}", 0, 0, n.name))


def check_netlist_roms(pl: Placement, roms: dict[str, np.ndarray], doc: dict, f: Findings) -> None:
    """The ROM images the netlist points to must be the ones it was written with."""
    for t in doc["tiles"]:
        if t["name"] not in roms or rom_sha256(roms[t["name"]]) != t["rom_region"]["sha256"]:
            f.add(Violation("netlist.rom", "ROM image does not match the netlist's sha256", *t["rom_region"]["origin_nm"], t["name"]))
