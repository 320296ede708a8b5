"""What makes a placement legal, checked where a placement is produced (`map_graph`,
`refine_placement`): the placement IR's spec (the IR itself is `mapper/ir.py`).

Legal: tile names unique; every tile on a site of the die that holds its kind; one tile per site;
every net has a driver and a sink, and its pins are pins of tiles of the placement (the pin
names of their kind, `die/geometry.PINS`). Against the placement it was refined from, also: the
same tiles and nets, the I/O tile where it was, and layer blocks still in pipeline order along
every kind's serpentine if they were (`blocks_in_order`).
"""

from __future__ import annotations

from dataclasses import replace

from taalas_compile.config.die import KIND_OF_LETTER, Die
from taalas_compile.die.geometry import PINS
from taalas_compile.mapper.ir import Placement

MOVABLE = ("mac", "vu", "sram")  # the kinds whose tiles may change sites: the I/O tile never moves
SHOWN = 5  # problems named in an IllegalPlacement's message


class IllegalPlacement(Exception):
    """A placement that breaks the rules above: a compiler bug, not a user error. The message
    names the first problems; all of them are in `problems`."""

    def __init__(self, problems: list[str]) -> None:
        more = f" (+{len(problems) - SHOWN} more)" if len(problems) > SHOWN else ""
        super().__init__(f"illegal placement: {'; '.join(problems[:SHOWN])}{more}")
        self.problems = problems


def block_order(pl: Placement) -> list[str]:
    """Layer blocks in pipeline order (the order their first tiles appear in)."""
    return list(dict.fromkeys(t.block for t in pl.tiles))


def blocks_in_order(pl: Placement, die: Die) -> bool:
    """True when, for every kind, block i's sites all come before block i+1's on its serpentine."""
    rank = {b: i for i, b in enumerate(block_order(pl))}
    for kind in MOVABLE:
        pos = {s: i for i, s in enumerate(die.sites(kind))}
        seq = [rank[t.block] for t in sorted((t for t in pl.tiles if t.kind == kind), key=lambda t: pos[t.site])]
        if seq != sorted(seq):
            return False
    return True


def placement_problems(pl: Placement, die: Die, original: Placement | None = None) -> list[str]:
    """Every way `pl` is illegal (empty: legal); with `original`, also as a refinement of it."""
    out = []
    seen: dict[tuple[int, int], str] = {}
    names: set[str] = set()
    for t in pl.tiles:
        c, r = t.site
        if t.name in names:
            out.append(f"two tiles named {t.name}")
        names.add(t.name)
        if not (0 <= r < die.grid.n_rows and 0 <= c < die.grid.n_cols):
            out.append(f"tile {t.name} on site {t.site}, off the {die.grid.n_cols}x{die.grid.n_rows} sites of die {die.name}")
            continue
        if KIND_OF_LETTER[die.grid.rows[r][c]] != t.kind:
            out.append(f"tile {t.name} ({t.kind}) on site {t.site} of another kind")
        if t.site in seen:
            out.append(f"tiles {seen[t.site]} and {t.name} share site {t.site}")
        seen[t.site] = t.name
    for n in pl.nets:
        if not n.drivers or not n.sinks:
            out.append(f"net {n.name} has no {'driver' if not n.drivers else 'sink'}")
        for p in n.pins:
            if p.tile not in names:
                out.append(f"net {n.name} reaches pin {p} of no tile")
            elif p.pin not in PINS[pl.tile(p.tile).kind]:
                out.append(f"net {n.name} reaches pin {p}, which a {pl.tile(p.tile).kind} tile does not have")
    if original is not None:
        if len(pl.tiles) != len(original.tiles) or pl.nets != original.nets or \
                any(replace(a, site=b.site) != b for a, b in zip(original.tiles, pl.tiles)):
            out.append("refinement changed the tiles or the nets, not only sites")
        else:
            out += [f"I/O tile {t.name} moved" for t in pl.tiles if t.kind == "io" and t.site != original.tile(t.name).site]
        if not out and blocks_in_order(original, die) and not blocks_in_order(pl, die):  # needs every site on the die
            out.append("layer blocks no longer in pipeline order along a serpentine")
    return out


def check_placement(pl: Placement, die: Die, original: Placement | None = None) -> Placement:
    """`pl` unchanged when legal (`placement_problems`), else IllegalPlacement."""
    problems = placement_problems(pl, die, original)
    if problems:
        raise IllegalPlacement(problems)
    return pl
