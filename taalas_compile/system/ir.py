"""The system IR: a model split over several copies of one base die, one pipeline stage each.

Die k runs layer blocks `blocks` (contiguous, in pipeline order `head, L0 .. Ln-1, tail`). Link k
goes from die k to die k+1 and carries the residual stream after die k's last block: `dim` fp32
values per token, sent from die k's I/O tile (`tok_in` pin) and driven on die k+1's (`tok_out`).
Tokens enter die 0 and the sampled token leaves the last die, back to the host (and to die 0 for
the next step). Built from the planner's partition (`plan/partition.partition_model`) and checked
where it is built; `system/files.py` writes and reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

from taalas_compile.config.die import TOKEN_BYTES
from taalas_compile.plan.partition import Cut

FP32_BYTES = 4


def boundary_stage(block: str) -> str:
    """The residual stream's name after `block` (emulator/trace.py stage names): `embed` after the
    head, `Lk` after layer k."""
    return "embed" if block == "head" else block


def reference_stage(after: str) -> str:
    """The same stage as the layer-by-layer reference names it (quant/reference_stream.py)."""
    return "embed" if after == "embed" else f"layers.{after.removeprefix('L')}"


@dataclass(frozen=True)
class DieStage:
    index: int
    blocks: tuple[str, ...]  # layer blocks on this die, in pipeline order

    @property
    def dir(self) -> str:
        """The die's chip directory inside the system directory."""
        return f"die{self.index}"


@dataclass(frozen=True)
class Link:
    index: int
    src: int  # die sending (from its I/O tile's tok_in pin)
    dst: int  # die receiving (on its I/O tile's tok_out pin)
    after: str  # the residual stream after this block's stage (`boundary_stage`)
    values: int  # fp32 values per token

    @property
    def bytes_per_token(self) -> int:
        return self.values * FP32_BYTES


@dataclass(frozen=True)
class System:
    name: str  # recipe name
    die: str  # base die name: every die of the system is a copy of it
    dim: int  # residual stream width
    dies: tuple[DieStage, ...]
    links: tuple[Link, ...]

    def __post_init__(self) -> None:
        check_system(self)

    @property
    def token_bytes(self) -> int:
        """The sampled token's bytes on the way back from the last die."""
        return TOKEN_BYTES


def check_system(s: System) -> None:
    """Dies numbered 0..n-1 with blocks in pipeline order, each block on one die; link k from die
    k to die k+1. A system the compiler builds always passes: a failure is a compiler bug."""
    if [d.index for d in s.dies] != list(range(len(s.dies))) or len(s.dies) < 2:
        raise ValueError(f"system {s.name}: dies must be numbered 0..n-1, at least two: {[d.index for d in s.dies]}")
    blocks = [b for d in s.dies for b in d.blocks]
    if len(set(blocks)) != len(blocks) or any(not d.blocks for d in s.dies) or blocks[0] != "head" or blocks[-1] != "tail":
        raise ValueError(f"system {s.name}: blocks must run head .. tail, each on exactly one die: {blocks}")
    want = tuple(Link(k, k, k + 1, boundary_stage(s.dies[k].blocks[-1]), s.dim) for k in range(len(s.dies) - 1))
    if s.links != want:
        raise ValueError(f"system {s.name}: links must chain die k to die k+1 with the residual stream")


def system_of(name: str, die: str, dim: int, cuts: list[Cut]) -> System:
    """The system of a partition (two or more stages)."""
    dies = tuple(DieStage(c.die_index, c.blocks) for c in cuts)
    links = tuple(Link(k, k, k + 1, boundary_stage(dies[k].blocks[-1]), dim) for k in range(len(dies) - 1))
    return System(name, die, dim, dies, links)
