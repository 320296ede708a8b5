"""route_nets: Placement -> Routing, on the die's channels and feedthroughs.

Each net touches the channels under the rows of its pins. A net in one channel is a single track
piece spanning its pin stubs. A net over several channels climbs through one column gap on one
feedthrough segment per row it crosses, and in every channel it touches takes one track piece
spanning its pins and feedthrough stubs there. Track pieces are packed onto tracks per channel
with the left-edge algorithm (sorted by left end; first track whose last piece ends far enough to
the left). Deterministic: nets are processed in netlist order, ties broken by name.
"""

from __future__ import annotations

from dataclasses import dataclass

from taalas_compile.config.die import Die
from taalas_compile.die.geometry import Geometry
from taalas_compile.errors import UserError
from taalas_compile.mapper.ir import Placement


@dataclass(frozen=True)
class Stub:
    """A fixed vertical stub crossing channel `channel` at x: a tile pin or a feedthrough end."""

    channel: int
    x: int
    what: str  # "pin <tile>.<pin>" or "ft <col>,<row>,<k>"


@dataclass(frozen=True)
class Segment:
    """A custom-metal track piece and the vias that land it on stubs."""

    net: str
    channel: int
    track: int
    x0: int  # centre of the leftmost via, nm
    x1: int  # centre of the rightmost via, nm
    stubs: tuple[Stub, ...]


@dataclass(frozen=True)
class Routing:
    segments: tuple[Segment, ...]
    feedthroughs: dict  # net -> tuple of (col, row, k) segments it uses
    tracks_used: dict  # channel -> tracks used

    def wirelength(self) -> int:
        """Custom-metal track length, nm (feedthroughs are fixed fabric and not counted)."""
        return sum(s.x1 - s.x0 for s in self.segments)


def pin_stub(geo: Geometry, pl: Placement, tile: str, pin: str) -> Stub:
    t = pl.tile(tile)
    col, row = t.site
    return Stub(row, geo.pin_x(t.kind, pin, col), f"pin {tile}.{pin}")


def ft_stubs(geo: Geometry, col: int, row: int, k: int) -> tuple[Stub, Stub]:
    """The two ends of feedthrough (col, row, k): in channel row and channel row + 1."""
    x = geo.feedthrough_x(col, row, k)
    what = f"ft {col},{row},{k}"
    return Stub(row, x, what), Stub(row + 1, x, what)


def route_nets(pl: Placement, die: Die) -> Routing:
    geo = Geometry(die)
    n_ft = die.routing.feedthroughs
    used_ft: set[tuple[int, int, int]] = set()
    pieces: dict[int, list[tuple[str, list[Stub]]]] = {}
    fts: dict[str, tuple] = {}
    for net in pl.nets:
        stubs = [pin_stub(geo, pl, p.tile, p.pin) for p in net.pins]
        chans = sorted({s.channel for s in stubs})
        per_chan: dict[int, list[Stub]] = {c: [s for s in stubs if s.channel == c] for c in chans}
        if len(chans) > 1:
            lo, hi = chans[0], chans[-1]
            mid = sorted(s.x for s in stubs)[len(stubs) // 2]
            cols = sorted(range(die.grid.n_cols), key=lambda c: (abs(c * geo.pitch_x + geo.tile_w - mid), c))
            chosen = None
            for c in cols:
                ks = [next((k for k in range(n_ft) if (c, r, k) not in used_ft), None) for r in range(lo, hi)]
                if all(k is not None for k in ks):
                    chosen = [(c, r, k) for r, k in zip(range(lo, hi), ks)]
                    break
            if chosen is None:
                raise UserError(f"cannot route net {net.name}: no column has a free feedthrough in every row {lo}..{hi - 1}")
            used_ft.update(chosen)
            fts[net.name] = tuple(chosen)
            for c, r, k in chosen:
                a, b = ft_stubs(geo, c, r, k)
                per_chan.setdefault(r, []).append(a)
                per_chan.setdefault(r + 1, []).append(b)
        for ch, ss in per_chan.items():
            pieces.setdefault(ch, []).append((net.name, sorted(ss, key=lambda s: s.x)))
    segments, tracks_used = _assign_tracks(pieces, geo, die)
    return Routing(segments, fts, tracks_used)


def _assign_tracks(pieces: dict[int, list[tuple[str, list[Stub]]]], geo: Geometry, die: Die):
    space = 2 * geo.wire_end + die.rules.metal_space  # min distance between via centres of two pieces on a track
    segments: list[Segment] = []
    tracks_used: dict[int, int] = {}
    for ch in sorted(pieces):
        items = sorted(pieces[ch], key=lambda it: (it[1][0].x, it[1][-1].x, it[0]))
        ends: list[int] = []  # last x1 per track
        for net, ss in items:
            x0, x1 = ss[0].x, ss[-1].x
            t = next((i for i, e in enumerate(ends) if x0 - e >= space), None)
            if t is None:
                t = len(ends)
                ends.append(0)
            ends[t] = x1
            segments.append(Segment(net, ch, t, x0, x1, tuple(ss)))
        tracks_used[ch] = len(ends)
        if len(ends) > die.routing.channel_tracks:
            over = [s.net for s in segments if s.channel == ch and s.track >= die.routing.channel_tracks]
            raise UserError(
                f"cannot route: channel {ch} (under site row {ch}) needs {len(ends)} tracks, die {die.name} has "
                f"{die.routing.channel_tracks}; nets over capacity: {', '.join(over[:5])}{' ...' if len(over) > 5 else ''}"
            )
    return tuple(segments), tracks_used
