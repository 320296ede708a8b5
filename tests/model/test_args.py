import pytest

from taalas_compile.errors import UserError
from taalas_compile.model import ModelArgs, RopeScaling, build_meta_model

LLAMA_31_8B = ModelArgs(
    dim=4096, n_layers=32, n_heads=32, n_kv_heads=8, hidden_dim=14336, vocab_size=128256,
    rope_theta=500000.0, rope_scaling=RopeScaling(), max_seq_len=131072,
)  # fmt: skip


def test_llama_31_8b_param_count():
    assert LLAMA_31_8B.head_dim == 128
    assert LLAMA_31_8B.n_params == 8_030_261_248
    shapes = LLAMA_31_8B.param_shapes()
    assert list(shapes)[:3] == [
        "model.embed_tokens.weight",
        "model.layers.0.input_layernorm.weight",
        "model.layers.0.self_attn.q_proj.weight",
    ]
    assert shapes["model.layers.31.self_attn.k_proj.weight"] == (1024, 4096)
    assert list(shapes)[-2:] == ["model.norm.weight", "lm_head.weight"]


def test_tied_drops_lm_head():
    args = ModelArgs(dim=64, n_layers=1, n_heads=8, n_kv_heads=4, hidden_dim=172, vocab_size=512, tie_embeddings=True)
    assert "lm_head.weight" not in args.param_shapes()
    assert args.n_params == 512 * 64 + 64 * 2 + 64 * 64 * 2 + 32 * 64 * 2 + 172 * 64 * 3 + 64


def test_meta_model_allocates_nothing():
    model = build_meta_model(LLAMA_31_8B)
    params = dict(model.named_parameters())
    assert all(p.is_meta for p in params.values())
    assert sum(p.numel() for p in params.values()) == 8_030_261_248


def test_hf_config_round_trip():
    transformers = pytest.importorskip("transformers")
    d = LLAMA_31_8B.to_hf_config()
    assert ModelArgs.from_hf_config(d) == LLAMA_31_8B
    cfg = transformers.LlamaConfig(**d)
    assert cfg.num_key_value_heads == 8 and cfg.head_dim == 128
    # a config saved by transformers >= 5 folds the rope keys into rope_parameters
    assert ModelArgs.from_hf_config(cfg.to_dict()) == LLAMA_31_8B


def test_hf_config_missing_keys():
    with pytest.raises(UserError, match="hidden_size"):
        ModelArgs.from_hf_config({"num_hidden_layers": 2})
    d = LLAMA_31_8B.to_hf_config() | {"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}
    with pytest.raises(UserError, match="yarn"):
        ModelArgs.from_hf_config(d)
