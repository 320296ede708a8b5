"""The die's arithmetic, specified once: the primitives every tile computes with, bit for bit.

This is the contract between the chip and its two executable models (docs/die-model.md,
"Arithmetic"): the emulator (`emulator/tiles.py`, `emulator/groups.py`, `emulator/kv.py`) and the
quantized reference (`quant/golden.py`) each compose these primitives into the tiles' operations
on their own — the emulator from the decoded tile programs, the reference from the model — and
must produce identical bits. The primitives are chosen so that no result depends on how an
implementation batches, tiles or vectorises the work:

- every rounding is an IEEE-754 basic operation (+, -, x, /, conversion, and `sqrt` here),
  correctly rounded whatever the instruction set, and never fused (no FMA);
- every reduction is either exact (integers, fixed point) or a pairwise adder tree in index order
  (`tree_sum`), never a library sum whose order follows the memory layout;
- the transcendental functions are defined here by their algorithm (`exp`) or by a table computed
  element by element with the C library in float64 and rounded once (`rope_cos_sin`), never a
  vectorised math library whose last bit differs between its vector and scalar paths.

The tiles' operations, composed from these primitives (each step rounded to fp32; the emulator
and the reference implement them separately, in numpy and in PyTorch):

- MAC tile (matvec): codes, s_x = quantize_groups(x); per group g, acc_g = sum of weight code x
  activation code (an exact integer); the accumulator adds to_fixed(acc_g, weight scale_g, s_x_g)
  over all groups and all the tiles that drive the net (integer additions: any order), plus
  fixed_of(lora) when an adapter is loaded; the reader of the net takes from_fixed(accumulator).
- Lookup (embedding): row = code x fp16 scale (exact in fp32).
- RMSNorm: ms = tree_sum(x * x) / fp32(n); r = 1 / sqrt(ms + fp32(eps)); y = (x * r) * gain.
- RoPE (rotate-half pairs i, i + hd/2): cos, sin = rope_cos_sin(pos, inv_freq);
  (a, b) -> (a*cos - b*sin, b*cos + a*sin).
- Attention, per query head h and its KV head: k_t, v_t = dequantize_kv(cache);
  s_t = tree_sum_d(q * k_t) * attention_scale(hd); m = max_t s_t; e_t = exp(s_t - m);
  p_t = e_t / tree_sum_t(e); out = tree_sum_t(p_t * v_t) (the sum runs over axis t).
- SiLU x mul: (a / (1 + exp(-a))) * b.
- Residual add: a + b.  Argmax: the first index of the largest logit.
- LoRA: h = tree_sum_in(x * A_r) for each rank row r; u = tree_sum_r(B_o * h); lora = u * fp32(scale).

All values are numpy arrays; float32 unless said. The quantized reference calls these on numpy
views of its tensors.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

ACC_FRAC_BITS = 32  # the MAC accumulator: two's complement int64 with 32 fractional bits (Q31.32)
_FIXED = np.float64(2.0**ACC_FRAC_BITS)
_UNFIXED = np.float64(2.0**-ACC_FRAC_BITS)
EXACT_FP32_INT = 1 << 24  # integers below this are exact in fp32, whatever the summation order


def qmax(bits: int) -> np.float32:
    """The largest signed code of `bits` bits used symmetrically: 127 for 8 bits."""
    return np.float32((1 << (bits - 1)) - 1)


# ---- MAC tiles ------------------------------------------------------------------------------------


def quantize_groups(x: np.ndarray, group: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """A MAC tile's input quantizer. x fp32 [..., n] -> (codes [..., ng, group] as integer-valued
    fp32, scale fp32 [..., ng]): per group of `group` values (the ragged tail zero-padded)
    scale = absmax / qmax (fp32 division), code = round_half_even(x / scale) clipped to ±qmax;
    a group of zeros has scale 0 and codes 0."""
    x = np.asarray(x, np.float32)
    n = x.shape[-1]
    ng = -(-n // group)
    xg = x if ng * group == n else np.concatenate([x, np.zeros((*x.shape[:-1], ng * group - n), np.float32)], -1)
    xg = xg.reshape(*x.shape[:-1], ng, group)
    q = qmax(bits)
    scale = np.maximum(xg.max(axis=-1), -xg.min(axis=-1)) / q  # absmax without a |x| temporary
    safe = np.where(scale > 0, scale, np.float32(1.0))
    codes = np.rint(xg / safe[..., None])
    return np.clip(codes, -q, q, out=codes), scale.astype(np.float32)


def mac_dtype(group: int, weight_bits: int, act_bits: int) -> type:
    """The float type in which a group's integer dot product (weight codes x activation codes,
    `group` terms) is exact in any order: fp32 while every partial sum stays below 2^24."""
    bound = group * (1 << (weight_bits - 1)) * int(qmax(act_bits))
    return np.float32 if bound < EXACT_FP32_INT else np.float64


def to_fixed(acc: np.ndarray, weight_scale: np.ndarray, act_scale: np.ndarray) -> np.ndarray:
    """One group's contribution to the accumulator: acc (integer dot product) x weight scale (fp16
    value) x activation scale (fp32), multiplied in float64 in that order (acc x weight scale is
    exact; the second product is exact while acc < 2^18, else rounded once), then rounded half to
    even to the accumulator's Q31.32 fixed point (int64). Arguments broadcast."""
    p = np.multiply(acc, weight_scale, dtype=np.float64)
    p *= np.asarray(act_scale, np.float64)
    p *= _FIXED
    return np.rint(p, out=p).astype(np.int64)


