"""What each tile computes, decoded from its own ROM (header words + data), in numpy.

Arithmetic: the die's specification, `die/arithmetic.py` (docs/die-model.md, "Arithmetic"). This
module composes its primitives into the tiles' operations on its own; the quantized reference
(`quant/golden.py`) does the same in PyTorch, and the two must agree bit for bit. A MAC tile's
output is its accumulator (int64 Q31.32): the tiles that drive one net add theirs, and the net's
reader converts the sum to fp32 (`run.py`). Vectors between other tiles are fp32.

Every function takes a batch: activations are [B, n], one row per sequence in flight.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from taalas_compile.die import arithmetic as A
from taalas_compile.die import rom_format as rf
from taalas_compile.die.program import MAC_PROGRAMS, RmsNorm, Rope, TileProgram
from taalas_compile.die.program import decode as decode_header
from taalas_compile.mapper.ir import Role


class EmulationError(RuntimeError):
    """The chip image cannot run (bad program, missing input, context exceeded)."""


@dataclass
class Program:
    """A tile decoded from its ROM: its header (die/program.py) and the data of its rows 1.."""

    name: str
    header: TileProgram
    codes: np.ndarray | None = None  # int8 [rows, ng, group] (zero-padded ragged group)
    scales: np.ndarray | None = None  # fp32 [rows, ng]
    consts: np.ndarray | None = None  # fp32 constants of a vector unit

    @property
    def role(self) -> Role:
        return self.header.role

    @property
    def out_offset(self) -> int:
        """Where the tile's output lands in its net: a MAC tile's out_off, 0 for a vector unit."""
        return self.header.out_off if isinstance(self.header, MAC_PROGRAMS) else 0


def decode(name: str, img: np.ndarray) -> Program:
    if img.shape[0] == 0:
        raise EmulationError(f"{name}: empty ROM")
    try:
        h = decode_header(rf.parse_header(img[0]))
    except rf.RomFormatError as e:
        raise EmulationError(f"{name}: bad program header ({e})") from None
    p = Program(name, h)
    try:
        if isinstance(h, MAC_PROGRAMS):
            bits, group, n_rows, n_cols = h.bits, h.group, h.n_rows, h.n_cols
            codes, scales = rf.parse_block(img[1 : 1 + n_rows], n_cols, bits, group)
            ng = scales.shape[1]
            padded = np.zeros((n_rows, ng * group), np.int8)
            padded[:, :n_cols] = codes
            p.codes = padded.reshape(n_rows, ng, group)
            p.scales = scales.astype(np.float32)
        elif isinstance(h, RmsNorm):
            p.consts = rf.parse_consts(rf.body_flat(img), h.n, np.float16).astype(np.float32)
        elif isinstance(h, Rope):
            p.consts = rf.parse_consts(rf.body_flat(img), h.head_dim // 2, np.float32)
    except rf.RomFormatError as e:
        raise EmulationError(f"{name}: bad ROM data ({e})") from None
    return p


def matvec(p: Program, x: np.ndarray, act_bits: int) -> np.ndarray:
    """One MAC tile: x [B, n] fp32 -> its accumulator [B, rows] (int64 Q31.32)."""
    group, n_cols, in_off = p.header.group, p.header.n_cols, p.header.in_off
    if x.shape[-1] < in_off + n_cols:
        raise EmulationError(f"{p.name}: input has {x.shape[-1]} elements, needs {in_off + n_cols}")
    q, sx = A.quantize_groups(x[..., in_off : in_off + n_cols], group, act_bits)  # [B, ng, g], [B, ng]
    acc = np.einsum("rgk,bgk->bgr", p.codes.astype(np.int64), q.astype(np.int64))  # exact integer dot products per group
    return A.to_fixed(acc, p.scales.T[None], sx[:, :, None]).sum(axis=1)  # [B, rows]


def rmsnorm(p: Program, x: np.ndarray) -> np.ndarray:
    """x [B, >= n] -> [B, n]: ms = tree_sum(x x x) / n; r = 1 / sqrt(ms + eps); (x x r) x gain."""
    x = x[:, : p.header.n]
    ms = A.tree_sum(x * x) / np.float32(p.header.n)
    r = np.float32(1.0) / A.sqrt(ms + np.float32(p.header.eps))
    return (x * r[:, None]) * p.consts


def rope(p: Program, x: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """x [B, n], pos [B] int: each head's rotate-half pairs (i, i + hd/2) turned by its position."""
    n_heads, hd = p.header.n_heads, p.header.head_dim
    cos, sin = A.rope_cos_sin(pos, p.consts)  # [B, hd/2]
    cos, sin = cos[:, None, :], sin[:, None, :]
    h = x[:, : n_heads * hd].reshape(-1, n_heads, hd)
    a, b = h[..., : hd // 2], h[..., hd // 2 :]
    return np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1).reshape(x.shape[0], -1)


def attend(q: np.ndarray, keys: np.ndarray, vals: np.ndarray, n_heads: int) -> np.ndarray:
    """One query: q [n_heads * hd], keys/vals [T, n_kv, hd] (dequantized) -> [n_heads * hd]."""
    _, n_kv, hd = keys.shape
    qh = q[: n_heads * hd].reshape(n_kv, n_heads // n_kv, 1, hd)  # query head h uses kv head h // rep
    k = keys.transpose(1, 0, 2)[:, None]  # [n_kv, 1, T, hd]
    s = A.tree_sum(qh * k) * A.attention_scale(hd)  # [n_kv, rep, T]
    e = A.exp(s - s.max(axis=-1, keepdims=True))
    w = e / A.tree_sum(e)[..., None]
    v = vals.transpose(1, 0, 2)[:, None]  # [n_kv, 1, T, hd]
    return A.tree_sum(w[..., None] * v, axis=2).reshape(-1)  # sum over T


def silu_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a / (np.float32(1.0) + A.exp(-a))) * b
