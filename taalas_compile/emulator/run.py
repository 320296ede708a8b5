"""Emulator: runs a `ChipImage` one token per step, tile by tile in dataflow order."""

from __future__ import annotations

import networkx as nx
import numpy as np

from taalas_compile.emulator import tiles as T
from taalas_compile.emulator.chip import DRIVER_PINS, ChipImage
from taalas_compile.mapper.ir import Role

INPUT_PINS = {Role.ATTENTION: ("a", "b", "c"), Role.SILU_MUL: ("a", "b"), Role.ADD: ("a", "b")}


class Emulator:
    def __init__(self, chip: ChipImage):
        self.chip = chip
        self.programs = {t.name: T.decode(t.name, chip.roms[t.name]) for t in chip.tiles if t.kind != "io"}
        kinds = {t.name: t.kind for t in chip.tiles}
        self.io = next(t.name for t in chip.tiles if t.kind == "io")
        self.sources: dict[tuple[str, str], list[str]] = {}  # (tile, input pin) -> driver tiles
        self.sram_of: dict[str, int] = {}  # attention tile -> SRAM tiles connected to its pin d
        for net in chip.nets:
            pins = [p.rpartition(".") for p in net]
            drivers = sorted(t for t, _, pin in pins if pin in DRIVER_PINS)
            for t, _, pin in pins:
                if pin == "d":
                    self.sram_of[t] = sum(kinds.get(u) == "sram" and q == "port" for u, _, q in pins)
                elif pin not in DRIVER_PINS and pin != "port":
                    self.sources.setdefault((t, pin), []).extend(d for d in drivers if d != t)
        g = nx.DiGraph()
        g.add_nodes_from(self.programs)
        for (t, pin), ds in self.sources.items():
            if t != self.io:
                g.add_edges_from((d, t) for d in ds if d != self.io)
        if not nx.is_directed_acyclic_graph(g):
            raise T.EmulationError("the connectivity has a combinational loop")
        index = {t.name: i for i, t in enumerate(chip.tiles)}
        self.order = [n for n in nx.lexicographical_topological_sort(g, key=index.__getitem__)
                      if self.programs[n].role not in (Role.KV, Role.LORA)]
        argmax = [n for n in self.order if self.programs[n].role is Role.ARGMAX]
        if len(argmax) != 1:
            raise T.EmulationError(f"expected one argmax unit, found {len(argmax)}")
        self.argmax = argmax[0]
        self.logits: np.ndarray | None = None

    def reset(self) -> None:
        for p in self.programs.values():
            p.state.clear()

    def _input(self, values: dict, tile: str, pin: str) -> np.ndarray:
        drivers = self.sources.get((tile, pin))
        if not drivers:
            raise T.EmulationError(f"{tile}: input pin {pin} is not connected")
        parts = [(self.programs[d].out_offset if d in self.programs else 0, values[d]) for d in drivers]
        n = max(off + v.size for off, v in parts)
        x = np.zeros(n, np.float32)
        for off, v in parts:
            x[off : off + v.size] += v
        return x

    def step(self, token: int, pos: int) -> int:
        """Feed one token at position `pos`; returns the chip's next token (logits in .logits)."""
        values: dict[str, np.ndarray] = {self.io: np.array([token], np.float32)}
        bits = self.chip.act_bits
        for name in self.order:
            p = self.programs[name]
            r = p.role
            if r is Role.MATVEC:
                out = T.matvec(p, self._input(values, name, "in"), bits)
            elif r is Role.LOOKUP:
                out = T.lookup(p, int(self._input(values, name, "in")[0]))
            elif r is Role.RMSNORM:
                out = T.rmsnorm(p, self._input(values, name, "a"))
            elif r is Role.ROPE:
                out = T.rope(p, self._input(values, name, "a"), pos)
            elif r is Role.ATTENTION:
                q, k, v = (self._input(values, name, pin) for pin in "abc")
                out = T.attention(p, q, k, v, pos, self.sram_of.get(name, 0) * self.chip.sram_bytes, self.chip.kv_bits)
            elif r is Role.SILU_MUL:
                out = T.silu_mul(self._input(values, name, "a"), self._input(values, name, "b"))
            elif r is Role.ADD:
                out = self._input(values, name, "a") + self._input(values, name, "b")
            elif r is Role.ARGMAX:
                self.logits = self._input(values, name, "a")[: p.words[3]]
                out = np.array([np.argmax(self.logits)], np.float32)
            else:
                raise T.EmulationError(f"{name}: role {r.name} cannot execute")
            values[name] = out.astype(np.float32)
        return int(values[self.argmax][0])

    def generate(self, prompt: list[int], n_tokens: int) -> list[int]:
        """Greedy: feed the prompt, then `n_tokens` new tokens; returns the new tokens."""
        self.reset()
        nxt, pos = 0, 0
        for pos, tok in enumerate(prompt):
            nxt = self.step(tok, pos)
        out = []
        for i in range(n_tokens):
            out.append(nxt)
            if i + 1 < n_tokens:
                nxt = self.step(nxt, len(prompt) + i)
        return out

    def teacher_forced(self, tokens: list[int]) -> np.ndarray:
        """Logits [len(tokens), vocab] feeding `tokens` in order."""
        self.reset()
        rows = []
        for pos, tok in enumerate(tokens):
            self.step(tok, pos)
            rows.append(self.logits.copy())
        return np.stack(rows)
