"""What a view shows: a region of the die as boxes (integer nm), from a tile, a layer block, a
window or a sign-off marker. A via belongs to a region when its centre lies in one of the boxes
(x0 <= x < x1, y0 <= y < y1); metal is clipped to the boxes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from taalas_compile.config.die import Die
from taalas_compile.die.geometry import Geometry
from taalas_compile.errors import UserError
from taalas_compile.mapper.ir import Placement
from taalas_compile.mapper.legality import block_order

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 nm
MARKER_CONTEXT_NM = 2000  # a marker's view reaches this far around it (about ten digit cells)


@dataclass(frozen=True)
class Marker:
    box: Box  # the marker database's box, nm
    message: str


@dataclass(frozen=True)
class Region:
    label: str  # names the view file: tile-NAME, block-L0, window-..., marker-N
    boxes: tuple[Box, ...]
    marker: Marker | None = None

    @property
    def bbox(self) -> Box:
        b = np.array(self.boxes)
        return (int(b[:, 0].min()), int(b[:, 1].min()), int(b[:, 2].max()), int(b[:, 3].max()))


def contains(boxes: tuple[Box, ...], x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Which points (x, y int [n]) lie in any box."""
    inside = np.zeros(len(x), bool)
    for x0, y0, x1, y1 in boxes:
        inside |= (x >= x0) & (x < x1) & (y >= y0) & (y < y1)
    return inside


def covers(boxes: tuple[Box, ...], box: Box) -> bool:
    """Whether one of `boxes` holds all of `box`."""
    return any(b[0] <= box[0] and b[1] <= box[1] and box[2] <= b[2] and box[3] <= b[3] for b in boxes)


def touches(boxes: tuple[Box, ...], box: Box) -> bool:
    return any(b[0] < box[2] and box[0] < b[2] and b[1] < box[3] and box[1] < b[3] for b in boxes)


def clip(boxes: tuple[Box, ...], rects: np.ndarray) -> np.ndarray:
    """`rects` (int [n, 4]) intersected with each box, the empty pieces dropped."""
    out = []
    for x0, y0, x1, y1 in boxes:
        r = rects.copy()
        r[:, 0], r[:, 1] = np.maximum(r[:, 0], x0), np.maximum(r[:, 1], y0)
        r[:, 2], r[:, 3] = np.minimum(r[:, 2], x1), np.minimum(r[:, 3], y1)
        out.append(r[(r[:, 0] < r[:, 2]) & (r[:, 1] < r[:, 3])])
    return np.concatenate(out) if out else rects[:0]


def tile_region(pl: Placement, die: Die, name: str) -> Region:
    tile = next((t for t in pl.tiles if t.name == name), None)
    if tile is None:
        close = ", ".join([t.name for t in pl.tiles if name.lower() in t.name.lower()][:5])
        hint = f" (did you mean {close}?)" if close else ""
        raise UserError(f"--tile {name}: no such tile{hint}; tile names are in netlist.json")
    return Region(f"tile-{name}", (Geometry(die).tile_box(tile.site),))


def block_region(pl: Placement, die: Die, block: str) -> Region:
    """A layer block: the outlines of its tiles."""
    geo = Geometry(die)
    boxes = tuple(geo.tile_box(t.site) for t in pl.tiles if t.block == block)
    if not boxes:
        blocks = block_order(pl)
        raise UserError(f"--block {block}: no such layer block; this chip has {', '.join(blocks[:6])}{' ...' if len(blocks) > 6 else ''}")
    return Region(f"block-{block}", boxes)


def window_region(window: str, die: Die) -> Region:
    """X0,Y0,X1,Y1 in µm (die coordinates, origin lower left)."""
    try:
        x0, y0, x1, y1 = (round(float(v) * 1000) for v in window.split(","))
    except ValueError:
        raise UserError(f"--window {window!r}: expected X0,Y0,X1,Y1 in µm, e.g. --window 0,0,50,40") from None
    w, h = Geometry(die).size
    if not (x0 < x1 and y0 < y1) or x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
        raise UserError(f"--window {window}: not a box on the die (0,0 to {w / 1000:g},{h / 1000:g} µm)")
    return Region(f"window-{'_'.join(re.sub(r'[^0-9.-]', '', v) for v in window.split(','))}", ((x0, y0, x1, y1),))


def marker_region(lyrdb: Path, n: int) -> Region:
    """The `n`th (from 1) violation of a sign-off marker database, with MARKER_CONTEXT_NM around it."""
    from klayout import rdb

    if not lyrdb.is_file():
        raise UserError(f"--marker {n}: no {lyrdb}; run `taalas-compile verify {lyrdb.parent.parent}` first")
    db = rdb.ReportDatabase("")
    db.load(str(lyrdb))
    items = list(db.each_item())
    if not 1 <= n <= len(items):
        raise UserError(f"--marker {n}: {lyrdb} lists {len(items)} violation(s)" + (f"; choose 1..{len(items)}" if items else ""))
    item = items[n - 1]
    boxes = [v.box() for v in item.each_value() if v.is_box()]
    texts = [v.string() for v in item.each_value() if v.is_string()]
    if not boxes:
        raise UserError(f"--marker {n}: the violation has no place on the die")
    b = boxes[0]
    box = (round(b.left * 1000), round(b.bottom * 1000), round(b.right * 1000), round(b.top * 1000))
    m = MARKER_CONTEXT_NM
    return Region(f"marker-{n}", ((box[0] - m, box[1] - m, box[2] + m, box[3] + m),), Marker(box, texts[0] if texts else ""))
