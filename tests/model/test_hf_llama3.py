"""What a real Llama 3.1 checkpoint directory has: bf16 shards with an index, BOS/EOS ids in
config.json / generation_config.json (three EOS ids), special tokens at the top of tokenizer.json."""

import json

import pytest
import torch

from taalas_compile.errors import UserError
from taalas_compile.model import (
    ModelArgs,
    RopeScaling,
    build_model,
    load_tokenizer,
    open_weights,
)
from taalas_compile.model.generate import greedy
from taalas_compile.model.hf import save_hf_checkpoint
from taalas_compile.model.tokenizer import bos_id_of, eos_ids_of

VOCAB, BOS, EOS = 512, 500, [501, 508, 509]  # Llama 3's layout scaled down: 500 regular ids, 12 specials
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
            "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>", "<|start_header_id|>", "<|end_header_id|>",
            "<|eom_id|>", "<|eot_id|>", "<|python_tag|>", "<|reserved_special_token_3|>"]
ARGS = ModelArgs(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=160, vocab_size=VOCAB, rope_theta=500000.0,
                 rope_scaling=RopeScaling(original_max_position_embeddings=64), max_seq_len=256)
TEXT = "Once upon a time, a little girl named Lily found a red ball in the park. She smiled and played all day. " * 20


def write_tokenizer(d, bos_name="<|begin_of_text|>"):
    """A byte-level BPE with 500 regular ids and the specials as added tokens at 500..511."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([TEXT], trainers.BpeTrainer(vocab_size=VOCAB - len(SPECIALS), show_progress=False,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    doc = json.loads(tok.to_str())
    n = len(doc["model"]["vocab"])
    for i in range(n, VOCAB - len(SPECIALS)):  # filler ids so the specials sit at 500.. as in Llama 3
        doc["model"]["vocab"][f"<|filler_{i}|>"] = i
    names = [bos_name, *SPECIALS[1:]]
    doc["added_tokens"] = [{"id": VOCAB - len(SPECIALS) + k, "content": s, "single_word": False, "lstrip": False,
                            "rstrip": False, "normalized": False, "special": True} for k, s in enumerate(names)]
    (d / "tokenizer.json").write_text(json.dumps(doc))


@pytest.fixture
def source():
    return open_weights("synthetic", None, ARGS, seed=3)


@pytest.fixture
def ckpt(tmp_path, source):
    """bf16, three or more shards + index, Llama 3 ids in config.json and generation_config.json."""
    save_hf_checkpoint(tmp_path, source, shard_bytes=60_000, dtype=torch.bfloat16)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg |= {"bos_token_id": BOS, "eos_token_id": EOS[0], "torch_dtype": "bfloat16"}  # the base model says one EOS
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "generation_config.json").write_text(json.dumps({"bos_token_id": BOS, "eos_token_id": EOS}))
    write_tokenizer(tmp_path)
    return tmp_path


def test_bf16_shards_with_index(ckpt, source):
    index = json.loads((ckpt / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) >= 3 and not (ckpt / "model.safetensors").exists()
    assert index["metadata"]["total_size"] == 2 * ARGS.n_params  # bf16: two bytes a weight
    w = open_weights("hf", ckpt)
    assert w.args == ARGS and len(w.fingerprint()["files"]) == len(shards)
    for name in ("model.embed_tokens.weight", "model.layers.1.mlp.down_proj.weight", "lm_head.weight"):
        want = source.get(name).to(torch.bfloat16).float()
        assert w.get(name).dtype == torch.float32 and torch.equal(w.get(name), want)
        assert torch.equal(w.rows(name, 3, 9), want[3:9])
    tokens = torch.randint(0, VOCAB, (1, 8))
    with torch.no_grad():
        assert build_model(w)(tokens).isfinite().all()


def test_special_ids_from_generation_config(ckpt):
    w = open_weights("hf", ckpt)
    assert (w.bos_id, w.eos_ids) == (BOS, tuple(EOS))  # generation_config.json before config.json
    tok = load_tokenizer(ckpt / "tokenizer.json")
    assert (tok.vocab_size, tok.bos_id, tok.eos_id, tok.eos_ids) == (VOCAB, BOS, EOS[0], tuple(EOS))
    ids = tok.encode("Lily found a red ball.")
    assert ids[0] == BOS and all(i < BOS for i in ids[1:])
    assert tok.decode(ids + [EOS[2]]) == "Lily found a red ball."


def test_ids_without_a_tokenizer(ckpt, source):
    """A compile given token ids (.ids calibration, no --tokenizer) takes BOS from the checkpoint."""
    w = open_weights("hf", ckpt)
    assert (bos_id_of(None, w), eos_ids_of(None, w)) == (BOS, tuple(EOS))
    assert (bos_id_of(None, source), eos_ids_of(None, source)) == (1, (2,))  # llama2.c's defaults
    tok = load_tokenizer(ckpt)
    assert (bos_id_of(tok, source), eos_ids_of(tok, source)) == (BOS, tuple(EOS))


def test_special_ids_from_config_alone(ckpt):
    (ckpt / "generation_config.json").unlink()
    assert (open_weights("hf", ckpt).bos_id, open_weights("hf", ckpt).eos_ids) == (BOS, (EOS[0],))
    assert load_tokenizer(ckpt).eos_ids == (EOS[0],)


def test_special_ids_from_token_names(tmp_path):
    """A bare tokenizer.json: tokenizer_config.json's names, else the usual Llama 3 names."""
    write_tokenizer(tmp_path)
    tok = load_tokenizer(tmp_path / "tokenizer.json")
    assert (tok.bos_id, tok.eos_ids) == (BOS, (EOS[0],))  # <|begin_of_text|>, <|end_of_text|>
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}))
    assert load_tokenizer(tmp_path).eos_ids == (EOS[2],)  # an Instruct model's


def test_bad_special_ids(ckpt):
    (ckpt / "generation_config.json").write_text(json.dumps({"bos_token_id": BOS, "eos_token_id": ["<|eot_id|>"]}))
    with pytest.raises(UserError, match="eos_token_id"):
        open_weights("hf", ckpt)
    (ckpt / "generation_config.json").write_text(json.dumps({"bos_token_id": 128000, "eos_token_id": EOS}))
    with pytest.raises(UserError, match="128000 is outside the 512-token vocabulary"):
        load_tokenizer(ckpt)


def test_greedy_stops_at_any_eos(source):
    model = build_model(source)
    free = greedy(model, [BOS], 12)
    assert len(free) == 12
    k = max(i for i, t in enumerate(free) if t not in free[:i])  # the last first appearance of a token
    stop = free[k]
    assert greedy(model, [BOS], 12, stop_ids={EOS[0], stop}) == free[: k + 1]
    assert greedy(model, [BOS], 12, stop_ids=()) == free
