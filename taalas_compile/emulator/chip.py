"""ChipImage: what the emulator executes — tiles on sites, their ROM digits, and which pins are
connected. Built either from the netlist (`emulate`) or from the masks (`verify`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from taalas_compile.mapper.ir import Placement

DRIVER_PINS = ("out", "tok_out")


@dataclass(frozen=True)
class TileRef:
    name: str
    kind: str
    site: tuple[int, int]


@dataclass(frozen=True)
class ChipImage:
    tiles: tuple[TileRef, ...]
    roms: dict[str, np.ndarray]  # tile name -> ROM digits
    nets: tuple[frozenset[str], ...]  # connected pins, each "tile.pin"
    act_bits: int
    kv_bits: int
    sram_bytes: int  # capacity of one SRAM tile


def from_netlist(pl: Placement, roms: dict[str, np.ndarray], die) -> ChipImage:
    tiles = tuple(TileRef(t.name, t.kind, t.site) for t in pl.tiles)
    nets = tuple(frozenset(str(p) for p in n.pins) for n in pl.nets)
    return ChipImage(tiles, dict(roms), nets, die.arith.act_bits, die.arith.kv_bits, die.tiles.sram.bytes)


def from_extraction(pl: Placement, site_roms: dict, site_nets: list[frozenset[str]], die) -> ChipImage:
    """Tiles named as in the netlist, but ROM digits and connectivity exactly as extracted."""
    name_at = {f"{t.site[0]},{t.site[1]}": t.name for t in pl.tiles}
    tiles = tuple(TileRef(t.name, t.kind, t.site) for t in pl.tiles)
    empty = np.zeros((0, 0), np.uint8)
    roms = {t.name: site_roms.get(t.site, empty) for t in pl.tiles}
    nets = []
    for comp in site_nets:
        pins = set()
        for p in comp:
            site, _, pin = p.partition(".")
            if site in name_at:
                pins.add(f"{name_at[site]}.{pin}")
        nets.append(frozenset(pins))
    return ChipImage(tiles, roms, tuple(nets), die.arith.act_bits, die.arith.kv_bits, die.tiles.sram.bytes)
