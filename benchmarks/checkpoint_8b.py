"""An 8B-shaped Hugging Face checkpoint for benchmarks/real_8b.py, written as meta-llama/Llama-3.1-8B
lays its directory out: `config.json` (3.1 8B's, with num_hidden_layers = N), `generation_config.json`,
bf16 safetensors shards of at most 5 GB with `model.safetensors.index.json`, a 128,256-token
`tokenizer.json` (tokenizer_llama3.py), and the recipe the benchmark compiles it with. Weights are
seeded normals at realistic scales, drawn and written one tensor at a time in row bands, so writing
needs about one tensor's bf16 bytes of memory (safetensors' own writer holds a whole shard).
"""

from __future__ import annotations

import json
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizer_llama3 import TINYSTORIES, write_llama3_tokenizer

from taalas_compile.model.args import ModelArgs
from taalas_compile.model.hf import shard_plan

ROOT = Path(__file__).resolve().parents[1]
SHARD_BYTES = 5_000_000_000  # Hugging Face's default max_shard_size "5GB"
BAND_ROWS = 4096  # rows drawn per step while writing a tensor


@dataclass(frozen=True)
class Shape:
    """What differs between the real 8B and the --tiny preset (same structure, small dims)."""

    name: str  # checkpoint directory stem
    dim: int  # hidden_size
    hidden_dim: int  # intermediate_size
    n_heads: int
    n_kv_heads: int
    vocab: int  # regular ids + the 256 specials at the top
    die: str  # base die
    calib_tokens: int  # calibration tokens
    calib_context: int  # calibration window, BOS included


LLAMA_8B = Shape("llama-3.1-8b", 4096, 14_336, 32, 8, 128_256, "hc1", 16_384, 2048)
TINY = Shape("tiny-llama3", 128, 448, 8, 2, 1024, "mini", 4096, 512)


def hf_config(s: Shape, n_layers: int) -> dict:
    """meta-llama/Llama-3.1-8B's config.json, with num_hidden_layers = n_layers."""
    special = s.vocab - 256
    return {
        "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": special, "eos_token_id": [special + 1, special + 8, special + 9],
        "hidden_act": "silu", "hidden_size": s.dim, "initializer_range": 0.02, "intermediate_size": s.hidden_dim,
        "max_position_embeddings": 131072, "mlp_bias": False, "model_type": "llama",
        "num_attention_heads": s.n_heads, "num_hidden_layers": n_layers, "num_key_value_heads": s.n_kv_heads,
        "pretraining_tp": 1, "rms_norm_eps": 1e-05,
        "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "rope_theta": 500000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
        "transformers_version": "4.43.0.dev0", "use_cache": True, "vocab_size": s.vocab,
    }


def generation_config(s: Shape) -> dict:
    special = s.vocab - 256
    return {"bos_token_id": special, "do_sample": True, "eos_token_id": [special + 1, special + 8, special + 9],
            "temperature": 0.6, "top_p": 0.9, "transformers_version": "4.43.0.dev0"}


def tensor_shapes(s: Shape, n_layers: int) -> dict[str, tuple[int, ...]]:
    cfg = hf_config(s, n_layers)
    return ModelArgs.from_hf_config(cfg).param_shapes()


def init_std(name: str) -> tuple[float, float]:
    """(mean, std) of a tensor's entries: realistic scales for a trained Llama."""
    if name.endswith("norm.weight"):
        return 1.0, 0.02
    if name == "model.embed_tokens.weight":
        return 0.0, 0.01
    return 0.0, 0.02


def draw(name: str, shape: tuple[int, ...], seed: int, r0: int, r1: int) -> torch.Tensor:
    """Rows [r0, r1) of tensor `name`, bf16; each band has its own seed, so any band is reproducible."""
    g = torch.Generator().manual_seed(zlib.crc32(f"{seed}:{name}:{r0}".encode()))
    mean, std = init_std(name)
    t = torch.randn((r1 - r0, *shape[1:]), generator=g) * std + mean
    return t.to(torch.bfloat16)


