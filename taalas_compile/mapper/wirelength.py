"""Placement metrics: where a net lands on a pin and the half-perimeter wirelength (HPWL) of every
net. An analysis: returns data. The annealer (`mapper/refine.py`) minimises a weighted form of
it; the planner reports it (`plan/placement_report.py`)."""

from __future__ import annotations

from taalas_compile.config.die import Die
from taalas_compile.die.geometry import Geometry
from taalas_compile.mapper.ir import Placement


def pin_xy(geo: Geometry, kind: str, pin: str, site: tuple[int, int]) -> tuple[int, int]:
    """Where a net lands on a pin, nm: its stub's x and the bottom of the channel under its row."""
    col, row = site
    return geo.pin_x(kind, pin, col), geo.channel_y0(row)


def net_hpwl(pl: Placement, die: Die) -> dict[str, int]:
    """Half-perimeter wirelength of every net's pins, nm."""
    geo = Geometry(die)
    out = {}
    for n in pl.nets:
        xy = [pin_xy(geo, pl.tile(p.tile).kind, p.pin, pl.tile(p.tile).site) for p in n.pins]
        xs, ys = [x for x, _ in xy], [y for _, y in xy]
        out[n.name] = max(xs) - min(xs) + max(ys) - min(ys)
    return out


def total_hpwl(pl: Placement, die: Die) -> int:
    """Sum of `net_hpwl` over the nets, nm."""
    return sum(net_hpwl(pl, die).values())
