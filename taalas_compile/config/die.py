"""The base die: the fixed grid, tiles, routing fabric, the two customisable layers and their rules.

A die is data (`base_die/NAME.toml`); this module types it and derives nothing physical — the
geometry that follows from these numbers lives in `taalas_compile/die/`. All lengths are integer
nanometres (the GDSII database unit is 1 nm).
"""

from __future__ import annotations

from functools import cached_property
from typing import Literal

from pydantic import Field, model_validator

from taalas_compile.config.loading import Strict

TileKind = Literal["mac", "vu", "sram", "io"]
KIND_OF_LETTER: dict[str, TileKind] = {"M": "mac", "V": "vu", "S": "sram", "I": "io"}


class GdsLayer(Strict):
    name: str  # shown in KLayout through the .lyp file
    layer: int = Field(ge=0, le=65535)  # GDSII layer number
    datatype: int = Field(ge=0, le=65535)  # GDSII datatype of drawn shapes
    color: str = "#888888"  # .lyp fill colour


class Layers(Strict):
    via: GdsLayer  # customisable via layer: connects the fixed fabric below to the custom metal
    metal: GdsLayer  # customisable top metal
    label_datatype: int = 10  # text labels go on (metal.layer, label_datatype)


class Rules(Strict):
    """Design rules of the two customisable layers, nm."""

    metal_width: int = Field(gt=0)  # minimum metal width
    metal_space: int = Field(gt=0)  # minimum metal-to-metal spacing
    via_size: int = Field(gt=0)  # vias are squares of exactly this side
    via_space: int = Field(gt=0)  # minimum via-to-via spacing
    via_enclosure: int = Field(ge=0)  # metal must extend at least this far past every via edge


class Cell(Strict):
    """The digit cell: one metal pad over a 3x3 array of via sites (see docs/die-model.md).

    The centre site is the pad's output via; the other eight select one of eight product lines
    of the fixed fabric below, so a cell stores one octal digit.
    """

    pitch: int = Field(gt=0)  # cell pitch in x and y, nm
    site_pitch: int = Field(gt=0)  # distance between via-site centres inside the cell, nm


class RomArray(Strict):
    rows: int = Field(gt=0)  # digit-cell rows; row 0 holds the tile's program words
    cols: int = Field(gt=0)  # digit-cell columns


class MacTile(RomArray):
    """Mask-ROM multiply tile: weight codes and scales as digits, integer MAC lanes."""

    macs_per_cycle: int = Field(gt=0)  # weight x activation products per clock


class VectorUnit(RomArray):
    """Vector unit: norm, RoPE, attention, SiLU*mul, add, argmax; constants in its own ROM."""

    lanes: int = Field(gt=0)  # fp32 elements per clock


class SramTile(RomArray):
    bytes: int = Field(gt=0)  # capacity
    bytes_per_cycle: int = Field(gt=0)  # read bandwidth


class IoTile(RomArray):
    pass


class Tiles(Strict):
    mac: MacTile
    vu: VectorUnit
    sram: SramTile
    io: IoTile
    margin: int = Field(ge=0)  # keep-out from the tile edge to its ROM array, nm
    pin_pitch: int = Field(gt=0)  # spacing of the tile's pins along its bottom edge, nm
    pin_area: int = Field(ge=0)  # height reserved under the ROM array for pins, nm


class SiteGrid(Strict):
    """Sites of the die. `rows` lists site rows bottom to top, one letter per site:
    M mac, V vector unit, S SRAM, I I/O."""

    rows: list[str] = Field(min_length=1)

    @cached_property
    def n_rows(self) -> int:
        return len(self.rows)

    @cached_property
    def n_cols(self) -> int:
        return len(self.rows[0])


class RoutingFabric(Strict):
    """Prefabricated fabric for inter-tile nets (see docs/die-model.md)."""

    channel_tracks: int = Field(ge=0)  # custom-metal tracks in the channel under each site row
    track_pitch: int = Field(gt=0)  # nm
    feedthroughs: int = Field(ge=0)  # fixed vertical segments per column gap per site row
    feedthrough_pitch: int = Field(gt=0)  # nm
    channel_margin: int = Field(ge=0)  # nm between a channel's outer tracks and the tiles


