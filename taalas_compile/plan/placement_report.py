"""Placement analysis (data only; the CLI renders it): wirelength, utilization, cycles per stage.

- Wirelength: half-perimeter (HPWL) of every net's pins, nm, at the pins' stub x and the channel
  under their row — what the router connects (`mapper/wirelength.net_hpwl`). Given the placement
  before a pass as well, both totals and the change.
- Utilization: tiles used / sites available per kind.
- Stages: a pipeline stage is a layer block ("head", "L0".."Ln", "tail"). Per stage, the sum of its
  tiles' cycles for one token at position 1 (`plan/estimate.tile_cycles`: the work) and its
  critical path (the longest chain of its tiles along nets, `hop_cycles` per hop, as in
  `estimate.performance`: the latency through the stage). The worst stage has the longest path.
"""

from __future__ import annotations

import math

import networkx as nx

from taalas_compile.config.die import Die
from taalas_compile.mapper.ir import Placement
from taalas_compile.mapper.legality import block_order
from taalas_compile.mapper.wirelength import net_hpwl
from taalas_compile.plan.estimate import tile_cycles

KINDS = ("mac", "vu", "sram", "io")


def stage_cycles(pl: Placement, die: Die) -> list[dict]:
    """Per layer block in pipeline order: tiles, sum of tile cycles, critical-path cycles."""
    kv_tiles = {n.drivers[0].tile: len(n.sinks) for n in pl.nets if n.name.endswith(".kv")}
    cycles = {t.name: tile_cycles(t, die, 1, kv_tiles.get(t.name, 1)) for t in pl.tiles}
    hop = die.clock.hop_cycles
    out = []
    for block in block_order(pl):
        names = [t.name for t in pl.tiles if t.block == block]
        g = nx.DiGraph()
        g.add_nodes_from(names)
        inside = set(names)
        for n in pl.nets:
            g.add_edges_from((d.tile, s.tile) for d in n.drivers for s in n.sinks
                             if d.tile in inside and s.tile in inside and d.tile != s.tile)
        longest: dict[str, float] = {}
        for v in nx.topological_sort(g):
            longest[v] = cycles[v] + max((longest[p] + hop for p in g.predecessors(v)), default=0.0)
        out.append({"block": block, "tiles": len(names), "cycles_sum": math.fsum(cycles[v] for v in names),
                    "cycles_critical": max(longest.values(), default=0.0)})
    return out


def placement_report(pl: Placement, die: Die, before: Placement | None = None, top: int = 5) -> dict:
    """Wirelength (and its change from `before`), utilization, stage cycles and the worst stage."""
    hpwl = net_hpwl(pl, die)
    stages = stage_cycles(pl, die)
    worst = max(stages, key=lambda s: s["cycles_critical"])
    used = {k: sum(t.kind == k for t in pl.tiles) for k in KINDS}
    have = {k: len(die.sites(k)) for k in KINDS}
    out = {
        "die": die.name,
        "nets": len(hpwl),
        "hpwl_nm": sum(hpwl.values()),
        "longest_nets": [{"net": n, "hpwl_nm": v} for n, v in sorted(hpwl.items(), key=lambda kv: (-kv[1], kv[0]))[:top]],
        "utilization": {k: {"used": used[k], "available": have[k], "utilization": used[k] / max(have[k], 1)} for k in KINDS},
        "stages": stages,
        "worst_stage": {"block": worst["block"], "cycles_critical": worst["cycles_critical"], "cycles_sum": worst["cycles_sum"]},
    }
    if before is not None:
        b = sum(net_hpwl(before, die).values())
        out["hpwl_before_nm"] = b
        out["hpwl_after_nm"] = out["hpwl_nm"]
        out["hpwl_change"] = (out["hpwl_nm"] - b) / b if b else 0.0
        out["tiles_moved"] = sum(before.tile(t.name).site != t.site for t in pl.tiles)
    return out