def fixed_of(x: np.ndarray) -> np.ndarray:
    """An fp32 value added into the accumulator (the LoRA path): round_half_even(x x 2^32), int64."""
    p = np.asarray(x, np.float64) * _FIXED
    return np.rint(p, out=p).astype(np.int64)


def from_fixed(acc: np.ndarray) -> np.ndarray:
    """The accumulator read out: int64 Q31.32 -> float64 -> x 2^-32 -> fp32 (round half to even)."""
    return (acc.astype(np.float64) * _UNFIXED).astype(np.float32)


# ---- vector units ---------------------------------------------------------------------------------


def tree_sum(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """The vector unit's adder tree: the values along `axis` zero-padded to a power of two, then
    added pairwise, (x0 + x1), (x2 + x3), ... level by level, in fp32; a zero sum is +0. Padding
    with more zeros gives the same bits, so a masked tail of zeros changes nothing."""
    x = np.asarray(x, np.float32)
    axis = axis % x.ndim
    n = x.shape[axis]
    if n == 0:
        return np.zeros(x.shape[:axis] + x.shape[axis + 1 :], np.float32)
    width = 1 << (n - 1).bit_length()
    if width != n:
        pad = list(x.shape)
        pad[axis] = width - n
        x = np.concatenate([x, np.zeros(pad, np.float32)], axis)
    lead = (slice(None),) * axis  # pairs along `axis` in place: no transposed copy
    while x.shape[axis] > 1:
        x = x[(*lead, slice(0, None, 2))] + x[(*lead, slice(1, None, 2))]
    return x[(*lead, 0)] + np.float32(0.0)


_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693145751953125)  # ln 2 in 16 significant bits: n x _LN2_HI is exact for |n| < 256
_LN2_LO = np.float32(1.4286068203094172e-06)  # ln 2 - _LN2_HI
# e^r on |r| <= ln(2)/2: Taylor terms 1 / k!, k = 7 .. 0, rounded to fp32 (truncation error < 6e-9)
_EXP_POLY = tuple(np.float32(1.0 / math.factorial(k)) for k in range(7, -1, -1))


