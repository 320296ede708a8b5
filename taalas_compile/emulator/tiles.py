"""What each tile computes, decoded from its own ROM (header words + data), in numpy.

Arithmetic (docs/die-model.md): vectors between tiles are fp32. A MAC tile quantizes its input
slice to signed `act_bits` integers with one fp32 scale per weight group (absmax / qmax, round half
to even), accumulates code x activation exactly in integers per group, then sums
acc * (weight scale * activation scale) in fp32. Vector units compute in fp32.

Every function takes a batch: activations are [B, n], one row per sequence in flight.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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


def quantize_groups(x: np.ndarray, group: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """x fp32 [..., n] -> (q [..., ng, group] integer-valued fp32, scale fp32 [..., ng]); the ragged
    tail is zero-padded. Integer values are held in fp32: exact below 2^24."""
    n = x.shape[-1]
    ng = -(-n // group)
    xg = x if ng * group == n else np.concatenate([x, np.zeros((*x.shape[:-1], ng * group - n), np.float32)], -1)
    xg = xg.reshape(*x.shape[:-1], ng, group)
    qmax = np.float32((1 << (bits - 1)) - 1)
    scale = np.abs(xg).max(axis=-1) / qmax
    safe = np.where(scale > 0, scale, np.float32(1.0))
    q = np.rint(xg / safe[..., None])
    return np.clip(q, -qmax, qmax, out=q), scale.astype(np.float32)


def matvec(p: Program, x: np.ndarray, act_bits: int) -> np.ndarray:
    """One MAC tile: x [n] or [B, n] -> its output rows."""
    group, n_cols, in_off = p.header.group, p.header.n_cols, p.header.in_off
    if x.shape[-1] < in_off + n_cols:
        raise EmulationError(f"{p.name}: input has {x.shape[-1]} elements, needs {in_off + n_cols}")
    q, sx = quantize_groups(x[..., in_off : in_off + n_cols], group, act_bits)
    acc = np.einsum("rgk,...gk->...rg", p.codes.astype(np.int64), q.astype(np.int64))  # exact integer accumulation per group
    return (acc.astype(np.float32) * (p.scales * sx[..., None, :])).sum(axis=-1, dtype=np.float32)


def rmsnorm(p: Program, x: np.ndarray) -> np.ndarray:
    eps = p.header.eps
    x = x[:, : p.header.n]
    return (x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True, dtype=np.float32) + np.float32(eps))) * p.consts


def rope(p: Program, x: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """x [B, n], pos [B] int."""
    n_heads, hd = p.header.n_heads, p.header.head_dim
    ang = pos.astype(np.float32)[:, None] * p.consts  # [B, hd/2] fp32
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    h = x[:, : n_heads * hd].reshape(-1, n_heads, hd)
    a, b = h[..., : hd // 2], h[..., hd // 2 :]  # rotate-half pairs (i, i + hd/2)
    return np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1).reshape(x.shape[0], -1)


def attend(q: np.ndarray, keys: np.ndarray, vals: np.ndarray, n_heads: int) -> np.ndarray:
    """One sequence: q [n_heads * hd], keys/vals [T, n_kv, hd] -> [n_heads * hd]."""
    _, n_kv, hd = keys.shape
    qh = q[: n_heads * hd].reshape(n_kv, n_heads // n_kv, hd)  # query head h uses kv head h // rep
    scores = np.einsum("grd,tgd->grt", qh, keys) / np.float32(np.sqrt(hd))
    scores = scores - scores.max(axis=-1, keepdims=True)
    w = np.exp(scores)
    w /= w.sum(axis=-1, keepdims=True)
    return np.einsum("grt,tgd->grd", w, vals).reshape(-1)


def silu_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a / (np.float32(1.0) + np.exp(-a)) * b
