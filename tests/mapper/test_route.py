"""Router: the routing-resource graph, PathFinder negotiation, and legal, connected, deterministic routes."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from mapped_models import placement

from taalas_compile.die.geometry import Geometry
from taalas_compile.die.load import load_die
from taalas_compile.die.program import Io, MatVec
from taalas_compile.errors import UserError
from taalas_compile.mapper.ir import Net, Pin, Placement, Tile
from taalas_compile.mapper.route import (
    IllegalRouting,
    PathFinderCfg,
    Routing,
    check_routing,
    route_nets,
    routing_problems,
)
from taalas_compile.mapper.rrgraph import FEEDTHROUGH, build_rrgraph


# --- a synthetic die and placement ----------------------------------------------------------------
def tiny_die(rows: list[str], tracks: int, feedthroughs: int = 2):
    mini = load_die("mini")
    return mini.model_copy(update={
        "name": "test",
        "grid": mini.grid.model_copy(update={"rows": rows}),
        "routing": mini.routing.model_copy(update={"channel_tracks": tracks, "feedthroughs": feedthroughs}),
    })


def tiny_placement(die, nets: list[tuple[str, tuple[int, int], tuple[int, int]]]) -> Placement:
    """One tile per site ("io" at the I site, "m<col>_<row>" elsewhere); each net joins the
    `out` pin of its first site to the `in` pin of its second (tok_out / tok_in on the I/O tile)."""
    tiles = []
    for r, row in enumerate(die.grid.rows):
        for c, letter in enumerate(row):
            kind, name = ("io", "io") if letter == "I" else ("mac", f"m{c}_{r}")
            tiles.append(Tile(name, kind, (c, r), "", "L0", Io(0) if kind == "io" else MatVec(3, 32, 1, 32, 0, 0)))
    by_site = {t.site: t for t in tiles}

    def pin(site, which):
        t = by_site[site]
        return Pin(t.name, {"out": "tok_out", "in": "tok_in"}[which] if t.kind == "io" else which)

    return Placement(die.name, tuple(tiles), tuple(Net(name, (pin(a, "out"),), (pin(b, "in"),)) for name, a, b in nets))


def first_fit_trap():
    """Four two-pin nets in one channel whose overlaps form a path i1 - i2 - i3 - i4 (two tracks
    suffice), routed in the order i1, i4, i2, i3: i1 and i4 take track 0, i2 track 1, and i3
    overlaps both, with no stub of its own in between to change track: it must share at first."""
    die = tiny_die(["IMMMMMMMM"], tracks=2)
    nets = [("i1", (0, 0), (2, 0)), ("i4", (6, 0), (8, 0)), ("i2", (1, 0), (4, 0)), ("i3", (3, 0), (7, 0))]
    return die, tiny_placement(die, nets)


def stories():
    return placement("stories260k", "mini")


# --- checking a routing ---------------------------------------------------------------------------
def check_legal(ro: Routing, pl: Placement, die) -> None:
    """What sign-off needs of the routes (`check_routing`, which route_nets also runs), and a
    converged router table that adds up."""
    assert routing_problems(ro, pl, die) == []
    assert ro.iterations and ro.iterations[-1].overused == 0
    assert ro.iterations[-1].wirelength == ro.wirelength()


# --- the graph ------------------------------------------------------------------------------------
def test_rrgraph_ids_feedthroughs_and_tight_pairs():
    pl, die = stories()
    g = build_rrgraph(pl, die)
    assert g.n_chan == die.grid.n_rows
    for c in (0, 5, g.n_chan - 1):
        xs = g.xs[c]
        assert xs == sorted(set(xs))
        for t in (0, g.tracks - 1):
            for i in (0, len(xs) - 1):
                assert g.decode(g.junction(c, t, i)) == (c, t, i)
                assert g.resource(g.junction(c, t, i)) == g.junction(c, t, i)
        assert g.decode(g.stub(c, 3)) == (c, -1, 3)
        tight = {(i, j) for i in range(len(xs)) for j in range(i + 1, len(xs)) if xs[j] - xs[i] < g.min_gap}
        assert set(g.pairs[c]) == tight
        for p, (i, j) in enumerate(g.pairs[c]):
            assert p in g.tight[c][i] and p in g.tight[c][j]
            assert g.decode_gap(g.gap(c, 2, p)) == (c, 2, p)
    # every feedthrough: two ends, one resource, anyone's; pins belong to their net
    assert len(g.partner) == 2 * (die.grid.n_rows - 1) * die.grid.n_cols * die.routing.feedthroughs
    for s, w in g.partner.items():
        (cs, _, i), (cw, _, j) = g.decode(s), g.decode(w)
        assert g.partner[w] == s and abs(cs - cw) == 1 and g.xs[cs][i] == g.xs[cw][j]
        assert g.resource(s) == g.resource(w) and g.owner[cs][i] == FEEDTHROUGH
    pins = sum(len(n.pins) for n in pl.nets)
    assert sum(o != FEEDTHROUGH for ch in g.owner for o in ch) == pins


# --- negotiation ----------------------------------------------------------------------------------
def test_pathfinder_resolves_what_first_fit_overuses():
    die, pl = first_fit_trap()
    seen = []
    ro = route_nets(pl, die, log=seen.append)
    assert ro.iterations[0].overused > 0 and ro.iterations[0].overuse > 0
    assert ro.iterations[-1].overused == 0 and len(ro.iterations) > 1
    assert seen == list(ro.iterations) and [s.iteration for s in seen] == list(range(1, len(seen) + 1))
    check_legal(ro, pl, die)
    track = {s.net: s.track for s in ro.segments}
    assert len(ro.segments) == 4 and track["i1"] != track["i2"] and track["i2"] != track["i3"] and track["i3"] != track["i4"]
    assert ro.tracks_used == {0: 2}


def test_every_net_rerouted_each_iteration_converges_too():
    die, pl = first_fit_trap()
    ro = route_nets(pl, die, PathFinderCfg(reroute_all=True))
    assert ro.iterations[0].overused > 0 and ro.iterations[-1].overused == 0
    check_legal(ro, pl, die)


def test_unroutable_is_an_error_naming_the_nets_and_the_region():
    die = tiny_die(["IMMMMMMMM"], tracks=1)
    pl = tiny_placement(die, [("n1", (0, 0), (4, 0)), ("n2", (2, 0), (6, 0)), ("n3", (7, 0), (8, 0))])
    with pytest.raises(UserError) as e:
        route_nets(pl, die, PathFinderCfg(max_iterations=6))
    msg = str(e.value)
    assert msg.startswith("cannot route: ") and "after 6 PathFinder iterations on die test (1 tracks per channel)" in msg
    geo = Geometry(die)
    lo, hi = geo.pitch_x * 2 / 1000, geo.pitch_x * 4 / 1000
    assert "congested: channel 0 x " in msg and "unroutable nets: n1, n2" in msg and "n3" not in msg, msg
    x0, x1 = (float(v) for v in msg.split("channel 0 x ")[1].split(" um")[0].split("-"))
    assert lo <= x0 <= x1 <= hi + 1, msg  # the overlap of n1 and n2, between columns 2 and 4


def test_a_net_with_no_way_between_rows_is_an_error():
    die = tiny_die(["IMM", "MMM"], tracks=4, feedthroughs=0)
    pl = tiny_placement(die, [("up", (1, 0), (1, 1))])
    with pytest.raises(UserError, match=r"cannot route net up: no path in the fabric of die test to m1_1\.in \(channel 1\)"):
        route_nets(pl, die)


def test_nets_climb_through_feedthroughs_one_net_each():
    die = tiny_die(["IMM", "MMM", "MMM"], tracks=3, feedthroughs=1)
    nets = [(f"v{c}", (c, 0), (c, 2)) for c in (1, 2)] + [("h", (0, 1), (2, 1))]
    pl = tiny_placement(die, nets)
    ro = route_nets(pl, die)
    check_legal(ro, pl, die)
    assert set(ro.feedthroughs) == {"v1", "v2"} and all(len(ft) == 2 for ft in ro.feedthroughs.values())
    assert all({r for _, r, _ in fts} == {0, 1} for fts in ro.feedthroughs.values())


# --- on a real placement --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stories_routed():
    pl, die = stories()
    return pl, die, route_nets(pl, die)


def test_stories260k_routes_are_connected_unshared_and_spaced(stories_routed):
    pl, die, ro = stories_routed
    check_legal(ro, pl, die)
    assert max(ro.tracks_used.values()) <= die.routing.channel_tracks
    assert {s.net for s in ro.segments} == {n.name for n in pl.nets}


def test_routing_is_deterministic(stories_routed):
    pl, die, ro = stories_routed
    again = route_nets(pl, die)
    assert again.segments == ro.segments and again.feedthroughs == ro.feedthroughs
    assert again.tracks_used == ro.tracks_used and again.iterations == ro.iterations  # seconds not compared


def test_stories260k_converges_quickly(stories_routed):
    _, _, ro = stories_routed
    assert len(ro.iterations) <= 5 and sum(s.seconds for s in ro.iterations) < 5


# --- the routing's spec: broken routings are refused ----------------------------------------------
def broken(ro: Routing, segments=None, feedthroughs=None) -> Routing:
    return replace(ro, segments=ro.segments if segments is None else tuple(segments),
                   feedthroughs=ro.feedthroughs if feedthroughs is None else feedthroughs)


def test_an_unrouted_net_is_open(stories_routed):
    pl, die, ro = stories_routed
    net = pl.nets[3].name
    bad = broken(ro, [s for s in ro.segments if s.net != net])
    pins = len({str(p) for p in pl.nets[3].pins})
    assert routing_problems(bad, pl, die) == [f"net {net} is open: its pins in {pins} unconnected pieces"]
    with pytest.raises(IllegalRouting, match=rf"^illegal routing: net {re.escape(net)} is open"):
        check_routing(bad, pl, die)


def test_a_piece_on_another_nets_stub_is_a_short(stories_routed):
    pl, die, ro = stories_routed
    a = ro.segments[0]
    other = next(n.name for n in pl.nets if n.name != a.net)
    intruder = replace(a, net=other, track=(a.track + 1) % die.routing.channel_tracks)
    problems = routing_problems(broken(ro, ro.segments + (intruder,)), pl, die)
    assert f"short: {a.stubs[0].what} used by nets {a.net} and {other}" in problems


def test_a_shared_feedthrough_is_a_short(stories_routed):
    pl, die, ro = stories_routed
    (n1, fts), n2 = next(iter(ro.feedthroughs.items())), next(n.name for n in pl.nets if n.name not in ro.feedthroughs)
    problems = routing_problems(broken(ro, feedthroughs={**ro.feedthroughs, n2: fts[:1]}), pl, die)
    assert f"short: feedthrough {fts[0]} used by nets {n1} and {n2}" in problems


def test_a_track_beyond_the_channel_capacity_is_named(stories_routed):
    pl, die, ro = stories_routed
    s = ro.segments[0]
    over = replace(s, track=die.routing.channel_tracks)
    problems = routing_problems(broken(ro, (over,) + ro.segments[1:]), pl, die)
    where = f"net {s.net} channel {s.channel} track {over.track}"
    assert problems == [f"{where}: off the die's {die.grid.n_rows} channels of {die.routing.channel_tracks} tracks"]


def test_pieces_too_close_on_a_track_and_pieces_without_end_vias_are_named(stories_routed):
    pl, die, ro = stories_routed
    a = ro.segments[0]
    other = next(n.name for n in pl.nets if n.name != a.net)
    near = replace(a, net=other, x0=a.x1 + 1, x1=a.x1 + 2, stubs=())
    problems = routing_problems(broken(ro, ro.segments + (near,)), pl, die)
    assert any(p.startswith(f"nets {a.net} and {other} closer than") for p in problems)
    assert any("not landed by vias at both ends" in p for p in problems)
    ghost = replace(a, net="ghost")
    assert any("net ghost channel" in p and "no such net" in p for p in routing_problems(broken(ro, ro.segments + (ghost,)), pl, die))
