"""Teacher-forced emulation one layer block at a time, for chips too large to decode at once (the
8B chip's 13 G digit cells; sign-off of large chips, `signoff/verify.py`).

Blocks are run in the order they arrive (the masks' order, which is the dataflow order: io, head,
L0 .. L31, tail). A block's tiles are decoded, fused and run over all T positions of the token
sequence at once (a prefill: the rows are consecutive positions of one sequence, attention is
causal over them), then freed. Only the values of nets that later blocks read are kept, [T, width]
each. The arithmetic is `Emulator`'s, tile for tile.

Each block runs twice on the same decoded tiles: *chained*, on what the emulated blocks before it
computed (the chip end to end), and, given `teacher` (the reference's hidden state entering the
block), *teacher-forced* at the block boundary: so a block's deviation from the reference is its
own, not the int8 rounding drift that 32 chained layers accumulate.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import numpy as np

from taalas_compile.config.die import Die
from taalas_compile.emulator.chip import ChipImage, TileRef
from taalas_compile.emulator.compare import nonfinite
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


def check_finite(block: str, what: str, x: np.ndarray | None) -> None:
    """EmulationError at the first NaN or Inf of `x`: a chip that computes one cannot be signed off,
    and a NaN would pass any later `>` comparison."""
    if x is not None and (at := nonfinite(x)) is not None:
        raise EmulationError(f"block {block}: {what} {at} is not finite")


def _forward(block: str, emu: Emulator, given: dict, pos: np.ndarray, seqs: list[int]) -> dict:
    try:
        return emu.forward(given, pos, seqs)
    except EmulationError as e:
        raise EmulationError(f"block {block}: {e}") from None


@dataclass
class BlockRun:
    block: str
    stage: str | None
    out: np.ndarray | None  # [T, width]: the one net the block passes on (the residual stream), chained
    forced: np.ndarray | None  # the same, teacher-forced (None without a teacher); logits for the last block
    seconds: float


class StreamEmulator:
    """`run_block(block, roms)` for each block in dataflow order; then `.logits` [T, vocab]."""

    def __init__(self, pl: Placement, die: Die, tokens: list[int], link_stage: str | None = None):
        """`link_stage`: on a die of a system taking the previous die's link, the stage whose output
        the link carries; its value is given with `give_link` before the first block runs."""
        self.tiles = tuple(TileRef(t.name, t.kind, t.site) for t in pl.tiles)
        self.nets = tuple(frozenset(str(p) for p in n.pins) for n in pl.nets)
        self.by_block: dict[str, list[Tile]] = {}
        for t in pl.tiles:
            self.by_block.setdefault(t.block, []).append(t)
        self.block_of = {t.name: t.block for t in pl.tiles}
        self.die, self.n = die, len(tokens)
        io = next(t.name for t in pl.tiles if t.kind == "io")
        self.io_net = next((i for i, net in enumerate(self.nets) if f"{io}.tok_out" in net), None)
        self.link_stage = link_stage
        self.values: dict[int, np.ndarray] = {}
        if self.io_net is not None and link_stage is None:
            self.values[self.io_net] = np.asarray(tokens, np.float32)[:, None]
        self.stage_of_net: dict[int, str | None] = {}  # net -> stage of the block that drove it
        self.logits: np.ndarray | None = None  # chained
        self.forced_logits: np.ndarray | None = None  # the last block, teacher-forced

    def give_link(self, x: np.ndarray) -> None:
        """The previous die's link [T, width]: what enters this die, named as the stage it carries."""
        if self.io_net is not None:
            self.values[self.io_net] = x.astype(np.float32)
            self.stage_of_net[self.io_net] = self.link_stage

    @property
    def needs_link(self) -> bool:
        return self.link_stage is not None and self.io_net is not None and self.io_net not in self.values

    def _incoming(self, block: str) -> list[int]:
        """Nets from earlier blocks that the block reads (its pins on nets driven elsewhere)."""
        pins = {f"{t.name}." for t in self.by_block[block]}
        return [n for n in self.values if any(p.startswith(tuple(pins)) for p in self.nets[n])]

    def teacher_stage(self, block: str) -> str | None:
        """The stage whose output enters `block` (what a teacher must give), None if tokens do."""
        stages = {self.stage_of_net.get(n) for n in self._incoming(block)} - {None}
        return stages.pop() if len(stages) == 1 else None

    def run_block(self, block: str, roms: dict[str, np.ndarray], teacher: np.ndarray | None = None) -> BlockRun:
        t0 = time.perf_counter()
        tiles = self.by_block[block]
        only = frozenset(t.name for t in tiles if t.kind != "io")
        if not only:
            return BlockRun(block, None, None, None, 0.0)
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
        pos, seqs = np.arange(self.n), [0] * self.n
        forced = None
        if teacher is not None:  # first, so the chained run leaves the KV cache and logits as the chip would
            check_finite(block, "the reference's input", teacher)
            entering = [n for n in given if self.stage_of_net.get(n) is not None]
            if len(entering) != 1 or given[entering[0]].shape != teacher.shape:
                raise EmulationError(f"block {block}: cannot be teacher-forced ({len(entering)} nets enter it from earlier stages)")
            fo = _forward(block, emu, {**given, entering[0]: teacher.astype(np.float32)}, pos, seqs)
            forced = emu.logits if emu.argmax is not None else None
        out = _forward(block, emu, given, pos, seqs)
        leaving = [n for n in out if any(self.block_of[p.rpartition(".")[0]] != block for p in self.nets[n])]
        stage = stage_of(tiles)
        passed = [n for n in leaving if n not in given]
        from_tokens = not any(self.stage_of_net.get(n) for n in given)  # its input is the teacher's already
        if emu.argmax is not None:
            self.logits, self.forced_logits = emu.logits, (emu.logits if from_tokens else forced)
        elif len(passed) == 1 and (teacher is not None or from_tokens):
            forced = (fo if teacher is not None else out)[passed[0]]
        for n in leaving:
            check_finite(block, f"net of {min(self.nets[n])}", out[n])
        check_finite(block, "teacher-forced output", forced)
        check_finite(block, "logits", emu.logits if emu.argmax is not None else None)
        self.values.update({n: out[n] for n in leaving})
        self.stage_of_net.update({n: stage for n in leaving})
        return BlockRun(block, stage, out[passed[0]] if len(passed) == 1 else None, forced, time.perf_counter() - t0)
