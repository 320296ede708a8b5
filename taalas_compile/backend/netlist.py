"""The functional netlist: tile instances, the mask region each tile's ROM comes from, and nets.

`netlist.json` (format "taalas-netlist", version 1; docs/file-formats.md) plus `roms.safetensors`,
the expected ROM image of every tile (uint8 digits, keyed by tile name) — the "schematic" that
sign-off compares the masks against.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from taalas_compile.backend.masks import cell_name
from taalas_compile.config.die import Die
from taalas_compile.die.geometry import Geometry
from taalas_compile.errors import UserError
from taalas_compile.files import read_json, write_atomic
from taalas_compile.mapper.ir import Net, Pin, Placement, Role, Slice, Tile

FORMAT, VERSION = "taalas-netlist", 1


def rom_sha256(img: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(img).tobytes() + str(img.shape).encode()).hexdigest()


def netlist_dict(pl: Placement, roms: dict[str, np.ndarray], die: Die, masks: str) -> dict:
    geo = Geometry(die)
    tiles = []
    for t in pl.tiles:
        img = roms[t.name]
        tiles.append({
            "name": t.name, "kind": t.kind, "site": list(t.site), "role": t.role.name.lower(), "node": t.node,
            "block": t.block, "words": list(t.words),
            "slice": None if t.slice is None else {"param": t.slice.param, "rows": [t.slice.r0, t.slice.r1], "cols": [t.slice.c0, t.slice.c1]},
            "bits": t.bits, "group": t.group,
            "rom_region": {"cell": cell_name("T", t.name), "origin_nm": list(geo.rom_origin(t.site)),
                           "rows": int(img.shape[0]), "cols": int(img.shape[1]), "sha256": rom_sha256(img)},
        })
    nets = [{"name": n.name, "drivers": [str(p) for p in n.drivers], "sinks": [str(p) for p in n.sinks]} for n in pl.nets]
    return {"format": FORMAT, "version": VERSION, "die": die.name, "masks": masks, "roms": "roms.safetensors", "tiles": tiles, "nets": nets}


def write_netlist(out: Path, pl: Placement, roms: dict[str, np.ndarray], die: Die, masks: str) -> None:
    doc = netlist_dict(pl, roms, die, masks)
    write_atomic(out / "netlist.json", lambda p: p.write_text(json.dumps(doc, indent=1) + "\n"))
    write_atomic(out / "roms.safetensors", lambda p: save_file({k: np.ascontiguousarray(v) for k, v in roms.items()}, str(p)))


def _pin(s: str) -> Pin:
    tile, _, pin = s.rpartition(".")
    return Pin(tile, pin)


def read_netlist(out: Path) -> tuple[Placement, dict[str, np.ndarray], dict]:
    pl, doc = read_placement(out)
    return pl, load_file(str(out / doc["roms"])), doc


def read_placement(out: Path) -> tuple[Placement, dict]:
    """The placement of netlist.json without loading the ROM images."""
    path = out / "netlist.json"
    doc = read_json(path, "is this a compile output directory?")
    if doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise UserError(f"{path}: not a {FORMAT} v{VERSION} file")
    tiles = tuple(
        Tile(t["name"], t["kind"], tuple(t["site"]), Role[t["role"].upper()], t["node"], t["block"], tuple(t["words"]),
             None if t["slice"] is None else Slice(t["slice"]["param"], *t["slice"]["rows"], *t["slice"]["cols"]),
             t["bits"], t["group"])
        for t in doc["tiles"]
    )
    nets = tuple(Net(n["name"], tuple(map(_pin, n["drivers"])), tuple(map(_pin, n["sinks"]))) for n in doc["nets"])
    return Placement(doc["die"], tiles, nets), doc
