"""refine_placement: Placement -> Placement with less inter-tile wirelength (tiles move, nets stay).

`map_graph` deals every kind its own serpentine site list in pipeline order. Kinds progress at
different rates (hc1: 10 rows of embedding MAC tiles come before layer 0, which has no vector unit
there), so a layer's MAC tiles and its vector units drift rows apart and most nets climb many
rows. This pass moves tiles between sites of their own kind, in two steps:

1. **Align** (deterministic): give each layer block a horizontal stripe of the die as tall as its
   scarcest kind needs, and re-deal every kind's sites block by block from the stripe's first row,
   so the free sites become gaps between blocks and a block's MAC tiles, vector units and SRAM
   share rows. Kept only if it lowers the cost.
2. **Anneal** (VPR-style simulated annealing, seeded `random.Random(seed)`): move a tile to a site
   of its kind within a window of serpentine positions; the site's tile (always one of the same
   block) swaps back, or the site is free. Low start temperature (this refines a good start),
   a geometric schedule, the window adapted to keep ~44% of moves accepted, the best state kept.

Cost, minimised: over every net, half-perimeter of its pins' bounding box, with a vertical span
weighted `ROW_WEIGHT` (each row a net crosses takes a feedthrough and a track piece in every
channel between: the congestion-aware term); plus, for every matrix cut into several tiles, the
bounding box of its slices at `CLUSTER_WEIGHT` (keeps the slices of a matrix together). A pin sits
at (`Geometry.pin_x`, the y of the channel under its row), exactly where the router lands on it
(`mapper/wirelength.py`).

Constraints, kept by construction and checked on the result by `check_placement`
(`mapper/legality.py`): every tile on a site of its kind, one tile per site, the I/O tile fixed,
and layer blocks in pipeline order along every kind's serpentine (all of block i's sites of a
kind come before block i+1's) — so a move may only reach sites between the neighbouring blocks. The result's plain HPWL is never worse than the input's
(the input comes back unchanged otherwise). Same input, seed and effort -> identical sites.

Effort scales the annealing moves (`MOVES_PER_TILE` per movable tile, at least `MIN_MOVES`, at
effort 1; ~20 us a move): llama-3.1-8b on hc1 (3,107 tiles) takes ~4 s at 1.0 for about -52% HPWL
(effort 3: ~13 s for -54%; effort 0.25: ~1 s for -41%); effort 0 keeps only the align step (-13%).
"""

from __future__ import annotations

import math
import random
from dataclasses import replace

from taalas_compile.config.die import Die
from taalas_compile.die.geometry import Geometry
from taalas_compile.mapper.ir import Placement
from taalas_compile.mapper.legality import (
    MOVABLE,
    block_order,
    blocks_in_order,
    check_placement,
)
from taalas_compile.mapper.wirelength import total_hpwl

ROW_WEIGHT = 1.5  # cost of a net's vertical span relative to its horizontal span
CLUSTER_WEIGHT = 0.25  # weight of the bounding box of a matrix's slices
MOVES_PER_TILE = 60  # annealing moves per movable tile at effort 1.0 ...
MIN_MOVES = 40_000  # ... and at least this many: small dies get a thorough anneal for well under a second
TEMPERATURES = 40  # temperature steps of the schedule
START_TEMPERATURE = 1.0  # x the spread of cost changes of random moves from the aligned start
KINDS = MOVABLE  # the I/O tile never moves


def refine_placement(pl: Placement, die: Die, *, seed: int = 0, effort: float = 1.0) -> Placement:
    """A new Placement of the same tiles and nets with less wirelength; the input is not touched."""
    st = _State(pl, die)
    if st.ordered:
        aligned = _aligned_indices(st)
        if st.cost_of(aligned) < st.cost:
            st.assign(aligned)
    moves = int(effort * max(MOVES_PER_TILE * len(st.movable), MIN_MOVES))
    if moves > 0 and st.movable:
        _anneal(st, random.Random(seed), moves)
    tiles = tuple(t if t.kind == "io" else replace(t, site=st.sites[t.kind][st.idx[i]]) for i, t in enumerate(pl.tiles))
    out = Placement(pl.die, tiles, pl.nets)
    if total_hpwl(out, die) > total_hpwl(pl, die):
        out = Placement(pl.die, pl.tiles, pl.nets)
    return check_placement(out, die, pl)  # legal, and a refinement of pl (mapper/legality.py)


