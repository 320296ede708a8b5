"""The functional netlist: tile instances, the mask region each tile's ROM comes from, and nets.

`netlist.json` (format "taalas-netlist", version 2; docs/file-formats.md) plus `roms/*.safetensors`,
one file per layer block holding the expected ROM image of each of its tiles (uint8 digits, keyed by
tile name) — the "schematic" that sign-off compares the masks against.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from taalas_compile.backend.blocks import TileMeta
from taalas_compile.config.die import Die
from taalas_compile.die import rom_format as rf
from taalas_compile.die.cell_names import cell_name
from taalas_compile.die.geometry import Geometry
from taalas_compile.die.program import decode, encode
from taalas_compile.errors import UserError
from taalas_compile.files import read_json, write_atomic
from taalas_compile.mapper.ir import Net, Pin, Placement, Slice, Tile

FORMAT, VERSION = "taalas-netlist", 2


def netlist_dict(pl: Placement, metas: dict[str, TileMeta], die: Die, masks: str, rom_files: dict[str, str]) -> dict:
    """`metas`: rows, cols and sha256 of each tile's ROM image; `rom_files`: block -> its ROM file."""
    geo = Geometry(die)
    tiles = []
    for t in pl.tiles:
        m = metas[t.name]
        tiles.append({
            "name": t.name, "kind": t.kind, "site": list(t.site), "role": t.role.name.lower(), "node": t.node,
            "block": t.block, "words": list(encode(t.program)),
            "slice": None if t.slice is None else {"param": t.slice.param, "rows": [t.slice.r0, t.slice.r1], "cols": [t.slice.c0, t.slice.c1]},
            "bits": t.bits, "group": t.group,
            "rom_region": {"cell": cell_name("T", t.name), "origin_nm": list(geo.rom_origin(t.site)),
                           "rows": m.rows, "cols": m.cols, "sha256": m.sha256},
        })
    nets = [{"name": n.name, "drivers": [str(p) for p in n.drivers], "sinks": [str(p) for p in n.sinks]} for n in pl.nets]
    return {"format": FORMAT, "version": VERSION, "die": die.name, "masks": masks, "roms": rom_files, "tiles": tiles, "nets": nets}


def write_netlist(out: Path, pl: Placement, metas: dict[str, TileMeta], die: Die, masks: str, rom_files: dict[str, str]) -> None:
    """netlist.json (the ROM files themselves are written per block, backend/blocks.py)."""
    doc = netlist_dict(pl, metas, die, masks, rom_files)
    write_atomic(out / "netlist.json", lambda p: p.write_text(json.dumps(doc, indent=1) + "\n"))


def _pin(s: str) -> Pin:
    tile, _, pin = s.rpartition(".")
    return Pin(tile, pin)


def _tile(t: dict, path: Path) -> Tile:
    """One tile of netlist.json. Its program is its header words; its role, bits and group repeat
    them (for readers of the file), so a disagreement is a damaged file."""
    try:
        program = decode(t["words"])
    except rf.RomFormatError as e:
        raise UserError(f"{path}: tile '{t['name']}': bad program words: {e}") from None
    tile = Tile(t["name"], t["kind"], tuple(t["site"]), t["node"], t["block"], program,
                None if t["slice"] is None else Slice(t["slice"]["param"], *t["slice"]["rows"], *t["slice"]["cols"]))
    if (t["role"], t["bits"], t["group"]) != (tile.role.name.lower(), tile.bits, tile.group):
        raise UserError(f"{path}: tile '{t['name']}': role, bits and group disagree with its program words")
    return tile


def read_netlist(out: Path, roms: bool = True) -> tuple[Placement, dict[str, np.ndarray], dict]:
    """Placement, ROM images of every tile (all blocks; {} with `roms=False`) and the raw document."""
    path = out / "netlist.json"
    doc = read_json(path, "is this a compile output directory?")
    if doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise UserError(f"{path}: not a {FORMAT} v{VERSION} file")
    tiles = tuple(_tile(t, path) for t in doc["tiles"])
    nets = tuple(Net(n["name"], tuple(map(_pin, n["drivers"])), tuple(map(_pin, n["sinks"]))) for n in doc["nets"])
    images: dict[str, np.ndarray] = {}
    for block in doc["roms"] if roms else ():
        images.update(read_block_roms(out, doc, block))
    return Placement(doc["die"], tiles, nets), images, doc


def read_placement(out: Path) -> tuple[Placement, dict]:
    """The placement of netlist.json and the raw document, without the ROM images."""
    pl, _, doc = read_netlist(out, roms=False)
    return pl, doc


def read_block_roms(out: Path, doc: dict, block: str) -> dict[str, np.ndarray]:
    """The expected ROM images of one layer block's tiles. A file that cannot be read, or lacks a
    tile of its block, is a damaged compile output (one-line error); digits that differ from the
    recorded sha256 are sign-off's to find (signoff/lvs.py check_netlist_roms)."""
    f = out / doc["roms"][block]
    if not f.is_file():
        raise UserError(f"{f}: missing (listed in {out / 'netlist.json'})")
    try:
        images = rf.read_rom_file(f)
    except rf.RomFormatError as e:
        raise UserError(f"{f}: damaged ROM file: {e}; compile the chip again") from None
    missing = [t["name"] for t in doc["tiles"] if t["block"] == block and t["name"] not in images]
    if missing:
        raise UserError(f"{f}: damaged ROM file: no image of tile '{missing[0]}'"
                        f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}; compile the chip again")
    return images
