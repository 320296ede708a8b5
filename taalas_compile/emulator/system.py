"""The dies of a multi-die system chained through their links (system/ir.py): each step feeds the
tokens to die 0, each die's link output to the next die, and the last die's sampled tokens come
back. `SystemCycles` adds the links to the dies' cycle models."""

from __future__ import annotations

import itertools

import numpy as np

from taalas_compile.config.die import TOKEN_BYTES, Die
from taalas_compile.emulator import tiles as T
from taalas_compile.emulator.cycles import CycleModel, timing_report
from taalas_compile.emulator.run import Driver, Emulator


class SystemEmulator(Driver):
    def __init__(self, dies: list[Emulator]):
        for k, (a, b) in enumerate(itertools.pairwise(dies)):
            if a.link.link_out != b.link.link_in or not a.link.link_out:
                raise T.EmulationError(f"die {k} sends {a.link.link_out} values per token, die {k + 1} receives {b.link.link_in}")
        if dies[0].link.link_in or dies[-1].link.link_out:
            raise T.EmulationError("the first die must take tokens and the last die sample them (link widths in their I/O tiles)")
        self.dies = dies
        self.positions: list[list[int]] = []

    @property
    def sequences(self) -> int:
        return min(d.sequences for d in self.dies)

    @property
    def context(self) -> int:
        return min(d.context for d in self.dies)

    @property
    def logits(self) -> np.ndarray | None:
        return self.dies[-1].logits

    @property
    def chip(self):
        """Die 0's chip (its I/O tile holds the vocabulary)."""
        return self.dies[0].chip

    @property
    def io(self) -> str:
        return self.dies[0].io

    @property
    def units(self) -> list:
        return [u for d in self.dies for u in d.units]

    @property
    def trace(self) -> dict | None:
        if self.dies[0].trace is None:
            return None
        return {k: v for d in self.dies for k, v in (d.trace or {}).items()}

    @trace.setter
    def trace(self, value: dict | None) -> None:
        for d in self.dies:
            d.trace = None if value is None else {}

    @property
    def sram(self) -> dict:
        return {k: v for d in self.dies for k, v in d.sram.items()}

    def reset(self) -> None:
        for d in self.dies:
            d.reset()
        self.positions = []

    def step_batch(self, tokens: list[int], positions: list[int], seqs: list[int]) -> np.ndarray:
        x = np.asarray(tokens, np.float32)[:, None]
        for d in self.dies:
            x = d.stage_step(x, positions, seqs)
        self.positions.append(list(positions))
        return x[:, 0].astype(np.int64)


class SystemCycles:
    """Cycles per token of every die (its own `CycleModel`) plus the links: each hop's latency and
    payload at the link bandwidth (`dim` fp32 values), and the sampled token back to die 0. In a
    full pipeline the slowest die's slowest tile or the link's payload time sets the period."""

    def __init__(self, sysemu: SystemEmulator, die: Die):
        if die.link is None:
            raise T.EmulationError(f"die {die.name} has no [link]: a system of its dies cannot be timed")
        self.die = die
        self.models = [CycleModel(d, die) for d in sysemu.dies]
        hz = die.clock.mhz * 1e6
        widths = [d.link.link_out for d in sysemu.dies[:-1]]
        self.link_seconds = sum(die.link.seconds(4 * w) for w in widths) + die.link.seconds(TOKEN_BYTES)
        self.link_cycles = self.link_seconds * hz
        self.link_period = max(4 * w for w in widths) / (die.link.gbytes_per_s * 1e9) * hz  # cycles the busiest link is busy per token

    def latency(self, seq_len: int) -> tuple[float, float]:
        per = [m.latency(seq_len) for m in self.models]
        return sum(c for c, _ in per) + self.link_cycles, max(max(s for _, s in per), self.link_period)

    def report(self, steps: list[list[int]]) -> dict:
        return timing_report(self.latency, steps, self.die) | {"dies": len(self.models), "link_us_per_token": self.link_seconds * 1e6}
