"""route_nets: Placement -> Routing, by PathFinder over the die's routing-resource graph.

The graph (`mapper/rrgraph.py`) has a node per stub a net can land a via on (its own pins, any
feedthrough end) and per track at every such stub column; `mapper/pathfinder.py` negotiates until
no junction, feedthrough or tight gap is used by two nets. Each net's route tree then becomes
`TrackPiece`s: per channel and track, its runs of junctions, with a via wherever the tree hops
between the track and a stub. Two runs of one net on a track closer than the spacing rule are
drawn as one piece: no other net can sit between them (the gap resources forbid it).

`Routing` is the routing IR; `check_routing` is its spec, run on every routing `route_nets` makes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

from taalas_compile.config.die import Die
from taalas_compile.die.geometry import Geometry
from taalas_compile.errors import UserError
from taalas_compile.mapper.ir import Placement
from taalas_compile.mapper.pathfinder import (
    IterationStats,
    Negotiation,
    NetRoute,
    NoPath,
    PathFinder,
    PathFinderCfg,
)
from taalas_compile.mapper.rrgraph import RRGraph, build_rrgraph

__all__ = ["IllegalRouting", "IterationStats", "PathFinderCfg", "Routing", "Stub", "TrackPiece", "check_routing", "route_nets"]

SHOWN = 5  # problems named in an IllegalRouting's message


@dataclass(frozen=True)
class Stub:
    """A fixed vertical stub crossing channel `channel` at x: a tile pin or a feedthrough end."""

    channel: int
    x: int
    what: str  # "pin <tile>.<pin>" or "ft <col>,<row>,<k>"


@dataclass(frozen=True)
class TrackPiece:
    """A custom-metal track piece and the vias that land it on stubs."""

    net: str
    channel: int
    track: int
    x0: int  # centre of the leftmost via, nm
    x1: int  # centre of the rightmost via, nm
    stubs: tuple[Stub, ...]


@dataclass(frozen=True)
class Routing:
    """The routed nets: every net's track pieces and the feedthroughs it climbs through."""

    segments: tuple[TrackPiece, ...]
    feedthroughs: dict  # net -> tuple of (col, row, k) segments it uses
    tracks_used: dict  # channel -> tracks used (highest track used + 1), channels with pieces only
    iterations: tuple[IterationStats, ...] = ()  # the router's table, one row per PathFinder iteration

    def wirelength(self) -> int:
        """Custom-metal track length, nm (feedthroughs are fixed fabric and not counted)."""
        return sum(s.x1 - s.x0 for s in self.segments)


class IllegalRouting(Exception):
    """A routing that breaks the rules `check_routing` enforces: a compiler bug, not a user error.
    The message names the first problems; all of them are in `problems`."""

    def __init__(self, problems: list[str]) -> None:
        more = f" (+{len(problems) - SHOWN} more)" if len(problems) > SHOWN else ""
        super().__init__(f"illegal routing: {'; '.join(problems[:SHOWN])}{more}")
        self.problems = problems


def routing_problems(ro: Routing, pl: Placement, die: Die) -> list[str]:
    """Every way `ro` fails to route `pl` legally (empty: legal): a piece off its channel's tracks
    or without end vias, a stub or feedthrough shared by two nets (a short), two pieces on a track
    closer than the spacing rule, a net of the placement left open (unrouted or in pieces), a piece
    of no net of the placement."""
    out = []
    min_gap = 2 * Geometry(die).wire_end + die.rules.metal_space
    nets = {n.name for n in pl.nets}
    owner: dict[str, str] = {}  # stub -> net; a feedthrough's two ends are one stub, named alike
    parent: dict[str, str] = {}

    def find(a: str) -> str:
        while parent.setdefault(a, a) != a:
            parent[a] = a = parent[parent[a]]
        return a

    for s in ro.segments:
        where = f"net {s.net} channel {s.channel} track {s.track}"
        if s.net not in nets:
            out.append(f"{where}: no such net in the placement")
        if not (0 <= s.channel < die.grid.n_rows and 0 <= s.track < die.routing.channel_tracks):
            out.append(f"{where}: off the die's {die.grid.n_rows} channels of {die.routing.channel_tracks} tracks")
        xs = [st.x for st in s.stubs]
        if len(xs) < 2 or xs[0] != s.x0 or xs[-1] != s.x1 or xs != sorted(xs) or any(st.channel != s.channel for st in s.stubs):
            out.append(f"{where}: piece {s.x0}..{s.x1} not landed by vias at both ends, in order, in its channel")
        for st in s.stubs:
            if owner.setdefault(st.what, s.net) != s.net:
                out.append(f"short: {st.what} used by nets {owner[st.what]} and {s.net}")
            parent[find(st.what)] = find(s.stubs[0].what)
    for n in pl.nets:
        pieces = {find(f"pin {p}") for p in n.pins}
        if len(pieces) > 1:
            out.append(f"net {n.name} is open: its pins in {len(pieces)} unconnected pieces")
    by_track: dict[tuple[int, int], list[TrackPiece]] = {}
    for s in ro.segments:
        by_track.setdefault((s.channel, s.track), []).append(s)
    for pieces in by_track.values():
        pieces.sort(key=lambda s: s.x0)
        for a, b in pairwise(pieces):
            if b.x0 - a.x1 < min_gap:
                out.append(f"nets {a.net} and {b.net} closer than {min_gap} nm on channel {a.channel} track {a.track}")
    used: dict[tuple, str] = {}
    for net, fts in ro.feedthroughs.items():
        for ft in fts:
            if used.setdefault(tuple(ft), net) != net:
                out.append(f"short: feedthrough {ft} used by nets {used[tuple(ft)]} and {net}")
    return out


