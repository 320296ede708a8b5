"""A view: the part of the masks inside a region, cut out into a small OASIS file with the
overview's reference shapes (OV_CONTEXT) as context.

    VIEW_<label>
      T_<tile> ...   tile cells whose ROM array lies wholly in the region: copied from chip.oas
                     byte for byte (with the die cells ROMCELL and SEL they place)
      VIEW_CLIP      everything else in the region, flat: the vias whose centre lies in it, the
                     metal clipped to it (tiles the region cuts through, the routing)
      OV_CONTEXT     copied from chip.overview.oas
      VIEW_REF       the region's outline and, for a marker, its box and message (reference layers)

A block's abstract (`view_contents(tiles=False)`: a layer block too large for one layout) leaves the tile cells out:
the routing in the region, the overview's outlines and names, and a note where the tiles' views are.

`view_contents` decides what a view holds, `check_vias` refuses it above the budget and
`write_view` writes it: so a caller checks every view it will write (a block's tiles) first.

So the vias of a view are exactly the mask's vias in the region (tests/view/test_cut.py compares
them with the sign-off's reader). GDSII masks and OASIS masks without a cell index are read whole
and every tile goes through VIEW_CLIP.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from taalas_compile.backend import oasis_stream as oas
from taalas_compile.backend.layout_ir import CellSpec, Label, Rect, Ref
from taalas_compile.backend.mask_file import MaskFile
from taalas_compile.config.die import Die
from taalas_compile.die.cell_names import ROMCELL, SEL
from taalas_compile.errors import UserError
from taalas_compile.files import write_atomic
from taalas_compile.signoff.cell_index import scan_cells
from taalas_compile.view import layers as L
from taalas_compile.view.mask_cells import MaskCells
from taalas_compile.view.oasis_shapes import rectangles
from taalas_compile.view.overview import CONTEXT
from taalas_compile.view.region import Region, clip, contains, covers, touches

DIE_CELLS = (ROMCELL, SEL)
KLAYOUT_BYTES_PER_VIA = 21  # measured: the 8B chip's block L0 view, 677.5 M vias, 13.1 GiB in klayout.db (docs/performance.md)
Shapes = dict[tuple[int, int], np.ndarray]  # (layer, datatype) -> int64 [n, 4] boxes, nm


class TooManyVias(UserError):
    """A region holding more vias than KLayout can open within the budget (`--max-vias`)."""

    def __init__(self, message: str, vias: int):
        super().__init__(message)
        self.vias = vias


@dataclass(frozen=True)
class View:
    path: Path
    region: Region
    vias: int  # vias in the view: exactly the mask's vias in the region
    copied: int  # tile cells copied whole
    clipped: int  # tile cells cut by the region (read and clipped)
    bytes: int
    seconds: float


def rom_extents(doc: dict, pitch: int) -> dict[str, tuple[int, int]]:
    """Tile cell -> (width, height) nm of its ROM array, from the netlist's rom_region."""
    return {t["rom_region"]["cell"]: (t["rom_region"]["cols"] * pitch, t["rom_region"]["rows"] * pitch) for t in doc["tiles"]}


def flatten(mc: MaskCells, name: str, skip: set[str], memo: dict[str, Shapes]) -> Shapes:
    """Every box of cell `name` and the cells below it (not those in `skip`), relative to its origin."""
    if name in memo:
        return memo[name]
    cell = mc.cell(name)
    parts: dict[tuple[int, int], list[np.ndarray]] = {k: [v] for k, v in cell.rects.items()}
    for child, pos in cell.placements.items():
        if child in skip:
            continue
        for key, boxes in flatten(mc, child, skip, memo).items():
            parts.setdefault(key, []).append((boxes[None, :, :] + pos[:, None, [0, 1, 0, 1]]).reshape(-1, 4))
    out = {k: np.concatenate(v) for k, v in parts.items()}
    if name in mc.small:
        memo[name] = out  # die and structure cells: small, and placed many times
    return out


def via_count(mc: MaskCells, name: str, via: tuple[int, int], memo: dict[str, int]) -> int:
    """Vias cell `name` draws, from its records (repetitions counted, not expanded)."""
    if name not in memo:
        cell = mc.cell(name)
        children = cell.placements if cell.expanded else [k for kind, k in cell.elements if kind == "p"]
        memo[name] = cell.count("r", via) + sum(cell.count("p", c) * via_count(mc, c, via, memo) for c in children)
    return memo[name]


@dataclass(frozen=True)
class Contents:
    """What a view of `region` holds, decided before anything is written."""

    region: Region
    whole: list[tuple[str, np.ndarray]]  # tile cells copied as they are, with their origins
    clip_body: list[bytes]  # VIEW_CLIP's records: the region's flat shapes
    vias: int  # exactly the mask's vias in the region
    clipped: int  # tile cells cut by the region


