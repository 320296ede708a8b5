"""The routing-resource graph of a die: every place a net can put metal, as integer node ids.

Built from the die description (docs/die-model.md, "Routing fabric") and the pins the placement
uses. Per channel c the *columns* are the x positions of the fixed stubs a route can land a via on,
sorted left to right: the pins of the tiles of row c that belong to a net, and the ends of the
feedthroughs joining channel c to c - 1 and c + 1.

    node                  what it is                                          capacity
    S(c, i)               stub of column i: a tile pin or a feedthrough end   pin: its net only;
                                                                              feedthrough: 1
    J(c, t, i)            track t at column i                                 1
    gap G(c, t, p)        a pair p of columns of channel c closer than        1 (a side resource)
                          2 * wire_end + metal_space: two different nets'
                          wires on track t, one on each, would break spacing

    edges                 J(c,t,i) - J(c,t,i+1) (custom metal, cost = distance),
                          S(c,i) - J(c,t,i) for every t (a custom via),
                          S(c,i) - S(c+1,i') for the two ends of one feedthrough (fixed fabric).

A feedthrough's two stub nodes are one resource (the lower end's id). A junction touches the gap
resources of every tight pair it is part of, so two nets can never end up on such a pair. Node ids
are arithmetic, so the graph is never materialised: ``id = (c * (T + 1) + t + 1) * M + i`` with
``t = -1`` for the stub, T tracks per channel and M >= the most columns of any channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from taalas_compile.config.die import Die
from taalas_compile.die.geometry import Geometry
from taalas_compile.mapper.ir import Placement

FEEDTHROUGH = -1  # owner of a feedthrough stub: any net may take it (capacity 1)


@dataclass(frozen=True)
class Column:
    """One stub of a channel: a tile pin or a feedthrough end."""

    x: int  # nm
    what: str  # "pin <tile>.<pin>" or "ft <col>,<row>,<k>"
    owner: int  # index of the net whose pin it is, or FEEDTHROUGH
    ft: tuple[int, int, int] | None = None  # (col, row, k) of a feedthrough end


class RRGraph:
    """Channels, columns and the id arithmetic of the routing-resource graph of one placement."""

    def __init__(self, die: Die, columns: list[list[Column]]):
        geo = Geometry(die)
        self.die = die
        self.n_chan = len(columns)
        self.tracks = die.routing.channel_tracks
        self.columns = columns  # [channel][i]
        self.xs = [[col.x for col in chan] for chan in columns]  # [channel][i] -> x, nm
        self.owner = [[col.owner for col in chan] for chan in columns]
        self.pitch_x, self.tile_w, self.n_cols = geo.pitch_x, geo.tile_w, die.grid.n_cols  # for the A* heuristic
        self.M = max((len(ch) for ch in columns), default=0) + 1
        self.T1 = self.tracks + 1
        self.min_gap = 2 * geo.wire_end + die.rules.metal_space  # via centre to via centre, two nets on a track
        # feedthrough ends: stub id -> the other end's id; resource of both = the lower end's id
        self.partner: dict[int, int] = {}
        self.ft_of: dict[int, tuple[int, int, int]] = {}
        self.ft_res: dict[int, int] = {}  # stub -> the feedthrough's resource id
        self.ft_dir: dict[int, int] = {}  # stub -> +1 (the other end is in the channel above) or -1
        lower: dict[tuple[int, int, int], int] = {}
        for c, chan in enumerate(columns):
            for i, col in enumerate(chan):
                if col.ft is not None:
                    s = self.stub(c, i)
                    self.ft_of[s] = col.ft
                    self.ft_dir[s] = 1 if col.ft[1] == c else -1
                    if col.ft in lower:
                        self.partner[s], self.partner[lower[col.ft]] = lower[col.ft], s
                        self.ft_res[s] = self.ft_res[lower[col.ft]] = lower[col.ft]
                    else:
                        lower[col.ft] = s
        # tight pairs: tight[c][i] = indices p of the pairs column i belongs to; pair[c][p] = (i, j)
        self.pairs: list[list[tuple[int, int]]] = []
        self.tight: list[list[tuple[int, ...]]] = []
        for xs in self.xs:
            pairs, j = [], 0
            for i, x in enumerate(xs):  # j: one past the last column closer than min_gap to the right of i
                j = max(j, i + 1)
                while j < len(xs) and xs[j] - x < self.min_gap:
                    j += 1
                pairs.extend((i, k) for k in range(i + 1, j))
            of: list[list[int]] = [[] for _ in xs]
            for p, (i, j) in enumerate(pairs):
                of[i].append(p)
                of[j].append(p)
            self.pairs.append(pairs)
            self.tight.append([tuple(v) for v in of])
        self.P = max((len(p) for p in self.pairs), default=0) + 1
        self.n_nodes = self.n_chan * self.T1 * self.M  # gap resource ids start here

    # --- ids -------------------------------------------------------------------------------
    def stub(self, c: int, i: int) -> int:
        return c * self.T1 * self.M + i

    def junction(self, c: int, t: int, i: int) -> int:
        return (c * self.T1 + t + 1) * self.M + i

    def gap(self, c: int, t: int, p: int) -> int:
        return self.n_nodes + (c * self.tracks + t) * self.P + p

    def decode(self, v: int) -> tuple[int, int, int]:
        """(channel, track or -1 for a stub, column)."""
        q, i = divmod(v, self.M)
        c, t1 = divmod(q, self.T1)
        return c, t1 - 1, i

    def decode_gap(self, g: int) -> tuple[int, int, int]:
        q, p = divmod(g - self.n_nodes, self.P)
        c, t = divmod(q, self.tracks)
        return c, t, p

    def resource(self, v: int) -> int | None:
        """The capacity-1 resource a node takes: itself, a feedthrough's lower end, or None (a pin)."""
        if self.decode(v)[1] >= 0:
            return v
        return self.ft_res.get(v)

    def where(self, r: int) -> tuple[int, int, int]:
        """(channel, x0, x1) of a resource, nm: for reports."""
        if r >= self.n_nodes:
            c, _, p = self.decode_gap(r)
            i, j = self.pairs[c][p]
            return c, self.xs[c][i], self.xs[c][j]
        c, _, i = self.decode(r)
        return c, self.xs[c][i], self.xs[c][i]


def build_rrgraph(pl: Placement, die: Die) -> RRGraph:
    """The graph for a placement: columns at the pins of its nets and at every feedthrough end."""
    geo = Geometry(die)
    per_chan: list[list[Column]] = [[] for _ in range(die.grid.n_rows)]
    for n, net in enumerate(pl.nets):
        for p in dict.fromkeys(net.pins):
            t = pl.tile(p.tile)
            col, row = t.site
            per_chan[row].append(Column(geo.pin_x(t.kind, p.pin, col), f"pin {p.tile}.{p.pin}", n))
    for row in range(die.grid.n_rows - 1):
        for col in range(die.grid.n_cols):
            for k in range(die.routing.feedthroughs):
                x, key = geo.feedthrough_x(col, row, k), (col, row, k)
                for ch in (row, row + 1):
                    per_chan[ch].append(Column(x, f"ft {col},{row},{k}", FEEDTHROUGH, key))
    for ch in per_chan:
        ch.sort(key=lambda col: (col.x, col.what))
        for a, b in pairwise(ch):
            assert a.x != b.x, f"two stubs at x={a.x} (a pin in two nets?): {a.what}, {b.what}"
    return RRGraph(die, per_chan)
