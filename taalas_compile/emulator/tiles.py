"""What each tile computes, decoded from its own ROM (header words + data), in numpy.

Arithmetic (docs/die-model.md): vectors between tiles are fp32. A MAC tile quantizes its input
slice to signed `act_bits` integers with one fp32 scale per weight group (absmax / qmax, round half
to even), accumulates code x activation exactly in integers per group, then sums
acc * (weight scale * activation scale) in fp32. Vector units compute in fp32.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from taalas_compile.die import rom_format as rf
from taalas_compile.mapper.ir import Role


class EmulationError(RuntimeError):
    """The chip image cannot run (bad program, missing input, context exceeded)."""


@dataclass
class Program:
    """A tile's decoded program."""

    name: str
    role: Role
    words: tuple[int, ...]
    codes: np.ndarray | None = None  # int32 [rows, ng, group] (zero-padded ragged group)
    scales: np.ndarray | None = None  # fp32 [rows, ng]
    consts: np.ndarray | None = None  # fp32 constants of a vector unit
    state: dict = field(default_factory=dict)  # KV cache of an attention unit

    @property
    def out_offset(self) -> int:
        return self.words[6]


def decode(name: str, img: np.ndarray) -> Program:
    if img.shape[0] == 0:
        raise EmulationError(f"{name}: empty ROM")
    try:
        words = rf.parse_header(img[0])
        role = Role(words[0])
    except (rf.RomFormatError, ValueError) as e:
        raise EmulationError(f"{name}: bad program header ({e})") from None
    p = Program(name, role, words)
    try:
        if role in (Role.MATVEC, Role.LOOKUP):
            bits, group, n_rows, n_cols = words[1:5]
            codes, scales = rf.parse_block(img[1 : 1 + n_rows], n_cols, bits, group)
            ng = scales.shape[1]
            padded = np.zeros((n_rows, ng * group), np.int32)
            padded[:, :n_cols] = codes
            p.codes = padded.reshape(n_rows, ng, group)
            p.scales = scales.astype(np.float32)
        elif role is Role.RMSNORM:
            p.consts = rf.parse_consts(rf.body_flat(img), words[3], np.float16).astype(np.float32)
        elif role is Role.ROPE:
            p.consts = rf.parse_consts(rf.body_flat(img), words[8] // 2, np.float32)
    except rf.RomFormatError as e:
        raise EmulationError(f"{name}: bad ROM data ({e})") from None
    return p


def quantize_groups(x: np.ndarray, group: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """x fp32 [n] -> (q int32 [ng, group], scale fp32 [ng]); the ragged tail is zero-padded."""
    ng = -(-x.size // group)
    xp = np.zeros(ng * group, np.float32)
    xp[: x.size] = x
    xg = xp.reshape(ng, group)
    qmax = np.float32((1 << (bits - 1)) - 1)
    scale = np.abs(xg).max(axis=1) / qmax
    safe = np.where(scale > 0, scale, np.float32(1.0))
    q = np.where(scale[:, None] > 0, np.rint(xg / safe[:, None]), 0)
    return np.clip(q, -qmax, qmax).astype(np.int32), scale.astype(np.float32)


def matvec(p: Program, x: np.ndarray, act_bits: int) -> np.ndarray:
    bits, group, n_rows, n_cols, in_off = p.words[1:6]
    if x.size < in_off + n_cols:
        raise EmulationError(f"{p.name}: input has {x.size} elements, needs {in_off + n_cols}")
    q, sx = quantize_groups(x[in_off : in_off + n_cols], group, act_bits)
    acc = np.einsum("rgk,gk->rg", p.codes, q, dtype=np.int64)  # exact integer accumulation per group
    return (acc.astype(np.float32) * (p.scales * sx[None, :])).sum(axis=1, dtype=np.float32)


def lookup(p: Program, token: int) -> np.ndarray:
    n_rows, n_cols, first = p.words[3], p.words[4], p.words[7]
    if not first <= token < first + n_rows:
        return np.zeros(n_cols, np.float32)
    row = p.codes[token - first].astype(np.float32) * p.scales[token - first][:, None]
    return row.reshape(-1)[:n_cols]


def rmsnorm(p: Program, x: np.ndarray) -> np.ndarray:
    eps = rf.word_f32(p.words[7])
    x = x[: p.words[3]].astype(np.float32)
    return (x / np.sqrt(np.mean(x * x, dtype=np.float32) + np.float32(eps))) * p.consts


def rope(p: Program, x: np.ndarray, pos: int) -> np.ndarray:
    n_heads, hd = p.words[7], p.words[8]
    ang = np.float32(pos) * p.consts  # [hd/2] fp32
    cos, sin = np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)
    h = x[: n_heads * hd].reshape(n_heads, hd)
    a, b = h[:, : hd // 2], h[:, hd // 2 :]  # rotate-half pairs (i, i + hd/2)
    return np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=1).reshape(-1)


def attention(p: Program, q: np.ndarray, k: np.ndarray, v: np.ndarray, pos: int, kv_capacity: int, kv_bits: int) -> np.ndarray:
    n_heads, n_kv, hd, ctx = p.words[7:11]
    need = 2 * ctx * n_kv * hd * kv_bits // 8
    if need > kv_capacity:
        raise EmulationError(f"{p.name}: KV cache of {ctx} positions needs {need} bytes of SRAM, {kv_capacity} connected")
    if pos >= ctx:
        raise EmulationError(f"{p.name}: position {pos} is past the chip's context of {ctx} tokens")
    cache_k = p.state.setdefault("k", np.zeros((ctx, n_kv, hd), np.float32))
    cache_v = p.state.setdefault("v", np.zeros((ctx, n_kv, hd), np.float32))
    cache_k[pos] = k[: n_kv * hd].reshape(n_kv, hd)
    cache_v[pos] = v[: n_kv * hd].reshape(n_kv, hd)
    rep = n_heads // n_kv
    qh = q[: n_heads * hd].reshape(n_kv, rep, hd)  # query head h uses kv head h // rep
    keys, vals = cache_k[: pos + 1], cache_v[: pos + 1]  # [T, n_kv, hd]
    scores = np.einsum("grd,tgd->grt", qh, keys) / np.float32(np.sqrt(hd))
    scores = scores - scores.max(axis=-1, keepdims=True)
    w = np.exp(scores)
    w /= w.sum(axis=-1, keepdims=True)
    return np.einsum("grt,tgd->grd", w, vals).reshape(-1).astype(np.float32)


def silu_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a / (np.float32(1.0) + np.exp(-a)) * b).astype(np.float32)
