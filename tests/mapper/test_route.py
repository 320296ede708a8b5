"""Router: the routing-resource graph, PathFinder negotiation, and legal, connected, deterministic routes."""

from __future__ import annotations

from itertools import pairwise

import pytest
from mapped_models import placement

from taalas_compile.config.die import load_die
from taalas_compile.die.geometry import Geometry
from taalas_compile.errors import UserError
from taalas_compile.mapper.ir import Net, Pin, Placement, Role, Tile
from taalas_compile.mapper.route import PathFinderCfg, Routing, route_nets
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
            tiles.append(Tile(name, kind, (c, r), Role.IO if kind == "io" else Role.MATVEC, "", "L0", ()))
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
    """What sign-off needs of the routes: every net connected, nothing shared, spacing on each track."""
    geo = Geometry(die)
    min_gap = 2 * geo.wire_end + die.rules.metal_space
    owner: dict[str, str] = {}  # stub name -> net
    parent: dict[str, str] = {}

    def find(a):
        while parent.setdefault(a, a) != a:
            a = parent[a]
        return a

    for s in ro.segments:
        names = [st.what for st in s.stubs]
        assert len(names) >= 2 and s.stubs[0].x == s.x0 and s.stubs[-1].x == s.x1, s
        assert [st.x for st in s.stubs] == sorted(st.x for st in s.stubs) and all(st.channel == s.channel for st in s.stubs)
        assert 0 <= s.track < die.routing.channel_tracks
        for n in names:
            assert owner.setdefault(n, s.net) == s.net, f"stub {n} used by {owner[n]} and {s.net}"
            parent[find(n)] = find(names[0])
    for net in pl.nets:
        comps = {find(f"pin {p}") for p in net.pins}
        assert len(comps) == 1, f"net {net.name} is open: {len(comps)} pieces"
    by_track: dict[tuple[int, int], list] = {}
    for s in ro.segments:
        by_track.setdefault((s.channel, s.track), []).append(s)
    for segs in by_track.values():
        segs.sort(key=lambda s: s.x0)
        for a, b in pairwise(segs):
            assert b.x0 - a.x1 >= min_gap, f"{a.net} and {b.net} too close on channel {a.channel} track {a.track}"
    used = [ft for fts in ro.feedthroughs.values() for ft in fts]
    assert len(used) == len(set(used))
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
