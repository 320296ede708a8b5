"""Emulator: runs a `ChipImage` one token per step for a batch of sequences in flight.

At load time every tile's program is decoded from its ROM, the MAC tiles that drive one net are
fused into a tile group (`groups.py`), and the units (tile groups and vector units) are put in
dataflow order. A step then runs every unit once on [B, n] activations, B = sequences in flight,
each at its own position and with its own KV-cache slot. A net's value is the sum of its drivers'
outputs, each placed at the driver's output offset: MAC tiles drive their accumulators (int64),
added as integers and read out as fp32 (`die/arithmetic.from_fixed`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from taalas_compile.die import rom_format as rf
from taalas_compile.die.arithmetic import from_fixed
from taalas_compile.die.program import Io, decode
from taalas_compile.emulator import tiles as T
from taalas_compile.emulator.chip import DRIVER_PINS, ChipImage
from taalas_compile.emulator.compare import nonfinite
from taalas_compile.emulator.groups import LookupGroup, MatGroup
from taalas_compile.emulator.kv import KvStore
from taalas_compile.mapper.ir import Role

INPUT_PINS = {Role.MATVEC: ("in",), Role.LOOKUP: ("in",), Role.RMSNORM: ("a",), Role.ROPE: ("a",), Role.ATTENTION: ("a", "b", "c"),
              Role.SILU_MUL: ("a", "b"), Role.ADD: ("a", "b"), Role.ARGMAX: ("a",)}


@dataclass
class Unit:
    """One executable piece: a fused tile group, or one tile."""

    name: str  # first tile's name
    role: Role
    tiles: list[str]
    inputs: list[int]  # net per input pin
    out: int | None  # net it drives (None: dangling)
    offset: int = 0  # where its output lands in the net
    impl: object = None  # MatGroup / LookupGroup / Program
    state: dict = field(default_factory=dict)


class Driver:
    """Greedy and teacher-forced runs on anything that steps tokens: one chip (`Emulator`) or the
    dies of a system chained through their links (`emulator/system.py`). Needs `step_batch`,
    `reset`, `sequences` and `logits`."""

    logits: np.ndarray | None

    def step(self, token: int, pos: int) -> int:
        """Feed one token at position `pos` of sequence 0; returns the chip's next token (logits in .logits[0])."""
        return int(self.step_batch([token], [pos], [0])[0])

    def generate(self, prompt: list[int], n_tokens: int) -> list[int]:
        """Greedy: feed the prompt, then `n_tokens` new tokens; returns the new tokens."""
        return self.generate_batch([prompt], n_tokens)[0]

    def generate_batch(self, prompts: list[list[int]], n_tokens: int) -> list[list[int]]:
        """Greedy for several prompts in flight at once, one KV slot each: every step feeds each
        unfinished sequence its next prompt token or its last generated one."""
        if len(prompts) > self.sequences:
            raise T.EmulationError(f"{len(prompts)} sequences in flight, the chip's KV SRAM holds {self.sequences} "
                                   "(recipe target.sequences)")
        if any(not p for p in prompts):
            raise T.EmulationError("every prompt needs at least one token (usually BOS)")
        self.reset()
        outs: list[list[int]] = [[] for _ in prompts]
        nxt = [0] * len(prompts)
        for t in range(max(len(p) + n_tokens - 1 for p in prompts)):
            live = [i for i, p in enumerate(prompts) if t < len(p) + n_tokens - 1]
            toks = [prompts[i][t] if t < len(prompts[i]) else nxt[i] for i in live]
            got = self.step_batch(toks, [t] * len(live), live)
            for i, tok in zip(live, got.tolist()):
                if t >= len(prompts[i]) - 1:
                    outs[i].append(tok)
                nxt[i] = tok
        return [o[:n_tokens] for o in outs]

    def teacher_forced(self, tokens: list[int]) -> np.ndarray:
        """Logits [len(tokens), vocab] feeding `tokens` in order."""
        self.reset()
        rows = []
        for pos, tok in enumerate(tokens):
            self.step(tok, pos)
            rows.append(self.logits[0].copy())
        return np.stack(rows)


