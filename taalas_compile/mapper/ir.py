"""The placement IR: tile instances on die sites and the nets between their pins.

A `Tile` is one site of the die programmed for one job (its *role*): a block of a weight matrix
(`matvec` / `lookup` on a MAC tile), one vector operation (on a vector unit), a KV-cache or LoRA
reservation (on an SRAM tile), or the host interface (I/O). Its program — role and parameters, a
typed class per role (die/program.py) — is etched in the first row of its ROM array as header
words (docs/file-formats.md).

A `Net` is one value on the die: the output pins of every tile that produces it (a bus of disjoint
or summed lanes) joined to every input pin that consumes it. A sink's input vector is the sum of
the drivers' outputs, each placed at the driver's `out_offset` — so row blocks of a matrix
concatenate, column blocks add up as partial sums, and embedding row blocks select.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from taalas_compile.config.die import TileKind
from taalas_compile.die.program import MAC_PROGRAMS, Role, TileProgram


@dataclass(frozen=True)
class Slice:
    """Rows [r0, r1) and columns [c0, c1) of a weight matrix [out, in]."""

    param: str
    r0: int
    r1: int
    c0: int
    c1: int


@dataclass(frozen=True)
class Tile:
    name: str  # unique, e.g. "L0.q_proj.r0c0", "L0.attn", "io"
    kind: TileKind
    site: tuple[int, int]  # (col, row) on the die grid
    node: str  # graph node it implements ("" for SRAM reservations)
    block: str  # layer block for the mask hierarchy: "io", "head", "L0".."Ln", "tail"
    program: TileProgram  # what it is set to do: its ROM's header row (die/program.py)
    slice: Slice | None = None  # the weight block of a MAC tile

    @property
    def role(self) -> Role:
        return self.program.role

    @property
    def bits(self) -> int:
        """Code width of a MAC tile's weights; 0 for other tiles."""
        return self.program.bits if isinstance(self.program, MAC_PROGRAMS) else 0

    @property
    def group(self) -> int:
        """Codes per scale of a MAC tile's weights; 0 for other tiles."""
        return self.program.group if isinstance(self.program, MAC_PROGRAMS) else 0


@dataclass(frozen=True)
class Pin:
    tile: str
    pin: str

    def __str__(self) -> str:
        return f"{self.tile}.{self.pin}"


@dataclass(frozen=True)
class Net:
    name: str  # the value it carries: the producing tile group, e.g. "L0.q_proj"
    drivers: tuple[Pin, ...]
    sinks: tuple[Pin, ...]

    @property
    def pins(self) -> tuple[Pin, ...]:
        return self.drivers + self.sinks


@dataclass(frozen=True)
class Placement:
    die: str
    tiles: tuple[Tile, ...]
    nets: tuple[Net, ...]
    by_name: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.by_name.update({t.name: t for t in self.tiles})

    def tile(self, name: str) -> Tile:
        return self.by_name[name]
