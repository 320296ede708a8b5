"""What the OASIS reader (`oasis_read.py`) gives for one cell: its rectangles and placements as the
records had them, repetitions unexpanded (`Elements`: single elements, regular arrays as `Grid`,
one-axis repetitions as columns of spacings), expanded with numpy on first use (`OasisCell`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np


@dataclass(frozen=True)
class Spaced:
    """An irregular repetition along one axis (types 4-7): offsets are grid * cumsum of spacings."""

    axis: int  # 0: x, 1: y
    grid: int
    spacings: np.ndarray  # [n - 1], any integer dtype

    def offsets(self) -> np.ndarray:
        d = np.zeros((len(self.spacings) + 1, 2), np.int64)
        np.cumsum(self.spacings, out=d[1:, self.axis])
        return d * self.grid


class Grid(NamedTuple):
    """A regular array (repetition types 1-3) kept unexpanded: nx * ny elements, x fastest."""

    origin: tuple  # (x, y) or (x0, y0, x1, y1)
    nx: int
    ny: int
    dx: int
    dy: int

    def points(self) -> np.ndarray:
        rep = np.empty((self.nx * self.ny, 2), np.int64)  # x fastest, as KLayout lists array members
        rep[:, 0] = np.tile(np.arange(self.nx, dtype=np.int64) * self.dx, self.ny)
        rep[:, 1] = np.repeat(np.arange(self.ny, dtype=np.int64) * self.dy, self.nx)
        pts = np.array([self.origin], np.int64)
        return pts + (np.hstack([rep, rep]) if pts.shape[1] == 4 else rep)


class Elements:
    """One cell's elements of one kind (the rectangles of a layer, or the placements of a cell) as
    the records gave them, unexpanded: `listed` holds, in record order, single elements (tuples),
    regular arrays (`Grid`) and other repetitions (int64 [k, 2|4]); records with one-axis
    repetitions are kept as columns (origin, axis, grid, steps) and come after them when expanded.
    A record's `steps` is an array [n] of its n elements: a value to ignore (often the byte of the
    file before the spacings: a view costs nothing), then the n - 1 spacings."""

    __slots__ = ("axes", "count", "grids", "listed", "origins", "steps")

    def __init__(self) -> None:
        self.listed: list = []
        self.origins: list[tuple] = []
        self.axes: list[int] = []
        self.grids: list[int] = []
        self.steps: list[np.ndarray] = []  # [n] each, any integer dtype; [0] ignored
        self.count = 0  # elements

    def expand(self) -> np.ndarray:
        """Every element [count, 2|4] int64: the listed records in order, then the spaced ones."""
        parts, run = [], []
        for e in self.listed:
            if type(e) is tuple:
                run.append(e)
                continue
            if run:
                parts.append(np.array(run, np.int64))
                run = []
            parts.append(e.points() if isinstance(e, Grid) else e)
        if run:
            parts.append(np.array(run, np.int64))
        if self.origins:
            parts.append(self._expand_spaced())
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _expand_spaced(self) -> np.ndarray:
        n = np.array([len(s) for s in self.steps])
        at = np.cumsum(n) - n
        steps = np.concatenate(self.steps, dtype=np.int64)
        steps[at] = 0
        cs = np.cumsum(steps)
        d = cs - np.repeat(cs[at], n)  # offset along the axis, in grid units, per element
        origins = np.array(self.origins, np.int64)
        pts = np.empty((d.size, origins.shape[1]), np.int64)
        for j in range(origins.shape[1]):
            pts[:, j] = np.repeat(origins[:, j], n)
        if len(set(self.axes)) == 1 and len(set(self.grids)) == 1:  # the usual case: one axis and grid for all
            axis, move = self.axes[0], d * self.grids[0]
            pts[:, axis] += move
            if pts.shape[1] == 4:
                pts[:, axis + 2] += move
        else:
            move = d * np.repeat(self.grids, n)
            axis = np.repeat(self.axes, n)
            for j in range(pts.shape[1]):
                pts[:, j] += np.where(axis == j % 2, move, 0)
        return pts


class OasisCell:
    """One cell. `rects` and `placements` are expanded from the records on first use (and cached,
    so they may be edited); `elements` keeps the records unexpanded for readers that can use them."""

    def __init__(self, name: str, rects: dict | None = None, placements: dict | None = None, texts: list | None = None):
        self.name = name
        self.texts: list[tuple[str, int, int, int, int]] = texts if texts is not None else []  # (text, layer, texttype, x, y)
        self.elements: dict[tuple[str, object], Elements] = {}  # ("r", (layer, datatype)) or ("p", cell name) -> records
        self._rects, self._placements = rects, placements

    @property
    def expanded(self) -> bool:
        """Whether `rects` or `placements` were expanded (and so may have been edited)."""
        return self._rects is not None or self._placements is not None

    def _expand(self, kind: str) -> dict:
        return {key: e.expand() for (k, key), e in self.elements.items() if k == kind}

    @property
    def rects(self) -> dict[tuple[int, int], np.ndarray]:
        """(layer, datatype) -> int64 [n, 4]: x0, y0, x1, y1 (nm), repetitions expanded."""
        if self._rects is None:
            self._rects = self._expand("r")
        return self._rects

    @property
    def placements(self) -> dict[str, np.ndarray]:
        """cell name -> int64 [n, 2]: the origin of every placement, repetitions expanded."""
        if self._placements is None:
            self._placements = self._expand("p")
        return self._placements

    def count(self, kind: str, key) -> int:
        """Elements of ("r", layer-datatype) or ("p", cell name), without expanding them."""
        if self.expanded:
            got = (self.rects if kind == "r" else self.placements).get(key)
            return 0 if got is None else len(got)
        e = self.elements.get((kind, key))
        return 0 if e is None else e.count
