"""Where each cell of an OASIS file lies, from its top-level records alone (no inflating), so that
cells can be read in any process: `read_cells_at(path, start, end)` on a range of the index.

Our writer's files are, at top level, START, then per cell CELL (by name) + one CBLOCK, then
END. The scan reads only those record headers and steps over each CBLOCK's compressed bytes; a
file with anything else at top level has no index (None), and is read serially.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from pathlib import Path

from taalas_compile.signoff.oasis_read import MAGIC, uvar

CELL, CBLOCK, START, END, PAD = 14, 34, 1, 2, 0


@dataclass(frozen=True)
class CellRange:
    name: str
    start: int  # byte of its CELL record
    end: int  # byte after its last record


def scan_cells(path: Path) -> list[CellRange] | None:
    """Every cell's byte range in file order, or None if the file is not of the simple form above."""
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        return _scan(mm)
    except (IndexError, ValueError):
        return None  # malformed: the serial reader says where
    finally:
        mm.close()


def _scan(b) -> list[CellRange] | None:
    if b[: len(MAGIC)] != MAGIC:
        return None
    p = len(MAGIC)
    rid, p = uvar(b, p)
    if rid != START:
        return None
    n, p = uvar(b, p)  # version string
    p += n
    t, p = uvar(b, p)  # unit: a whole number (real type 0) in our files
    if t != 0:
        return None
    _, p = uvar(b, p)
    flag, p = uvar(b, p)
    for _ in range(12 if flag == 0 else 0):
        _, p = uvar(b, p)
    cells: list[CellRange] = []
    name, start = None, 0
    while True:
        at = p
        rid, p = uvar(b, p)
        if rid in (CELL, END) and name is not None:
            cells.append(CellRange(name, start, at))
            name = None
        if rid == END:
            return cells
        if rid == CELL:
            n, p = uvar(b, p)
            name, start = bytes(b[p : p + n]).decode("ascii", "replace"), at
            p += n
        elif rid == CBLOCK and name is not None:
            kind, p = uvar(b, p)
            _, p = uvar(b, p)
            nc, p = uvar(b, p)
            if kind != 0 or p + nc > len(b):
                return None
            p += nc
        elif rid != PAD:
            return None