def check_routing(ro: Routing, pl: Placement, die: Die) -> Routing:
    """`ro` unchanged when it routes `pl` legally (`routing_problems`), else IllegalRouting."""
    problems = routing_problems(ro, pl, die)
    if problems:
        raise IllegalRouting(problems)
    return ro


def route_nets(pl: Placement, die: Die, cfg: PathFinderCfg | None = None,
               log: Callable[[IterationStats], None] | None = None) -> Routing:
    """Route every net of the placement; `log` gets each iteration's figures as they come."""
    cfg = cfg or PathFinderCfg()
    geo = Geometry(die)
    g = build_rrgraph(pl, die)
    terminals = _terminals(pl, g)
    pf = PathFinder(g, terminals, geo.pitch_x, cfg)
    try:
        neg = pf.run(lambda route: _length(g, route), log)
    except NoPath as e:
        c, _, i = g.decode(e.target)
        raise UserError(f"cannot route net {pl.nets[e.net].name}: no path in the fabric of die {die.name} to "
                        f"{g.columns[c][i].what[4:]} (channel {c}); the die has {die.routing.feedthroughs} feedthroughs per gap") from None
    if neg.iterations[-1].overused:
        raise UserError(_congestion_message(pl, g, neg, die, stalled=len(neg.iterations) < cfg.max_iterations))
    segments, fts = [], {}
    for net, route in zip(pl.nets, neg.routes):
        segments.extend(_segments(g, net.name, route))
        used = sorted(g.ft_of[v] for v in route.tree if v in g.ft_of)
        if used:
            fts[net.name] = tuple(dict.fromkeys(used))
    tracks_used: dict[int, int] = {}
    for s in segments:
        tracks_used[s.channel] = max(tracks_used.get(s.channel, 0), s.track + 1)
    routing = Routing(tuple(segments), fts, dict(sorted(tracks_used.items())), tuple(neg.iterations))
    return check_routing(routing, pl, die)  # connected, unshared, spaced, within the channels


def _terminals(pl: Placement, g: RRGraph) -> list[list[int]]:
    """Per net, the stub ids of its pins, first driver first."""
    where = {col.what: g.stub(c, i) for c, chan in enumerate(g.columns) for i, col in enumerate(chan) if col.ft is None}
    return [list(dict.fromkeys(where[f"pin {p}"] for p in net.pins)) for net in pl.nets]


def _runs(g: RRGraph, route: NetRoute):
    """(channel, track, first column, last column, via columns) of each piece of a net's tree."""
    tracks: dict[tuple[int, int], list[int]] = {}
    vias: dict[tuple[int, int], set[int]] = {}
    M, T1 = g.M, g.T1
    for v, parent in route.tree.items():
        q, i = divmod(v, M)
        c, t1 = divmod(q, T1)
        if t1:
            tracks.setdefault((c, t1 - 1), []).append(i)
        if parent >= 0:
            pt1 = parent // M % T1
            if (t1 == 0) != (pt1 == 0):  # a hop between a stub and a track: a via at that column
                vias.setdefault((c, t1 + pt1 - 1), set()).add(i)
    out = []
    for (c, t), cols in sorted(tracks.items()):
        xs, via = g.xs[c], vias.get((c, t), set())
        cols.sort()
        start = prev = cols[0]
        for i in cols[1:] + [None]:
            if i is not None and (i == prev + 1 or xs[i] - xs[prev] < g.min_gap):
                prev = i
                continue
            on = sorted(j for j in via if start <= j <= prev)
            assert on and on[0] == start and on[-1] == prev and len(on) >= 2, f"track piece without end vias: {c, t, start, prev, on}"
            out.append((c, t, start, prev, on))
            if i is not None:
                start = prev = i
    return out


def _length(g: RRGraph, route: NetRoute) -> int:
    return sum(g.xs[c][i1] - g.xs[c][i0] for c, _, i0, i1, _ in _runs(g, route))


def _segments(g: RRGraph, net: str, route: NetRoute) -> list[TrackPiece]:
    out = []
    for c, t, i0, i1, on in _runs(g, route):
        stubs = tuple(Stub(c, g.xs[c][j], g.columns[c][j].what) for j in on)
        out.append(TrackPiece(net, c, t, g.xs[c][i0], g.xs[c][i1], stubs))
    return out


def _congestion_message(pl: Placement, g: RRGraph, neg: Negotiation, die: Die, stalled: bool) -> str:
    over = sorted(r for r, k in neg.occ.items() if k > 1)
    region: dict[int, tuple[int, int]] = {}
    for r in over:
        c, x0, x1 = g.where(r)
        lo, hi = region.get(c, (x0, x1))
        region[c] = (min(lo, x0), max(hi, x1))
    names = [net.name for net, route in zip(pl.nets, neg.routes) if not route.held.isdisjoint(over)]
    worst = sorted(region, key=lambda c: (-sum(g.where(r)[0] == c for r in over), c))[:3]
    where = "; ".join(f"channel {c} x {region[c][0] / 1000:.1f}-{region[c][1] / 1000:.1f} um" for c in worst)
    more = f" (+{len(region) - 3} channels)" if len(region) > 3 else ""
    after = f"after {len(neg.iterations)} PathFinder iterations{' (no progress in the last ones)' if stalled else ''}"
    return (f"cannot route: {len(over)} routing resources still shared {after} "
            f"on die {die.name} ({die.routing.channel_tracks} tracks per channel); congested: {where}{more}; "
            f"unroutable nets: {', '.join(names[:8])}{' ...' if len(names) > 8 else ''}")