class Arithmetic(Strict):
    """What the tiles compute with; the emulator and the quantized reference follow this."""

    act_bits: int = Field(default=8, gt=1)  # activations enter a MAC tile as signed integers, one scale per weight group
    accumulator_bits: int = Field(default=32, gt=1)  # integer accumulator per group
    scale_format: Literal["fp16"] = "fp16"  # per-group weight scales as etched
    bus_format: Literal["fp32"] = "fp32"  # vectors between tiles
    weight_bits: list[Literal[3, 6]] = Field(default=[3, 6], min_length=1)  # code widths the MAC cells implement
    kv_bits: int = Field(default=8, gt=1)  # KV-cache element width: K and V stored as signed kv_bits-bit integers
    kv_format: Literal["int_token_fp16"] = "int_token_fp16"  # one fp16 scale per (token, KV head); docs/emulator.md
    lora_format: Literal["fp16"] = "fp16"  # LoRA A and B matrices as stored in SRAM

    def kv_bytes(self, n_kv_heads: int, head_dim: int) -> int:
        """SRAM bytes one token's K and V take: integer codes plus one fp16 scale per KV head each."""
        return 2 * n_kv_heads * (head_dim * self.kv_bits // 8 + 2)


class Clock(Strict):
    mhz: float = Field(gt=0)  # core clock
    hop_cycles: int = Field(default=2, ge=0)  # pipeline-register cycles for one tile-to-tile hop


class Timing(Strict):
    """Cycle-level parameters of the tiles (docs/emulator.md, "Cycle model")."""

    rom_read_digits: int = Field(gt=0)  # digit cells a MAC tile reads from its ROM per clock
    mac_latency: int = Field(ge=0)  # cycles from a MAC tile's first input to its first output (ROM read, multiply, adder tree)
    vu_latency: int = Field(ge=0)  # pipeline depth of a vector unit, cycles
    sram_latency: int = Field(ge=0)  # cycles from an SRAM read request to its data


class Fab(Strict):
    """Schedule figures for planning (weeks): the two custom masks on banked base wafers."""

    freeze_weeks: float = Field(default=1.0, ge=0)  # model freeze and quantization sign-off (team work)
    mask_weeks: float = Field(ge=0)  # making the two masks
    process_weeks: float = Field(ge=0)  # processing the two layers on banked base wafers
    package_test_weeks: float = Field(ge=0)
    bring_up_weeks: float = Field(ge=0)
    fix_weeks: float = Field(default=0.5, ge=0)  # finding and fixing the cause of a failed sign-off before recompiling


class Power(Strict):
    """Watts per tile kind at full activity; a tile busy a fraction of each token draws that fraction."""

    watts_per_mac_tile: float = Field(ge=0)  # at full activity
    watts_per_vu: float = Field(ge=0)
    watts_per_sram: float = Field(ge=0)
    static_watts: float = Field(ge=0)  # leakage, clock tree and I/O of the whole die, whatever it runs


class Link(Strict):
    """The die-to-die link a model split over several dies passes its residual stream through."""

    gbytes_per_s: float = Field(gt=0)  # payload bandwidth per direction, GB/s
    latency_ns: float = Field(ge=0)  # one hop, serialisation of the first byte to arrival
    watts: float = Field(ge=0)  # per link endpoint pair while active

    def seconds(self, n_bytes: int) -> float:
        """One hop of `n_bytes`: latency, then the payload at the link's bandwidth."""
        return self.latency_ns * 1e-9 + n_bytes / (self.gbytes_per_s * 1e9)


TOKEN_BYTES = 4  # a sampled token id on the link back from the last die to the first


class Die(Strict):
    name: str
    description: str
    process: str  # process node the parameters stand for
    grid: SiteGrid
    tiles: Tiles
    cell: Cell
    layers: Layers
    rules: Rules
    routing: RoutingFabric
    arith: Arithmetic
    clock: Clock
    timing: Timing
    fab: Fab
    power: Power
    link: Link | None = None  # none: the die cannot be one of several (a model must fit it whole)
    sources: list[str] = []  # where the parameters come from

    @model_validator(mode="after")
    def _check(self) -> Die:
        widths = {len(r) for r in self.grid.rows}
        if len(widths) != 1:
            raise ValueError("grid.rows must all have the same length")
        bad = {ch for r in self.grid.rows for ch in r} - set(KIND_OF_LETTER)
        if bad:
            raise ValueError(f"grid.rows: unknown site letters {sorted(bad)} (use M, V, S, I)")
        if sum(r.count("I") for r in self.grid.rows) != 1:
            raise ValueError("grid.rows must hold exactly one I/O site (I)")
        return self

    def sites(self, kind: TileKind) -> list[tuple[int, int]]:
        """Sites (col, row) of a kind, in serpentine pipeline order (row 0 left to right, row 1
        right to left, ...), which keeps consecutive pipeline stages next to each other."""
        out = []
        for r, row in enumerate(self.grid.rows):
            cols = range(len(row)) if r % 2 == 0 else range(len(row) - 1, -1, -1)
            out += [(c, r) for c in cols if KIND_OF_LETTER[row[c]] == kind]
        return out

    def rom(self, kind: TileKind) -> RomArray:
        return getattr(self.tiles, kind)
