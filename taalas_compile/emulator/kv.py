"""The KV cache as the die stores it in an attention unit's SRAM (`[arith] kv_format`).

"int_token_fp16": for every (sequence, position, K or V, KV head) the head_dim values are stored as
signed `kv_bits` integers with one fp16 scale (absmax / qmax, rounded to fp16; codes round half
to even against that fp16 scale and clip to ±qmax). A token of one sequence takes
`Arithmetic.kv_bytes(n_kv, head_dim)` bytes; the cache holds `sequences` x `context` tokens and
must fit the SRAM tiles connected to the unit's `d` pin. `model/llama.py` rounds the reference's
cache the same way.
"""

from __future__ import annotations

import numpy as np

from taalas_compile.emulator.tiles import EmulationError


def round_kv(x: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """x fp32 [..., hd] -> (codes int8/int16 [..., hd], scales fp16 [...])."""
    qmax = np.float32((1 << (bits - 1)) - 1)
    s16 = (np.abs(x).max(axis=-1) / qmax).astype(np.float16)
    s = s16.astype(np.float32)[..., None]
    q = np.where(s > 0, np.rint(x / np.where(s > 0, s, np.float32(1.0))), np.float32(0.0))
    return np.clip(q, -qmax, qmax).astype(np.int8 if bits <= 8 else np.int16), s16


class KvStore:
    """One attention unit's cache: codes [S, T, 2, n_kv, hd] and fp16 scales [S, T, 2, n_kv]."""

    def __init__(self, unit: str, sequences: int, context: int, n_kv: int, hd: int, bits: int, capacity: int):
        token_bytes = 2 * n_kv * (hd * bits // 8 + 2)
        need = sequences * context * token_bytes
        if need > capacity:
            raise EmulationError(f"{unit}: KV cache of {sequences} sequence(s) x {context} positions needs "
                                 f"{need:,} bytes of SRAM, {capacity:,} connected")
        self.unit, self.sequences, self.context, self.bits, self.capacity = unit, sequences, context, bits, capacity
        self.codes = np.zeros((sequences, context, 2, n_kv, hd), np.int8 if bits <= 8 else np.int16)
        self.scales = np.zeros((sequences, context, 2, n_kv), np.float16)

    def check(self, seq: int, pos: int) -> None:
        if seq >= self.sequences:
            raise EmulationError(f"{self.unit}: sequence slot {seq} requested, the chip's KV SRAM holds "
                                 f"{self.sequences} sequence(s) (recipe target.sequences)")
        if pos >= self.context:
            raise EmulationError(f"{self.unit}: position {pos} is past the chip's context of {self.context} tokens "
                                 f"({self.sequences} sequence(s) in {self.capacity:,} bytes of KV SRAM; recipe target.context)")

    def write(self, seq: int, pos: int, k: np.ndarray, v: np.ndarray) -> None:
        """k, v fp32 [n_kv, hd] of one token."""
        self.check(seq, pos)
        codes, scales = round_kv(np.stack([k, v]), self.bits)
        self.codes[seq, pos], self.scales[seq, pos] = codes, scales

    def read(self, seq: int, length: int) -> tuple[np.ndarray, np.ndarray]:
        """Dequantized keys, values fp32 [length, n_kv, hd] of positions 0 .. length-1."""
        kv = self.codes[seq, :length].astype(np.float32) * self.scales[seq, :length, :, :, None].astype(np.float32)
        return kv[:, 0], kv[:, 1]
