"""ROM tiles checked cell by cell from an OASIS mask file, streaming: for chips whose billions of
vias no layout database can hold at once (the 8B chip), and equally for small ones.

A tile cell `T_<tile>` may hold only `ROMCELL` placements (a digit cell's pad and output via) on the
cell-pitch grid and `SEL` placements (one select via) at one of the eight digit sites of a padded
cell. Those two cells are the die's own (checked against it here), and the die's digit cell passes
DRC by construction (`die/geometry.py check_rules`), so a tile cell that keeps to this grammar is
DRC-clean; anything else is reported where it is. The digits read back from the placements are
compared with the netlist's ROM image of the tile, and each tile cell must be placed, in its
block cell, at the ROM origin of the site its tile was given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from taalas_compile.config.die import Die
from taalas_compile.die.cell_names import ROMCELL, SEL, cell_name
from taalas_compile.die.geometry import OUTPUT_SITE, Geometry
from taalas_compile.die.rom_format import NO_CELL
from taalas_compile.mapper.ir import Placement
from taalas_compile.signoff.findings import Findings, Violation
from taalas_compile.signoff.oasis_cells import Grid, OasisCell

MAX_REPORTED = 20  # violations reported per tile and kind (the count is in the message)


@dataclass
class RomCheck:
    tiles: int = 0  # tile cells checked
    vias: int = 0  # select vias read
    cells: int = 0  # digit cells (pads) read
    placed: dict[str, tuple[int, int]] = field(default_factory=dict)  # tile cell -> where its block places it
    other: list[OasisCell] = field(default_factory=list)  # ROUTING and the top cell, for the net check
    seen: set[str] = field(default_factory=set)  # tile cells read


def tile_image(cell: OasisCell, shape: tuple[int, int], geo: Geometry, f: Findings, where: str, origin: tuple[int, int]) -> np.ndarray:
    """The digits a tile cell's placements draw, [rows, cols] like its ROM image (NO_CELL unused);
    every deviation from the tile grammar is a violation located on the die (`origin` + offset)."""
    img = None if cell.expanded else clean_tile_image(cell, shape, geo)
    if img is not None:
        return img
    p = geo.die.cell.pitch
    ox, oy = origin
    rows, cols = shape
    for key in cell.rects:
        f.add(Violation("drc.rom_shape", f"{len(cell.rects[key])} loose shape(s) on layer {key[0]}/{key[1]} in a ROM tile", ox, oy, where))
    for name in set(cell.placements) - {ROMCELL, SEL}:
        f.add(Violation("drc.rom_shape", f"placement of {name} in a ROM tile", ox, oy, where))
    img = np.full(shape, NO_CELL, np.uint8)
    pads = cell.placements.get(ROMCELL, np.zeros((0, 2), np.int64))
    j, rx = np.divmod(pads[:, 0], p)
    i, ry = np.divmod(pads[:, 1], p)
    ok = (rx == 0) & (ry == 0) & (i >= 0) & (i < rows) & (j >= 0) & (j < cols)
    for k in np.flatnonzero(~ok)[:MAX_REPORTED]:
        f.add(Violation("drc.rom_grid", "digit cell off the cell grid or outside the ROM array", ox + int(pads[k, 0]), oy + int(pads[k, 1]), where))
    pad = np.zeros(shape, np.int32)
    np.add.at(pad, (i[ok], j[ok]), 1)
    for ci, cj in np.argwhere(pad > 1)[:MAX_REPORTED]:
        f.add(Violation("drc.rom_grid", "two digit cells on one cell", ox + int(cj) * p, oy + int(ci) * p, where))
    sel = cell.placements.get(SEL, np.zeros((0, 2), np.int64))
    j, rx = np.divmod(sel[:, 0], p)
    i, ry = np.divmod(sel[:, 1], p)
    off = geo.digit_offsets()
    code = np.full(len(sel), -1, np.int64)  # digit of each via's site, -1 off every digit site
    for d, (dx, dy) in enumerate(off):
        code[(rx == dx) & (ry == dy)] = d
    inside = (i >= 0) & (i < rows) & (j >= 0) & (j < cols)
    bad = (code < 0) | ~inside
    for k in np.flatnonzero(bad)[:MAX_REPORTED]:
        c = geo.site_center(OUTPUT_SITE)
        what = "select via on the output site" if (rx[k], ry[k]) == c else "select via off every digit site"
        f.add(Violation("lvs.via_misplaced", what, ox + int(sel[k, 0]), oy + int(sel[k, 1]), where))
    i, j, code = i[~bad], j[~bad], code[~bad]
    count = np.zeros(shape, np.int32)
    np.add.at(count, (i, j), 1)
    for ci, cj in np.argwhere(count > 1)[:MAX_REPORTED]:
        f.add(Violation("lvs.via_extra", "two select vias in one digit cell", ox + int(cj) * p + p // 2, oy + int(ci) * p + p // 2, f"{where} cell ({ci}, {cj})"))
    unpadded = pad[i, j] == 0
    for k in np.flatnonzero(unpadded)[:MAX_REPORTED]:
        f.add(Violation("lvs.via_extra", "select via in a cell without an output via", ox + int(j[k]) * p + p // 2, oy + int(i[k]) * p + p // 2,
                        f"{where} cell ({int(i[k])}, {int(j[k])})"))
    img[i[~unpadded], j[~unpadded]] = code[~unpadded]
    return img


def clean_tile_image(cell: OasisCell, shape: tuple[int, int], geo: Geometry) -> np.ndarray | None:
    """`tile_image` of a cell that keeps to the tile grammar everywhere, built from its records
    unexpanded (cost per select via: a few int32 passes); None as soon as anything deviates (then
    `tile_image` expands the cell and says where). ROMCELL arrays become slices of the pad-count
    image; a SEL record's row, digit site and first column are decoded once, its vias' cells are
    one cumulative sum of the spacings over all records, as flat indices."""
    p, (rows, cols) = geo.die.cell.pitch, shape
    if set(cell.elements) - {("p", ROMCELL), ("p", SEL)}:
        return None
    pads, sel = cell.elements.get(("p", ROMCELL)), cell.elements.get(("p", SEL))
    pad = np.zeros(shape, np.uint8 if pads is None or len(pads.listed) < 255 else np.int32)
    if pads is not None:
        if pads.origins:
            return None
        for g in pads.listed:
            g = Grid(g, 1, 1, 0, 0) if type(g) is tuple else g
            if not isinstance(g, Grid) or (g.nx > 1 and g.dx != p) or (g.ny > 1 and g.dy != p):
                return None
            (j, rx), (i, ry) = divmod(g.origin[0], p), divmod(g.origin[1], p)
            if rx or ry or i < 0 or j < 0 or i + g.ny > rows or j + g.nx > cols:
                return None
            pad[i : i + g.ny, j : j + g.nx] += 1
        if pad.size and pad.max() > 1:
            return None
    img = np.full(rows * cols, NO_CELL, np.uint8)
    if sel is None or sel.count == 0:
        return img.reshape(shape)
    if any(type(e) is not tuple for e in sel.listed) or set(sel.axes) - {0} or set(sel.grids) - {p}:
        return None
    xy = np.array(sel.listed + sel.origins, np.int64).reshape(-1, 2)  # record origins: single vias, then rows
    n = np.ones(len(xy), np.int64)  # vias per record
    n[len(sel.listed) :] = [len(s) for s in sel.steps]
    j, rx = np.divmod(xy[:, 0], p)
    i, ry = np.divmod(xy[:, 1], p)
    code = np.full(len(xy), -1, np.int64)
    for d, (dx, dy) in enumerate(geo.digit_offsets()):
        code[(rx == dx) & (ry == dy)] = d
    order = np.argsort(code, kind="stable")  # records by digit: one slice of vias per digit below
    runs = [np.zeros(1, np.uint8)] * len(sel.listed) + sel.steps
    n, i, j, code = n[order], i[order], j[order], code[order]
    first = np.cumsum(n) - n  # each record's first via
    steps = np.concatenate([runs[k] for k in order.tolist()])  # [vias]: at `first` a value to ignore
    span = np.add.reduceat(steps, first, dtype=np.int64) - steps[first]  # columns from a record's first via to its last
    if (code < 0).any() or (i < 0).any() or (i >= rows).any() or (j < 0).any() or (j + span >= cols).any():
        return None
    start = i * cols + j  # flat index of each record's first via
    steps = steps.astype(np.int32 if rows * cols < 2**31 else np.int64)
    steps[first] = start - np.r_[0, (start + span)[:-1]]
    flat = np.cumsum(steps, out=steps)
    cuts = np.r_[first, len(flat)][np.searchsorted(code, np.arange(9))]
    for d in range(8):
        img[flat[cuts[d] : cuts[d + 1]]] = d
    if np.count_nonzero(img != NO_CELL) != len(flat) or not pad.reshape(-1)[flat].all():
        return None  # two vias on one cell, or a via on a cell without its pad
    return img.reshape(shape)


def compare_tile(name: str, got: np.ndarray, want: np.ndarray, geo: Geometry, f: Findings, origin: tuple[int, int]) -> None:
    """Extracted digits against the netlist's ROM image of one tile, cell by cell."""
    p = geo.die.cell.pitch
    diff = np.argwhere(got != want)
    for ci, cj in diff[:MAX_REPORTED]:
        g, w = int(got[ci, cj]), int(want[ci, cj])
        what = (f"digit {g} where the netlist has {w}" if g != NO_CELL and w != NO_CELL
                else "missing digit cell or select via" if g == NO_CELL else "digit cell the netlist does not have")
        f.add(Violation("lvs.rom", f"{what} ({len(diff)} cell(s) differ in this tile)", origin[0] + int(cj) * p + p // 2,
                        origin[1] + int(ci) * p + p // 2, f"{name} cell ({ci}, {cj})"))


class RomChecker:
    """The checks of `check_rom_cells`, one cell at a time, for any run of a file's cells (the
    whole file here, one layer block's cells in a worker of `rom_blocks.py`)."""

    def __init__(self, pl: Placement, images_of: Callable[[str], dict[str, np.ndarray]], die: Die, f: Findings,
                 on_tile: Callable[[str, np.ndarray], None] = lambda name, img: None):
        self.geo, self.images_of, self.f, self.on_tile = Geometry(die), images_of, f, on_tile
        self.tiles = {cell_name("T", t.name): t for t in pl.tiles}
        self.blocks = {cell_name("B", t.block): t.block for t in pl.tiles}
        self.res, self.block, self.want = RomCheck(), None, {}

    def check(self, cell: OasisCell) -> None:
        geo, f, res = self.geo, self.f, self.res
        if cell.name in self.tiles:
            t = self.tiles[cell.name]
            if t.block != self.block:
                self.block, self.want = t.block, self.images_of(t.block)
            origin = geo.rom_origin(t.site)
            want = self.want[t.name]
            got = tile_image(cell, want.shape, geo, f, t.name, origin)
            compare_tile(t.name, got, want, geo, f, origin)
            self.on_tile(t.name, got)
            res.tiles += 1
            res.vias += cell.count("p", SEL)
            res.cells += cell.count("p", ROMCELL)
            res.seen.add(cell.name)
        elif cell.name in self.blocks:
            for name, pos in cell.placements.items():
                t = self.tiles.get(name)
                if t is None or t.block != self.blocks[cell.name] or len(pos) != 1 or tuple(map(int, pos[0])) != geo.rom_origin(t.site):
                    where = pos[0] if len(pos) else (0, 0)
                    f.add(Violation("lvs.tile_place", f"{cell.name} places {name} {len(pos)} time(s), not once at its site's ROM origin",
                                    int(where[0]), int(where[1]), name))
        elif cell.name in (ROMCELL, SEL):
            _check_die_cell(cell, geo, f)
        else:
            res.other.append(cell)

    def missing(self, seen: set[str]) -> None:
        """Every tile cell not in `seen` (the tile cells of the whole file) is missing."""
        for name in sorted(set(self.tiles) - seen):
            t = self.tiles[name]
            self.f.add(Violation("lvs.rom", "tile cell missing from the masks", *self.geo.rom_origin(t.site), t.name))


def check_rom_cells(cells: Iterable[OasisCell], pl: Placement, images_of: Callable[[str], dict[str, np.ndarray]], die: Die, f: Findings,
                    on_tile: Callable[[str, np.ndarray], None] = lambda name, img: None) -> RomCheck:
    """Every tile cell (e.g. `read_cells(path)` of an OASIS file) against the netlist, one cell at a time. `images_of(block)`
    gives the netlist's images of a block's tiles (loaded as the file reaches the block);
    `on_tile(name, digits)` receives each extracted image (e.g. for the emulator)."""
    chk = RomChecker(pl, images_of, die, f, on_tile)
    for cell in cells:
        chk.check(cell)
    chk.missing(chk.res.seen)
    return chk.res


def _check_die_cell(cell: OasisCell, geo: Geometry, f: Findings) -> None:
    """ROMCELL and SEL must be exactly the die's digit-cell pad + output via and one select via."""
    die, h = geo.die, geo.die.rules.via_size // 2
    via, metal = (die.layers.via.layer, die.layers.via.datatype), (die.layers.metal.layer, die.layers.metal.datatype)
    if cell.name == ROMCELL:
        cx, cy = geo.site_center(OUTPUT_SITE)
        want = {metal: [list(geo.pad)], via: [[cx - h, cy - h, cx + h, cy + h]]}
    else:
        want = {via: [[-h, -h, h, h]]}
    got = {k: v.tolist() for k, v in cell.rects.items()}
    if got != want or cell.placements:
        f.add(Violation("drc.rom_shape", f"{cell.name} is not the die's {'digit cell' if cell.name == 'ROMCELL' else 'select via'}", 0, 0, cell.name))


def layout_of_cells(cells: list[OasisCell], top: str, path: Path, die: Die):
    """The cells that are not ROM tiles (ROUTING and the top cell) as a KLayout layout, flattened
    into one cell, for the DRC and net extraction of `signoff/extract.py`."""
    import klayout.db as kdb

    from taalas_compile.signoff.extract import layout_of

    ly = kdb.Layout()
    ly.dbu = 0.001
    flat = ly.create_cell(top)
    by_name = {c.name: c for c in cells}
    layers: dict[tuple[int, int], int] = {}
    for c in cells:
        origins = by_name[top].placements.get(c.name, np.zeros((1, 2), np.int64)) if c.name != top else np.zeros((1, 2), np.int64)
        for key, rects in c.rects.items():
            li = layers.setdefault(key, ly.layer(*key))
            for ox, oy in origins.tolist():
                for x0, y0, x1, y1 in rects.tolist():
                    flat.shapes(li).insert(kdb.Box(x0 + ox, y0 + oy, x1 + ox, y1 + oy))
    return layout_of(path, ly, flat, die)
