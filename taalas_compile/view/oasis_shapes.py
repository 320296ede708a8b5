"""OASIS records the mask writer (`backend/oasis_stream.py`) has no use for: polygons (drawn names),
and rectangles by the million (a view's clipped vias and pads), vectorised."""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np

from taalas_compile.backend.oasis_stream import RECTANGLE, _gdelta, sint, uint, uints

POLYGON = 21
PL_P, PL_X, PL_Y, PL_D, PL_L = 0x20, 0x10, 0x08, 0x02, 0x01
R_ALL = 0x7B  # RECTANGLE info: W, H, X, Y, D, L (no repetition, not a square)


def polygon(layer: int, datatype: int, pts: tuple[tuple[int, int], ...], dx: int = 0, dy: int = 0) -> bytes:
    """POLYGON with an explicit point list of type 4 (general g-deltas): the first point (moved by
    (dx, dy)) is the record's (x, y), then one delta per further point (the closing edge is implied)."""
    return polygon_head(layer, datatype, pts) + sint(pts[0][0] + dx) + sint(pts[0][1] + dy)


@lru_cache(maxsize=4096)
def polygon_head(layer: int, datatype: int, pts: tuple[tuple[int, int], ...]) -> bytes:
    """A POLYGON record up to its (x, y), which depends only on the shape, not where it is (so a
    glyph's records are encoded once)."""
    deltas = b"".join(_gdelta(b[0] - a[0], b[1] - a[1]) for a, b in itertools.pairwise(pts))
    return uint(POLYGON) + bytes([PL_P | PL_X | PL_Y | PL_D | PL_L]) + uint(layer) + uint(datatype) + uint(4) + uint(len(pts) - 1) + deltas


def _sints(v: np.ndarray) -> np.ndarray:
    """signed-integers as the unsigned values they are written as: |v| << 1 | sign."""
    v = np.asarray(v, np.int64)
    return np.where(v < 0, (-v << 1) | 1, v << 1)


def rectangles(layer: int, datatype: int, boxes: np.ndarray) -> bytes:
    """One RECTANGLE per row of `boxes` (int [n, 4]: x0, y0, x1, y1 nm), every field explicit."""
    boxes = np.asarray(boxes, np.int64).reshape(-1, 4)
    if not len(boxes):
        return b""
    tok = np.empty((len(boxes), 8), np.int64)
    tok[:, 0], tok[:, 1], tok[:, 2], tok[:, 3] = RECTANGLE, R_ALL, layer, datatype
    tok[:, 4], tok[:, 5] = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    tok[:, 6], tok[:, 7] = _sints(boxes[:, 0]), _sints(boxes[:, 1])
    return uints(tok.reshape(-1))
