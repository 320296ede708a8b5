"""Where a ROM image's geometry goes inside its tile cell `T_<tile>` (nm, relative to the ROM origin).

- Pads: every used cell is one `ROMCELL` (pad + output via). Used cells are row prefixes, so a
  tile's pads are a few arrays: one per run of consecutive rows with the same used width.
- Select vias: one `SEL` per used cell, at the centre of the site of its digit.

Both mask writers call these, so GDSII and OASIS draw the same geometry.
"""

from __future__ import annotations

import numpy as np

from taalas_compile.die.geometry import Geometry
from taalas_compile.die.rom_format import NO_CELL


def used_widths(img: np.ndarray, name: str = "") -> np.ndarray:
    """Used cells per row [rows]; asserts the used cells of every row are a prefix of digits 0..7."""
    used = img != NO_CELL
    assert not (used & (img > 7)).any(), f"{name}: digit out of range"
    widths = used.sum(axis=1)
    prefix = np.arange(img.shape[1])[None, :] < widths[:, None]
    assert (used == prefix).all(), f"{name}: used cells are not row prefixes"
    return widths


def row_runs(widths: np.ndarray) -> list[tuple[int, int, int]]:
    """(first row, n rows, used width) for runs of consecutive rows with equal width > 0."""
    w = np.asarray(widths, np.int64)
    if w.size == 0:
        return []
    starts = np.flatnonzero(np.r_[True, w[1:] != w[:-1]])
    ends = np.r_[starts[1:], w.size]
    return [(int(s), int(e - s), int(w[s])) for s, e in zip(starts, ends) if w[s] > 0]


def select_via_positions(img: np.ndarray, geo: Geometry) -> np.ndarray:
    """Centres [n, 2] of the select vias of an image, row-major."""
    flat = img.reshape(-1)
    idx = np.flatnonzero(flat != NO_CELL)
    rows, cols = np.divmod(idx, img.shape[1])
    p = geo.die.cell.pitch
    return np.stack([cols * p, rows * p], axis=1) + geo.digit_offsets()[flat[idx]]
