"""write_masks: ROM images + routing -> the two customisable masks, as GDSII or OASIS.

Hierarchy (what KLayout shows): CHIP_<recipe> -> B_<block> (io, head, L0.., tail) -> T_<tile>,
plus ROUTING. Shapes exist on exactly two layers (the die's custom via and metal); text labels sit
on the metal layer's label datatype.

- ROMCELL: one digit cell's metal pad and its centre (output) via. A tile's used cells are
  arrays of it (one per run of rows with the same used width).
- SEL: one select via; a tile has one reference to it per select via.
- ROUTING: track wires (metal rectangles) and the vias that land them on pin and feedthrough stubs.

A mask file is a sequence of independent parts, each a byte string: `shared_part` (ROMCELL, SEL),
one `block_part` per layer block (its T_ cells and its B_ cell) and `top_part` (ROUTING and the
top cell). Parts can be produced in worker processes and concatenated in placement order by a
`MaskFile` (`assemble_masks`, the one assembler: the compile feeds it the block cache's part
files, `write_masks` parts made in memory). Output is byte-reproducible.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from taalas_compile.backend.layout_ir import CellSpec, Label, Rect, Ref, square
from taalas_compile.backend.mask_file import MaskFile, writer
from taalas_compile.config.die import Die
from taalas_compile.die.cell_names import ROMCELL, ROUTING, SEL, cell_name
from taalas_compile.die.geometry import OUTPUT_SITE, Geometry
from taalas_compile.files import write_atomic
from taalas_compile.mapper.ir import Placement, Tile
from taalas_compile.mapper.legality import block_order
from taalas_compile.mapper.route import Routing


def block_tiles(pl: Placement) -> dict[str, list[Tile]]:
    out: dict[str, list[Tile]] = {b: [] for b in block_order(pl)}
    for t in pl.tiles:
        out[t.block].append(t)
    return out


def shared_part(die: Die, fmt: str = "gds") -> bytes:
    """ROMCELL (pad + output via) and SEL (one select via centred on its origin)."""
    geo = Geometry(die)
    via, metal, vs = die.layers.via, die.layers.metal, die.rules.via_size
    romcell = CellSpec(ROMCELL, rects=(Rect(metal.layer, metal.datatype, *geo.pad),
                                         square(*geo.site_center(OUTPUT_SITE), vs, via.layer, via.datatype)))
    sel = CellSpec(SEL, rects=(square(0, 0, vs, via.layer, via.datatype),))
    w = writer(fmt)
    return w.cell_bytes(romcell) + w.cell_bytes(sel)


def block_part(block: str, tiles: Iterable[Tile], roms: dict[str, np.ndarray], die: Die, fmt: str = "gds") -> bytes:
    """The T_ cells of one layer block's tiles and its B_ cell placing them at their ROM origins."""
    geo, w = Geometry(die), writer(fmt)
    tiles = list(tiles)
    parts = [w.rom_tile_bytes(cell_name("T", t.name), roms[t.name], die) for t in tiles]
    refs = tuple(Ref(cell_name("T", t.name), *geo.rom_origin(t.site)) for t in tiles)
    return b"".join(parts) + w.cell_bytes(CellSpec(cell_name("B", block), refs=refs))


def top_part(top: str, pl: Placement, routing: Routing, die: Die, fmt: str = "gds") -> bytes:
    """ROUTING (track wires, stub vias) and the top cell CHIP_<top>: block and routing references,
    a label per tile (at its centre) and per routed piece (its net, at its left via)."""
    geo, w = Geometry(die), writer(fmt)
    metal, ld = die.layers.metal, die.layers.label_datatype
    labels = []
    for t in pl.tiles:
        bx0, by0, bx1, by1 = geo.tile_box(t.site)
        labels.append(Label(t.name, (bx0 + bx1) // 2, (by0 + by1) // 2, metal.layer, ld))
    labels += [Label(s.net, s.x0, geo.track_y(s.channel, s.track), metal.layer, ld) for s in routing.segments]
    refs = tuple(Ref(cell_name("B", b)) for b in block_order(pl)) + (Ref(ROUTING),)
    return w.cell_bytes(routing_cell(ROUTING, routing, die)) + w.cell_bytes(CellSpec(cell_name("CHIP", top), refs=refs, labels=tuple(labels)))


def routing_cell(name: str, routing: Routing, die: Die) -> CellSpec:
    """The routed nets on the two layers: each track piece as a metal wire and a via on every stub
    it lands on (the masks' ROUTING cell; the overview draws the same cell under another name)."""
    geo = Geometry(die)
    via, metal = die.layers.via, die.layers.metal
    h, e = geo.wire_half, geo.wire_end
    wires, vias = [], []
    for s in routing.segments:
        y = geo.track_y(s.channel, s.track)
        wires.append(Rect(metal.layer, metal.datatype, s.x0 - e, y - h, s.x1 + e, y + h))
        vias += [square(st.x, y, die.rules.via_size, via.layer, via.datatype) for st in s.stubs]
    return CellSpec(name, rects=tuple(wires + vias))


def assemble_masks(path: Path, top: str, pl: Placement, routing: Routing, die: Die, fmt: str,
                   blocks: Iterable[bytes]) -> str:
    """The one mask file assembler: header, `shared_part`, the block parts in placement order
    (`blocks`: byte chunks, e.g. `block_part`s made here or `part_chunks` of the block cache's
    part files), `top_part`, trailer; written to a temporary name and renamed. Returns its sha256."""
    digest = {}

    def write(p: Path) -> None:
        with MaskFile(p, fmt, libname=top) as f:
            f.add(shared_part(die, fmt))
            for chunk in blocks:
                f.add(chunk)
            f.add(top_part(top, pl, routing, die, fmt))
        digest["sha256"] = f.sha256.hexdigest()

    write_atomic(path, write)
    return digest["sha256"]


def part_chunks(parts: Iterable[Path], size: int = 1 << 24) -> Iterator[bytes]:
    """The bytes of block part files, in order, `size` at a time (a part can be gigabytes)."""
    for part in parts:
        with open(part, "rb") as f:
            while b := f.read(size):
                yield b


def write_masks(path: Path, top: str, pl: Placement, routing: Routing, roms: dict[str, np.ndarray], die: Die,
                fmt: str = "gds") -> str:
    """The masks of ROM images held in memory, as one file (GDSII or OASIS), through
    `assemble_masks` as a compile writes them. Returns its sha256."""
    blocks = (block_part(block, tiles, roms, die, fmt) for block, tiles in block_tiles(pl).items())
    return assemble_masks(path, top, pl, routing, die, fmt, blocks)


def write_lyp(path: Path, die: Die) -> None:
    """KLayout layer properties: names and colours of the two custom layers, their text labels
    (hidden) and the reference layers of the overview and views (`view/layers.py`)."""
    from taalas_compile.view.layers import lyp_entries

    props = "".join(
        f" <properties>\n  <frame-color>{c}</frame-color>\n  <fill-color>{c}</fill-color>\n"
        f"  <dither-pattern>{pat}</dither-pattern>\n  <visible>{str(vis).lower()}</visible>\n  <transparent>false</transparent>\n"
        f"  <width>{wd}</width>\n  <name>{n}</name>\n  <source>{ly}/{dt}@1</source>\n </properties>\n"
        for n, ly, dt, c, pat, vis, wd in lyp_entries(die)
    )
    text = f'<?xml version="1.0" encoding="utf-8"?>\n<layer-properties>\n{props}</layer-properties>\n'
    write_atomic(path, lambda p: p.write_text(text))