class Emulator(Driver):
    def __init__(self, chip: ChipImage, only: frozenset[str] | None = None):
        """`only`: run just these tiles (one layer block, `emulator/stream.py`); the nets they read
        from other tiles are then given to `forward`. The connectivity is always the whole chip's."""
        self.chip = chip
        kinds = {t.name: t.kind for t in chip.tiles}
        self.programs = {t.name: T.decode(t.name, chip.roms[t.name]) for t in chip.tiles
                         if t.kind != "io" and (only is None or t.name in only)}
        self.io = next(t.name for t in chip.tiles if t.kind == "io")
        net_of: dict[str, int] = {}
        for i, net in enumerate(chip.nets):
            for p in net:
                net_of[p] = i
        self.tile_index = {t.name: i for i, t in enumerate(chip.tiles)}
        drivers: dict[int, list[str]] = defaultdict(list)  # net -> driving tiles, in tile order
        for t in chip.tiles:
            for pin in DRIVER_PINS:
                if f"{t.name}.{pin}" in net_of:
                    drivers[net_of[f"{t.name}.{pin}"]].append(t.name)
        self.io_net = net_of.get(f"{self.io}.tok_out")  # tokens in (or the previous die's link)
        self.out_net = net_of.get(f"{self.io}.tok_in")  # the sampled token out (or the link to the next die)
        self.link = self._io_program()  # Io: link widths of a die of a system (0 for a single die)
        self.units = self._units(drivers, net_of, kinds)
        self.sram_of = {u.name: self._sram_of(u.name, net_of, kinds) for u in self.units if u.role is Role.ATTENTION}
        for u in self.units:
            if u.role is Role.ATTENTION:
                u.state["kv"] = self._kv_store(u)
        argmax = [u for u in self.units if u.role is Role.ARGMAX]
        if len(argmax) > 1 or (only is None and not argmax and not self.link.link_out):  # a block, or a die sending its link, has none
            raise T.EmulationError(f"expected one argmax unit, found {len(argmax)}")
        self.argmax = argmax[0] if argmax else None
        self.logits: np.ndarray | None = None  # [B, vocab] of the last step
        self.trace: dict[str, list[np.ndarray]] | None = None  # unit name -> outputs per step, when tracing
        self.positions: list[list[int]] = []  # positions of every step run since reset (the cycle model reads them)
        self.sram: dict[str, np.ndarray] = {}  # LoRA SRAM tile -> its bytes, written by lora.load_lora

    # ---- building --------------------------------------------------------------------------------

    def _io_program(self) -> Io:
        rom = self.chip.roms.get(self.io)
        prog = decode(rf.parse_header(rom[0])) if rom is not None and rom.size else Io(0)
        if not isinstance(prog, Io):
            raise T.EmulationError(f"{self.io}: the I/O tile holds a {prog.role.name.lower()} program")
        return prog

    def _units(self, drivers: dict[int, list[str]], net_of: dict[str, int], kinds: dict[str, str]) -> list[Unit]:
        units: list[Unit] = []
        for name, p in self.programs.items():
            if p.role in (Role.KV, Role.LORA, Role.IO):
                continue
            if p.role not in INPUT_PINS:
                raise T.EmulationError(f"{name}: role {p.role.name} cannot execute")
            ins = []
            for pin in INPUT_PINS[p.role]:
                n = net_of.get(f"{name}.{pin}")
                if n is None or not [d for d in drivers.get(n, []) if d != name]:
                    raise T.EmulationError(f"{name}: input pin {pin} is not connected")
                ins.append(n)
            units.append(Unit(name, p.role, [name], ins, net_of.get(f"{name}.out"), p.out_offset, p))
        units = self._fuse(units)
        g = nx.DiGraph()
        g.add_nodes_from(range(len(units)))
        producers: dict[int, list[int]] = defaultdict(list)
        for i, u in enumerate(units):
            if u.out is not None:
                producers[u.out].append(i)
        for i, u in enumerate(units):
            for n in u.inputs:
                g.add_edges_from((j, i) for j in producers.get(n, []))
        if not nx.is_directed_acyclic_graph(g):
            raise T.EmulationError("the connectivity has a combinational loop")
        order = nx.lexicographical_topological_sort(g, key=lambda i: self.tile_index[units[i].name])
        return [units[i] for i in order]

    def _fuse(self, units: list[Unit]) -> list[Unit]:
        """MAC tiles with the same role, input net, output net and group size become one unit."""
        keyed: dict[tuple, list[Unit]] = defaultdict(list)
        rest = []
        for u in units:
            if u.role in (Role.MATVEC, Role.LOOKUP) and u.out is not None:
                keyed[(u.role, u.inputs[0], u.out, u.impl.header.group)].append(u)
            else:
                rest.append(u)
        for (role, n_in, n_out, _), us in keyed.items():
            progs = [u.impl for u in us]
            if role is Role.LOOKUP:
                rest.append(Unit(us[0].name, role, [u.name for u in us], [n_in], n_out, 0, LookupGroup(progs)))
            elif MatGroup.fusable(progs):
                rest.append(Unit(us[0].name, role, [u.name for u in us], [n_in], n_out, 0, MatGroup(progs)))
            else:
                rest += us
        return rest

    def _sram_of(self, name: str, net_of: dict[str, int], kinds: dict[str, str]) -> list[str]:
        """SRAM tiles whose port shares a net with the unit's d pin."""
        n = net_of.get(f"{name}.d")
        if n is None:
            return []
        return sorted((p.rpartition(".")[0] for p in self.chip.nets[n] if p.endswith(".port") and kinds.get(p.rpartition(".")[0]) == "sram"),
                      key=self.tile_index.__getitem__)

    def _kv_store(self, u: Unit) -> KvStore:
        attn = u.impl.header
        n_kv, hd, ctx = attn.n_kv_heads, attn.head_dim, attn.context
        srams = self.sram_of[u.name]
        if any(s not in self.programs for s in srams):
            raise T.EmulationError(f"{u.name}: its KV SRAM tiles are not run with it")
        seqs = [self.programs[s].header.sequences for s in srams if self.programs[s].role is Role.KV]
        return KvStore(u.name, max(min(seqs, default=1), 1), ctx, n_kv, hd, self.chip.kv_bits, len(srams) * self.chip.sram_bytes)

    # ---- running ---------------------------------------------------------------------------------

    @property
    def sequences(self) -> int:
        """Sequences the chip's KV SRAM holds at once."""
        return min((u.state["kv"].sequences for u in self.units if u.role is Role.ATTENTION), default=1)

    @property
    def context(self) -> int:
        return min((u.state["kv"].context for u in self.units if u.role is Role.ATTENTION), default=0)

    def reset(self) -> None:
        for u in self.units:
            if u.role is Role.ATTENTION:
                kv = u.state["kv"]
                kv.codes[...] = 0
                kv.scales[...] = 0
        self.positions = []

    def step_batch(self, tokens: list[int], positions: list[int], seqs: list[int]) -> np.ndarray:
        """One step of B sequences in flight: token b at position b of KV slot seqs[b]. -> next tokens [B]."""
        self.stage_step(np.asarray(tokens, np.float32)[:, None], positions, seqs)
        return self._next[:, 0].astype(np.int64)

    def stage_step(self, x: np.ndarray, positions: list[int], seqs: list[int]) -> np.ndarray:
        """One step with `x` [B, n] on the I/O tile's tok_out pin (token ids, or on a die of a system
        the previous die's link) -> the value on its tok_in pin [B, m] (the next tokens, or the link
        to the next die)."""
        pos = np.asarray(positions, np.int64)
        for u in self.units:  # every limit is checked before any state changes
            if u.role is Role.ATTENTION:
                for s, p in zip(seqs, positions):
                    u.state["kv"].check(s, p)
        if len(set(seqs)) != len(seqs):
            raise T.EmulationError("two sequences in flight share one KV-cache slot")
        if self.link.link_in and x.shape[1] != self.link.link_in:
            raise T.EmulationError(f"{self.io}: the link in carries {self.link.link_in} values, given {x.shape[1]}")
        values = self.forward({} if self.io_net is None else {self.io_net: x}, pos, seqs)
        self.positions.append(list(positions))
        if self.out_net not in values:
            raise T.EmulationError(f"{self.io}: nothing drives its tok_in pin")
        return values[self.out_net]

    def forward(self, given: dict[int, np.ndarray], pos: np.ndarray, seqs: list[int]) -> dict[int, np.ndarray]:
        """Every unit once, in dataflow order, on rows b = (KV slot seqs[b], position pos[b]);
        `given`: values of the nets no unit here drives. Attention handles the rows in order, so
        several rows may be consecutive positions of one sequence (a prefill). -> the value of
        every net the units drive."""
        parts: dict[int, list[tuple[int, np.ndarray]]] = defaultdict(list)
        for n, v in given.items():
            parts[n].append((0, v))
        resolved: dict[int, np.ndarray] = {}

        def value(n: int) -> np.ndarray:
            if n not in resolved:
                ps = parts[n]
                if not ps:
                    raise T.EmulationError(f"net {n} is read before any unit drives it")
                fixed = [(o, v) for o, v in ps if v.dtype == np.int64]  # MAC accumulators: added as integers
                width = max(o + v.shape[1] for o, v in ps)
                if len(ps) == 1 and ps[0][0] == 0 and not fixed:
                    resolved[n] = ps[0][1]
                else:
                    acc = np.zeros((len(pos), width), np.int64)
                    for o, v in fixed:
                        acc[:, o : o + v.shape[1]] += v
                    x = from_fixed(acc)
                    for o, v in ps:
                        if v.dtype != np.int64:
                            x[:, o : o + v.shape[1]] += v
                    resolved[n] = x
            return resolved[n]

        bits = self.chip.act_bits
        for u in self.units:
            out = self._run(u, [value(n) for n in u.inputs], pos, seqs, bits)
            if self.trace is not None:
                self.trace.setdefault(u.name, []).append(out.copy())
            if u.out is not None:
                parts[u.out].append((u.offset, out))
        return {n: value(n) for n in {u.out for u in self.units if u.out is not None}}

    def _run(self, u: Unit, x: list[np.ndarray], pos: np.ndarray, seqs: list[int], bits: int) -> np.ndarray:
        r, impl = u.role, u.impl
        if r is Role.MATVEC:
            if (at := nonfinite(x[0])) is not None:  # the integer quantizer has no code for it
                raise T.EmulationError(f"{u.name}: input {at} is not finite")
            return impl(x[0], bits) if isinstance(impl, MatGroup) else T.matvec(impl, x[0], bits)
        if r is Role.LOOKUP:
            return impl(x[0])
        if r is Role.RMSNORM:
            return T.rmsnorm(impl, x[0])
        if r is Role.ROPE:
            return T.rope(impl, x[0], pos)
        if r is Role.ATTENTION:
            n_heads, n_kv, hd = impl.header.n_heads, impl.header.n_kv_heads, impl.header.head_dim
            kv: KvStore = u.state["kv"]
            out = np.empty((len(seqs), n_heads * hd), np.float32)
            for b, (s, p) in enumerate(zip(seqs, pos.tolist())):
                kv.write(s, p, x[1][b, : n_kv * hd].reshape(n_kv, hd), x[2][b, : n_kv * hd].reshape(n_kv, hd))
                out[b] = T.attend(x[0][b], *kv.read(s, p + 1), n_heads)
            return out
        if r is Role.SILU_MUL:
            return T.silu_mul(x[0], x[1])
        if r is Role.ADD:
            return x[0] + x[1]
        if r is Role.ARGMAX:
            self.logits = x[0][:, : impl.header.n]
            self._next = np.argmax(self.logits, axis=1)[:, None].astype(np.float32)
            return self._next
        raise T.EmulationError(f"{u.name}: role {r.name} cannot execute")  # pragma: no cover - checked at load
