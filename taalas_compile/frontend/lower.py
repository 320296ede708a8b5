"""Lower a reference `Llama` (any nn.Module built from its leaf modules) to the model IR.

We trace one decode step with torch.fx, keeping the layer-level modules (Linear, Embedding,
RMSNorm, Rotary, CausalAttention) as leaves, propagate shapes on the ``meta`` device (so the 8B
model is traced without allocating its weights) and translate each fx node into an `OpNode`.
Anything the die cannot execute is a `UserError` naming the op and the module path.
"""

from __future__ import annotations

import operator
import re

import networkx as nx
import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from taalas_compile.errors import UserError
from taalas_compile.frontend.ir import Op, OpNode, ParamRef, check_graph
from taalas_compile.model.args import ModelArgs
from taalas_compile.model.llama import CausalAttention, Llama, RMSNorm, build_meta_model
from taalas_compile.model.rope import Rotary

LEAVES = (nn.Linear, nn.Embedding, RMSNorm, Rotary, CausalAttention)
ROPE_PARAM = "model.rotary_emb.inv_freq"  # derived from the config, etched as a VU constant


class DecodeStep(nn.Module):
    """One token through the model, then the die's greedy sampler."""

    def __init__(self, llama: Llama):
        super().__init__()
        self.llama = llama

    def forward(self, tokens: torch.Tensor, start_pos: int = 0) -> torch.Tensor:
        return torch.argmax(self.llama(tokens, start_pos), dim=-1)


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, LEAVES) or super().is_leaf_module(m, qualname)


def lower_args(args: ModelArgs) -> nx.DiGraph:
    """The model IR of the architecture `args`, traced on the meta device."""
    return lower_model(build_meta_model(args))


def lower_model(llama: Llama) -> nx.DiGraph:
    step = DecodeStep(llama)
    traced = fx.GraphModule(step, _Tracer().trace(step))
    tokens = torch.zeros(1, 1, dtype=torch.long, device=_device(llama))
    ShapeProp(traced).propagate(tokens, 0)
    return _translate(traced, llama.args)


def _device(m: nn.Module) -> torch.device:
    return next(m.parameters()).device


def _strip(path: str) -> str:
    return path.removeprefix("llama.")


def _layer_of(path: str) -> int:
    m = re.match(r"model\.layers\.(\d+)\.", path)
    return int(m.group(1)) if m else -1


def _shape(node: fx.Node) -> tuple[int, ...]:
    meta = node.meta.get("tensor_meta")
    return tuple(meta.shape[2:]) if meta is not None and len(meta.shape) > 2 else ()


def _where(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    paths = [_strip(v[0] if isinstance(v, tuple) else str(v)) for v in stack.values()]
    return paths[-1] if paths else "(top level)"


def _translate(gm: fx.GraphModule, args: ModelArgs) -> nx.DiGraph:
    g = nx.DiGraph(args=args)
    produced: dict[fx.Node, str] = {}  # fx node -> IR node id carrying its value
    counters: dict[str, int] = {}
    modules = dict(gm.named_modules())
    tied = {id(p): n for n, p in reversed(list(gm.named_parameters(remove_duplicate=False)))}

    def fresh(prefix: str, kind: str) -> str:
        key = f"{prefix}.{kind}" if prefix != "(top level)" else kind
        i = counters.get(key, 0)
        counters[key] = i + 1
        return key if i == 0 else f"{key}{i}"

    def add(name: str, op: Op, out_shape, inputs: list[fx.Node], params=(), attrs=None) -> None:
        g.add_node(name, op=OpNode(name, op, tuple(out_shape), tuple(params), attrs or {}, _layer_of(name)))
        for port, src in enumerate(inputs):
            g.add_edge(produced[src], name, port=port)

    for node in gm.graph.nodes:
        if node.op == "placeholder":
            if node.target == "tokens":
                add("tokens", Op.INPUT, (), [])
                produced[node] = "tokens"
            continue  # start_pos: the die's position counter, not a dataflow value
        if node.op == "output":
            add("output", Op.OUTPUT, (), [node.args[0]])
            continue
        if node.op == "call_module":
            path = _strip(str(node.target))
            mod = modules[str(node.target)]
            tensors = [a for a in node.args if isinstance(a, fx.Node) and a in produced]
            produced[node] = path
            if isinstance(mod, nn.Embedding):
                w = tied[id(mod.weight)]
                add(path, Op.EMBED, _shape(node), tensors, [ParamRef(_strip(w), tuple(mod.weight.shape), "weight")])
            elif isinstance(mod, nn.Linear):
                if mod.bias is not None:
                    raise UserError(f"unsupported op: Linear with bias at {path} (the die's MAC tiles have no bias)")
                w = tied[id(mod.weight)]
                add(path, Op.LINEAR, _shape(node), tensors, [ParamRef(_strip(w), tuple(mod.weight.shape), "weight")])
            elif isinstance(mod, RMSNorm):
                add(path, Op.RMSNORM, _shape(node), tensors,
                    [ParamRef(f"{path}.weight", tuple(mod.weight.shape), "norm")], {"eps": float(mod.eps)})
            elif isinstance(mod, Rotary):
                add(path, Op.ROPE, _shape(node), tensors[:1],
                    [ParamRef(ROPE_PARAM, (args.head_dim // 2,), "rope")],
                    {"n_heads": mod.n_heads, "head_dim": mod.head_dim})
            elif isinstance(mod, CausalAttention):
                add(path, Op.ATTENTION, _shape(node), tensors[:3], [],
                    {"n_heads": mod.n_heads, "n_kv_heads": mod.n_kv_heads, "head_dim": mod.head_dim})
            else:  # pragma: no cover - LEAVES lists exactly the handled modules
                raise UserError(f"unsupported module {type(mod).__name__} at {path}")
            continue
        if node.op == "call_function":
            where = _where(node)
            if node.target is F.silu:
                (src,) = node.args[:1]
                users = list(node.users)
                if len(users) != 1 or users[0].target is not operator.mul:
                    raise UserError(f"unsupported op: silu not followed by a multiply at {where}")
                produced[node] = produced[src]  # folded into the multiply below
                node.meta["silu_of"] = src
                continue
            if node.target is operator.mul:
                a, b = node.args
                if isinstance(a, fx.Node) and "silu_of" in a.meta:
                    name = fresh(where, "silu_mul")
                    add(name, Op.SILU_MUL, _shape(node), [a.meta["silu_of"], b])
                    produced[node] = name
                    continue
            if node.target is operator.add:
                name = fresh(where, "add")
                add(name, Op.ADD, _shape(node), list(node.args))
                produced[node] = name
                continue
            if node.target is torch.argmax:
                add("argmax", Op.ARGMAX, (), [node.args[0]], [], {"n": _shape(node.args[0])[0]})
                produced[node] = "argmax"
                continue
            raise UserError(f"unsupported op '{getattr(node.target, '__name__', node.target)}' at {where}")
        raise UserError(f"unsupported fx node '{node.op}' ({node.target}) at {_where(node)}")

    check_graph(g)
    return g
