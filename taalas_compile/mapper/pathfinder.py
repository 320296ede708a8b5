"""PathFinder negotiated-congestion routing (McMurchie & Ebeling 1995, as in VPR) on an RRGraph.

Nets may share resources, at a price. Entering a resource r (a junction, a feedthrough) costs

    (b + h[r]) * p[r],    p[r] = 1 + pres_fac * occ[r]      (occ: other nets on r now)

with b the base cost: the track distance for a junction step (nm), a via for a stub hop. A gap
resource has no base cost of its own: sharing one adds (via + h) * p - via. After an iteration
every resource used by k > 1 nets gets h[r] += hist_fac * (k - 1) vias and pres_fac grows by
pres_fac_mult (VPR: 0.5, x1.3). Iteration 1 routes every net in netlist order; later ones rip up
and reroute, in the same order, the nets on a shared resource (VPR's should_route_net; set
`reroute_all` for the textbook variant). Routing stops when nothing is shared, after
`max_iterations`, or when `stall_iterations` in a row found no new least overuse.

A multi-terminal net grows one tree from its first driver pin: terminals are taken nearest first
(Prim order on the pin positions) and each is reached by A* from the whole tree, seeded lazily in
order of the heuristic, inside the net's bounding box widened by `bb_cols` site columns and
`bb_rows` channels (VPR's bb_factor). A free resource with no history costs exactly its base
cost and the heuristic counts every via still needed, so with nothing congested A* runs straight
down one track; cold tracks are searched as one *bundle* state (see `_astar`), so an empty
channel costs one state per column, not one per track. Deterministic: fixed net order, heap ties
broken by depth, then state id (bundles in creation order, then lower channel, track, column).
"""
from __future__ import annotations

import time
from bisect import bisect_left, insort
from collections.abc import Callable
from dataclasses import dataclass, field
from heapq import heappop, heappush

import numpy as np

from taalas_compile.mapper.rrgraph import FEEDTHROUGH, RRGraph

INF = float("inf")


@dataclass(frozen=True)
class PathFinderCfg:
    max_iterations: int = 50  # then the resources still shared are an error naming their nets
    stall_iterations: int = 15  # ... or sooner, when this many iterations found no new least overuse
    pres_fac: float = 0.5  # present-congestion factor of the first iteration (VPR initial_pres_fac)
    pres_fac_mult: float = 1.3  # pres_fac growth per iteration (VPR pres_fac_mult)
    hist_fac: float = 1.0  # history added per net of overuse, in vias (VPR acc_fac)
    via_cost: float = 1 / 32  # one custom via, in site pitches of track (discourages doglegs)
    feedthrough_cost: float = 1 / 8  # one feedthrough climb, in site pitches of track
    astar_fac: float = 1.0  # weight of the A* heuristic: > 1 trades optimality for speed (VPR uses 1.2)
    reroute_all: bool = False  # rip up every net every iteration; else only nets on a shared resource
    bb_cols: int = 3  # search box: the net's pins' bounding box + this many site columns each side
    bb_rows: int = 3  # ... and this many channels above and below


@dataclass(frozen=True)
class IterationStats:
    """One row of the router's table (what VPR prints per iteration)."""

    iteration: int  # 1-based
    overused: int  # resources (junctions, feedthroughs, gaps) used by more than one net
    overuse: int  # sum over those of (nets on it - 1)
    wirelength: int  # custom metal of all nets' track pieces, nm
    pres_fac: float  # present-congestion factor this iteration ran with
    seconds: float = field(compare=False)  # wall time of the iteration


@dataclass
class NetRoute:
    """A net's route tree: node -> parent node (-1 for the first driver), and resources held."""

    tree: dict[int, int]
    held: set[int]


@dataclass
class Negotiation:
    routes: list[NetRoute]
    iterations: list[IterationStats]
    occ: dict[int, int]  # resource -> nets on it, after the last iteration


