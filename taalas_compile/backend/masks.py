"""write_masks: ROM images + routing -> the two customisable masks as one GDSII file.

Hierarchy (what KLayout shows): CHIP_<recipe> -> B_<block> (io, head, L0.., tail) -> T_<tile>,
plus ROUTING. Shapes exist on exactly two layers (the die's custom via and metal); text labels sit
on the metal layer's label datatype.

- ROMCELL: one digit cell's metal pad and its centre (output) via. A tile's used cells are
  array references (one AREF per run of rows with the same used width).
- SEL: one select via; a tile's select vias are one reference repeated at explicit offsets.
- ROUTING: track wires (metal rectangles) and the vias that land them on pin and feedthrough stubs.

Output is byte-reproducible: fixed timestamp, deterministic order, integer nm coordinates.
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import gdstk
import numpy as np

from taalas_compile.config.die import Die
from taalas_compile.die.geometry import OUTPUT_SITE, SITE_OF_DIGIT, Geometry
from taalas_compile.die.rom_format import NO_CELL
from taalas_compile.files import write_atomic
from taalas_compile.mapper.ir import Placement
from taalas_compile.mapper.route import Routing

TIMESTAMP = datetime.datetime(2000, 1, 1)  # fixed: identical inputs give identical bytes


def cell_name(prefix: str, name: str) -> str:
    return f"{prefix}_{re.sub(r'[^A-Za-z0-9]', '_', name)}"


def _square(cx: int, cy: int, side: int, layer: int, datatype: int) -> gdstk.Polygon:
    h = side // 2
    return gdstk.rectangle((cx - h, cy - h), (cx - h + side, cy - h + side), layer=layer, datatype=datatype)


def _row_runs(used: np.ndarray) -> list[tuple[int, int, int]]:
    """(first row, n rows, used width) for runs of consecutive rows with equal used-prefix width."""
    runs: list[tuple[int, int, int]] = []
    for i, w in enumerate(used.tolist()):
        if runs and runs[-1][2] == w and runs[-1][0] + runs[-1][1] == i:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1, w)
        else:
            runs.append((i, 1, int(w)))
    return [r for r in runs if r[2] > 0]


def select_via_positions(img: np.ndarray, geo: Geometry) -> np.ndarray:
    """Centres [n, 2] of the select vias of an image, relative to the ROM origin (row-major)."""
    rows, cols = np.nonzero(img != NO_CELL)
    digits = img[rows, cols]
    centres = np.array([geo.site_center(s) for s in SITE_OF_DIGIT], np.int64)  # [8, 2]
    p = geo.die.cell.pitch
    return np.stack([cols * p, rows * p], axis=1) + centres[digits]


def build_library(top: str, pl: Placement, routing: Routing, roms: dict[str, np.ndarray], die: Die) -> gdstk.Library:
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
        used = (img != NO_CELL).sum(axis=1)
        assert all((img[i, :w] != NO_CELL).all() for i, w in enumerate(used)), f"{t.name}: used cells are not row prefixes"
        for r0, n, w in _row_runs(used):
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


def write_masks(path: Path, top: str, pl: Placement, routing: Routing, roms: dict[str, np.ndarray], die: Die) -> None:
    lib = build_library(top, pl, routing, roms, die)
    write_atomic(path, lambda p: lib.write_gds(str(p), timestamp=TIMESTAMP))


def write_lyp(path: Path, die: Die) -> None:
    """KLayout layer properties: names and colours of the two custom layers and the labels."""
    entries = [
        (die.layers.via.name, die.layers.via.layer, die.layers.via.datatype, die.layers.via.color, "I9"),
        (die.layers.metal.name, die.layers.metal.layer, die.layers.metal.datatype, die.layers.metal.color, "I5"),
        (f"{die.layers.metal.name.split()[0]} labels", die.layers.metal.layer, die.layers.label_datatype, "#000000", "I1"),
    ]
    props = "".join(
        f" <properties>\n  <frame-color>{c}</frame-color>\n  <fill-color>{c}</fill-color>\n"
        f"  <dither-pattern>{pat}</dither-pattern>\n  <visible>true</visible>\n  <transparent>false</transparent>\n"
        f"  <width>1</width>\n  <name>{n}</name>\n  <source>{ly}/{dt}@1</source>\n </properties>\n"
        for n, ly, dt, c, pat in entries
    )
    text = f'<?xml version="1.0" encoding="utf-8"?>\n<layer-properties>\n{props}</layer-properties>\n'
    write_atomic(path, lambda p: p.write_text(text))
