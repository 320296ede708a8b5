"""Via centres (int [n, 2], sorted) as the sign-off reads them from the masks, and as KLayout
reads them from a view."""

from pathlib import Path

import klayout.db as kdb
import numpy as np

from taalas_compile.config.die import Die
from taalas_compile.signoff.extract import read_layout
from taalas_compile.signoff.findings import Findings
from taalas_compile.view.region import Region, contains


def _sorted(pts: np.ndarray) -> np.ndarray:
    return pts[np.lexsort((pts[:, 1], pts[:, 0]))]


def centres(region: kdb.Region) -> np.ndarray:
    pts = np.array([(p.bbox().center().x, p.bbox().center().y) for p in region.each()], np.int64).reshape(-1, 2)
    return _sorted(pts)


def mask_vias_in(masks: Path, die: Die, region: Region) -> np.ndarray:
    """The sign-off's reader (`signoff/extract.read_layout`): every via of the masks, those whose
    centre lies in the region."""
    lay = read_layout(masks, die, Findings())  # held: its regions read the layout lazily
    pts = centres(lay.flat_vias)
    return pts[contains(region.boxes, pts[:, 0], pts[:, 1])]


def view_vias(view: Path, die: Die) -> np.ndarray:
    ly = kdb.Layout()
    ly.read(str(view))
    (top,) = ly.top_cells()
    li = ly.find_layer(die.layers.via.layer, die.layers.via.datatype)
    pts = centres(kdb.Region(top.begin_shapes_rec(li))) if li is not None else np.zeros((0, 2), np.int64)
    del ly
    return pts