def prim_order(points: list[tuple[int, int]], row_cost: int) -> list[int]:
    """Indices of points, starting at 0, each next one the nearest to any already taken."""
    x, c = np.array(points, np.int64).reshape(-1, 2).T  # [n] each
    dist = lambda k: np.abs(x - x[k]) + np.abs(c - c[k]) * row_cost
    best, taken, order = dist(0), np.zeros(len(x), bool), [0]
    taken[0] = True
    for _ in range(len(x) - 1):
        k = int(np.argmin(np.where(taken, np.iinfo(np.int64).max, best)))  # ties: the lowest index
        taken[k] = True
        order.append(k)
        best = np.minimum(best, dist(k))
    return order


class PathFinder:
    def __init__(self, g: RRGraph, terminals: list[list[int]], pitch_x: int, cfg: PathFinderCfg):
        """`terminals[n]`: stub ids of net n's pins, its first driver first."""
        self.g, self.cfg = g, cfg
        self.via = max(1, round(pitch_x * cfg.via_cost))
        self.ft = max(1, round(pitch_x * cfg.feedthrough_cost))
        self.per_chan = 2 * self.via + self.ft  # least cost of changing channel
        self.bb_x = cfg.bb_cols * pitch_x
        self.terminals = terminals
        self.order = []  # per net: terminal stubs in the order they join the tree
        self.boxes = []  # per net: (x_lo, x_hi, c_lo, c_hi)
        for stubs in terminals:
            pts = [self._xc(s) for s in stubs]
            self.order.append([stubs[k] for k in prim_order(pts, self.per_chan)])
            xs, cs = [p[0] for p in pts], [p[1] for p in pts]
            self.boxes.append((min(xs) - self.bb_x, max(xs) + self.bb_x, min(cs) - cfg.bb_rows, max(cs) + cfg.bb_rows))
        self.occ: dict[int, int] = {}  # resource -> nets on it
        self.hist: dict[int, float] = {}  # resource -> history cost, nm-equivalent
        self.warm: set[int] = set()  # resources that cost more than their base: occ > 0 or history
        # a junction is hot when it or one of its gaps is warm; per stub column, its hot tracks
        self.heat: dict[int, int] = {}
        self.hot: set[int] = set()
        self.hot_mask: dict[int, int] = {}  # stub id -> bit t set where junction (column, t) is hot
        self.pres_fac = cfg.pres_fac

    def _xc(self, v: int) -> tuple[int, int]:
        c, _, i = self.g.decode(v)
        return self.g.xs[c][i], c

    # --- the negotiation loop ----------------------------------------------------------------
    def run(self, length: Callable[[NetRoute], int], log: Callable[[IterationStats], None] | None = None) -> Negotiation:
        """Negotiate until no resource is shared or max_iterations; `length(route)` is a net's metal, nm."""
        cfg = self.cfg
        routes = [NetRoute({}, set()) for _ in self.terminals]
        lengths = [0] * len(routes)
        stats: list[IterationStats] = []
        for it in range(1, cfg.max_iterations + 1):
            t0 = time.perf_counter()
            overused = {r for r, k in self.occ.items() if k > 1}
            for n in range(len(self.terminals)):
                if it > 1 and not cfg.reroute_all and routes[n].held.isdisjoint(overused):
                    continue  # a net on no shared resource keeps its route (VPR: should_route_net)
                self._occupy(routes[n].held, -1)
                routes[n] = self.route_net(n)
                lengths[n] = length(routes[n])
                self._occupy(routes[n].held, 1)
            over = {r: k - 1 for r, k in self.occ.items() if k > 1}
            s = IterationStats(it, len(over), sum(over.values()), sum(lengths), self.pres_fac, time.perf_counter() - t0)
            stats.append(s)
            if log is not None:
                log(s)
            if not over or self._stalled(stats):
                break
            for r, k in over.items():
                self.hist[r] = self.hist.get(r, 0.0) + cfg.hist_fac * self.via * k
            self.pres_fac *= cfg.pres_fac_mult
        return Negotiation(routes, stats, dict(self.occ))

    def _stalled(self, stats: list[IterationStats]) -> bool:
        """No new least number of shared resources in the last `stall_iterations` (a routing
        failure predictor, like VPR's): the die is most likely short of tracks or feedthroughs."""
        k = self.cfg.stall_iterations
        if len(stats) <= k:
            return False
        return min(s.overused for s in stats[-k:]) >= min(s.overused for s in stats[:-k])

    def _occupy(self, held: set[int], d: int) -> None:
        """Add (d = 1) or remove (d = -1) one net on each resource of `held`, keeping warm/hot up to date."""
        g, occ, hist, warm, heat, hot, hot_mask = self.g, self.occ, self.hist, self.warm, self.heat, self.hot, self.hot_mask
        M, T1, T, P, n_nodes, pairs = g.M, g.T1, g.tracks, g.P, g.n_nodes, g.pairs
        for r in held:  # the end state does not depend on the order
            k = occ.get(r, 0) + d
            if k:
                occ[r] = k
            else:
                del occ[r]
            if k > 1 or (k == 1 and d < 0) or r in hist:
                continue  # warm before and after
            # k == 1 after +1, or 0 after -1: r turns warm or cold, and so may the junctions it prices
            if d > 0:
                warm.add(r)
            else:
                warm.discard(r)
            if r >= n_nodes:  # gap (c, t, p): both columns of the pair on track t
                q, p = divmod(r - n_nodes, P)
                c, t = divmod(q, T)
                i, j = pairs[c][p]
                base = (c * T1 + t + 1) * M
                ws = (base + i, base + j)
            elif r // M % T1:
                ws = (r,)
            else:
                continue  # a feedthrough: priced where it is entered, no junction involved
            for w in ws:
                h = heat.get(w, 0) + d
                t = w // M % T1 - 1
                s = w - (t + 1) * M  # the stub of w's column
                if h:
                    heat[w] = h
                    if h == 1 and d > 0:
                        hot.add(w)
                        hot_mask[s] = hot_mask.get(s, 0) | 1 << t
                else:
                    del heat[w]
                    hot.discard(w)
                    m = hot_mask[s] & ~(1 << t)
                    if m:
                        hot_mask[s] = m
                    else:
                        del hot_mask[s]

    # --- one net ---------------------------------------------------------------------------
    def route_net(self, n: int) -> NetRoute:
        g = self.g
        first, *rest = self.order[n]
        tree = {first: -1}
        held: set[int] = set()
        by_chan: dict[int, list[tuple[int, int]]] = {}  # channel -> sorted (x, node) of the tree
        x, c = self._xc(first)
        by_chan[c] = [(x, first)]
        for target in rest:
            if target in tree:
                continue
            path = self._astar(n, target, tree, held, by_chan, self.boxes[n])
            if path is None:
                path = self._astar(n, target, tree, held, by_chan, (-INF, INF, 0, g.n_chan - 1))
            if path is None:
                raise NoPath(n, target)
            for v, parent in path:
                tree[v] = parent
                c, t, i = g.decode(v)
                insort(by_chan.setdefault(c, []), (g.xs[c][i], v))
                if t >= 0:
                    held.add(v)
                    gb = g.gap(c, t, 0)
                    for p in g.tight[c][i]:
                        held.add(gb + p)
                elif v in g.ft_res:
                    held.add(g.ft_res[v])
        return NetRoute(tree, held)

    def _astar(self, n, target, tree, held, by_chan, box):
        """A* from the tree to `target`: the new nodes and their parents, target first; None if unreachable.

        Tracks are interchangeable where nothing is on them, so the search does not walk each of
        them: a *bundle* state (column, mask of tracks) stands for every cold track of the mask,
        all at the same cost. Moving along, the mask loses the tracks that turn hot (those go on
        as single junction nodes, priced by congestion); when the route leaves a bundle it takes
        the lowest track left. Bundle states have negative ids. Heap entries: (f, -g, state).

        The heuristic is consistent: a junction still needs the track distance (through a column
        gap if the channel must change) + channels x (2 vias + feedthrough) + its last via; a stub
        the same without that via, plus two vias unless it is the target or a feedthrough end
        whose other end is nearer the target channel.
        """
        g = self.g
        M, T1, T = g.M, g.T1, g.tracks
        xs_all, owner, tight, partner, ft_res, ft_dir = g.xs, g.owner, g.tight, g.partner, g.ft_res, g.ft_dir
        occ, hist, warm, hot, hot_mask = self.occ, self.hist, self.warm, self.hot, self.hot_mask
        pf, via, ft, pc, A = self.pres_fac, self.via, self.ft, self.per_chan, self.cfg.astar_fac
        n_nodes, P = g.n_nodes, g.P
        full = (1 << T) - 1
        x_lo, x_hi, c_lo, c_hi = box
        xt, ct = self._xc(target)
        px, tw = g.pitch_x, g.tile_w

        def hx(x: int, c: int) -> int:
            """Least track length from x to xt; through a column gap if channels must change."""
            if c == ct:
                return abs(x - xt)
            lo, hi = (x, xt) if x < xt else (xt, x)
            k0 = lo - lo % px  # left edge of lo's site column; its gap is [k0 + tw, k0 + px)
            if hi >= k0 + tw or lo >= k0 + tw:
                return hi - lo
            right = k0 + tw - hi
            return hi - lo + 2 * (min(right, lo - k0) if k0 > 0 else right)

        def h_stub(s: int, x: int, c: int) -> int:
            d = abs(c - ct)
            if s == target or (d and abs(c + ft_dir.get(s, 0) - ct) < d):
                return hx(x, c) + d * pc
            return hx(x, c) + d * pc + 2 * via

        def junction_cost(w: int, base: float, gb: int, pairs) -> float:
            if w in held:
                cost = base
            else:
                o, hh = occ.get(w, 0), hist.get(w, 0.0)
                cost = (base + hh) * (1 + pf * o)
            for p in pairs:
                r = gb + p
                if r in warm and r not in held:
                    o, hh = occ.get(r, 0), hist.get(r, 0.0)
                    cost += (via + hh) * (1 + pf * o) - via
            return cost

        best: dict[int, float] = {}
        parent: dict[int, int] = {}
        heap: list = []
        push, pop = heappush, heappop

        def relax(w: int, gw: float, f: float, v: int) -> None:
            if gw < best.get(w, INF):
                best[w] = gw
                parent[w] = v
                push(heap, (f, -gw, w))

        bundles: list[tuple[int, int]] = []  # -(id + 1) -> (stub id of its column, mask)
        bundle_id: dict[tuple[int, int], int] = {}

        def bundle(s: int, mask: int) -> int:
            key = (s, mask)
            b = bundle_id.get(key)
            if b is None:
                bundles.append(key)
                b = bundle_id[key] = -len(bundles)
            return b

        def spawn(s: int, mask: int, gv: float, base: int, xw: int, c: int, v: int) -> None:
            """From state v onto column s's tracks in mask, each `base` away: hot ones singly, the rest as a bundle."""
            hj = A * (hx(xw, c) + abs(c - ct) * pc + via)
            hm = hot_mask.get(s, 0) & mask
            gb = n_nodes + c * T * P
            pairs = tight[c][s % M]
            while hm:
                low = hm & -hm
                t = low.bit_length() - 1
                hm ^= low
                w = s + (t + 1) * M
                gw = gv + junction_cost(w, base, gb + t * P, pairs)
                relax(w, gw, gw + hj, v)
            cold = mask & ~hot_mask.get(s, 0)
            if cold:
                relax(bundle(s, cold), gv + base, gv + base + hj, v)

        def hop_down(s: int, c: int, i: int, x: int, gv: float, v: int) -> None:
            own = owner[c][i]
            if own == n:
                cost = via
            elif own == FEEDTHROUGH:
                r = ft_res[s]
                cost = (via + hist.get(r, 0.0)) * (1 + pf * occ.get(r, 0)) if r in warm and r not in held else via
            else:
                return
            relax(s, gv + cost, gv + cost + A * h_stub(s, x, c), v)

        # seeds: tree nodes in order of a lower bound of their heuristic, per channel walking out from xt
        seeds: list = []
        for c, lst in by_chan.items():
            k = bisect_left(lst, (xt, -1))
            dc = abs(c - ct) * pc
            if k < len(lst):
                heappush(seeds, (A * (lst[k][0] - xt + dc), lst[k][1], c, k, 1))
            if k > 0:
                heappush(seeds, (A * (xt - lst[k - 1][0] + dc), lst[k - 1][1], c, k - 1, -1))

        done: set[int] = set()
        while True:
            while seeds and (not heap or seeds[0][0] <= heap[0][0]):
                _, v, c, k, d = pop(seeds)
                lst = by_chan[c]
                k2 = k + d
                if 0 <= k2 < len(lst):
                    push(seeds, (A * (abs(lst[k2][0] - xt) + abs(c - ct) * pc), lst[k2][1], c, k2, d))
                i = v % M
                x = xs_all[c][i]
                relax(v, 0, A * (hx(x, c) + abs(c - ct) * pc + via if v // M % T1 else h_stub(v, x, c)), -1)
            if not heap:
                return None
            _, ng, v = pop(heap)
            if v in done or -ng > best[v]:
                continue
            done.add(v)
            if v == target:
                break
            gv = -ng
            if v < 0:  # bundle: along the track in both directions, or down to the stub
                s, mask = bundles[-v - 1]
                q, i = divmod(s, M)
                c = q // T1
                xs = xs_all[c]
                for j in (i - 1, i + 1):
                    if 0 <= j < len(xs) and x_lo <= xs[j] <= x_hi:
                        spawn(s + j - i, mask, gv, abs(xs[j] - xs[i]), xs[j], c, v)
                hop_down(s, c, i, xs[i], gv, v)
                continue
            q, i = divmod(v, M)
            c, t1 = divmod(q, T1)
            xs = xs_all[c]
            if t1:  # junction (c, t1 - 1, i): along the track, or down a via to the stub
                gb = n_nodes + (c * T + t1 - 1) * P
                dch = abs(c - ct) * pc
                for w, j in ((v - 1, i - 1), (v + 1, i + 1)):
                    if 0 <= j < len(xs) and x_lo <= xs[j] <= x_hi:
                        xw = xs[j]
                        base = abs(xw - xs[i])
                        gw = gv + (junction_cost(w, base, gb, tight[c][j]) if w in hot else base)
                        relax(w, gw, gw + A * (hx(xw, c) + dch + via), v)
                hop_down(v - t1 * M, c, i, xs[i], gv, v)
            else:  # stub (c, i): up a via onto the tracks, or across the feedthrough
                spawn(v, full, gv, via, xs[i], c, v)
                w = partner.get(v)
                if w is not None:
                    c2 = c + ft_dir[v]
                    if c_lo <= c2 <= c_hi:
                        relax(w, gv + ft, gv + ft + A * h_stub(w, xs[i], c2), v)
        # back from the target to the tree; a bundle becomes the track chosen at its end
        path: list[int] = []
        seen: dict[int, int] = {}  # node -> index in path
        v, track = target, -1
        while True:
            if v < 0:
                s, mask = bundles[-v - 1]
                if track < 0:
                    track = (mask & -mask).bit_length() - 1
                node = s + (track + 1) * M
            else:
                node = v
                track = v // M % T1 - 1  # -1 at a stub: the next bundle back starts a new piece
            if node in tree:
                break
            if node in seen:  # a bundle and a single junction state of one junction: drop the loop
                k = seen[node]
                for w in path[k:]:
                    del seen[w]
                del path[k:]
            seen[node] = len(path)
            path.append(node)
            v = parent[v]
        return list(zip(path, path[1:] + [node]))


class NoPath(Exception):
    """Net n has no path to terminal stub `target` in the fabric at all (not congestion)."""

    def __init__(self, n: int, target: int):
        super().__init__(n, target)
        self.net, self.target = n, target
