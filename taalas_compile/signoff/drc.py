"""Design-rule checks of the two custom layers with KLayout's engine, on the file as written."""

from __future__ import annotations

import klayout.db as kdb

from taalas_compile.config.die import Die
from taalas_compile.signoff.findings import Findings, Violation


def _edge_pairs(f: Findings, category: str, pairs: kdb.EdgePairs, what: str) -> None:
    for ep in pairs.each():
        c = ep.bbox().center()
        f.add(Violation(category, what, c.x, c.y))


def _shapes(f: Findings, category: str, region: kdb.Region, what: str) -> None:
    for p in region.each():
        c = p.bbox().center()
        f.add(Violation(category, what, c.x, c.y))


def check_drc(metal: kdb.Region, vias: kdb.Region, die: Die, f: Findings) -> None:
    r = die.rules
    _edge_pairs(f, "drc.metal_width", metal.width_check(r.metal_width), f"metal narrower than {r.metal_width} nm")
    _edge_pairs(f, "drc.metal_space", metal.space_check(r.metal_space), f"metal closer than {r.metal_space} nm")
    wrong = vias.with_bbox_width(r.via_size, True) + vias.with_bbox_height(r.via_size, True) + vias.non_rectangles()
    _shapes(f, "drc.via_size", wrong.merged(), f"via is not a {r.via_size} nm square")
    _edge_pairs(f, "drc.via_space", vias.space_check(r.via_space), f"vias closer than {r.via_space} nm")
    _shapes(f, "drc.via_enclosure", vias - metal, "via not covered by metal")
    _edge_pairs(f, "drc.via_enclosure", metal.enclosing_check(vias, r.via_enclosure),
                f"metal encloses via by less than {r.via_enclosure} nm")
