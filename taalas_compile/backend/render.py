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
