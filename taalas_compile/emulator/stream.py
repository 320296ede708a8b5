"""Teacher-forced emulation one layer block at a time, for chips too large to decode at once (the
8B chip's 13 G digit cells; sign-off of large chips, `signoff/verify.py`).

Blocks are run in the order they arrive (the masks' order, which is the dataflow order: io, head,
L0 .. L31, tail). A block's tiles are decoded, fused and run once over all T positions of the
token sequence (a prefill: the rows are consecutive positions of one sequence, attention is causal
over them), then freed. Only the values of nets that later blocks read are kept, [T, width] each.
The arithmetic is `Emulator`'s, tile for tile.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import numpy as np

from taalas_compile.config.die import Die
from taalas_compile.emulator.chip import ChipImage, TileRef
from taalas_compile.emulator.groups import MatGroup
from taalas_compile.emulator.run import Emulator
from taalas_compile.emulator.tiles import EmulationError
from taalas_compile.mapper.ir import Placement, Role, Tile

_LAYER = re.compile(r"model\.layers\.(\d+)\.")


def stage_of(tiles: list[Tile]) -> str | None:
    """What a block computes, named as `quant/reference_stream.py` names its stages: "embed",
    "layers.N" or "logits" (None: nothing to compare, e.g. the io block)."""
    layers = {m.group(1) for t in tiles if (m := _LAYER.match(t.node))}
    if len(layers) == 1:
        return f"layers.{layers.pop()}"
    roles = {t.role for t in tiles}
    if Role.ARGMAX in roles:
        return "logits"
    if Role.LOOKUP in roles:
        return "embed"
    return None


@dataclass
class BlockRun:
    block: str
    stage: str | None
    out: np.ndarray | None  # [T, width]: the one net the block passes on (the residual stream), if it is one
    seconds: float


class StreamEmulator:
    """`run_block(block, roms)` for each block in dataflow order; then `.logits` [T, vocab]."""

    def __init__(self, pl: Placement, die: Die, tokens: list[int]):
        self.tiles = tuple(TileRef(t.name, t.kind, t.site) for t in pl.tiles)
        self.nets = tuple(frozenset(str(p) for p in n.pins) for n in pl.nets)
        self.by_block: dict[str, list[Tile]] = {}
        for t in pl.tiles:
            self.by_block.setdefault(t.block, []).append(t)
        self.block_of = {t.name: t.block for t in pl.tiles}
        self.die, self.n = die, len(tokens)
        io = next(t.name for t in pl.tiles if t.kind == "io")
        io_net = next((i for i, net in enumerate(self.nets) if f"{io}.tok_out" in net), None)
        self.values: dict[int, np.ndarray] = {} if io_net is None else {io_net: np.asarray(tokens, np.float32)[:, None]}
        self.logits: np.ndarray | None = None

    def run_block(self, block: str, roms: dict[str, np.ndarray]) -> BlockRun:
        t0 = time.perf_counter()
        tiles = self.by_block[block]
        only = frozenset(t.name for t in tiles if t.kind != "io")
        if not only:
            return BlockRun(block, None, None, 0.0)
        a = self.die.arith
        emu = Emulator(ChipImage(self.tiles, roms, self.nets, a.act_bits, a.kv_bits, self.die.tiles.sram.bytes), only)
        for u in emu.units:  # fused matrix tiles' codes live on in their group only
            if isinstance(u.impl, MatGroup):
                for name in u.tiles:
                    emu.programs[name].codes = None
            if u.role is Role.ATTENTION:
                u.state["kv"].check(0, self.n - 1)
        driven = {u.out for u in emu.units if u.out is not None}
        given = {}
        for u in emu.units:
            for n in u.inputs:
                if n in self.values:
                    given[n] = self.values[n]
                elif n not in driven:
                    pin = min(self.nets[n])
                    raise EmulationError(f"block {block} reads the net of {pin} before the block driving it has run "
                                         "(the masks are not in dataflow order)")
        out = emu.forward(given, np.arange(self.n), [0] * self.n)
        leaving = [n for n in out if any(self.block_of[p.rpartition(".")[0]] != block for p in self.nets[n])]
        self.values.update({n: out[n] for n in leaving})
        if emu.argmax is not None:
            self.logits = emu.logits
        passed = [n for n in leaving if n not in given]
        return BlockRun(block, stage_of(tiles), out[passed[0]] if len(passed) == 1 else None, time.perf_counter() - t0)
