"""Where the layer blocks sit on each die: runs of neighbouring sites per block and grid row, in
fractions of the die (x from the left, y from the top, as in floorplan.png), with a label point per
block. For a compiled chip the picture underneath is its floorplan.png, rendered from the masks."""

from __future__ import annotations

import base64

from taalas_compile.backend.render import die_in_image
from taalas_compile.die.geometry import Geometry
from taalas_compile.plan.figures import src
from taalas_compile.plan.subject import Subject


def _runs(sites: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """(row, first col, last col) of horizontally adjacent sites."""
    out: list[tuple[int, int, int]] = []
    for c, r in sorted(sites, key=lambda s: (s[1], s[0])):
        if out and out[-1][0] == r and out[-1][2] == c - 1:
            out[-1] = (r, out[-1][1], c)
        else:
            out.append((r, c, c))
    return out


def die_map(s: Subject, stage) -> dict:
    geo = Geometry(s.die)
    w, h = geo.size
    blocks = []
    for b in stage.blocks:
        sites = [t.site for t in stage.placement.tiles if t.block == b]
        if not sites:
            continue
        rects = []
        for r, c0, c1 in _runs(sites):
            x0, y0 = geo.tile_origin((c0, r))
            x1, y1 = geo.tile_box((c1, r))[2:]
            rects.append([round(x0 / w, 5), round(1 - y1 / h, 5), round((x1 - x0) / w, 5), round((y1 - y0) / h, 5)])
        cx = sum(geo.tile_origin(x)[0] + geo.tile_w / 2 for x in sites) / len(sites) / w
        cy = 1 - sum(geo.tile_origin(x)[1] + geo.tile_h / 2 for x in sites) / len(sites) / h
        blocks.append({"block": b, "tiles": len(sites), "rects": rects, "label": [round(cx, 5), round(cy, 5)]})
    return {"die": stage.index, "size_nm": [w, h], "blocks": blocks}


def floorplan_section(s: Subject) -> dict:
    png = s.chip_dir / "floorplan.png" if s.chip_dir is not None else None
    has_png = png is not None and png.is_file()
    out = {"dies": [die_map(s, st) for st in s.stages],
           "image": "floorplan.png" if has_png else None,
           # where the die lies in floorplan.png (left, top, width, height as fractions of the picture:
           # it has a title, legend and scale bar around the die), so plan.html lays it under the blocks
           "image_box": [round(v, 6) for v in die_in_image(Geometry(s.die).size)] if has_png else None,
           "source": src("measured", f"{png} rendered by KLayout from chip.gds; blocks from netlist.json sites and die/geometry.py")
           if has_png else src("computed", "no masks written (recipe): blocks placed by the mapper, positions from die/geometry.py")}
    return out


def image_data_uri(s: Subject) -> str | None:
    png = s.chip_dir / "floorplan.png" if s.chip_dir is not None else None
    if png is None or not png.is_file():
        return None
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()