def exp(x: np.ndarray) -> np.ndarray:
    """The vector unit's e^x in fp32 (Cody-Waite): n = round_half_even(x x log2(e)), clipped to
    [-126, 127]; r = (x - n x LN2_HI) - n x LN2_LO; e^r by the degree-7 polynomial `_EXP_POLY` in
    Horner form; times 2^n built from its exponent bits. x x log2(e) < -126 gives +0 (no
    subnormals), > 127 gives +inf, NaN stays NaN. Within 2 ulp of e^x on [-87, 88]
    (tests/die/test_arithmetic.py)."""
    x = np.asarray(x, np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        t = x * _LOG2E
        n = np.clip(np.rint(t), np.float32(-126.0), np.float32(127.0))
        r = (x - n * _LN2_HI) - n * _LN2_LO
        p = np.full_like(r, _EXP_POLY[0])
        for c in _EXP_POLY[1:]:
            p = p * r + c
        two_n = ((np.nan_to_num(n).astype(np.int32) + 127) << 23).view(np.float32)
        y = p * two_n
    y = np.where(t < np.float32(-126.0), np.float32(0.0), y)
    y = np.where(t > np.float32(127.0), np.float32(np.inf), y)
    return np.where(np.isnan(x), np.float32(np.nan), y).astype(np.float32)


def sqrt(x: np.ndarray) -> np.ndarray:
    """IEEE square root, correctly rounded to fp32 (the hardware instruction numpy uses; PyTorch's
    CPU kernel is not always correctly rounded)."""
    return np.sqrt(np.asarray(x, np.float32))


def attention_scale(head_dim: int) -> np.float32:
    """The score scale 1 / sqrt(head_dim), rounded once to fp32."""
    return np.float32(1.0 / math.sqrt(head_dim))


@lru_cache(maxsize=64)
def _rope_rows(inv_freq: bytes, first: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    freq = np.frombuffer(inv_freq, np.float32)
    ang = np.arange(first, first + count, dtype=np.float32)[:, None] * freq[None, :]  # fp32 products
    flat = [float(a) for a in ang.reshape(-1)]
    cos = np.fromiter((math.cos(a) for a in flat), np.float64, len(flat)).astype(np.float32).reshape(ang.shape)
    sin = np.fromiter((math.sin(a) for a in flat), np.float64, len(flat)).astype(np.float32).reshape(ang.shape)
    return cos, sin


_ROPE_CHUNK = 256  # positions per cached table piece: each element is computed alone, so pieces join exactly


def rope_cos_sin(positions: np.ndarray, inv_freq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of the RoPE angles, fp32 [len(positions), hd/2]: angle = fp32(pos) x inv_freq
    (fp32 product), then the C library's cos / sin in float64 rounded once to fp32 — the table a
    vector unit's rotary stage reads."""
    freq = np.ascontiguousarray(inv_freq, np.float32).tobytes()
    pos = np.asarray(positions, np.int64).reshape(-1)
    cos = np.empty((pos.size, len(freq) // 4), np.float32)
    sin = np.empty_like(cos)
    for chunk in np.unique(pos // _ROPE_CHUNK):
        c, s = _rope_rows(freq, int(chunk) * _ROPE_CHUNK, _ROPE_CHUNK)
        hit = pos // _ROPE_CHUNK == chunk
        cos[hit], sin[hit] = c[pos[hit] % _ROPE_CHUNK], s[pos[hit] % _ROPE_CHUNK]
    return cos, sin




# ---- KV cache (`kv_format = "int_token_fp16"`) ------------------------------------------------------


def round_kv(x: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """K or V fp32 [..., hd] as the cache stores it: scale = fp16(absmax / qmax); codes =
    round_half_even(x / fp32(scale)) clipped to ±qmax (0 where the scale is 0). -> (codes int8
    (int16 above 8 bits) [..., hd], scales fp16 [...])."""
    x = np.asarray(x, np.float32)
    q = qmax(bits)
    s16 = (np.maximum(x.max(axis=-1), -x.min(axis=-1)) / q).astype(np.float16)
    s = s16.astype(np.float32)[..., None]
    codes = np.where(s > 0, np.rint(x / np.where(s > 0, s, np.float32(1.0))), np.float32(0.0))
    return np.clip(codes, -q, q).astype(np.int8 if bits <= 8 else np.int16), s16


def dequantize_kv(codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """codes [..., hd] x fp16 scales [...] -> fp32 (exact)."""
    return codes.astype(np.float32) * scales.astype(np.float32)[..., None]
