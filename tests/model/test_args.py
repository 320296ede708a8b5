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


@pytest.mark.parametrize("field, value", [
    ("hidden_act", "gelu"), ("hidden_act", "relu"), ("attention_bias", True), ("mlp_bias", True),
    ("sliding_window", 4096), ("model_type", "mistral"), ("partial_rotary_factor", 0.5),
    ("quantization_config", {"quant_method": "gptq", "bits": 4}),
])
def test_hf_config_the_die_does_not_compute_is_refused(field, value):
    with pytest.raises(UserError, match=rf"^{field} = .* is not supported \(the die computes only {field} = "):
        ModelArgs.from_hf_config(LLAMA_31_8B.to_hf_config() | {field: value})


@pytest.mark.parametrize("rope", [{"rope_type": "linear", "factor": 2.0}, {"type": "dynamic", "factor": 2.0},
                                  {"rope_type": "yarn", "factor": 4.0}])
def test_hf_config_rope_scaling_other_than_llama3_is_refused(rope):
    with pytest.raises(UserError, match=r"rope_scaling rope_type = '(linear|dynamic|yarn)' is not supported"):
        ModelArgs.from_hf_config(LLAMA_31_8B.to_hf_config() | {"rope_scaling": rope})
    cfg = LLAMA_31_8B.to_hf_config() | {"rope_scaling": None, "rope_parameters": {"rope_type": "default", "partial_rotary_factor": 0.5}}
    with pytest.raises(UserError, match="partial_rotary_factor = 0.5"):  # where transformers 5 keeps it
        ModelArgs.from_hf_config(cfg)


@pytest.mark.parametrize("extra", [
    {"pretraining_tp": 2}, {"hidden_act": "swish"}, {"sliding_window": None}, {"attention_dropout": 0.1},
    {"torch_dtype": "bfloat16", "use_cache": True, "bos_token_id": 128000, "eos_token_id": [128001, 128009]},
])
def test_hf_config_fields_that_do_not_change_the_maths_are_accepted(extra):
    cfg = LLAMA_31_8B.to_hf_config() | extra
    for k in ("model_type", "hidden_act", "attention_bias", "mlp_bias"):
        if k not in extra:
            del cfg[k]  # absent: transformers' defaults, which the die computes
    assert ModelArgs.from_hf_config(cfg) == LLAMA_31_8B