def view_contents(mc: MaskCells, region: Region, die: Die, doc: dict, tiles: bool = True) -> Contents:
    """The tile cells wholly inside `region` (OASIS masks with a cell index) and every other shape
    in it, flat; `tiles=False`: no tile cell at all (a block's abstract)."""
    via = (die.layers.via.layer, die.layers.via.datatype)
    ext = rom_extents(doc, die.cell.pitch)
    whole, cut = [], []
    for cell, pts in sorted(mc.origins().items()) if tiles else ():
        w, h = ext.get(cell, (None, None))
        boxes = [None if w is None else (int(x), int(y), int(x) + w, int(y) + h) for x, y in pts]
        if w is not None and mc.copyable and all(covers(region.boxes, b) for b in boxes):
            whole.append((cell, pts))
        elif w is None or any(touches(region.boxes, b) for b in boxes):
            cut.append((cell, pts))
    memo: dict[str, Shapes] = {}
    flat: dict[tuple[int, int], list[np.ndarray]] = {}
    for key, boxes in flatten(mc, mc.top, mc.tiles, memo).items():  # routing and anything outside the tiles
        flat.setdefault(key, []).append(boxes)
    for cell, pts in cut:
        for key, boxes in flatten(mc, cell, set(), memo).items():
            flat.setdefault(key, []).append((boxes[None, :, :] + pts[:, None, [0, 1, 0, 1]]).reshape(-1, 4))
    clip_body, n_vias = [], 0
    for key in sorted(flat):
        boxes = np.concatenate(flat[key])
        if key == via:
            boxes = boxes[contains(region.boxes, (boxes[:, 0] + boxes[:, 2]) // 2, (boxes[:, 1] + boxes[:, 3]) // 2)]
            n_vias += len(boxes)
        else:
            boxes = clip(region.boxes, boxes)
        clip_body.append(rectangles(*key, boxes))
    counts: dict[str, int] = {}
    n_vias += sum(via_count(mc, cell, via, counts) * len(pts) for cell, pts in whole)
    return Contents(region, whole, clip_body, n_vias, len(cut))


def check_vias(c: Contents, max_vias: int | None, way_out: str) -> None:
    """Refuse (`TooManyVias`) contents above `max_vias`, naming the count, the memory KLayout would
    need and `way_out` (what to look at instead)."""
    if max_vias is not None and c.vias > max_vias:
        gib = c.vias * KLAYOUT_BYTES_PER_VIA / 2**30
        raise TooManyVias(f"view: {c.region.label} holds {c.vias:,} vias; KLayout needs about {gib:.1f} GiB to open them. "
                          f"{way_out}, or pass --max-vias {c.vias} to write it anyway", c.vias)


def write_view(mc: MaskCells, c: Contents, overview: Path | None, path: Path, note: str | None = None,
               t0: float | None = None) -> View:
    """Write `c` to `path` (atomically) with the overview's context and the region's outline
    (`note`: a text on it)."""
    t0 = time.perf_counter() if t0 is None else t0
    top = CellSpec(f"VIEW_{c.region.label}".replace(" ", "_"),
                   refs=tuple(Ref(cell, int(x), int(y)) for cell, pts in c.whole for x, y in pts.tolist())
                   + (Ref("VIEW_CLIP"), *((Ref(CONTEXT),) if overview is not None else ()), Ref("VIEW_REF")))

    def write(p: Path) -> None:
        with MaskFile(p, "oasis") as f:
            for name in (DIE_CELLS if c.whole else ()):
                for chunk in mc.cell_bytes(name):
                    f.add(chunk)
            for cell, _ in c.whole:
                for chunk in mc.cell_bytes(cell):
                    f.add(chunk)
            f.add(oas.raw_cell("VIEW_CLIP", b"".join(c.clip_body)))
            if overview is not None:
                f.add(_context_bytes(overview))
            f.add(oas.cell_bytes(reference_cell(c.region, note)))
            f.add(oas.cell_bytes(top))

    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, write)
    return View(path, c.region, c.vias, len(c.whole), c.clipped, path.stat().st_size, time.perf_counter() - t0)


def reference_cell(region: Region, note: str | None = None) -> CellSpec:
    """VIEW_REF: the region's outline (with `note` at its upper left); a marker's box and message."""
    rects = [Rect(L.REGION.layer, L.REGION.datatype, *b) for b in region.boxes]
    x0, _, _, y1 = region.bbox
    labels = [Label(note, x0, y1, L.REGION.layer, L.REGION.datatype)] if note else []
    if region.marker is not None:
        m = region.marker
        rects.append(Rect(L.MARKER.layer, L.MARKER.datatype, *m.box))
        text = m.message.encode("ascii", "replace").decode()
        labels.append(Label(text, m.box[0], m.box[3], L.MARKER.layer, L.MARKER.datatype))
    return CellSpec("VIEW_REF", rects=tuple(rects), labels=tuple(labels))


def _context_bytes(overview: Path) -> bytes:
    """OV_CONTEXT's cell exactly as chip.overview.oas holds it."""
    r = next(c for c in scan_cells(overview) or () if c.name == CONTEXT)
    with open(overview, "rb") as f:
        f.seek(r.start)
        return f.read(r.end - r.start)
