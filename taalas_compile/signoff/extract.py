"""Extraction: the masks on disk + the die's fixed fabric -> ROM digits per site and nets.

Nothing here reads the compiler's in-memory data or the netlist: every via is classified by where
it is on the die (docs/die-model.md):

- inside a tile's ROM array: the cell it belongs to and which of the nine sites it sits on. The
  centre site is the cell's output via (the cell is used); the other eight give the digit.
- inside a channel: it must land on a fixed stub (a tile pin or a feedthrough end) at that x; the
  custom-metal shape it touches joins it to every other stub that shape lands on. Feedthroughs
  join their two channels. Connected stubs form the extracted nets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import klayout.db as kdb
import numpy as np

from taalas_compile.config.die import KIND_OF_LETTER, Die
from taalas_compile.die.geometry import DIGIT_OF_SITE, OUTPUT_SITE, PINS, Geometry
from taalas_compile.die.rom_format import NO_CELL
from taalas_compile.errors import UserError
from taalas_compile.signoff.findings import Findings, Violation

PAD_ONLY = 254  # a used cell (output via present) whose select via is missing


@dataclass
class Layout:
    """The masks as read from disk: hierarchical regions of the two layers."""

    path: Path
    layout: kdb.Layout
    metal: kdb.Region  # hierarchical (deep) regions, for the DRC engine
    vias: kdb.Region
    dss: kdb.DeepShapeStore = field(repr=False)
    flat_vias: kdb.Region = field(repr=False, default=None)  # flat copy, for per-via classification
    flat_metal: kdb.Region = field(repr=False, default=None)


@dataclass(frozen=True)
class Piece:
    """One connected custom-metal shape in a channel and the stubs its vias land on."""

    box: tuple[int, int, int, int]  # bounding box (x0, y0, x1, y1), nm
    vias: tuple[tuple[str, int, int], ...]  # (stub name, x, y)
    off_track: tuple[int, int] | None  # centre of metal outside every track band (a bridge), if any


@dataclass
class Extracted:
    roms: dict[tuple[int, int], np.ndarray]  # site -> digits (NO_CELL where no cell)
    nets: list[frozenset[str]]  # connected pins, each "c,r.pin"
    pieces: dict[frozenset[str], list[Piece]]  # net -> its metal pieces


def read_layout(path: Path, die: Die, f: Findings) -> Layout:
    if not path.is_file():
        raise UserError(f"{path}: masks not found")
    ly = kdb.Layout()
    try:
        ly.read(str(path))
    except RuntimeError as e:
        raise UserError(f"{path}: cannot read the masks: {str(e).splitlines()[0]}") from None
    tops = ly.top_cells()
    if len(tops) != 1:
        f.add(Violation("layout.top", f"expected one top cell, found {len(tops)}", 0, 0))
    top = tops[0]
    allowed = {(die.layers.via.layer, die.layers.via.datatype), (die.layers.metal.layer, die.layers.metal.datatype),
               (die.layers.metal.layer, die.layers.label_datatype)}
    for li in ly.layer_indexes():
        info = ly.get_info(li)
        if (info.layer, info.datatype) not in allowed:
            shapes = kdb.Region(top.begin_shapes_rec(li))
            if not shapes.is_empty():
                c = shapes.bbox().center()
                f.add(Violation("layout.layer", f"shapes on layer {info.layer}/{info.datatype}, not one of the two custom layers", c.x, c.y))
    return layout_of(path, ly, top, die)


def layout_of(path: Path, ly: kdb.Layout, top: kdb.Cell, die: Die) -> Layout:
    """The sign-off view of a KLayout layout: deep regions of the two layers for DRC, flat ones
    for classifying vias and extracting nets."""
    dss = kdb.DeepShapeStore()
    li_v = ly.find_layer(die.layers.via.layer, die.layers.via.datatype)
    li_m = ly.find_layer(die.layers.metal.layer, die.layers.metal.datatype)

    def region(li, deep):
        if li is None:
            return kdb.Region()
        return kdb.Region(top.begin_shapes_rec(li), dss) if deep else kdb.Region(top.begin_shapes_rec(li))

    return Layout(path, ly, region(li_m, True), region(li_v, True), dss, region(li_v, False), region(li_m, False))


def fabric_stubs(die: Die) -> dict[tuple[int, int], str]:
    """(channel, x) -> stub name for every fixed stub of the die: "c,r.pin" or "ft c,r,k"."""
    geo = Geometry(die)
    out: dict[tuple[int, int], str] = {}
    for r, row in enumerate(die.grid.rows):
        for c, letter in enumerate(row):
            kind = KIND_OF_LETTER[letter]
            for pin in PINS[kind]:
                out[(r, geo.pin_x(kind, pin, c))] = f"{c},{r}.{pin}"
            if r + 1 < die.grid.n_rows:
                for k in range(die.routing.feedthroughs):
                    x = geo.feedthrough_x(c, r, k)
                    out[(r, x)] = out[(r + 1, x)] = f"ft {c},{r},{k}"
    return out


def _centres(region: kdb.Region) -> np.ndarray:
    n = region.count()
    pts = np.empty((n, 2), np.int64)
    for i, p in enumerate(region.each()):
        c = p.bbox().center()
        pts[i] = (c.x, c.y)
    return pts


def extract(lay: Layout, die: Die, f: Findings, site_names: dict | None = None) -> Extracted:
    """`site_names` only labels violations (tile names instead of sites); it changes nothing extracted."""
    geo = Geometry(die)
    pts = _centres(lay.flat_vias)
    col, rx = np.divmod(pts[:, 0], geo.pitch_x)
    row, ry = np.divmod(pts[:, 1], geo.pitch_y)
    in_channel = ry < geo.channel_h
    in_tile = ~in_channel & (rx < geo.tile_w)
    stray = ~in_channel & ~in_tile
    for x, y in pts[stray][:50]:
        f.add(Violation("lvs.via_misplaced", "via in a column gap, off every stub", int(x), int(y)))
    roms = _extract_roms(pts[in_tile], col[in_tile], row[in_tile], geo, f, site_names or {})
    nets, pieces = _extract_nets(lay, pts[in_channel], row[in_channel], die, f)
    return Extracted(roms, nets, pieces)


def _extract_roms(pts, col, row, geo: Geometry, f: Findings, site_names: dict) -> dict[tuple[int, int], np.ndarray]:
    die = geo.die
    p = die.cell.pitch
    site_of_offset = {geo.site_center(s): s for s in range(9)}
    roms: dict[tuple[int, int], np.ndarray] = {}
    if len(pts) == 0:
        return roms
    order = np.lexsort((col, row))
    pts, col, row = pts[order], col[order], row[order]
    keys = np.stack([col, row], 1)
    starts = np.flatnonzero(np.r_[True, (np.diff(keys, axis=0) != 0).any(axis=1)])
    for a, b in zip(starts, np.r_[starts[1:], len(pts)]):
        site = (int(col[a]), int(row[a]))
        where = site_names.get(site, f"site {site}")
        ox, oy = geo.rom_origin(site)
        x, y = pts[a:b, 0] - ox, pts[a:b, 1] - oy
        j, i = np.floor_divide(x, p), np.floor_divide(y, p)
        s = np.array([site_of_offset.get((int(u), int(v)), -1) for u, v in zip(x - j * p, y - i * p)], np.int64)
        ok = (s >= 0) & (i >= 0) & (j >= 0)
        for k in np.flatnonzero(~ok)[:20]:
            f.add(Violation("lvs.via_misplaced", "via off every digit-cell site", int(pts[a + k, 0]), int(pts[a + k, 1]), where))
        i, j, s = i[ok], j[ok], s[ok]
        img = np.full((int(i.max(initial=-1)) + 1, int(j.max(initial=-1)) + 1), NO_CELL, np.uint8)
        out = s == OUTPUT_SITE
        img[i[out], j[out]] = PAD_ONLY
        sel_i, sel_j, sel_s = i[~out], j[~out], s[~out]
        digits = np.array([DIGIT_OF_SITE[int(v)] for v in sel_s], np.uint8)
        cell_ids = sel_i * img.shape[1] + sel_j
        uniq, counts = np.unique(cell_ids, return_counts=True)
        for cid in uniq[counts > 1][:20]:
            ci, cj = divmod(int(cid), img.shape[1])
            f.add(Violation("lvs.via_extra", "two select vias in one digit cell", ox + cj * p + p // 2, oy + ci * p + p // 2, f"{where} cell ({ci}, {cj})"))
        has_pad = img[sel_i, sel_j] != NO_CELL
        for k in np.flatnonzero(~has_pad)[:20]:
            f.add(Violation("lvs.via_extra", "select via in a cell without an output via", ox + int(sel_j[k]) * p + p // 2,
                            oy + int(sel_i[k]) * p + p // 2, f"{where} cell ({int(sel_i[k])}, {int(sel_j[k])})"))
        img[sel_i[has_pad], sel_j[has_pad]] = digits[has_pad]
        roms[site] = img
    return roms


def _extract_nets(lay: Layout, pts, chan, die: Die, f: Findings):
    stubs = fabric_stubs(die)
    names = []
    for (x, y), ch in zip(pts.tolist(), chan.tolist()):
        name = stubs.get((ch, x))
        if name is None:
            f.add(Violation("lvs.via_misplaced", "channel via off every pin and feedthrough stub", x, y, f"channel {ch}"))
        names.append(name)
    parent: dict[str, str] = {}

    def find(a: str) -> str:
        while parent.setdefault(a, a) != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    geo = Geometry(die)
    channels, bands = kdb.Region(), kdb.Region()
    for r in range(die.grid.n_rows):
        channels.insert(kdb.Box(0, geo.channel_y0(r), geo.size[0], geo.channel_y0(r) + geo.channel_h))
        for t in range(die.routing.channel_tracks):
            y = geo.track_y(r, t)
            bands.insert(kdb.Box(0, y - geo.wire_half, geo.size[0], y + geo.wire_half))
    wires = (lay.flat_metal & channels).merged()
    via_pts = [kdb.Point(int(x), int(y)) for x, y in pts.tolist()]
    pieces_of: dict[str, list[Piece]] = {}
    covered = np.zeros(len(via_pts), bool)
    xs = pts[:, 0] if len(pts) else np.zeros(0, np.int64)
    ys = pts[:, 1] if len(pts) else np.zeros(0, np.int64)
    for poly in wires.each():
        bb = poly.bbox()
        cand = np.flatnonzero((xs >= bb.left) & (xs <= bb.right) & (ys >= bb.bottom) & (ys <= bb.top))
        inside = [k for k in cand if poly.inside(via_pts[k])]
        covered[inside] = True
        on = [k for k in inside if names[k] is not None]
        off = kdb.Region(poly) - bands
        piece = Piece((bb.left, bb.bottom, bb.right, bb.top), tuple((names[k], int(xs[k]), int(ys[k])) for k in on),
                      None if off.is_empty() else (off.bbox().center().x, off.bbox().center().y))
        if len(on) < 2:
            c = bb.center()
            f.add(Violation("lvs.dangling", f"wire piece lands on {len(on)} stub(s)", c.x, c.y, names[on[0]] if on else ""))
        for k in on:
            find(names[k])
        for k in on[1:]:
            parent[find(names[k])] = find(names[on[0]])
        if on:
            pieces_of.setdefault(names[on[0]], []).append(piece)
    for k in np.flatnonzero(~covered):
        if names[k] is not None:
            find(names[k])  # a via with no wire on it still names its stub (an isolated pin)
    groups: dict[str, set[str]] = {}
    for a in list(parent):
        groups.setdefault(find(a), set()).add(a)
    nets, pieces = [], {}
    for members in groups.values():
        pins = frozenset(m for m in members if not m.startswith("ft "))
        if pins:
            nets.append(pins)
            pieces[pins] = [pc for m in sorted(members) for pc in pieces_of.get(m, [])]
    return nets, pieces
