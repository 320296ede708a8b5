"""Small Hugging Face Llama checkpoint directories written by the tests: config.json (with BOS/EOS
ids), safetensors (single or sharded, fp32 or bf16) of seeded synthetic weights, and a byte-level
BPE tokenizer.json trained on a fixed text to exactly the model's vocabulary."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from taalas_compile.model.args import ModelArgs, RopeScaling
from taalas_compile.model.hf import save_hf_checkpoint
from taalas_compile.model.synthetic import SyntheticWeights

TEXT = ("Once upon a time there was a little girl named Lily. She liked to play in the park with her dog, "
        "and every morning the sun was warm and the sky was blue. One day she found a big red ball under a tree. "
        "The compiler hard-wires every weight of the model into the two custom masks of the base die, "
        "layer by layer, tile by tile, and the emulator runs the netlist that sign-off reads back. ") * 4

# name -> (args, dtype, shard bytes or None): GQA, tied and untied, fp32 and bf16, single and sharded,
# an explicit head_dim (not dim / n_heads) and Llama 3 RoPE scaling
SHAPES = {
    "gqa-untied-fp32": (ModelArgs(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=160, vocab_size=320, max_seq_len=256), torch.float32, None),
    "tied-bf16-sharded": (ModelArgs(dim=64, n_layers=2, n_heads=4, n_kv_heads=1, hidden_dim=128, vocab_size=320, max_seq_len=256,
                                    tie_embeddings=True), torch.bfloat16, 60_000),
    "head-dim-llama3": (ModelArgs(dim=64, n_layers=1, n_heads=2, n_kv_heads=2, hidden_dim=96, vocab_size=320, max_seq_len=512, head_dim=16,
                                  rope_theta=500000.0, rope_scaling=RopeScaling(original_max_position_embeddings=128)), torch.bfloat16, None),
}

# a 2.2 M-parameter Llama that does not fit one mini die: compiled as a system of 3 (tests/e2e/test_multi_die.py)
SYSTEM_ARGS = ModelArgs(dim=256, n_layers=3, n_heads=8, n_kv_heads=4, hidden_dim=640, vocab_size=320, max_seq_len=256)


def tokenizer_json(path: Path, vocab: int) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([TEXT], trainer)
    assert tok.get_vocab_size() == vocab
    tok.save(str(path))


def write_checkpoint(directory: Path, args: ModelArgs, dtype: torch.dtype = torch.float32, shard_bytes: int | None = None,
                     seed: int = 7, tokenizer: bool = True) -> Path:
    save_hf_checkpoint(directory, SyntheticWeights(args, seed), shard_bytes, dtype)
    cfg = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps(cfg | {"bos_token_id": 0, "eos_token_id": 1, "torch_dtype": str(dtype).removeprefix("torch.")}))
    if tokenizer:
        tokenizer_json(directory / "tokenizer.json", args.vocab_size)
    return directory


def write_config(directory: Path, cfg: dict) -> Path:
    """A checkpoint directory holding only config.json: enough for anything decided before weights are read."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(cfg))
    return directory


# Llama 3.1 70B's config.json fields that matter: too large for every shipped die
LLAMA_70B = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 8192, "intermediate_size": 28672,
             "num_hidden_layers": 80, "num_attention_heads": 64, "num_key_value_heads": 8, "vocab_size": 128256,
             "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "max_position_embeddings": 131072, "tie_word_embeddings": False,
             "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                              "original_max_position_embeddings": 8192}, "hidden_act": "silu"}

# Two layers 32,768 wide: too large for every shipped die, and quick to lower (the test's stand-in for LLAMA_70B)
WIDE = LLAMA_70B | {"hidden_size": 32768, "intermediate_size": 131072, "num_hidden_layers": 2, "num_attention_heads": 256,
                    "num_key_value_heads": 32}
