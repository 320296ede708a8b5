"""The reference model against Hugging Face LlamaForCausalLM, and its torch.fx contract."""

import pytest
import torch
import torch.nn.functional as F
from torch import fx, nn

from taalas_compile.errors import UserError
from taalas_compile.model import (
    CausalAttention,
    ModelArgs,
    RMSNorm,
    RopeScaling,
    Rotary,
    build_model,
    greedy,
    inv_freq,
    open_weights,
)

transformers = pytest.importorskip("transformers")

CONFIGS = {
    "gqa-untied": ModelArgs(dim=64, n_layers=2, n_heads=8, n_kv_heads=2, hidden_dim=172, vocab_size=300),
    "gqa-tied": ModelArgs(
        dim=64, n_layers=2, n_heads=8, n_kv_heads=4, hidden_dim=96, vocab_size=256, tie_embeddings=True
    ),
    "llama3-rope-head-dim": ModelArgs(
        dim=48, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=80, vocab_size=200, head_dim=16,
        rope_theta=500000.0, rope_scaling=RopeScaling(factor=8.0, original_max_position_embeddings=16),
        max_seq_len=64, norm_eps=1e-6,
    ),
}


def hf_model(args: ModelArgs, source):
    cfg = transformers.LlamaConfig(**args.to_hf_config(), attn_implementation="eager")
    model = transformers.LlamaForCausalLM(cfg).float().eval()
    missing, unexpected = model.load_state_dict({n: source.get(n) for n in source.names()}, strict=False)
    assert not unexpected and missing == (["lm_head.weight"] if args.tie_embeddings else [])
    if args.tie_embeddings:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    return model


@pytest.mark.parametrize("name", list(CONFIGS))
def test_matches_hugging_face(name):
    args = CONFIGS[name]
    source = open_weights("synthetic", None, args, seed=3)
    ours, theirs = build_model(source), hf_model(args, source)
    tokens = torch.randint(0, args.vocab_size, (2, 24))
    with torch.no_grad():
        want = theirs(tokens).logits  # [2, 24, V]
        torch.testing.assert_close(ours(tokens), want, atol=1e-4, rtol=1e-4)
        # prefill 16 tokens into the cache, then decode the rest one at a time
        ours.setup_cache(2, 24)
        got = [ours(tokens[:, :16], 0)]
        for pos in range(16, 24):
            got.append(ours(tokens[:, pos : pos + 1], torch.tensor(pos)))
        ours.clear_cache()
        torch.testing.assert_close(torch.cat(got, 1), want, atol=1e-4, rtol=1e-4)


def test_inv_freq_matches_hugging_face():
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    args = CONFIGS["llama3-rope-head-dim"]
    cfg = transformers.LlamaConfig(**args.to_hf_config())
    want, _ = ROPE_INIT_FUNCTIONS["llama3"](cfg, "cpu")
    assert torch.equal(inv_freq(args), want.float())


def test_tied_shares_one_parameter():
    args = CONFIGS["gqa-tied"]
    model = build_model(open_weights("synthetic", None, args))
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert model.lm_head.weight.dtype == torch.float32 and not model.training


def test_greedy_uses_cache_consistently():
    args = CONFIGS["gqa-untied"]
    model = build_model(open_weights("synthetic", None, args, seed=1))
    prompt = [1, 17, 42]
    new = greedy(model, prompt, 12)
    assert len(new) == 12 and model.model.layers[0].self_attn.attn.cache_k is None
    # the same tokens by full recomputation, no cache
    seq = list(prompt)
    with torch.no_grad():
        for _ in range(12):
            seq.append(int(model(torch.tensor([seq]))[0, -1].argmax()))
    assert new == seq[len(prompt) :]


def test_load_weights_is_strict():
    args = CONFIGS["gqa-untied"]
    model = build_model(open_weights("synthetic", None, args))
    other = open_weights("synthetic", None, CONFIGS["gqa-tied"])
    with pytest.raises(UserError, match="missing"):
        model.load_weights(other)


class LeafTracer(fx.Tracer):
    LEAVES = (nn.Linear, nn.Embedding, RMSNorm, Rotary, CausalAttention)

    def is_leaf_module(self, m, qualname):
        return isinstance(m, self.LEAVES)


def test_fx_traces_to_leaf_calls_silu_mul_add():
    args = CONFIGS["gqa-untied"]
    model = build_model(open_weights("synthetic", None, args))
    graph = LeafTracer().trace(model)
    allowed = {F.silu, torch.mul, torch.add, *(getattr(__import__("operator"), op) for op in ("mul", "add"))}
    kinds = {}
    for node in graph.nodes:
        kinds[node.op] = kinds.get(node.op, 0) + 1
        if node.op == "call_function":
            assert node.target in allowed, node.target
        assert node.op in ("placeholder", "call_module", "call_function", "output"), node.op
    # per layer: 2 norms, 4 q/k/v/o + 3 mlp linears, 2 ropes, 1 attention; plus embedding, norm, lm_head
    assert kinds["call_module"] == args.n_layers * 12 + 3
    gm = fx.GraphModule(model, graph)
    tokens = torch.randint(0, args.vocab_size, (1, 9))
    with torch.no_grad():
        assert torch.equal(gm(tokens), model(tokens))
