"""llama2.c checkpoints: the real stories260K (v0), v1 round trips, and broken files."""

import struct

import numpy as np
import pytest
import torch

from taalas_compile.errors import UserError
from taalas_compile.model import ModelArgs, greedy, open_weights
from taalas_compile.model.llama2c import to_adjacent_pairs, write_llama2c_v1

LILY = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park."


def test_stories260k_header(stories_source):
    a = stories_source.args
    assert (a.dim, a.hidden_dim, a.n_layers, a.n_heads, a.n_kv_heads, a.vocab_size) == (64, 172, 5, 8, 4, 512)
    assert a.tie_embeddings and a.head_dim == 8 and a.max_seq_len == 512 and a.norm_eps == 1e-5
    assert stories_source.names() == list(a.param_shapes())
    fp = stories_source.fingerprint()
    assert fp["kind"] == "llama2c"
    assert fp["files"][0]["sha256"] == "b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696"


def test_stories260k_greedy_text(stories_model, tok512):
    text = tok512.decode(greedy(stories_model, [tok512.bos_id], 40))
    assert text.startswith(LILY)


def test_stories260k_matches_hugging_face(stories_source, stories_model):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.LlamaConfig(**stories_source.args.to_hf_config(), attn_implementation="eager")
    hf = transformers.LlamaForCausalLM(cfg).eval()
    hf.load_state_dict({n: stories_source.get(n) for n in stories_source.names()}, strict=False)
    tokens = torch.randint(0, 512, (2, 40))
    with torch.no_grad():
        torch.testing.assert_close(stories_model(tokens), hf(tokens).logits, atol=1e-4, rtol=1e-4)


def assert_same_tensors(a, b):
    assert a.args == b.args and a.names() == b.names()
    for n in a.names():
        assert torch.equal(a.get(n), b.get(n)), n


def test_v1_round_trip(stories_source, tmp_path):
    path = tmp_path / "stories260K_v1.bin"
    write_llama2c_v1(path, stories_source)
    assert path.stat().st_size == 256 + 4 * (stories_source.args.n_params)
    assert_same_tensors(open_weights("llama2c", path), stories_source)


def test_v1_round_trip_untied(tmp_path):
    args = ModelArgs(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=48, vocab_size=300, max_seq_len=64)
    source = open_weights("synthetic", None, args, seed=5)
    write_llama2c_v1(tmp_path / "m.bin", source)
    back = open_weights("llama2c", tmp_path / "m.bin")
    assert not back.args.tie_embeddings
    assert_same_tensors(back, source)


def test_legacy_unshared_classifier(tmp_path):
    """A v0 file with negative vocab_size: wcls follows the freq_cis tables."""
    args = ModelArgs(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=48, vocab_size=300, max_seq_len=16)
    src = open_weights("synthetic", None, args, seed=9)

    def stack(pattern, perm=None):
        ws = [src.get(pattern.format(i=i)).numpy() for i in range(args.n_layers)]
        return [to_adjacent_pairs(w, perm) if perm else w for w in ws]

    arrays = [src.get("model.embed_tokens.weight").numpy()]
    arrays += stack("model.layers.{i}.input_layernorm.weight")
    arrays += stack("model.layers.{i}.self_attn.q_proj.weight", args.n_heads)
    arrays += stack("model.layers.{i}.self_attn.k_proj.weight", args.n_kv_heads)
    arrays += stack("model.layers.{i}.self_attn.v_proj.weight")
    arrays += stack("model.layers.{i}.self_attn.o_proj.weight")
    arrays += stack("model.layers.{i}.post_attention_layernorm.weight")
    for proj in ("gate", "down", "up"):  # w1, w2, w3
        arrays += stack("model.layers.{i}.mlp." + proj + "_proj.weight")
    arrays += [src.get("model.norm.weight").numpy(), np.full(2 * 16 * 4, 7.0), src.get("lm_head.weight").numpy()]
    header = struct.pack("<7i", 32, 48, 2, 4, 2, -300, 16)
    path = tmp_path / "legacy.bin"
    path.write_bytes(header + b"".join(np.asarray(a, "<f4").tobytes() for a in arrays))
    assert_same_tensors(open_weights("llama2c", path), src)


def test_truncated_file(stories_path, tmp_path):
    bad = tmp_path / "cut.bin"
    bad.write_bytes(stories_path.read_bytes()[:-100])
    with pytest.raises(UserError, match=r"cut\.bin.*1056540 bytes.*1056440"):
        open_weights("llama2c", bad)
    (tmp_path / "tiny.bin").write_bytes(b"\0" * 10)
    with pytest.raises(UserError, match="tiny.bin"):
        open_weights("llama2c", tmp_path / "tiny.bin")


def test_bad_version(stories_source, tmp_path):
    path = tmp_path / "v2.bin"
    write_llama2c_v1(path, stories_source)
    data = bytearray(path.read_bytes())
    data[4:8] = struct.pack("<i", 2)
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="unsupported llama2.c version 2"):
        open_weights("llama2c", path)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="nope.bin"):
        open_weights("llama2c", tmp_path / "nope.bin")
    with pytest.raises(UserError, match="kind"):
        open_weights("gguf", tmp_path)
