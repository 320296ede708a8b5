"""The golden model end to end, through the console script as a user runs it: on tiny-llama,
Hugging Face checkpoints made here with fresh random seeds (compiled without a recipe), tiny-llama
with a LoRA adapter of fresh random weights, and a multi-die system, `emulate` prints exactly what
`generate --precision quant` prints for 64 tokens, and `emulate --trace-out` holds emulator and
reference activations equal bit for bit at every stage. (stories260K: tests/e2e/test_stories260k.py.)
"""

from __future__ import annotations

import secrets

import pytest
import torch
from golden_check import assert_golden, cli
from hf_checkpoints import SHAPES, SYSTEM_ARGS, write_checkpoint

from taalas_compile.model.lora import write_adapter


def test_tiny_llama(tiny_chip, tmp_path):
    assert_golden(tiny_chip, ["tiny-llama"], "1 5 9", tmp_path / "t.safetensors")


def test_tiny_llama_with_an_adapter_of_fresh_random_weights(tiny_chip, tmp_path):
    seed = secrets.randbelow(2**31)
    g = torch.Generator().manual_seed(seed)
    weights = {(0, "q_proj"): (torch.randn(4, 64, generator=g) * 0.1, torch.randn(64, 4, generator=g) * 0.1),
               (1, "v_proj"): (torch.randn(4, 64, generator=g) * 0.1, torch.randn(32, 4, generator=g) * 0.1)}
    ad = write_adapter(tmp_path / "ad", weights, 4, 8.0)
    assert_golden(tiny_chip, ["tiny-llama"], "1 5 9", tmp_path / "t.safetensors", "--lora", ad, seed=seed)


@pytest.mark.parametrize("shape", ["gqa-untied-fp32", "head-dim-llama3"])
def test_hugging_face_checkpoints_of_fresh_random_seeds(shape, tmp_path):
    seed = secrets.randbelow(2**31)
    args, dtype, shard = SHAPES[shape]
    ckpt = write_checkpoint(tmp_path / "ckpt", args, dtype, shard, seed=seed)
    cli(ckpt, "-o", tmp_path / "chip")
    assert_golden(tmp_path / "chip", [ckpt], "Once upon a time", tmp_path / "t.safetensors", seed=seed)


def test_a_multi_die_system_of_a_fresh_random_seed(tmp_path):
    seed = secrets.randbelow(2**31)
    ckpt = write_checkpoint(tmp_path / "m3", SYSTEM_ARGS, seed=seed)
    cli(ckpt, "--die", "mini", "-o", tmp_path / "chip")
    assert (tmp_path / "chip" / "system.json").is_file()
    assert_golden(tmp_path / "chip", [ckpt, "--die", "mini"], "Once upon a time", tmp_path / "t.safetensors", seed=seed)
