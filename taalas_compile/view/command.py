"""`taalas-compile view DIR`: resolve what to look at, cut it out of the masks, and open it (or say
how). The CLI only parses options and prints (`cli/app.py`, `cli/show.py`)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from taalas_compile.backend.masks import cell_name
from taalas_compile.backend.netlist import read_netlist
from taalas_compile.errors import UserError
from taalas_compile.reference import chip_die, read_manifest
from taalas_compile.view.cut import View, cut_view
from taalas_compile.view.mask_cells import MaskCells
from taalas_compile.view.region import (
    Region,
    block_region,
    marker_region,
    tile_region,
    window_region,
)
from taalas_compile.view.session import session_command, shell


@dataclass(frozen=True)
class Selection:
    tile: str | None = None  # a tile name from netlist.json, e.g. L0.q_proj.r0c0
    block: str | None = None  # a layer block: io, head, L0.., tail
    window: str | None = None  # "X0,Y0,X1,Y1" in µm
    marker: int | None = None  # the Nth violation (from 1) of DIR/signoff/violations.lyrdb


@dataclass(frozen=True)
class Viewed:
    view: View
    command: list[str]  # the KLayout command line that opens it
    opened: bool  # KLayout was started


def region_of(chip: Path, sel: Selection, pl, die) -> Region:
    given = [k for k, v in vars(sel).items() if v is not None]
    if len(given) != 1:
        raise UserError("view: give exactly one of --tile NAME, --block L0, --window X0,Y0,X1,Y1 or --marker N"
                        + (f" (got {', '.join('--' + g for g in given)})" if given else ""))
    if sel.tile is not None:
        return tile_region(pl, die, sel.tile)
    if sel.block is not None:
        return block_region(pl, die, sel.block)
    if sel.window is not None:
        return window_region(sel.window, die)
    return marker_region(chip / "signoff" / "violations.lyrdb", sel.marker)


def make_view(chip: Path, sel: Selection, max_vias: int | None = None) -> View:
    """DIR/view/<region>.oas for the selected region (see view/cut.py)."""
    man = read_manifest(chip)
    pl, _, doc = read_netlist(chip, roms=False)
    die = chip_die(chip, man)
    region = region_of(chip, sel, pl, die)
    mc = MaskCells(chip / doc["masks"], {cell_name("T", t.name) for t in pl.tiles})
    overview = chip / "chip.overview.oas"
    return cut_view(mc, region, die, doc, overview if overview.is_file() else None, chip / "view" / f"{region.label}.oas", max_vias)


def view_chip(chip: Path, sel: Selection, open_it: bool = False, max_vias: int | None = None) -> Viewed:
    """Cut the view (refused above `max_vias` vias); with `open_it`, start KLayout on it when it is installed (detached)."""
    v = make_view(chip, sel, max_vias)
    cmd = session_command(chip, v.path)
    opened = False
    if open_it and shutil.which("klayout"):
        subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        opened = True
    return Viewed(v, cmd, opened)


__all__ = ["Selection", "Viewed", "make_view", "shell", "view_chip"]
