"""Physical geometry of the base die, derived from its description (all integers, nm).

Floorplan (see docs/die-model.md for a drawing):

    y ^   ...
      |  [tile row 1 ][gap][tile ...]
      |  ==== channel 1: tracks of custom metal ====
      |  [tile row 0 ][gap][tile ...]
      |  ==== channel 0 ====
      +--------------------------------------> x

- Site (col, row) holds one tile. Its ROM array of digit cells sits above a pin area; its pins
  are fixed vertical stubs (lower metal, part of the base die) that reach down across every track
  of the channel under its row.
- The gap right of each column holds fixed vertical feedthrough segments: segment (col, row, k)
  joins channel `row` to channel `row + 1`; its stubs also cross every track of both channels.
  Segments of even and odd rows sit on interleaved x positions so their stubs never coincide.
- A net is drawn as custom-metal track pieces in channels, with a custom via wherever a track
  piece lands on a pin stub or a feedthrough stub.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from taalas_compile.config.die import Die, TileKind

PINS: dict[TileKind, tuple[str, ...]] = {
    "mac": ("in", "out"),
    "vu": ("a", "b", "c", "d", "out"),
    "sram": ("port",),
    "io": ("tok_in", "tok_out"),
}

# Digit d (0..7) is stored as a via at site SITE_OF_DIGIT[d] of the 3x3 cell; site 4 (centre) is
# the pad's output via, present in every used cell.
SITE_OF_DIGIT = (0, 1, 2, 3, 5, 6, 7, 8)
DIGIT_OF_SITE = {s: d for d, s in enumerate(SITE_OF_DIGIT)}
OUTPUT_SITE = 4


@dataclass(frozen=True)
class Geometry:
    die: Die

    # --- digit cell -------------------------------------------------------------------------
    @cached_property
    def pad(self) -> tuple[int, int, int, int]:
        """Metal pad of a cell relative to the cell origin: (x0, y0, x1, y1)."""
        p, s, v, e = self.die.cell.pitch, self.die.cell.site_pitch, self.die.rules.via_size, self.die.rules.via_enclosure
        side = 2 * s + v + 2 * e
        lo = (p - side) // 2
        return (lo, lo, lo + side, lo + side)

    def site_center(self, site: int) -> tuple[int, int]:
        """Centre of via site 0..8 (row-major, 3x3) relative to the cell origin."""
        x0, y0, _, _ = self.pad
        off = self.die.rules.via_enclosure + self.die.rules.via_size // 2
        s = self.die.cell.site_pitch
        return (x0 + off + (site % 3) * s, y0 + off + (site // 3) * s)

    def digit_offsets(self) -> np.ndarray:
        """Centre of each digit's select via relative to its cell origin, int64 [8, 2]: where the
        mask writers draw digit d and where sign-off reads it back from (both from here)."""
        return np.array([self.site_center(s) for s in SITE_OF_DIGIT], np.int64)

    # --- sites and tiles --------------------------------------------------------------------
    @cached_property
    def tile_w(self) -> int:
        t = self.die.tiles
        cols = max(t.mac.cols, t.vu.cols, t.sram.cols, t.io.cols)
        return cols * self.die.cell.pitch + 2 * t.margin

    @cached_property
    def tile_h(self) -> int:
        t = self.die.tiles
        rows = max(t.mac.rows, t.vu.rows, t.sram.rows, t.io.rows)
        return rows * self.die.cell.pitch + 2 * t.margin + t.pin_area

    @cached_property
    def gap_w(self) -> int:
        r = self.die.routing
        return (2 * r.feedthroughs + 1) * r.feedthrough_pitch

    @cached_property
    def channel_h(self) -> int:
        r = self.die.routing
        return r.channel_tracks * r.track_pitch + 2 * r.channel_margin

    @cached_property
    def pitch_x(self) -> int:
        return self.tile_w + self.gap_w

    @cached_property
    def pitch_y(self) -> int:
        return self.tile_h + self.channel_h

    @cached_property
    def size(self) -> tuple[int, int]:
        """Die width and height, nm."""
        return (self.die.grid.n_cols * self.pitch_x, self.die.grid.n_rows * self.pitch_y)

    def tile_origin(self, site: tuple[int, int]) -> tuple[int, int]:
        c, r = site
        return (c * self.pitch_x, r * self.pitch_y + self.channel_h)

    def tile_box(self, site: tuple[int, int]) -> tuple[int, int, int, int]:
        x, y = self.tile_origin(site)
        return (x, y, x + self.tile_w, y + self.tile_h)

    def rom_origin(self, site: tuple[int, int]) -> tuple[int, int]:
        """Lower-left corner of cell (0, 0) of the tile's ROM array."""
        x, y = self.tile_origin(site)
        t = self.die.tiles
        return (x + t.margin, y + t.margin + t.pin_area)

    # --- pins, channels, feedthroughs -------------------------------------------------------
    def pin_x(self, kind: TileKind, pin: str, col: int) -> int:
        t = self.die.tiles
        return col * self.pitch_x + t.margin + (PINS[kind].index(pin) + 1) * t.pin_pitch

    def channel_y0(self, row: int) -> int:
        return row * self.pitch_y

    def track_y(self, row: int, track: int) -> int:
        r = self.die.routing
        return self.channel_y0(row) + r.channel_margin + track * r.track_pitch + r.track_pitch // 2

    def feedthrough_x(self, col: int, row: int, k: int) -> int:
        """x of feedthrough segment k in the gap right of `col`, joining channel row to row+1."""
        p = self.die.routing.feedthrough_pitch
        return col * self.pitch_x + self.tile_w + p // 2 + (2 * k + row % 2) * p

    @cached_property
    def wire_half(self) -> int:
        """Half-width of a track wire: a via plus its enclosure on both sides."""
        return max(self.die.rules.metal_width, self.die.rules.via_size + 2 * self.die.rules.via_enclosure) // 2

    @cached_property
    def wire_end(self) -> int:
        """How far a track wire extends past the centre of its end vias."""
        return self.die.rules.via_size // 2 + self.die.rules.via_enclosure


def check_rules(die: Die) -> list[str]:
    """Problems that would make every compile on this die violate its own design rules."""
    g = Geometry(die)
    r, out = die.rules, []
    x0, _, x1, _ = g.pad
    if x1 - x0 < r.metal_width:
        out.append(f"cell pad {x1 - x0} nm is narrower than metal_width {r.metal_width}")
    if die.cell.pitch - (x1 - x0) < r.metal_space:
        out.append(f"cell pitch {die.cell.pitch} leaves {die.cell.pitch - (x1 - x0)} nm between pads < metal_space {r.metal_space}")
    if die.cell.site_pitch - r.via_size < r.via_space:
        out.append(f"cell.site_pitch {die.cell.site_pitch} leaves less than via_space {r.via_space} between vias")
    if 2 * g.wire_half > die.routing.track_pitch - r.metal_space:
        out.append(f"routing.track_pitch {die.routing.track_pitch} leaves less than metal_space between tracks")
    if die.routing.feedthrough_pitch - r.via_size < r.via_space:
        out.append("routing.feedthrough_pitch leaves less than via_space between feedthrough vias")
    if die.tiles.pin_pitch - r.via_size < r.via_space:
        out.append("tiles.pin_pitch leaves less than via_space between pin vias")
    for kind, pins in PINS.items():
        if (len(pins) + 1) * die.tiles.pin_pitch > g.tile_w - die.tiles.margin:
            out.append(f"{kind} tile is too narrow for its {len(pins)} pins")
    if die.routing.channel_margin < r.metal_space:
        out.append("routing.channel_margin must be at least metal_space")
    return out
