import torch

from taalas_compile.model import ModelArgs, build_model, greedy, open_weights
from taalas_compile.model.synthetic import SyntheticWeights

ARGS = ModelArgs(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=160, vocab_size=256)


def test_each_tensor_is_independent_of_generation_order():
    a, b = SyntheticWeights(ARGS, seed=7), SyntheticWeights(ARGS, seed=7)
    names = a.names()
    first = {n: a.get(n) for n in names}
    second = {n: b.get(n) for n in reversed(names)}
    assert all(torch.equal(first[n], second[n]) for n in names)
    assert torch.equal(a.get(names[3]), first[names[3]])  # a fresh, equal tensor per call


def test_names_and_seeds_differ():
    w = SyntheticWeights(ARGS, seed=7)
    q0, q1 = w.get("model.layers.0.self_attn.q_proj.weight"), w.get("model.layers.1.self_attn.q_proj.weight")
    assert not torch.equal(q0, q1)
    assert not torch.equal(q0, SyntheticWeights(ARGS, seed=8).get("model.layers.0.self_attn.q_proj.weight"))
    assert w.fingerprint() == {"kind": "synthetic", "seed": 7, "files": []}


def test_scales():
    w = SyntheticWeights(ModelArgs(dim=256, n_layers=1, n_heads=4, n_kv_heads=4, hidden_dim=1024, vocab_size=512), 0)
    assert abs(w.get("model.embed_tokens.weight").std().item() - 1.0) < 0.02
    assert abs(w.get("model.layers.0.mlp.up_proj.weight").std().item() - 256**-0.5) < 0.002
    assert abs(w.get("model.layers.0.mlp.down_proj.weight").std().item() - 2 * 1024**-0.5) < 0.002
    gain = w.get("model.layers.0.input_layernorm.weight")
    assert abs(gain.mean().item() - 1.0) < 0.03 and 0.05 < gain.std().item() < 0.15


def test_greedy_is_not_degenerate():
    for tie in (False, True):
        args = ModelArgs(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=160, vocab_size=256, tie_embeddings=tie)
        model = build_model(open_weights("synthetic", None, args, seed=0))
        out = greedy(model, [1], 40)
        assert len(set(out[20:])) > 1, (tie, out)
        assert greedy(model, [1, 100, 200], 10) != out[:10]
