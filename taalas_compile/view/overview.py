"""chip.overview.oas: the chip at a glance, small enough to open in seconds for any model.

    OVERVIEW_<recipe>
      OV_CONTEXT   reference layers only (view/layers.py): die outline, every base-die site, every
                   tile's outline filled by kind, layer-block outlines, tile and block names drawn
                   as polygons sized to their tile or block
      OV_ROUTING   the routed nets on the two mask layers, exactly the masks' ROUTING cell

No ROM via is in it: those are what `taalas-compile view` cuts out of the masks, with OV_CONTEXT
copied in as context. Written by our OASIS writer from the placement and routing alone (no mask is
read), so it is byte-reproducible and costs the same for the 8B chip as for tiny-llama.
"""

from __future__ import annotations

from pathlib import Path

import klayout.db as kdb

from taalas_compile.backend import oasis_stream as oas
from taalas_compile.backend.layout_ir import CellSpec, Ref
from taalas_compile.backend.mask_file import MaskFile
from taalas_compile.backend.masks import routing_cell
from taalas_compile.config.die import KIND_OF_LETTER, Die
from taalas_compile.die.cell_names import cell_name
from taalas_compile.die.geometry import Geometry
from taalas_compile.files import write_atomic
from taalas_compile.mapper.ir import Placement
from taalas_compile.mapper.legality import block_order
from taalas_compile.mapper.route import Routing
from taalas_compile.view import layers as L
from taalas_compile.view.glyphs import fit_height, text_polygons
from taalas_compile.view.oasis_shapes import polygon, rectangles

CONTEXT, ROUTING = "OV_CONTEXT", "OV_ROUTING"
TILE_LABEL_SHARE = 0.2  # a tile's name may take this share of its tile's height


def overview_name(recipe: str) -> str:
    return cell_name("OVERVIEW", recipe)


def block_regions(pl: Placement, die: Die) -> dict[str, kdb.Region]:
    """Each layer block's area: the union of its tiles' outlines, merged (KLayout), in block order."""
    geo = Geometry(die)
    out = {b: kdb.Region() for b in block_order(pl)}
    for t in pl.tiles:
        out[t.block].insert(kdb.Box(*geo.tile_box(t.site)))
    return {b: r.merged() for b, r in out.items()}


def _box(ly: L.RefLayer, box: tuple[int, int, int, int]) -> bytes:
    return rectangles(ly.layer, ly.datatype, [box])


def _text(ly: L.RefLayer, text: str, cx: int, cy: int, height: int) -> bytes:
    return b"".join(polygon(ly.layer, ly.datatype, poly, dx, dy) for poly, dx, dy in text_polygons(text, cx, cy, height))


def context_body(pl: Placement, die: Die) -> bytes:
    """OV_CONTEXT's records: reference shapes only."""
    L.check_die_layers(die)
    geo = Geometry(die)
    w, h = geo.size
    body = [_box(L.DIE, (0, 0, w, h))]
    sites = [geo.tile_box((c, r)) for r, row in enumerate(die.grid.rows) for c in range(len(row))]
    body.append(rectangles(L.SITES.layer, L.SITES.datatype, sites))
    for kind, ly in L.TILES.items():
        body.append(rectangles(ly.layer, ly.datatype, [geo.tile_box(t.site) for t in pl.tiles if KIND_OF_LETTER[_letter(die, t.site)] == kind]))
    for b, region in block_regions(pl, die).items():
        for poly in region.each():
            pts = tuple((p.x, p.y) for p in poly.to_simple_polygon().each_point())
            body.append(polygon(L.BLOCKS.layer, L.BLOCKS.datatype, pts))
        bb = max(region.each(), key=lambda p: (p.area(), p.bbox().left, p.bbox().bottom)).bbox()  # the block's largest piece
        body.append(_text(L.BLOCK_LABELS, b, bb.center().x, bb.center().y, fit_height(b, bb.width(), bb.height(), 0.6)))
    for t in pl.tiles:
        x0, y0, x1, y1 = geo.tile_box(t.site)
        height = fit_height(t.name, x1 - x0, round((y1 - y0) * TILE_LABEL_SHARE))
        body.append(_text(L.TILE_LABELS, t.name, (x0 + x1) // 2, y1 - (y1 - y0) // 8, height))
    return b"".join(body)


def _letter(die: Die, site: tuple[int, int]) -> str:
    c, r = site
    return die.grid.rows[r][c]


def overview_cells(recipe: str, pl: Placement, routing: Routing, die: Die) -> bytes:
    """OV_CONTEXT, OV_ROUTING and the top cell placing both, as OASIS cells."""
    top = CellSpec(overview_name(recipe), refs=(Ref(CONTEXT), Ref(ROUTING)))
    return (oas.raw_cell(CONTEXT, context_body(pl, die)) + oas.cell_bytes(routing_cell(ROUTING, routing, die))
            + oas.cell_bytes(top))


def write_overview(path: Path, recipe: str, pl: Placement, routing: Routing, die: Die) -> None:
    """chip.overview.oas (see the module docstring), written to a temporary name and renamed."""

    def write(p: Path) -> None:
        with MaskFile(p, "oasis") as f:
            f.add(overview_cells(recipe, pl, routing, die))

    write_atomic(path, write)
