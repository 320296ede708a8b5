"""Layout IR of the few small mask cells: rectangles, references and labels (integer nm).

Both mask writers (`gds_stream`, `oasis_stream`) translate a `CellSpec` into their records with
`cell_bytes(spec)`. The ROM tile cells, which hold nearly all of the geometry, never pass through
this IR: `rom_tile_bytes(name, img, die)` writes them straight from the ROM image, vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rect:
    """An axis-aligned rectangle on (layer, datatype), corners in nm."""

    layer: int
    datatype: int
    x0: int
    y0: int
    x1: int
    y1: int


@dataclass(frozen=True)
class Ref:
    """References to cell `cell`: one at (x, y), a regular array of `cols` x `rows` spaced (dx, dy),
    or (with `offsets`) one at (x, y) plus one at (x + ox, y + oy) for every offset."""

    cell: str
    x: int = 0
    y: int = 0
    cols: int = 1
    rows: int = 1
    dx: int = 0
    dy: int = 0
    offsets: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        assert self.cols >= 1 and self.rows >= 1, self
        assert not self.offsets or self.cols == self.rows == 1, "explicit offsets or an array, not both"


@dataclass(frozen=True)
class Label:
    """A text label at (x, y) on (layer, texttype)."""

    text: str
    x: int
    y: int
    layer: int
    texttype: int


@dataclass(frozen=True)
class CellSpec:
    name: str
    rects: tuple[Rect, ...] = ()
    refs: tuple[Ref, ...] = ()
    labels: tuple[Label, ...] = ()


def square(cx: int, cy: int, side: int, layer: int, datatype: int) -> Rect:
    """A square of `side` nm centred (to the nm below) on (cx, cy)."""
    h = side // 2
    return Rect(layer, datatype, cx - h, cy - h, cx - h + side, cy - h + side)
