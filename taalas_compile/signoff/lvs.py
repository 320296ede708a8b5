"""Layout versus schematic: extracted ROM digits and nets against the netlist, cell by cell and
net by net. Every difference is a violation with its place on the die."""

from __future__ import annotations

import numpy as np

from taalas_compile.backend.blocks import rom_sha256
from taalas_compile.config.die import KIND_OF_LETTER, Die
from taalas_compile.die.geometry import Geometry
from taalas_compile.die.program import MAC_PROGRAMS
from taalas_compile.die.rom_format import NO_CELL, group_layout
from taalas_compile.mapper.ir import Placement, Tile
from taalas_compile.signoff.extract import PAD_ONLY, Extracted, Piece
from taalas_compile.signoff.findings import Findings, Violation

MAX_CELLS_PER_TILE = 20


def site_pin(pl: Placement, pin) -> str:
    c, r = pl.tile(pin.tile).site
    return f"{c},{r}.{pin.pin}"


def describe_cell(t: Tile, i: int, j: int) -> str:
    """What a ROM cell holds, in model terms."""
    if i == 0:
        return f"header word {j // 11}"
    if isinstance(t.program, MAC_PROGRAMS) and t.slice is not None:
        code_pos, scale_pos, _ = group_layout(t.program.n_cols, t.group, t.bits)
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


def _short_place(pieces: list[Piece], owner: dict[str, str]) -> tuple[int, int]:
    """Where two nets touch: metal off every track band (a bridge), else the nearest vias of two
    different nets on one piece."""
    for pc in pieces:
        if pc.off_track is not None:
            return pc.off_track
    for pc in pieces:
        owned = [(owner[n], x, y) for n, x, y in pc.vias if n in owner]
        pairs = [(abs(a[1] - b[1]) + abs(a[2] - b[2]), a, b) for a in owned for b in owned if a[0] < b[0]]
        if pairs:
            _, a, b = min(pairs)
            return ((a[1] + b[1]) // 2, (a[2] + b[2]) // 2)
    x0, y0, x1, y1 = pieces[0].box if pieces else (0, 0, 0, 0)
    return ((x0 + x1) // 2, (y0 + y1) // 2)


def _open_place(parts: list[list[Piece]]) -> tuple[int, int] | None:
    """Where a net is broken: the narrowest gap between pieces of different parts on one track."""
    best = None
    for i, a_part in enumerate(parts):
        for b_part in parts[i + 1 :]:
            for a in a_part:
                for b in b_part:
                    if min(a.box[3], b.box[3]) < max(a.box[1], b.box[1]):
                        continue  # not on the same track
                    left, right = (a, b) if a.box[0] <= b.box[0] else (b, a)
                    gap = right.box[0] - left.box[2]
                    if gap >= 0 and (best is None or gap < best[0]):
                        best = (gap, ((left.box[2] + right.box[0]) // 2, (a.box[1] + a.box[3]) // 2))
    return None if best is None else best[1]


def _pin_place(spin: str, die: Die, pieces: list[Piece]) -> tuple[int, int]:
    """A pin's stub: its x, at the y of the net's wire over it (else the channel's middle)."""
    geo = Geometry(die)
    site, _, pin = spin.partition(".")
    c, r = map(int, site.split(","))
    x = geo.pin_x(KIND_OF_LETTER[die.grid.rows[r][c]], pin, c)
    over = [pc for pc in pieces if pc.box[0] <= x <= pc.box[2] and geo.channel_y0(r) <= pc.box[1] < geo.channel_y0(r) + geo.channel_h]
    return (x, (over[0].box[1] + over[0].box[3]) // 2 if over else geo.channel_y0(r) + geo.channel_h // 2)


def compare_nets(pl: Placement, ex: Extracted, die: Die, f: Findings) -> None:
    owner: dict[str, str] = {}  # site pin -> net name
    label: dict[str, str] = {}  # site pin -> tile pin
    for n in pl.nets:
        for pin in n.pins:
            owner[site_pin(pl, pin)] = n.name
            label[site_pin(pl, pin)] = str(pin)
    found: dict[str, list[frozenset[str]]] = {}
    for comp in ex.nets:
        names = sorted({owner.get(p, "?") for p in comp})
        if len(names) > 1:
            x, y = _short_place(ex.pieces.get(comp, []), owner)
            f.add(Violation("lvs.short", f"nets {' and '.join(names)} are connected", x, y, ", ".join(names)))
        for name in names:
            found.setdefault(name, []).append(comp)
    for n in pl.nets:
        want = {site_pin(pl, p) for p in n.pins}
        comps = [c for c in found.get(n.name, []) if c & want]
        pieces = [pc for c in comps for pc in ex.pieces.get(c, [])]
        if len(comps) > 1:
            parts = " | ".join(" ".join(sorted(label[p] for p in c & want)) for c in comps)
            x, y = _open_place([ex.pieces.get(c, []) for c in comps]) or _pin_place(min(min(comps, key=len) & want), die, pieces)
            f.add(Violation("lvs.open", f"net split into {len(comps)} parts: {parts}", x, y, n.name))
        got = set().union(*comps) if comps else set()
        for spin in sorted(want - got):
            x, y = _pin_place(spin, die, pieces)
            f.add(Violation("lvs.open", f"pin {label[spin]} is not connected", x, y, n.name))


def check_netlist_roms(pl: Placement, roms: dict[str, np.ndarray], doc: dict, f: Findings) -> None:
    """The ROM images the netlist points to must be the ones it was written with."""
    for t in doc["tiles"]:
        if t["name"] not in roms or rom_sha256(roms[t["name"]]) != t["rom_region"]["sha256"]:
            f.add(Violation("netlist.rom", "ROM image does not match the netlist's sha256", *t["rom_region"]["origin_nm"], t["name"]))
