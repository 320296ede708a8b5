"""The masks as the view cutter needs them: the small cells (die cells, block cells, ROUTING, the
top cell) read once, where every tile cell is placed on the die, and any tile cell on demand.

OASIS masks are read with the sign-off's streaming reader (`signoff/oasis_read.py`): the cell
index (`signoff/cell_index.py`) gives every cell's byte range, so a view of one tile of the 8B
chip reads that tile's cell and the small cells, nothing else, and a tile cell can be copied into
a view as its bytes. GDSII masks (small chips: the compile refuses them for the 8B chip) are read
with KLayout, as the sign-off reads them (`signoff/extract.read_layout`).
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from taalas_compile.errors import UserError
from taalas_compile.signoff.cell_index import CellRange, scan_cells
from taalas_compile.signoff.oasis_cells import OasisCell
from taalas_compile.signoff.oasis_read import read_cells, read_cells_at


class MaskCells:
    """`path`'s cells; `tiles`: the names of the ROM tile cells (the large ones, read on demand)."""

    def __init__(self, path: Path, tiles: set[str]):
        if not path.is_file():
            raise UserError(f"{path}: masks not found")
        self.path, self.tiles = path, tiles
        self.oasis = path.suffix == ".oas"
        self.index: dict[str, CellRange] | None = None
        self._all: dict[str, OasisCell] | None = None  # every cell, when the file has no index (or is GDSII)
        if self.oasis:
            ranges = scan_cells(path)
            self.index = None if ranges is None else {c.name: c for c in ranges}
        if self.index is None:
            self._all = {c.name: c for c in (read_cells(path, validate=False) if self.oasis else _gds_cells(path))}
        small = [n for n in (self.index or self._all) if n not in tiles]
        self.small = {n: self._read(n) for n in small}
        placed = {n for c in self.small.values() for n in c.placements}
        tops = [n for n in small if n not in placed and self.small[n].placements]  # the die cells are placed by tiles only
        if len(tops) != 1:
            raise UserError(f"{path}: expected one top cell, found {len(tops)}")
        self.top = tops[0]

    def _read(self, name: str) -> OasisCell:
        if self._all is not None:
            return self._all[name]
        r = self.index[name]
        return next(iter(read_cells_at(self.path, r.start, r.end)))

    def cell(self, name: str) -> OasisCell:
        return self.small[name] if name in self.small else self._read(name)

    def cell_bytes(self, name: str) -> Iterator[bytes]:
        """A cell's records exactly as in the file (OASIS with an index only), in chunks."""
        assert self.index is not None, "copying cells needs an indexed OASIS file"
        r = self.index[name]
        with open(self.path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            for at in range(r.start, r.end, 1 << 24):
                yield mm[at : min(r.end, at + (1 << 24))]

    @property
    def copyable(self) -> bool:
        return self.index is not None

    def origins(self) -> dict[str, np.ndarray]:
        """Die coordinates (int [n, 2]) of every placement of each tile cell, through the small
        cells from the top (rotation and mirroring are not written, only translations)."""
        out: dict[str, list[np.ndarray]] = {}

        def walk(name: str, at: np.ndarray) -> None:
            for child, pos in self.small[name].placements.items():
                where = (at[:, None, :] + pos[None, :, :]).reshape(-1, 2)
                if child in self.small:
                    walk(child, where)
                else:
                    out.setdefault(child, []).append(where)

        walk(self.top, np.zeros((1, 2), np.int64))
        return {k: np.concatenate(v) for k, v in out.items()}


def _gds_cells(path: Path) -> Iterator[OasisCell]:
    """A GDSII file's cells read with KLayout, as `OasisCell`s with their rectangles and placements
    expanded (boxes only: our masks hold no other shape)."""
    import klayout.db as kdb

    ly = kdb.Layout()
    try:
        ly.read(str(path))
    except RuntimeError as e:
        raise UserError(f"{path}: cannot read the masks: {str(e).splitlines()[0]}") from None
    for cell in ly.each_cell():
        rects: dict[tuple[int, int], list] = {}
        for li in ly.layer_indexes():
            info = ly.get_info(li)
            boxes = [s.bbox() for s in cell.shapes(li).each() if not s.is_text()]
            if boxes:
                rects[(info.layer, info.datatype)] = [(b.left, b.bottom, b.right, b.top) for b in boxes]
        places: dict[str, list] = {}
        for inst in cell.each_inst():
            name = ly.cell(inst.cell_index).name
            places.setdefault(name, []).extend((t.disp.x, t.disp.y) for t in inst.cell_inst.each_trans())
        yield OasisCell(cell.name, {k: np.array(v, np.int64).reshape(-1, 4) for k, v in rects.items()},
                        {k: np.array(v, np.int64).reshape(-1, 2) for k, v in places.items()})