class _State:
    """Mutable working copy: serpentine index per tile, occupant per site, pin coordinates per net."""

    def __init__(self, pl: Placement, die: Die) -> None:
        geo = Geometry(die)
        self.px, self.py = geo.pitch_x, geo.pitch_y
        self.sites = {k: die.sites(k) for k in KINDS}
        pos = {k: {s: i for i, s in enumerate(v)} for k, v in self.sites.items()}
        self.tiles = pl.tiles
        self.ordered = blocks_in_order(pl, die)
        rank = {b: i for i, b in enumerate(block_order(pl))}
        self.kind = [t.kind for t in pl.tiles]
        self.rank = [rank[t.block] for t in pl.tiles]
        self.movable = [i for i, t in enumerate(pl.tiles) if t.kind in KINDS]
        self.idx = [pos[t.kind][t.site] if t.kind in KINDS else -1 for t in pl.tiles]
        self.occ = {k: [-1] * len(v) for k, v in self.sites.items()}
        self.members: dict[tuple[str, int], list[int]] = {}  # (kind, block rank) -> tiles
        for i in self.movable:
            self.occ[self.kind[i]][self.idx[i]] = i
            self.members.setdefault((self.kind[i], self.rank[i]), []).append(i)
        n_blocks = len(rank)
        self.prev: dict[tuple[str, int], tuple | None] = {}  # neighbouring non-empty block of the same kind
        self.next: dict[tuple[str, int], tuple | None] = {}
        for k in KINDS:
            ranks = [b for b in range(n_blocks) if (k, b) in self.members]
            for a, b in zip([None] + ranks, ranks + [None]):
                if b is not None:
                    self.prev[(k, b)] = (k, a) if a is not None else None
                if a is not None:
                    self.next[(k, a)] = (k, b) if b is not None else None
        self.lo = {kb: min(self.idx[i] for i in m) for kb, m in self.members.items()}
        self.hi = {kb: max(self.idx[i] for i in m) for kb, m in self.members.items()}
        # nets: weight, pin x and y lists; per tile, (net, slot, x offset in its column)
        index = {t.name: i for i, t in enumerate(pl.tiles)}
        self.w: list[float] = []
        self.nx: list[list[int]] = []
        self.ny: list[list[int]] = []
        self.pins: list[list[tuple[int, int, int]]] = [[] for _ in pl.tiles]
        groups = [[(index[p.tile], p.pin) for p in n.pins] for n in pl.nets]
        by_node: dict[str, list[int]] = {}
        for i, t in enumerate(pl.tiles):
            if t.node and t.kind == "mac":
                by_node.setdefault(t.node, []).append(i)
        clusters = [[(i, "out") for i in m] for m in by_node.values() if len(m) > 1]
        for weight, group in [(1.0, g) for g in groups] + [(CLUSTER_WEIGHT, g) for g in clusters]:
            n = len(self.w)
            self.w.append(weight)
            self.nx.append([])
            self.ny.append([])
            for slot, (i, pin) in enumerate(group):
                t = pl.tiles[i]
                off = geo.pin_x(t.kind, pin, 0)
                self.pins[i].append((n, slot, off))
                self.nx[n].append(t.site[0] * self.px + off)
                self.ny[n].append(t.site[1] * self.py)
        self.nets_of = [sorted({n for n, _, _ in p}) for p in self.pins]
        self.ncost = [self._net_cost(n) for n in range(len(self.w))]
        self.cost = sum(self.ncost)

    def _net_cost(self, n: int) -> float:
        xs, ys = self.nx[n], self.ny[n]
        return self.w[n] * (max(xs) - min(xs) + ROW_WEIGHT * (max(ys) - min(ys)))

    def _put(self, i: int, j: int) -> None:
        """Tile i to serpentine index j of its kind (occupancy is the caller's business)."""
        self.idx[i] = j
        c, r = self.sites[self.kind[i]][j]
        x, y = c * self.px, r * self.py
        for n, slot, off in self.pins[i]:
            self.nx[n][slot] = x + off
            self.ny[n][slot] = y

    def move(self, i: int, j: int) -> tuple[float, int, int]:
        """Tile i to index j (swapping with j's tile, if any); returns (cost change, old index, other tile)."""
        k = self.kind[i]
        occ = self.occ[k]
        a, u = self.idx[i], occ[j]
        nets = self.nets_of[i] if u < 0 else sorted(set(self.nets_of[i]) | set(self.nets_of[u]))
        self._put(i, j)
        occ[j] = i
        occ[a] = u
        if u >= 0:
            self._put(u, a)
        delta = 0.0
        for n in nets:
            c = self._net_cost(n)
            delta += c - self.ncost[n]
            self.ncost[n] = c
        self.cost += delta
        if u < 0:
            self._extent(k, self.rank[i])
        return delta, a, u

    def undo(self, i: int, a: int, u: int) -> None:
        self.move(i, a)  # back to its old index; u (if any) swaps back with it

    def _extent(self, k: str, b: int) -> None:
        m = self.members[(k, b)]
        self.lo[(k, b)] = min(self.idx[i] for i in m)
        self.hi[(k, b)] = max(self.idx[i] for i in m)

    def window(self, i: int) -> tuple[int, int]:
        """Serpentine indices tile i may move to: between its neighbouring blocks (or its own
        block's extent when the input was not in block order)."""
        kb = (self.kind[i], self.rank[i])
        if not self.ordered:
            return self.lo[kb], self.hi[kb]
        p, q = self.prev[kb], self.next[kb]
        return (self.hi[p] + 1 if p else 0), (self.lo[q] - 1 if q else len(self.sites[kb[0]]) - 1)

    def cost_of(self, idx: list[int]) -> float:
        saved = list(self.idx)
        self.assign(idx)
        c = self.cost
        self.assign(saved)
        return c

    def assign(self, idx: list[int]) -> None:
        for k in KINDS:
            self.occ[k] = [-1] * len(self.sites[k])
        for i in self.movable:
            self._put(i, idx[i])
            self.occ[self.kind[i]][idx[i]] = i
        for kb in self.members:
            self._extent(*kb)
        self.ncost = [self._net_cost(n) for n in range(len(self.w))]
        self.cost = sum(self.ncost)


