"""Frontend: nn.Module -> layer dataflow graph."""

import resource

import pytest
import torch.nn.functional as F

from taalas_compile.config.recipe import load_recipe
from taalas_compile.errors import UserError
from taalas_compile.frontend.ir import (
    Op,
    check_graph,
    graph_to_json,
    op_node,
    operands,
    param_count,
)
from taalas_compile.frontend.lower import lower_args, lower_model
from taalas_compile.inputs import args_of
from taalas_compile.model.llama import MLP, build_meta_model


def test_llama_3_1_8b_graph_shapes_without_weights():
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    g = lower_args(args_of(load_recipe("llama-3.1-8b").model.architecture))
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    assert grown_mib < 500, "tracing must not allocate the 8B weights (32 GB in fp32)"
    assert param_count(g) == 8_030_261_248
    ops = [op_node(g, n).op for n in g.nodes]
    assert ops.count(Op.LINEAR) == 32 * 7 + 1 and ops.count(Op.ATTENTION) == 32 and ops.count(Op.RMSNORM) == 65
    q = op_node(g, "model.layers.31.self_attn.q_proj")
    assert q.out_shape == (4096,) and q.params[0].shape == (4096, 4096)
    assert op_node(g, "model.layers.0.self_attn.k_proj").params[0].shape == (1024, 4096)
    assert op_node(g, "model.layers.0.mlp.down_proj").params[0].shape == (4096, 14336)
    assert op_node(g, "lm_head").out_shape == (128256,)
    attn = op_node(g, "model.layers.0.self_attn.attn")
    assert attn.attrs == {"n_heads": 32, "n_kv_heads": 8, "head_dim": 128}
    assert operands(g, "model.layers.0.self_attn.attn") == [
        "model.layers.0.self_attn.q_rope", "model.layers.0.self_attn.k_rope", "model.layers.0.self_attn.v_proj"]
    assert operands(g, "model.layers.0.mlp.silu_mul") == ["model.layers.0.mlp.gate_proj", "model.layers.0.mlp.up_proj"]


def test_tied_embedding_is_one_parameter_used_twice():
    g = lower_args(args_of(load_recipe("stories260k").model.architecture))
    assert op_node(g, "lm_head").params[0].name == "model.embed_tokens.weight"
    assert param_count(g) == 260_032  # llama2.c's 264,128 floats minus the legacy RoPE tables


def test_graph_json_lists_nodes_in_pipeline_order():
    doc = graph_to_json(lower_args(args_of(load_recipe("tiny-llama").model.architecture)))
    names = [n["name"] for n in doc["nodes"]]
    assert names[0] == "tokens" and names[1] == "model.embed_tokens" and names[-2:] == ["argmax", "output"]
    assert names.index("model.layers.0.add1") < names.index("model.layers.1.input_layernorm")


class _GeluMLP(MLP):
    def forward(self, x):
        return self.down_proj(F.gelu(self.gate_proj(x)) * self.up_proj(x))


def test_unsupported_op_names_op_and_module_path():
    model = build_meta_model(args_of(load_recipe("tiny-llama").model.architecture))
    layer = model.model.layers[1]
    mlp = _GeluMLP(64, 160).to("meta")
    layer.mlp = mlp
    with pytest.raises(UserError, match=r"unsupported op 'gelu' at model\.layers\.1\.mlp"):
        lower_model(model)


def test_check_graph_catches_shape_mismatch():
    g = lower_args(args_of(load_recipe("tiny-llama").model.architecture))
    check_graph(g)
    node = op_node(g, "model.layers.0.self_attn.q_proj")
    from dataclasses import replace

    g.nodes["model.layers.0.self_attn.q_proj"]["op"] = replace(node, out_shape=(7,))
    with pytest.raises(AssertionError):
        check_graph(g)
