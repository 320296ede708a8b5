"""A PNG of the floorplan, rendered headless by KLayout from the masks as written."""

from __future__ import annotations

from pathlib import Path

import klayout.db as kdb
import klayout.lay as klay

from taalas_compile.files import write_atomic


def render_floorplan(gds: Path, lyp: Path, png: Path, die_size_nm: tuple[int, int], width_px: int = 1600) -> None:
    """The whole die (its masks hold no outline, so the die's size is given) at `width_px` wide."""
    view = klay.LayoutView()
    view.load_layout(str(gds), True)
    view.load_layer_props(str(lyp))
    view.set_config("background-color", "#ffffff")
    view.set_config("grid-visible", "false")
    view.set_config("text-visible", "false")  # tile and net labels are for browsing, not the picture
    view.max_hier()
    w, h = die_size_nm[0] / 1000, die_size_nm[1] / 1000
    view.zoom_box(kdb.DBox(0, 0, w, h))
    height_px = max(100, round(width_px * h / w))
    write_atomic(png, lambda p: view.save_image(str(p), width_px, height_px))


def render_placement(pl, routing, metas: dict, die, lyp: Path, png: Path, width_px: int = 1600) -> None:
    """The floorplan of a chip too large to draw from its masks: each tile's used ROM extent (rows x
    cols of its image, from the netlist) as a filled box, and the routed wires, on the same layers
    and colours; same picture at full-chip zoom, drawn from a few thousand shapes."""
    from taalas_compile.die.geometry import Geometry

    geo = Geometry(die)
    ly = kdb.Layout()
    ly.dbu = 0.001
    top = ly.create_cell("FLOORPLAN")
    metal = ly.layer(die.layers.metal.layer, die.layers.metal.datatype)
    via = ly.layer(die.layers.via.layer, die.layers.via.datatype)
    p = die.cell.pitch
    for t in pl.tiles:
        m = metas[t.name]
        x, y = geo.rom_origin(t.site)
        top.shapes(metal).insert(kdb.Box(x, y, x + m.cols * p, y + m.rows * p))
        top.shapes(via).insert(kdb.Box(x, y, x + m.cols * p, y + m.rows * p))
    h = geo.wire_half
    for s in routing.segments:
        y = geo.track_y(s.channel, s.track)
        top.shapes(metal).insert(kdb.Box(s.x0, y - h, s.x1, y + h))
    tmp = png.with_suffix(".floorplan.gds")
    ly.write(str(tmp))
    try:
        render_floorplan(tmp, lyp, png, geo.size, width_px)
    finally:
        tmp.unlink(missing_ok=True)
