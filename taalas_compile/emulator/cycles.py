"""Cycle model: clock cycles each tile takes per token, from the die's parameters and the tile's own
program, and what they add up to for the tokens an emulator run executed.

Per tile and token (sequence length T: the token's position + 1):

- MAC tile, matvec: max(ceil(rows x cols / macs_per_cycle), ceil(rows x row digits / rom_read_digits))
  + mac_latency; lookup reads one row: ceil(cols / macs_per_cycle) + mac_latency.
- attention: max(ceil(2 x heads x head_dim x T / lanes), sram_latency + ceil(KV bytes of T tokens /
  (bytes_per_cycle x connected SRAM tiles))) + vu_latency — K and V with their fp16 scales.
- other vector units: ceil(n / lanes) + vu_latency.

A token's latency is the longest path through the tile graph, `hop_cycles` per tile-to-tile hop
(pipeline registers). With S sequences in flight the pipeline issues their tokens back to back,
one per slowest-tile time: a step of S tokens takes latency + (S - 1) x slowest cycles.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import networkx as nx

from taalas_compile.config.die import Die
from taalas_compile.die.program import (
    VECTOR_PROGRAMS,
    Attention,
    Lookup,
    MatVec,
    TileProgram,
)
from taalas_compile.die.rom_format import group_layout
from taalas_compile.emulator.chip import DRIVER_PINS


def tile_cycles(p: TileProgram, die: Die, seq_len: int, n_sram: int = 1) -> int:
    """Cycles one tile running program `p` takes for one token at sequence length `seq_len`
    (`n_sram`: the SRAM tiles an attention unit's KV cache is spread over)."""
    tm = die.timing
    if isinstance(p, MatVec):
        macs = math.ceil(p.n_rows * p.n_cols / die.tiles.mac.macs_per_cycle)
        rom = math.ceil(p.n_rows * group_layout(p.n_cols, p.group, p.bits)[2] / tm.rom_read_digits)
        return max(macs, rom) + tm.mac_latency
    if isinstance(p, Lookup):
        return math.ceil(p.n_cols / die.tiles.mac.macs_per_cycle) + tm.mac_latency
    if isinstance(p, Attention):
        n_heads, n_kv, hd = p.n_heads, p.n_kv_heads, p.head_dim
        compute = math.ceil(2 * n_heads * hd * seq_len / die.tiles.vu.lanes)
        sram = tm.sram_latency + math.ceil(seq_len * die.arith.kv_bytes(n_kv, hd) / (die.tiles.sram.bytes_per_cycle * max(n_sram, 1)))
        return max(compute, sram) + tm.vu_latency
    if isinstance(p, VECTOR_PROGRAMS):
        return math.ceil(p.n / die.tiles.vu.lanes) + tm.vu_latency
    return 0


class CycleModel:
    """The tile graph of an emulator's chip with per-tile cycles; latency at any sequence length."""

    def __init__(self, emu, die: Die):
        self.die = die
        kinds = {t.name: t.kind for t in emu.chip.tiles}
        self.n_sram = {name: len(srams) for name, srams in emu.sram_of.items()}
        self.programs = {n: p.header for n, p in emu.programs.items() if kinds[n] in ("mac", "vu")}
        self.kinds = kinds
        g = nx.DiGraph()
        g.add_nodes_from(self.programs)
        for net in emu.chip.nets:
            pins = [p.rpartition(".") for p in net]
            drivers = [t for t, _, pin in pins if pin in DRIVER_PINS and t in self.programs]
            sinks = [t for t, _, pin in pins if pin not in DRIVER_PINS and t in self.programs]
            g.add_edges_from((d, s) for d in drivers for s in sinks if d != s)
        self.order = list(nx.topological_sort(g))
        self.preds = {n: list(g.predecessors(n)) for n in self.order}
        self.static = {n: tile_cycles(p, die, 1) for n, p in self.programs.items() if not isinstance(p, Attention)}
        self._cache: dict[int, tuple[int, int]] = {}

    def per_tile(self, seq_len: int) -> dict[str, int]:
        """Cycles of every MAC tile and vector unit for one token at `seq_len`."""
        out = dict(self.static)
        for n, p in self.programs.items():
            if isinstance(p, Attention):
                out[n] = tile_cycles(p, self.die, seq_len, self.n_sram.get(n, 1))
        return out

    def latency(self, seq_len: int) -> tuple[int, int]:
        """(cycles through the longest tile path, cycles of the slowest tile) for one token."""
        if seq_len not in self._cache:
            c = self.per_tile(seq_len)
            hop = self.die.clock.hop_cycles
            longest: dict[str, int] = {}
            for n in self.order:
                longest[n] = c[n] + max((longest[p] + hop for p in self.preds[n]), default=0)
            self._cache[seq_len] = (max(longest.values(), default=0), max(c.values(), default=0))
        return self._cache[seq_len]

    def report(self, steps: list[list[int]]) -> dict:
        """Timing of the steps an emulator ran (each step: the positions of the sequences in flight)."""
        return timing_report(self.latency, steps, self.die)


def timing_report(latency: Callable[[int], tuple[float, float]], steps: list[list[int]], die: Die) -> dict:
    """What `latency(seq_len)` -> (cycles per token, pipeline period) adds up to over the steps an
    emulator ran: a step of S sequences takes the longest latency + (S - 1) periods."""
    hz = die.clock.mhz * 1e6
    lat, total, tokens, in_flight = [], 0, 0, 0
    for positions in steps:
        per = [latency(p + 1) for p in positions]
        lat += [c for c, _ in per]
        total += max(c for c, _ in per) + (len(per) - 1) * max(s for _, s in per)
        tokens += len(per)
        in_flight = max(in_flight, len(per))
    mean = sum(lat) / max(len(lat), 1)
    return {
        "clock_mhz": die.clock.mhz, "tokens": tokens, "sequences_in_flight": in_flight,
        "latency_cycles_per_token": mean, "latency_us_per_token": mean / hz * 1e6,
        "tokens_per_s_single": hz / mean if mean else 0.0,
        "tokens_per_s_aggregate": hz * tokens / total if total else 0.0,
        "run_cycles": total,
    }
