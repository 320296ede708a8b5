"""floorplan.png: the chip explained in one picture, rendered headless by KLayout.

The die as the masks draw it (for chips up to `MAX_DRAWN_DIGITS` digit cells; larger ones show
their overview's tiles filled by kind), with the overview's reference shapes (die outline, sites,
tiles by kind, block outlines and names, tile names), a title above, and a legend of tile kinds
and layers and a scale bar below. Every colour comes from chip.lyp, so the legend's swatches are
the layers they name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import klayout.db as kdb
import klayout.lay as klay

from taalas_compile.files import write_atomic
from taalas_compile.view import layers as L
from taalas_compile.view.glyphs import CAP, fit_height

TOP_SHARE, BOTTOM_SHARE, SIDE_SHARE = 0.10, 0.16, 0.02  # margins around the die, in die heights (sides: widths)


@dataclass(frozen=True)
class Figure:
    title: str  # e.g. "stories260k on die mini: 260 K parameters, 44 tiles"
    die_size_nm: tuple[int, int]
    legend: tuple[tuple[str, int, int], ...]  # (name, layer, datatype) per swatch, in order


def frame_box(size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The part of the plane the picture shows (nm): the die and the margins for the title and legend."""
    w, h = size
    return (-round(SIDE_SHARE * w), -round(BOTTOM_SHARE * h), w + round(SIDE_SHARE * w), h + round(TOP_SHARE * h))


def die_in_image(size: tuple[int, int]) -> tuple[float, float, float, float]:
    """Where the die lies in the picture: left, top, width, height as fractions of the image."""
    x0, y0, x1, y1 = frame_box(size)
    w, h = x1 - x0, y1 - y0
    return (-x0 / w, (y1 - size[1]) / h, size[0] / w, size[1] / h)


def _text(r: kdb.Region, text: str, x: int, y: int, height: int) -> None:
    """Text with its lower left at (x, y), `height` nm tall (KLayout's default font)."""
    r.insert(kdb.TextGenerator.default_generator().text(text, 1.0, float(height)).moved(x, y))


def _fit(text: str, height: int, width: int) -> int:
    """`height`, lowered so that `text` is at most `width` wide (a tall die is narrow for its title)."""
    return fit_height(text, width, round(height * CAP), fill=1.0)


def _nice(length: float) -> int:
    """The largest 1, 2 or 5 times a power of ten (nm, at least 1 µm) not above `length`."""
    best = 1000
    for k in range(3, 12):
        for m in (1, 2, 5):
            if m * 10**k <= length:
                best = m * 10**k
    return best


def figure_layout(fig: Figure) -> kdb.Layout:
    """Title, legend and scale bar, outside the die (below it: y < 0; above it: y > height)."""
    w, h = fig.die_size_nm
    ly = kdb.Layout()
    ly.dbu = 0.001
    top = ly.create_cell("FIGURE")
    text = kdb.Region()
    _text(text, fig.title, 0, h + round(TOP_SHARE * h * 0.3), _fit(fig.title, round(TOP_SHARE * h * 0.5), w))
    per_row = -(-len(fig.legend) // 3)
    col_w = w // max(per_row, 1)
    # legend row pitch: three rows below the die, lowered until every entry fits its column
    # (swatch 2 sw, gap sw/2, name 0.75 sw tall, sw = 0.7 line)
    line = round(BOTTOM_SHARE * h / 4)
    for name, _, _ in fig.legend:
        label = name.removeprefix("ref: ")
        line = min(line, round(_fit(label, round(0.75 * 0.7 * line), round(0.92 * col_w - 2.5 * 0.7 * line)) / (0.75 * 0.7)))
    for i, (name, layer, dt) in enumerate(fig.legend):
        col, row = i // 3, i % 3
        x, y = col * col_w, -(row + 1) * line
        sw = round(0.7 * line)
        top.shapes(ly.layer(layer, dt)).insert(kdb.Box(x, y, x + 2 * sw, y + sw))
        _text(text, name.removeprefix("ref: "), x + 2 * sw + sw // 2, y + sw // 8, round(0.75 * sw))
    bar = _nice(0.2 * w)
    y = -4 * line + line // 3
    text.insert(kdb.Box(w - bar, y, w, y + line // 4))
    _text(text, f"{bar / 1e6:g} mm" if bar >= 1_000_000 else f"{bar / 1000:g} um", w - bar, y + line // 2, round(0.5 * line))
    top.shapes(ly.layer(L.FIGURE.layer, L.FIGURE.datatype)).insert(text)
    return ly


def _props(view: klay.LayoutView, lyp: Path, n_layouts: int) -> None:
    """chip.lyp's entries for each shown layout (its sources name layout 1 only)."""
    import xml.etree.ElementTree as ET

    view.clear_layers()
    for cv in range(n_layouts):
        for p in ET.parse(lyp).getroot().iter("properties"):
            lp = klay.LayerPropertiesNode()
            lp.name = p.findtext("name")
            lp.source = p.findtext("source").rsplit("@", 1)[0] + f"@{cv + 1}"
            lp.fill_color = lp.frame_color = 0xFF000000 | int(p.findtext("fill-color")[1:], 16)
            lp.dither_pattern = int(p.findtext("dither-pattern").lstrip("I"))
            lp.width = int(p.findtext("width"))
            lp.visible = p.findtext("visible") == "true"
            view.insert_layer(view.end_layers(), lp)


def render_floorplan(masks: Path | None, overview: Path, lyp: Path, png: Path, fig: Figure, width_px: int = 1600) -> None:
    """The picture (see the module docstring); `masks` None: the overview alone (a chip too large to draw)."""
    view = klay.LayoutView()
    files = [p for p in (masks, overview) if p is not None]
    for i, f in enumerate(files):
        view.load_layout(str(f), i > 0)
    view.show_layout(figure_layout(fig), True)
    _props(view, lyp, len(files) + 1)
    view.set_config("background-color", "#ffffff")
    view.set_config("grid-visible", "false")
    view.set_config("text-visible", "false")
    view.max_hier()
    x0, y0, x1, y1 = frame_box(fig.die_size_nm)
    view.zoom_box(kdb.DBox(x0 / 1000, y0 / 1000, x1 / 1000, y1 / 1000))
    height_px = max(100, round(width_px * (y1 - y0) / (x1 - x0)))
    write_atomic(png, lambda p: view.save_image(str(p), width_px, height_px))


def legend(die) -> tuple[tuple[str, int, int], ...]:
    """The legend's swatches: tile kinds, the two masks, block and die outlines."""
    return (*((r.name, r.layer, r.datatype) for r in L.TILES.values()),
            (f"{die.layers.via.name} (mask)", die.layers.via.layer, die.layers.via.datatype),
            (f"{die.layers.metal.name} (mask)", die.layers.metal.layer, die.layers.metal.datatype),
            (L.BLOCKS.name, L.BLOCKS.layer, L.BLOCKS.datatype), (L.DIE.name, L.DIE.layer, L.DIE.datatype))