def write_safetensors(path: Path, shapes: dict[str, tuple[int, ...]], seed: int) -> int:
    """One bf16 safetensors file, written tensor by tensor, band by band (the format: u64 header
    length, JSON header of dtype/shape/data_offsets, 8-byte aligned, then the raw data)."""
    header: dict = {"__metadata__": {"format": "pt"}}
    off = 0
    for name, shape in shapes.items():
        n = 2 * torch.Size(shape).numel()
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head)
        for name, shape in shapes.items():
            rows = shape[0]
            for r0 in range(0, rows, BAND_ROWS if len(shape) > 1 else rows):
                r1 = min(rows, r0 + BAND_ROWS) if len(shape) > 1 else rows
                f.write(draw(name, shape, seed, r0, r1).view(torch.int16).numpy().tobytes())
    tmp.replace(path)
    return off


def write_checkpoint(ckpt: Path, s: Shape, n_layers: int, seed: int = 0) -> dict:
    """The whole checkpoint directory; returns {"bytes", "shards", "seconds", "tokenizer": {...}}."""
    t0 = time.perf_counter()
    ckpt.mkdir(parents=True, exist_ok=True)
    shapes = tensor_shapes(s, n_layers)
    shards = shard_plan(shapes, 2, SHARD_BYTES)  # bf16
    weight_map, total = {}, 0
    for k, names in enumerate(shards):
        fname = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        total += write_safetensors(ckpt / fname, {n: shapes[n] for n in names}, seed)
        weight_map.update({n: fname for n in names})
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (ckpt / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    (ckpt / "config.json").write_text(json.dumps(hf_config(s, n_layers), indent=2))
    (ckpt / "generation_config.json").write_text(json.dumps(generation_config(s), indent=2))
    tok = write_llama3_tokenizer(ckpt, TINYSTORIES, s.vocab)
    return {"bytes": total, "shards": len(shards), "seconds": time.perf_counter() - t0, "tokenizer": tok}


def write_recipe(ckpt: Path, s: Shape, n_layers: int) -> Path:
    """recipes/llama-3.1-8b.toml with this model's shape, n_layers and the benchmark's calibration."""
    text = (ROOT / "recipes/llama-3.1-8b.toml").read_text()
    lines = ["# Written by benchmarks/real_8b.py: recipes/llama-3.1-8b.toml for the generated checkpoint beside it",
             f"# ({s.name}, {n_layers} decoder layers) with the benchmark's calibration ({s.calib_tokens} tokens, context {s.calib_context})."]
    for line in text.splitlines():
        if line.startswith("#") and len(lines) == 2:  # the original's header comment
            continue
        if line.startswith("name = "):
            line = f'name = "{s.name}-{n_layers}l"'
        elif line.startswith("description = "):
            line = f'description = "{s.name} with {n_layers} decoder layers (generated bf16 checkpoint) on the {s.die} die"'
        elif line.startswith("synthetic = "):
            line = "synthetic = false"
        elif line.startswith("architecture = "):
            line = (f"architecture = {{ dim = {s.dim}, n_layers = {n_layers}, n_heads = {s.n_heads}, "
                    f"n_kv_heads = {s.n_kv_heads}, hidden_dim = {s.hidden_dim}, vocab_size = {s.vocab}, norm_eps = 1e-5, "
                    "rope_theta = 500000.0, rope_scaling = { factor = 8.0, low_freq_factor = 1.0, high_freq_factor = 4.0, "
                    "original_max_position_embeddings = 8192 }, tie_embeddings = false, max_seq_len = 131072 }")
        elif line.startswith("die = "):
            line = f'die = "{s.die}"'
        lines.append(line)
        if line == "[quant]":  # the benchmark's calibration: --calib replaces the text, keeps these
            lines += [f'calib = {{ text = "{TINYSTORIES}", tokens = {s.calib_tokens}, context = {s.calib_context} }}']
    path = ckpt / "recipe.toml"
    path.write_text("\n".join(lines) + "\n")
    return path
