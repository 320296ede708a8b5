"""llama2.c float32 checkpoints (legacy v0 and v1), seen in Hugging Face layout.

v0: 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len); a negative
    vocab_size means an unshared classifier. Then fp32: tok_embeddings, attention norms, wq, wk, wv,
    wo, ffn norms, w1, w2, w3, final norm, freq_cis_real and freq_cis_imag [seq_len, head_size/2]
    each (ignored), then wcls if unshared.
v1: uint32 magic "ak42", int32 version 1, the 7 int32 params, uint8 shared_classifier, zero padding
    to 256 bytes. Then fp32: attention norms, ffn norms, final norm, tok_embeddings, wq, wk, wv, wo,
    w1, w2, w3, then wcls if unshared.

Every matrix is [out, in]. llama2.c rotates adjacent pairs (x[2i], x[2i+1]); Hugging Face rotates
halves, so q and k rows are permuted within each head on the way in (and back on the way out).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import torch

from taalas_compile.errors import UserError
from taalas_compile.model.args import ModelArgs
from taalas_compile.model.weights import WeightSource, file_fingerprint

MAGIC = 0x616B3432  # "ak42" little-endian
V1_HEADER_BYTES = 256


def to_rotate_half(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Permute q/k rows [n*hs, dim] from adjacent-pair RoPE to the rotate-half layout."""
    rows, dim = w.shape
    hs = rows // n_heads
    return w.reshape(n_heads, hs // 2, 2, dim).transpose(0, 2, 1, 3).reshape(rows, dim)


def to_adjacent_pairs(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Inverse of to_rotate_half."""
    rows, dim = w.shape
    hs = rows // n_heads
    return w.reshape(n_heads, 2, hs // 2, dim).transpose(0, 2, 1, 3).reshape(rows, dim)


def _layout(args: ModelArgs, version: int, shared: bool) -> tuple[list[tuple[str, tuple[int, ...]]], int]:
    """Stacked llama2.c arrays in file order as (name, shape), and the float count after them."""
    d, f, n_layers, v = args.dim, args.hidden_dim, args.n_layers, args.vocab_size
    q_rows, kv_rows = args.n_heads * args.head_dim, args.n_kv_heads * args.head_dim
    norms = [("rms_att", (n_layers, d)), ("rms_ffn", (n_layers, d)), ("rms_final", (d,))]
    mats = [
        ("wq", (n_layers, q_rows, d)),
        ("wk", (n_layers, kv_rows, d)),
        ("wv", (n_layers, kv_rows, d)),
        ("wo", (n_layers, d, q_rows)),
        ("w1", (n_layers, f, d)),
        ("w2", (n_layers, d, f)),
        ("w3", (n_layers, f, d)),
    ]
    emb = [("tok_embeddings", (v, d))]
    cls = [] if shared else [("wcls", (v, d))]
    if version == 0:
        freq_cis = [("freq_cis", (2, args.max_seq_len, args.head_dim // 2))]
        order = emb + norms[:1] + mats[:4] + norms[1:2] + mats[4:] + norms[2:] + freq_cis + cls
    else:
        order = norms + emb + mats + cls
    return order, sum(int(np.prod(s)) for _, s in order)


# llama2.c stacked array -> HF name pattern (per layer when it has {i})
_HF_NAME = {
    "tok_embeddings": "model.embed_tokens.weight",
    "rms_att": "model.layers.{i}.input_layernorm.weight",
    "wq": "model.layers.{i}.self_attn.q_proj.weight",
    "wk": "model.layers.{i}.self_attn.k_proj.weight",
    "wv": "model.layers.{i}.self_attn.v_proj.weight",
    "wo": "model.layers.{i}.self_attn.o_proj.weight",
    "rms_ffn": "model.layers.{i}.post_attention_layernorm.weight",
    "w1": "model.layers.{i}.mlp.gate_proj.weight",
    "w2": "model.layers.{i}.mlp.down_proj.weight",
    "w3": "model.layers.{i}.mlp.up_proj.weight",
    "rms_final": "model.norm.weight",
    "wcls": "lm_head.weight",
}


def _read_header(path: Path) -> tuple[ModelArgs, int, bool, int]:
    """(args, version, shared_classifier, data offset in bytes); validates the sizes."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(V1_HEADER_BYTES)
    if len(head) < 28:
        raise UserError(f"{path}: not a llama2.c checkpoint ({size} bytes, shorter than its header)")
    (magic,) = struct.unpack_from("<I", head, 0)
    if magic == MAGIC:
        (version,) = struct.unpack_from("<i", head, 4)
        if version != 1:
            raise UserError(f"{path}: unsupported llama2.c version {version} (only legacy and 1)")
        if len(head) < V1_HEADER_BYTES:
            raise UserError(f"{path}: truncated llama2.c v1 header: expected {V1_HEADER_BYTES} bytes, got {size}")
        params = struct.unpack_from("<7i", head, 8)
        shared = bool(head[36])
        offset = V1_HEADER_BYTES
    else:
        version = 0
        params = struct.unpack_from("<7i", head, 0)
        shared = params[5] > 0
        offset = 28
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = params
    vocab = abs(vocab)
    if min(dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len) <= 0 or dim % n_heads or n_heads % n_kv:
        raise UserError(f"{path}: corrupt llama2.c header {params}")
    args = ModelArgs(
        dim=dim, n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_kv, hidden_dim=hidden,
        vocab_size=vocab, norm_eps=1e-5, rope_theta=10000.0, tie_embeddings=shared, max_seq_len=seq_len,
    )  # fmt: skip
    _, n_floats = _layout(args, version, shared)
    expected = offset + 4 * n_floats
    if size != expected:
        raise UserError(f"{path}: truncated or corrupt llama2.c v{version} file: expected {expected} bytes, got {size}")
    return args, version, shared, offset


class Llama2cWeights:
    """A llama2.c .bin, memory-mapped, served tensor by tensor in HF names and layout."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"{self.path}: no such file")
        self.args, self.version, shared, offset = _read_header(self.path)
        order, n_floats = _layout(self.args, self.version, shared)
        data = np.memmap(self.path, dtype="<f4", mode="r", offset=offset, shape=(n_floats,))
        self._arrays: dict[str, np.ndarray] = {}  # llama2.c name -> stacked view into the file
        pos = 0
        for name, shape in order:
            n = int(np.prod(shape))
            self._arrays[name] = data[pos : pos + n].reshape(shape)
            pos += n
        self._where: dict[str, tuple[str, int | None]] = {}  # HF name -> (llama2.c name, layer)
        for name in self._arrays:
            if name == "freq_cis":
                continue
            pattern = _HF_NAME[name]
            if "{i}" in pattern:
                for i in range(self.args.n_layers):
                    self._where[pattern.format(i=i)] = (name, i)
            else:
                self._where[pattern] = (name, None)

    def names(self) -> list[str]:
        return list(self.args.param_shapes())

    def get(self, name: str) -> torch.Tensor:
        src, layer = self._where[name]
        w = self._arrays[src] if layer is None else self._arrays[src][layer]
        if src == "wq":
            w = to_rotate_half(w, self.args.n_heads)
        elif src == "wk":
            w = to_rotate_half(w, self.args.n_kv_heads)
        return torch.from_numpy(np.array(w, dtype=np.float32))  # a fresh copy, off the memmap

    def rows(self, name: str, r0: int, r1: int) -> torch.Tensor:
        return self.get(name)[r0:r1].clone()  # llama2.c models are small; q/k rows are permuted anyway

    def fingerprint(self) -> dict:
        return {"kind": "llama2c", "files": [file_fingerprint(self.path)]}


def write_llama2c_v1(path: str | Path, source: WeightSource) -> None:
    """Write `source` as a llama2.c v1 float32 checkpoint (q/k back to adjacent-pair RoPE)."""
    a = source.args
    if a.head_dim != a.dim // a.n_heads:
        raise UserError(f"llama2.c cannot store head_dim {a.head_dim} != dim / n_heads")
    shared = a.tie_embeddings
    header = struct.pack("<Ii", MAGIC, 1)
    header += struct.pack("<7i", a.dim, a.hidden_dim, a.n_layers, a.n_heads, a.n_kv_heads, a.vocab_size, a.max_seq_len)
    header += struct.pack("<B", int(shared))
    header += b"\0" * (V1_HEADER_BYTES - len(header))
    order, _ = _layout(a, 1, shared)
    with open(path, "wb") as f:
        f.write(header)
        for name, _shape in order:
            pattern = _HF_NAME[name]
            layers = range(a.n_layers) if "{i}" in pattern else [None]
            for i in layers:
                w = source.get(pattern.format(i=i)).numpy().astype("<f4")
                if name == "wq":
                    w = to_adjacent_pairs(w, a.n_heads)
                elif name == "wk":
                    w = to_adjacent_pairs(w, a.n_kv_heads)
                f.write(np.ascontiguousarray(w).tobytes())
