"""Names drawn as geometry: text becomes polygons (KLayout's default font) that scale with the
layout, so a label sized to its tile stays inside it at every zoom and never piles onto another."""

from __future__ import annotations

from functools import lru_cache

import klayout.db as kdb

ADVANCE = 0.6  # character advance per unit of text height (the default font's design)
CAP = 0.7  # drawn height of capitals per unit of text height

Polygon = tuple[tuple[int, int], ...]  # closed implicitly; integer nm


@lru_cache(maxsize=512)
def _glyph(char: str, height: int) -> tuple[Polygon, ...]:
    """One character's polygons at `height` nm (origin at its lower left), holes cut open."""
    region = kdb.TextGenerator.default_generator().text(char, 1.0, float(height))  # dbu 1: coordinates in nm
    return tuple(tuple((p.x, p.y) for p in poly.to_simple_polygon().each_point()) for poly in region.each())


def text_width(text: str, height: int) -> int:
    return round(len(text) * ADVANCE * height)


def fit_height(text: str, width: int, height: int, fill: float = 0.85) -> int:
    """The largest text height (nm) at which `text` fits `fill` of a `width` x `height` box."""
    return max(1, int(min(fill * width / (ADVANCE * max(len(text), 1)), fill * height / CAP)))


def text_polygons(text: str, cx: int, cy: int, height: int) -> list[tuple[Polygon, int, int]]:
    """`text` at `height` nm, centred on (cx, cy): (glyph polygon, dx, dy) per polygon, the glyph's
    points relative to its character's origin at (dx, dy), so each shape is encoded once."""
    x0, y0 = cx - text_width(text, height) // 2, cy - round(CAP * height) // 2
    step = ADVANCE * height
    return [(poly, x0 + round(i * step), y0) for i, ch in enumerate(text) for poly in _glyph(ch, height)]
