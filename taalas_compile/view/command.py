"""`taalas-compile view DIR`: resolve what to look at, cut it out of the masks, and open it (or say
how). The CLI only parses options and prints (`cli/app.py`, `cli/show.py`).

A layer block holding more vias than `--max-vias` (every block of the 8B chip: ~680 M vias, about
13 GiB in KLayout) is written as KLayout can hold it: `view/block-L0.oas`, the block's abstract
(routing, tile outlines and names, no ROM vias), and one exact view per tile in `view/block-L0/`
(about 10 M vias, half a GiB, each). A tile or window above the budget is refused."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from taalas_compile.backend.netlist import read_netlist
from taalas_compile.chip_dir import chip_die, read_manifest
from taalas_compile.config.die import Die
from taalas_compile.die.cell_names import cell_name
from taalas_compile.errors import UserError
from taalas_compile.mapper.ir import Placement
from taalas_compile.view.cut import (
    Contents,
    TooManyVias,
    View,
    check_vias,
    view_contents,
    write_view,
)
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
    tiles: tuple[View, ...] = ()  # a block above --max-vias: `view` is its abstract, these its tiles' views
    tile_command: list[str] | None = None  # the KLayout command line for the one with the most vias


@dataclass(frozen=True)
class ChipMasks:
    """What cutting views of a chip needs, read once: its placement, netlist, die and mask index."""

    chip: Path
    pl: Placement
    doc: dict
    die: Die
    mc: MaskCells
    overview: Path | None

    def contents(self, region: Region, tiles: bool = True) -> Contents:
        return view_contents(self.mc, region, self.die, self.doc, tiles)

    def write(self, c: Contents, path: Path, note: str | None = None) -> View:
        return write_view(self.mc, c, self.overview, path, note)


def open_masks(chip: Path) -> ChipMasks:
    man = read_manifest(chip)
    pl, _, doc = read_netlist(chip, roms=False)
    die = chip_die(chip, man)
    mc = MaskCells(chip / doc["masks"], {cell_name("T", t.name) for t in pl.tiles})
    overview = chip / "chip.overview.oas"
    return ChipMasks(chip, pl, doc, die, mc, overview if overview.is_file() else None)


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


WAY_OUT = {  # what to look at instead of a region above --max-vias
    "tile": "Look at a window inside it (--window X0,Y0,X1,Y1)",
    "window": "Look at a smaller window or one tile (--tile NAME)",
    "marker": "Look at a window around it (--window X0,Y0,X1,Y1)",
}


def make_view(chip: Path, sel: Selection, max_vias: int | None = None, masks: ChipMasks | None = None) -> View:
    """DIR/view/<region>.oas for the selected region (see view/cut.py), refused above `max_vias`
    vias before anything is written."""
    c = masks or open_masks(chip)
    region = region_of(chip, sel, c.pl, c.die)
    contents = c.contents(region)
    check_vias(contents, max_vias, WAY_OUT.get(region.label.split("-")[0], "Look at one of its tiles (--tile NAME)"))
    return c.write(contents, chip / "view" / f"{region.label}.oas")


def make_block_views(chip: Path, block: str, max_vias: int | None = None, masks: ChipMasks | None = None,
                     on_tile: Callable[[int, int], None] | None = None) -> tuple[View, tuple[View, ...]]:
    """A layer block as KLayout can hold it: DIR/view/block-B.oas, its abstract (no tile cells),
    and DIR/view/block-B/tile-NAME.oas, one exact view per tile. Every tile is checked against
    `max_vias` before anything is written. `on_tile(done, total)` before the first tile and after each."""
    c = masks or open_masks(chip)
    region = block_region(c.pl, c.die, block)
    tiles = [c.contents(tile_region(c.pl, c.die, t.name)) for t in c.pl.tiles if t.block == block]
    for t in tiles:
        check_vias(t, max_vias, f"A tile of block {block} is the smallest part a block view splits into; "
                                "look at a window inside it (--window X0,Y0,X1,Y1)")
    abstract = c.write(c.contents(region, tiles=False), chip / "view" / f"{region.label}.oas",
                       note=f"{region.label}: tile outlines and routing; each tile's vias in view/{region.label}/tile-NAME.oas")
    views: list[View] = []
    if on_tile is not None:
        on_tile(0, len(tiles))
    for t in tiles:
        views.append(c.write(t, chip / "view" / region.label / f"{t.region.label}.oas"))
        if on_tile is not None:
            on_tile(len(views), len(tiles))
    return abstract, tuple(views)


def view_chip(chip: Path, sel: Selection, open_it: bool = False, max_vias: int | None = None,
              on_tile: Callable[[int, int], None] | None = None) -> Viewed:
    """Cut the view (refused above `max_vias` vias, a layer block then split into its abstract and
    its tiles' views); with `open_it`, start KLayout on it when it is installed (detached)."""
    c = open_masks(chip)
    tiles: tuple[View, ...] = ()
    try:
        v = make_view(chip, sel, max_vias, c)
    except TooManyVias:
        if sel.block is None:
            raise
        v, tiles = make_block_views(chip, sel.block, max_vias, c, on_tile)
    cmd = session_command(chip, v.path)
    opened = False
    if open_it and shutil.which("klayout"):
        subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        opened = True
    fullest = max(tiles, key=lambda t: t.vias) if tiles else None  # the example: the tile with the most vias
    return Viewed(v, cmd, opened, tiles, session_command(chip, fullest.path) if fullest else None)


__all__ = ["ChipMasks", "Selection", "Viewed", "make_block_views", "make_view", "open_masks", "shell", "view_chip"]
