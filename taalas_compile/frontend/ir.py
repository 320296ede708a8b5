"""The model IR: a networkx DiGraph of layer-level operations.

Each node id is a dotted module path (``model.layers.0.self_attn.q_proj``); its ``"op"`` attribute
is an `OpNode`. Each edge carries ``port``: which operand of the consumer it feeds (0 for the first
input). Shapes are per-token vector shapes — the batch and sequence axes are dropped, since the die
processes one token per pipeline slot. The graph holds parameter *references* (Hugging Face names
and shapes), never weight data, so the 8B model's graph is a few hundred nodes of metadata.
``graph.graph["args"]`` holds the `ModelArgs` the graph was lowered from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

import networkx as nx


class Op(StrEnum):
    INPUT = "input"  # token id from the host
    EMBED = "embed"  # row lookup in the embedding table
    RMSNORM = "rmsnorm"
    LINEAR = "linear"  # matrix-vector product with a weight matrix [out, in]
    ROPE = "rope"  # rotary position embedding over heads
    ATTENTION = "attention"  # causal GQA attention with KV cache; operands q, k, v
    SILU_MUL = "silu_mul"  # silu(gate) * up; operands gate, up
    ADD = "add"  # residual add
    ARGMAX = "argmax"  # greedy sampler on the logits
    OUTPUT = "output"

ARITY = {Op.INPUT: 0, Op.EMBED: 1, Op.RMSNORM: 1, Op.LINEAR: 1, Op.ROPE: 1, Op.ATTENTION: 3,
         Op.SILU_MUL: 2, Op.ADD: 2, Op.ARGMAX: 1, Op.OUTPUT: 1}


@dataclass(frozen=True)
class ParamRef:
    """A parameter the op needs. kind: "weight" (a matrix, quantized), "norm" (gain vector),
    "rope" (inverse frequencies, derived from the config)."""

    name: str
    shape: tuple[int, ...]
    kind: str

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True)
class OpNode:
    name: str  # module path; also the graph node id
    op: Op
    out_shape: tuple[int, ...]  # per-token output shape
    params: tuple[ParamRef, ...] = ()
    attrs: dict = field(default_factory=dict)  # op-specific: eps, n_heads, head_dim, ...
    layer: int = -1  # decoder layer index, -1 outside the decoder stack


def short_name(node: str) -> str:
    """model.layers.3.self_attn.q_proj -> L3.q_proj; model.embed_tokens -> embed."""
    m = re.match(r"model\.layers\.(\d+)\.(?:self_attn\.|mlp\.)?(.*)", node)
    if m:
        return f"L{m.group(1)}.{m.group(2)}"
    return {"model.embed_tokens": "embed", "model.norm": "norm", "tokens": "io"}.get(node, node)


def op_node(g: nx.DiGraph, name: str) -> OpNode:
    return g.nodes[name]["op"]


def operands(g: nx.DiGraph, name: str) -> list[str]:
    """Producers of `name`'s operands, in port order."""
    preds = sorted(g.in_edges(name, data="port"), key=lambda e: e[2])
    return [u for u, _, _ in preds]


def pipeline_order(g: nx.DiGraph) -> list[str]:
    """Nodes in a deterministic topological order (ties broken by insertion order)."""
    index = {n: i for i, n in enumerate(g.nodes)}
    return list(nx.lexicographical_topological_sort(g, key=index.__getitem__))


def check_graph(g: nx.DiGraph) -> None:
    """Invariants every stage may rely on; raises AssertionError (a compiler bug) if broken."""
    assert nx.is_directed_acyclic_graph(g), "model graph has a cycle"
    for name in g.nodes:
        node = op_node(g, name)
        assert node.name == name
        ports = sorted(p for _, _, p in g.in_edges(name, data="port"))
        assert ports == list(range(ARITY[node.op])), f"{name}: ports {ports} for {node.op}"
        ins = [op_node(g, u) for u in operands(g, name)]
        if node.op is Op.LINEAR:
            (w,) = node.params
            assert ins[0].out_shape == (w.shape[1],), f"{name}: input {ins[0].out_shape} vs weight {w.shape}"
            assert node.out_shape == (w.shape[0],)
        if node.op in (Op.ADD, Op.SILU_MUL):
            assert ins[0].out_shape == ins[1].out_shape == node.out_shape, f"{name}: operand shapes differ"


def param_count(g: nx.DiGraph) -> int:
    """Distinct parameters referenced (a tied embedding counts once; rope tables are derived)."""
    seen = {p.name: p.numel for n in g.nodes for p in op_node(g, n).params if p.kind != "rope"}
    return sum(seen.values())


def graph_to_json(g: nx.DiGraph) -> dict:
    nodes = []
    for name in pipeline_order(g):
        n = op_node(g, name)
        nodes.append({
            "name": n.name, "op": str(n.op), "layer": n.layer, "out_shape": list(n.out_shape),
            "inputs": operands(g, name),
            "params": [{"name": p.name, "shape": list(p.shape), "kind": p.kind} for p in n.params],
            "attrs": n.attrs,
        })
    return {"format": "taalas-graph", "version": 1, "params": param_count(g), "nodes": nodes}
