"""Mapper: tiles on sites, nets between pins, channel routes."""

from collections import Counter
from itertools import pairwise

import pytest
from mapped_models import placed

from taalas_compile.config.recipe import TargetCfg, load_recipe
from taalas_compile.die.geometry import Geometry
from taalas_compile.die.load import load_die
from taalas_compile.errors import UserError
from taalas_compile.frontend.lower import lower_args
from taalas_compile.inputs import args_of
from taalas_compile.mapper.place import mac_blocks, map_graph
from taalas_compile.mapper.route import PathFinderCfg, route_nets
from taalas_compile.quant.bits import assign_bits
from taalas_compile.quant.codes import QuantSpec


def test_blocks_cover_the_matrix_once_on_group_boundaries():
    die = load_die("mini")
    blocks = mac_blocks((64, 172), QuantSpec(6, 32), die)
    cover = Counter((r, c) for r0, r1, c0, c1 in blocks for r in range(r0, r1) for c in range(c0, c1))
    assert len(cover) == 64 * 172 and set(cover.values()) == {1}
    assert all(c0 % 32 == 0 for _, _, c0, _ in blocks)


def test_stories260k_tiles_sites_and_nets():
    _, pl, die = placed()
    kinds = Counter(t.kind for t in pl.tiles)
    assert kinds["io"] == 1 and kinds["vu"] == 5 * 8 + 2 and kinds["sram"] >= 5
    assert len({t.site for t in pl.tiles}) == len(pl.tiles)
    letters = {(c, r): die.grid.rows[r][c] for r in range(die.grid.n_rows) for c in range(die.grid.n_cols)}
    assert all({"mac": "M", "vu": "V", "sram": "S", "io": "I"}[t.kind] == letters[t.site] for t in pl.tiles)
    nets = {n.name: n for n in pl.nets}
    assert {str(p) for p in nets["L0.q_proj"].sinks} == {"L0.q_rope.a"}
    assert {str(p) for p in nets["embed"].sinks} == {"L0.input_layernorm.a", "L0.add.a"}
    assert len(nets["lm_head"].drivers) == 4  # four row blocks of the tied 512-token table


def test_model_too_big_for_the_die_lists_needed_and_available():
    r = load_recipe("llama-3.1-8b")
    g = lower_args(args_of(r.model.architecture))
    die = load_die("mini")
    with pytest.raises(UserError, match=r"does not fit die mini: mac tiles \d+ needed / 76 available"):
        map_graph(g, assign_bits(g, r.quant, die), die, r.target)


def test_llama_3_1_8b_fits_hc1():
    _, pl, die = placed("llama-3.1-8b", "hc1")
    assert sum(t.kind == "mac" for t in pl.tiles) <= len(die.sites("mac"))


def test_routes_have_no_overlapping_pieces_on_a_track():
    _, pl, die = placed()
    ro = route_nets(pl, die)
    geo = Geometry(die)
    by_track = {}
    for s in ro.segments:
        by_track.setdefault((s.channel, s.track), []).append(s)
    for segs in by_track.values():
        segs.sort(key=lambda s: s.x0)
        for a, b in pairwise(segs):
            assert b.x0 - a.x1 >= 2 * geo.wire_end + die.rules.metal_space
    used = [ft for fts in ro.feedthroughs.values() for ft in fts]
    assert len(used) == len(set(used))


def test_congested_channel_is_a_clear_error():
    _, pl, die = placed()
    tight = die.model_copy(update={"routing": die.routing.model_copy(update={"channel_tracks": 2})})
    with pytest.raises(UserError, match=r"cannot route: \d+ routing resources still shared after 4 PathFinder iterations "
                                        r"on die mini \(2 tracks per channel\); congested: channel \d+ x [\d.]+-[\d.]+ um.*; unroutable nets: "):
        route_nets(pl, tight, PathFinderCfg(max_iterations=4))


def test_kv_cache_sized_from_context_and_sequences():
    r = load_recipe("stories260k")
    die = load_die("mini")
    g = lower_args(args_of(r.model.architecture))
    specs = assign_bits(g, r.quant, die)
    one = map_graph(g, specs, die, TargetCfg(context=512, sequences=1))
    two = map_graph(g, specs, die, TargetCfg(context=512, sequences=2))
    kv = lambda pl: sum(t.program.n_bytes for t in pl.tiles if t.role.name == "KV")
    assert kv(one) == 5 * 512 * die.arith.kv_bytes(4, 8) == 5 * 512 * 2 * 4 * (8 + 2) and kv(two) == 2 * kv(one)
