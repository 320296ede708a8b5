"""The placement's spec (mapper/legality.py): broken placements are named problem by problem and
refused with an IllegalPlacement, where the mapper and the annealer make them."""

from dataclasses import replace

import pytest
from mapped_models import placement

from taalas_compile.mapper.ir import Net, Pin, Placement
from taalas_compile.mapper.legality import (
    IllegalPlacement,
    block_order,
    check_placement,
    placement_problems,
)
from taalas_compile.mapper.refine import refine_placement


@pytest.fixture(scope="module")
def tiny():
    return placement("tiny-llama")


def moved(pl: Placement, name: str, site: tuple[int, int]) -> Placement:
    return Placement(pl.die, tuple(replace(t, site=site) if t.name == name else t for t in pl.tiles), pl.nets)


def test_the_mappers_placements_are_legal(tiny):
    pl, die = tiny
    assert placement_problems(pl, die) == [] and check_placement(pl, die) is pl
    assert block_order(pl)[0] == pl.tiles[0].block and len(block_order(pl)) == len({t.block for t in pl.tiles})


def test_overlapping_tiles_and_wrong_kinds_are_named(tiny):
    pl, die = tiny
    mac, vu = next(t for t in pl.tiles if t.kind == "mac"), next(t for t in pl.tiles if t.kind == "vu")
    bad = moved(pl, mac.name, vu.site)
    problems = placement_problems(bad, die)
    assert f"tile {mac.name} (mac) on site {vu.site} of another kind" in problems
    assert f"tiles {vu.name} and {mac.name} share site {vu.site}" in problems or \
           f"tiles {mac.name} and {vu.name} share site {vu.site}" in problems
    with pytest.raises(IllegalPlacement, match=r"^illegal placement: .*of another kind") as e:
        check_placement(bad, die)
    assert e.value.problems == problems


def test_a_site_off_the_die_is_named(tiny):
    pl, die = tiny
    mac = next(t for t in pl.tiles if t.kind == "mac")
    off = (die.grid.n_cols, 0)
    assert placement_problems(moved(pl, mac.name, off), die) == [
        f"tile {mac.name} on site {off}, off the {die.grid.n_cols}x{die.grid.n_rows} sites of die {die.name}"]


def test_nets_to_missing_tiles_or_pins_and_undriven_nets_are_named(tiny):
    pl, die = tiny
    n = pl.nets[1]
    ghost = replace(n, sinks=n.sinks + (Pin("ghost", "in"),))
    wrong_pin = replace(n, sinks=n.sinks + (Pin(n.drivers[0].tile, "port"),))
    undriven = Net("floating", (), n.sinks)
    bad = Placement(pl.die, pl.tiles, (ghost, wrong_pin, undriven) + pl.nets[2:])
    problems = placement_problems(bad, die)
    kind = pl.tile(n.drivers[0].tile).kind
    assert f"net {n.name} reaches pin ghost.in of no tile" in problems
    assert f"net {n.name} reaches pin {n.drivers[0].tile}.port, which a {kind} tile does not have" in problems
    assert "net floating has no driver" in problems


def test_a_refinement_may_only_move_tiles_within_the_rules(tiny):
    pl, die = tiny
    io_free = next(s for s in die.sites("mac") if s not in {t.site for t in pl.tiles})
    io_moved = Placement(pl.die, tuple(replace(t, site=io_free) if t.kind == "io" else t for t in pl.tiles), pl.nets)
    assert "I/O tile io moved" in placement_problems(io_moved, die, pl)  # and on a MAC site
    renamed = Placement(pl.die, (replace(pl.tiles[0], name="other"),) + pl.tiles[1:], pl.nets)
    assert "refinement changed the tiles or the nets, not only sites" in placement_problems(renamed, die, pl)
    macs = [t for t in pl.tiles if t.kind == "mac"]
    a, b = macs[0], macs[-1]  # the first head tile and the last tail tile trade sites
    swapped = Placement(pl.die, tuple(replace(t, site=b.site) if t is a else replace(t, site=a.site) if t is b else t
                                      for t in pl.tiles), pl.nets)
    assert placement_problems(swapped, die, pl) == ["layer blocks no longer in pipeline order along a serpentine"]


def test_refine_placement_checks_what_it_returns(tiny, monkeypatch):
    pl, die = tiny
    from taalas_compile.mapper import refine

    monkeypatch.setattr(refine, "total_hpwl", lambda p, d: 0)  # keep whatever the annealer made
    monkeypatch.setattr(refine, "_aligned_indices", lambda st: [0] * len(st.idx))  # every tile on serpentine index 0
    monkeypatch.setattr(refine, "_anneal", lambda st, rng, moves: None)
    monkeypatch.setattr(refine._State, "cost_of", lambda self, idx: -1.0)
    with pytest.raises(IllegalPlacement, match="share site"):
        refine_placement(pl, die)
