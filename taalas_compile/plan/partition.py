"""Multi-die: a model larger than one die cut into contiguous pipeline stages, one per die.

The pipeline is the sequence of layer blocks `head, L0 .. Ln-1, tail`. A cut goes between two
blocks; the residual stream (`dim` fp32 values) crosses the die-to-die link there, and the sampled
token goes back from the last die to the first. `partition_blocks` finds the fewest dies the
blocks fit on (contiguous packing), then on that many dies the cuts with the smallest largest stage
(MAC tiles) and, among those, the most even sizes (a small dynamic programme over the cut points).

`stage_graph` turns a stage into an ordinary model graph the mapper maps unchanged: the cut
producer outside the stage becomes an INPUT node `link_in` (the link's receive side, mapped to the
die's I/O tile) and the value leaving the stage an OUTPUT node `link_out` (its send side).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import networkx as nx

from taalas_compile.config.die import Die
from taalas_compile.errors import UserError
from taalas_compile.frontend.ir import Op, OpNode, op_node

KINDS = ("mac", "vu", "sram")


@dataclass(frozen=True)
class Cut:
    """One stage: blocks[start:stop] of the pipeline on one die."""

    die_index: int
    blocks: tuple[str, ...]
    needs: dict  # tiles of each kind the stage needs (the die's one I/O tile not counted)


def _sum(needs: list[dict]) -> dict:
    """Tiles per kind of several blocks; a fractional need (a share of a reservation) rounds up once."""
    return {k: math.ceil(round(sum(n.get(k, 0) for n in needs), 9)) for k in KINDS}


def _fits(need: dict, have: dict) -> bool:
    need = _sum([need])
    return all(need[k] <= have[k] for k in KINDS)


def _pack(order: list[str], needs: dict[str, dict], have: dict) -> list[list[str]]:
    """Greedy contiguous packing: each stage takes blocks while they fit (fewest stages)."""
    stages: list[list[str]] = [[]]
    for b in order:
        if stages[-1] and not _fits(_sum([needs[x] for x in stages[-1] + [b]]), have):
            stages.append([])
        stages[-1].append(b)
    return stages


def partition_blocks(needs: dict[str, dict], die: Die) -> list[Cut]:
    """Balanced contiguous stages of the blocks (pipeline order = dict order) on copies of `die`."""
    have = {k: len(die.sites(k)) for k in KINDS}
    order = [b for b in needs if b != "io"]
    for b in order:
        if not _fits(needs[b], have):
            detail = ", ".join(f"{k} {math.ceil(needs[b][k])} / {have[k]}" for k in KINDS)
            raise UserError(f"block {b} alone does not fit die {die.name} ({detail} tiles): use a larger die or fewer bits")
    n = len(_pack(order, needs, have))
    stages = _balance(order, needs, have, n)
    return [Cut(i, tuple(s), _sum([needs[b] for b in s])) for i, s in enumerate(stages)]


def _balance(order: list[str], needs: dict[str, dict], have: dict, n: int) -> list[list[str]]:
    """The n contiguous stages with the smallest largest stage (MAC tiles), then the smallest sum
    of squared stage sizes: a dynamic programme over (blocks placed, stages used)."""
    size = len(order)
    fits = {(i, j): _fits(_sum([needs[b] for b in order[i:j]]), have) for i in range(size) for j in range(i + 1, size + 1)}
    mac = [0]
    for b in order:
        mac.append(mac[-1] + needs[b]["mac"])
    best: dict[tuple[int, int], tuple[float, float, int]] = {(0, 0): (0, 0, -1)}  # (i, k) -> (max, sum sq, previous i)
    for k in range(1, n + 1):
        for j in range(1, size + 1):
            cands = [(max(best[i, k - 1][0], mac[j] - mac[i]), best[i, k - 1][1] + (mac[j] - mac[i]) ** 2, i)
                     for i in range(j) if (i, k - 1) in best and fits[i, j]]
            if cands:
                best[j, k] = min(cands)
    out, j = [], size
    for k in range(n, 0, -1):
        i = best[j, k][2]
        out.append(order[i:j])
        j = i
    return out[::-1]


def stage_graph(g: nx.DiGraph, blocks: tuple[str, ...]) -> nx.DiGraph:
    """The sub-graph of a stage's blocks with the link as its input and output (see module doc)."""
    from taalas_compile.mapper.place import block_of

    keep = [n for n in g.nodes if block_of(op_node(g, n).layer, op_node(g, n).op) in blocks or
            (op_node(g, n).op is Op.INPUT and "head" in blocks) or (op_node(g, n).op is Op.OUTPUT and "tail" in blocks)]
    h = g.subgraph(keep).copy()
    inside = set(keep)
    dim = g.graph["args"].dim
    entering = sorted({(u, v, p) for v in keep for u, _, p in g.in_edges(v, data="port") if u not in inside}, key=lambda e: (keep.index(e[1]), e[2]))
    leaving = sorted({u for u in keep for v in g.successors(u) if v not in inside}, key=keep.index)
    if entering:
        h.add_node("link_in", op=OpNode("link_in", Op.INPUT, (dim,)))
        h.add_edges_from(("link_in", v, {"port": p}) for _, v, p in entering)
    for i, u in enumerate(leaving):
        name = "link_out" if i == 0 else f"link_out{i}"
        h.add_node(name, op=OpNode(name, Op.OUTPUT, ()))
        h.add_edge(u, name, port=0)
    return h
