"""The masks as gdstk builds them (the writer before the streaming writers): the reference that
our GDSII and OASIS files are compared with, shape for shape."""

from __future__ import annotations

import datetime

import gdstk
import numpy as np

from taalas_compile.backend.rom_layout import (
    row_runs,
    select_via_positions,
    used_widths,
)
from taalas_compile.die.cell_names import cell_name
from taalas_compile.die.geometry import OUTPUT_SITE, Geometry


def _square(cx: int, cy: int, side: int, layer: int, datatype: int) -> gdstk.Polygon:
    h = side // 2
    return gdstk.rectangle((cx - h, cy - h), (cx - h + side, cy - h + side), layer=layer, datatype=datatype)


def build_library(top, pl, routing, roms: dict[str, np.ndarray], die) -> gdstk.Library:
    geo = Geometry(die)
    via, metal = die.layers.via, die.layers.metal
    vl, vd, ml, md, ld = via.layer, via.datatype, metal.layer, metal.datatype, die.layers.label_datatype
    lib = gdstk.Library(unit=1e-9, precision=1e-9)
    romcell = lib.new_cell("ROMCELL")
    x0, y0, x1, y1 = geo.pad
    romcell.add(gdstk.rectangle((x0, y0), (x1, y1), layer=ml, datatype=md))
    romcell.add(_square(*geo.site_center(OUTPUT_SITE), die.rules.via_size, vl, vd))
    sel = lib.new_cell("SEL")
    sel.add(_square(0, 0, die.rules.via_size, vl, vd))
    pitch = die.cell.pitch
    blocks: dict[str, gdstk.Cell] = {}
    chip = gdstk.Cell(cell_name("CHIP", top))
    for t in pl.tiles:
        img = roms[t.name]
        tc = gdstk.Cell(cell_name("T", t.name))
        for r0, n, w in row_runs(used_widths(img)):
            tc.add(gdstk.Reference(romcell, (0, r0 * pitch), columns=w, rows=n, spacing=(pitch, pitch)))
        pos = select_via_positions(img, geo)
        if len(pos):
            ref = gdstk.Reference(sel, tuple(int(v) for v in pos[0]))
            if len(pos) > 1:
                ref.repetition = gdstk.Repetition(offsets=(pos[1:] - pos[0]).tolist())
            tc.add(ref)
        lib.add(tc)
        if t.block not in blocks:
            blocks[t.block] = gdstk.Cell(cell_name("B", t.block))
        blocks[t.block].add(gdstk.Reference(tc, geo.rom_origin(t.site)))
        bx0, by0, bx1, by1 = geo.tile_box(t.site)
        chip.add(gdstk.Label(t.name, ((bx0 + bx1) // 2, (by0 + by1) // 2), layer=ml, texttype=ld))
    for b in blocks.values():
        lib.add(b)
        chip.add(gdstk.Reference(b))
    rc = lib.new_cell("ROUTING")
    h, e = geo.wire_half, geo.wire_end
    for s in routing.segments:
        y = geo.track_y(s.channel, s.track)
        rc.add(gdstk.rectangle((s.x0 - e, y - h), (s.x1 + e, y + h), layer=ml, datatype=md))
        for st in s.stubs:
            rc.add(_square(st.x, y, die.rules.via_size, vl, vd))
        chip.add(gdstk.Label(s.net, (s.x0, y), layer=ml, texttype=ld))
    chip.add(gdstk.Reference(rc))
    lib.add(chip)
    return lib


def write_reference_gds(path, top, pl, routing, roms, die) -> None:
    build_library(top, pl, routing, roms, die).write_gds(str(path), timestamp=datetime.datetime(2000, 1, 1))
