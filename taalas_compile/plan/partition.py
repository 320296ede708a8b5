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
from taalas_compile.config.recipe import LoraCfg, TargetCfg
from taalas_compile.errors import UserError
from taalas_compile.frontend.ir import Op, OpNode, op_node
from taalas_compile.quant.codes import QuantSpec

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


def partition_blocks(needs: dict[str, dict], die: Die, dies: int | None = None) -> list[Cut]:
    """Balanced contiguous stages of the blocks (pipeline order = dict order) on copies of `die`:
    on the fewest dies they fit, or on exactly `dies` (at least that fewest, at most one block each)."""
    have = {k: len(die.sites(k)) for k in KINDS}
    order = [b for b in needs if b != "io"]
    for b in order:
        if not _fits(needs[b], have):
            detail = ", ".join(f"{k} {math.ceil(needs[b][k]):,} / {have[k]:,}" for k in KINDS)
            raise UserError(f"the model does not fit die {die.name}, not even split over several: block {b} alone needs "
                            f"more tiles than one die has ({detail}); use a larger die or fewer bits")
    least = len(_pack(order, needs, have))
    if dies is not None and not least <= dies <= len(order):
        why = (f"the model needs at least {least} {die.name} dies" if dies < least
               else f"the model has {len(order)} layer blocks (head, layers, tail), one die each at most")
        raise UserError(f"[target] dies = {dies}: {why}; give dies = {least}..{len(order)} or leave it out")
    stages = _balance(order, needs, have, dies or least)
    return [Cut(i, tuple(s), _sum([needs[b] for b in s])) for i, s in enumerate(stages)]


def partition_model(g: nx.DiGraph, specs: dict[str, QuantSpec], die: Die, target: TargetCfg) -> list[Cut]:
    """The pipeline stages of a model on copies of `die` (`target.dies` of them, or the fewest
    it fits): every block's tiles (mapper/place.tile_needs) plus its layers' share of the LoRA
    reserve, which each die holds for its own layers. Every stage sends the residual stream over
    the die-to-die link, so a die without a `[link]` cannot be one of several."""
    from taalas_compile.mapper.place import (
        tile_needs,  # the mapper imports stage_graph's users
    )

    args = g.graph["args"]
    bare = tile_needs(g, specs, die, target.model_copy(update={"lora": LoraCfg()}))
    numel = {p.name: p.numel for n in g.nodes for p in op_node(g, n).params if p.kind == "weight"}
    lora_tiles = lora_reserve_bytes(target.lora, numel, args.dim) / args.n_layers / die.tiles.sram.bytes  # per layer, fractional
    per_block = {b: {**n, "sram": n["sram"] + (lora_tiles if b.startswith("L") else 0)} for b, n in bare.items()}
    cuts = partition_blocks(per_block, die, target.dies)
    if len(cuts) > 1 and die.link is None:
        raise UserError(f"die {die.name} has no [link]: it cannot drive a die-to-die link, and the model needs {len(cuts)} dies "
                        f"({'[target] dies' if target.dies else 'it does not fit one'}); give a die with a [link] section")
    return cuts


def lora_reserve_bytes(lora: LoraCfg, numel: dict[str, int], dim: int) -> int:
    """SRAM the recipe's [target.lora] reserves: one fp16 slot of max_rank x (in + out) per target
    module per layer (die/sram_layout.py; tile packing ignored). One of in and out of every Llama
    linear is `dim`, so in + out = dim + weights / dim."""
    return lora.max_rank * 2 * sum(dim + n // dim for t, n in numel.items()
                                   if "layers." in t and t.split(".")[-2] in lora.targets)


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
    inside = set(keep)
    h = nx.DiGraph(**g.graph)  # built in the model graph's order: `g.subgraph` iterates a set (hash order) and
    h.add_nodes_from((n, g.nodes[n]) for n in keep)  # the masks must not depend on PYTHONHASHSEED
    h.add_edges_from((u, v, d) for u, v, d in g.edges(data=True) if u in inside and v in inside)
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
