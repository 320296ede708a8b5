"""Hugging Face safetensors checkpoints: single file, sharded, half precision, broken."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from taalas_compile.errors import UserError
from taalas_compile.model import ModelArgs, RopeScaling, build_model, open_weights
from taalas_compile.model.hf import save_hf_checkpoint

ARGS = ModelArgs(
    dim=32, n_layers=3, n_heads=4, n_kv_heads=2, hidden_dim=40, vocab_size=100,
    rope_theta=500000.0, rope_scaling=RopeScaling(original_max_position_embeddings=32), max_seq_len=64,
)  # fmt: skip


@pytest.fixture
def source():
    return open_weights("synthetic", None, ARGS, seed=11)


def assert_same(a, b):
    assert a.args == b.args and a.names() == b.names()
    for n in a.names():
        assert torch.equal(a.get(n), b.get(n)), n


def test_single_file_round_trip(source, tmp_path):
    save_hf_checkpoint(tmp_path, source)
    assert_same(open_weights("hf", tmp_path), source)
    assert_same(open_weights("hf", tmp_path / "model.safetensors"), source)
    fp = open_weights("hf", tmp_path).fingerprint()
    assert fp["kind"] == "hf" and [f["path"].endswith("model.safetensors") for f in fp["files"]] == [True]


def test_sharded_round_trip(source, tmp_path):
    save_hf_checkpoint(tmp_path, source, shard_bytes=20_000)
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 2 and not (tmp_path / "model.safetensors").exists()
    loaded = open_weights("hf", tmp_path)
    assert_same(loaded, source)
    assert len(loaded.fingerprint()["files"]) == len(shards)
    tokens = torch.randint(0, 100, (1, 8))
    with torch.no_grad():
        assert torch.equal(build_model(loaded)(tokens), build_model(source)(tokens))


def test_bf16_is_widened(source, tmp_path):
    save_hf_checkpoint(tmp_path, source)
    f = tmp_path / "model.safetensors"
    save_file({n: t.to(torch.bfloat16) for n, t in load_file(f).items()}, f)
    loaded = open_weights("hf", tmp_path)
    t = loaded.get("model.layers.1.mlp.up_proj.weight")
    assert t.dtype == torch.float32
    assert torch.equal(t, source.get("model.layers.1.mlp.up_proj.weight").to(torch.bfloat16).float())


def test_tied_checkpoint_may_carry_lm_head(tmp_path):
    args = ModelArgs(dim=16, n_layers=1, n_heads=2, n_kv_heads=1, hidden_dim=24, vocab_size=50, tie_embeddings=True)
    src = open_weights("synthetic", None, args)
    save_hf_checkpoint(tmp_path, src)
    f = tmp_path / "model.safetensors"
    tensors = load_file(f)
    save_file(tensors | {"lm_head.weight": tensors["model.embed_tokens.weight"].clone()}, f)
    assert "lm_head.weight" not in open_weights("hf", tmp_path).names()


def test_missing_tensor(source, tmp_path):
    save_hf_checkpoint(tmp_path, source)
    f = tmp_path / "model.safetensors"
    tensors = load_file(f)
    del tensors["model.layers.2.self_attn.v_proj.weight"]
    save_file(tensors, f)
    with pytest.raises(UserError, match="model.layers.2.self_attn.v_proj.weight"):
        open_weights("hf", tmp_path)


def test_wrong_shape_and_unknown_tensor(source, tmp_path):
    save_hf_checkpoint(tmp_path, source)
    f = tmp_path / "model.safetensors"
    tensors = load_file(f)
    save_file(tensors | {"model.layers.0.self_attn.q_proj.bias": torch.zeros(32)}, f)
    with pytest.raises(UserError, match="unexpected tensor model.layers.0.self_attn.q_proj.bias"):
        open_weights("hf", tmp_path)
    save_file(tensors | {"model.norm.weight": torch.ones(31)}, f)
    with pytest.raises(UserError, match="model.norm.weight has shape"):
        open_weights("hf", tmp_path)


def test_broken_checkpoints(source, tmp_path):
    with pytest.raises(UserError, match="no such"):
        open_weights("hf", tmp_path / "absent")
    with pytest.raises(UserError, match="model.safetensors"):
        open_weights("hf", tmp_path)  # an empty directory
    save_hf_checkpoint(tmp_path, source)
    (tmp_path / "config.json").unlink()
    with pytest.raises(UserError, match="config.json"):
        open_weights("hf", tmp_path)
    save_hf_checkpoint(tmp_path, source)
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(UserError, match="safetensors"):
        open_weights("hf", tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 8}))
    with pytest.raises(UserError, match="config.json.*intermediate_size"):
        open_weights("hf", tmp_path)


def test_config_the_die_does_not_compute_is_refused_naming_the_file(source, tmp_path):
    save_hf_checkpoint(tmp_path, source)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(cfg | {"hidden_act": "gelu"}))
    with pytest.raises(UserError, match=r"config.json: hidden_act = 'gelu' is not supported"):
        open_weights("hf", tmp_path)


def test_compile_of_a_gelu_checkpoint_exits_2(tmp_path):
    """A GELU model compiled as SiLU would be the wrong model, signed off: the console script refuses it."""
    import subprocess

    from taalas_compile.inputs import resolve

    save_hf_checkpoint(tmp_path / "ckpt", resolve("tiny-llama").source)
    cfg = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(cfg | {"hidden_act": "gelu"}))
    r = subprocess.run(check=False, args=["taalas-compile", "compile", "tiny-llama", "-w", str(tmp_path / "ckpt"), "-o", str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and "hidden_act = 'gelu' is not supported" in r.stdout + r.stderr, r.stdout + r.stderr
