"""The KV cache as the die stores it in an attention unit's SRAM (`[arith] kv_format`).

"int_token_fp16": for every (sequence, position, K or V, KV head) the head_dim values are stored as
signed `kv_bits` integers with one fp16 scale (`die/arithmetic.round_kv`). A token of one sequence takes
`Arithmetic.kv_bytes(n_kv, head_dim)` bytes; the cache holds `sequences` x `context` tokens and
must fit the SRAM tiles connected to the unit's `d` pin.
"""

from __future__ import annotations

import numpy as np

from taalas_compile.die.arithmetic import dequantize_kv, round_kv
from taalas_compile.emulator.tiles import EmulationError


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
        kv = dequantize_kv(self.codes[seq, :length], self.scales[seq, :length])
        return kv[:, 0], kv[:, 1]