def _aligned_indices(st: _State) -> list[int]:
    """Every block on a stripe of rows as tall as its scarcest kind needs; each kind re-dealt
    from the stripe's start, keeping its order within the block."""
    n_blocks = max(st.rank) + 1
    need = [max((len(st.members.get((k, b), ())) / len(st.sites[k]) for k in KINDS), default=0.0) for b in range(n_blocks)]
    scale = max(sum(need), 1.0)
    idx = list(st.idx)
    for k in KINDS:
        n_sites = len(st.sites[k])
        left = sum(len(st.members.get((k, b), ())) for b in range(n_blocks))
        cursor, start = 0, 0.0
        for b in range(n_blocks):
            m = sorted(st.members.get((k, b), ()), key=lambda i: st.idx[i])
            s = min(max(cursor, round(start / scale * n_sites)), n_sites - left)
            for off, i in enumerate(m):
                idx[i] = s + off
            cursor, left, start = s + len(m), left - len(m), start + need[b]
    return idx


def _anneal(st: _State, rng: random.Random, moves: int) -> None:
    movable = st.movable
    span = max(b - a + 1 for a, b in (st.window(i) for i in movable))

    def propose(rlim: int):
        i = movable[rng.randrange(len(movable))]
        lo, hi = st.window(i)
        a = st.idx[i]
        j = rng.randint(max(lo, a - rlim), min(hi, a + rlim))
        if j == a:
            return None
        u = st.occ[st.kind[i]][j]
        if u >= 0 and st.rank[u] != st.rank[i]:  # only when the input was out of block order
            return None
        return i, j

    # start temperature from the spread of random-move cost changes
    deltas = []
    for _ in range(min(200, moves)):
        m = propose(span)
        if m:
            d, a, u = st.move(*m)
            st.undo(m[0], a, u)
            deltas.append(d)
    if not deltas:
        return
    mean = sum(deltas) / len(deltas)
    sd = math.sqrt(sum((d - mean) ** 2 for d in deltas) / len(deltas))
    t0 = START_TEMPERATURE * sd
    t_end = 1e-4 * t0
    per_temp = max(1, moves // TEMPERATURES)
    best, best_idx = st.cost, list(st.idx)
    rlim = float(span)
    for step in range(TEMPERATURES + 1):
        temp = t0 * (t_end / t0) ** (step / TEMPERATURES) if step < TEMPERATURES else 0.0  # last: greedy quench
        accepted = tried = 0
        for _ in range(per_temp):
            m = propose(max(1, int(rlim)))
            if m is None:
                continue
            tried += 1
            d, a, u = st.move(*m)
            if d <= 0 or (temp > 0 and rng.random() < math.exp(-d / temp)):
                accepted += 1
            else:
                st.undo(m[0], a, u)
        if st.cost < best:
            best, best_idx = st.cost, list(st.idx)
        if tried:
            rlim = min(float(span), max(1.0, rlim * (1 - 0.44 + accepted / tried)))
    st.assign(best_idx)
