"""Tile groups: the MAC tiles that drive one net, fused into one integer matmul (or one table for
the embedding) at load time from their decoded ROM programs.

A matrix's tiles hold disjoint (row block, whole-group column block) pieces, and the accumulator
they share adds integers (`die/arithmetic.py`: int64 Q31.32), so fusing changes no bit the die
computes. Tiles that overlap or break the group grid are not fused; the emulator then runs them
one by one and adds their accumulators on the net.
"""

from __future__ import annotations

import numpy as np

from taalas_compile.die import arithmetic as A
from taalas_compile.emulator.tiles import EmulationError, Program


class MatGroup:
    """MAC tiles (role matvec) with one input net, one output net and one group size."""

    def __init__(self, programs: list[Program]):
        group = programs[0].header.group
        self.names = [p.name for p in programs]
        self.group = group
        self.n_in = max(p.header.in_off + p.header.n_cols for p in programs)
        self.n_out = max(p.header.out_off + p.header.n_rows for p in programs)
        ng = -(-self.n_in // group)
        codes = np.zeros((ng, group, self.n_out), np.float32)  # [NG, group, out]
        scales = np.zeros((ng, self.n_out), np.float32)
        for p in programs:
            n_rows, in_off, out_off = p.header.n_rows, p.header.in_off, p.header.out_off
            g0, tg = in_off // group, p.codes.shape[1]
            codes[g0 : g0 + tg, :, out_off : out_off + n_rows] = p.codes.transpose(1, 2, 0)
            scales[g0 : g0 + tg, out_off : out_off + n_rows] = p.scales.T
        self.codes = codes  # integer-valued; summed in `A.mac_dtype`, where every partial sum is exact
        self.weight_bits = max(p.header.bits for p in programs)
        self.scales = scales  # [NG, out], fp16 values
        self.lora: tuple[np.ndarray, np.ndarray, np.float32] | None = None  # (A [r, in], B [out, r], scale), fp16 values

    @staticmethod
    def fusable(programs: list[Program]) -> bool:
        """Same group size, column blocks on the group grid, no cell of the matrix twice."""
        group = programs[0].header.group
        n_in = max(p.header.in_off + p.header.n_cols for p in programs)
        seen: set[tuple[int, int]] = set()
        for p in programs:
            n_rows, n_cols, in_off, out_off = p.header.n_rows, p.header.n_cols, p.header.in_off, p.header.out_off
            if p.header.group != group or in_off % group or ((in_off + n_cols) % group and in_off + n_cols != n_in):
                return False
            cells = {(r, g) for r in range(out_off, out_off + n_rows) for g in range(in_off // group, -(-(in_off + n_cols) // group))}
            if cells & seen:
                return False
            seen |= cells
        return True

    def __call__(self, x: np.ndarray, act_bits: int) -> np.ndarray:
        """x [B, >= n_in] fp32 -> the net's accumulator [B, n_out] (int64 Q31.32)."""
        if x.shape[-1] < self.n_in:
            raise EmulationError(f"{self.names[0]}: input has {x.shape[-1]} elements, needs {self.n_in}")
        xin = x[:, : self.n_in]
        q, sx = A.quantize_groups(xin, self.group, act_bits)  # [B, NG, g], [B, NG]
        ng, out = self.scales.shape
        codes = self.codes.astype(A.mac_dtype(self.group, self.weight_bits, act_bits), copy=False)
        step = max(1, ROWS_ELEMENTS // (ng * out))  # rows at a time: the [NG, rows, out] partials stay small
        acc = np.empty((len(xin), out), np.int64)
        for r0 in range(0, len(xin), step):
            dots = np.matmul(q[r0 : r0 + step].transpose(1, 0, 2).astype(codes.dtype), codes)  # [NG, rows, out]
            acc[r0 : r0 + step] = A.to_fixed(dots, self.scales[:, None, :], sx[r0 : r0 + step].T[:, :, None]).sum(axis=0)
        if self.lora is not None:
            acc += A.fixed_of(lora_delta(xin, *self.lora))
        return acc


ROWS_ELEMENTS = 1 << 23  # partial products a tile group holds at once (int64: 64 MiB)


def lora_delta(x: np.ndarray, a: np.ndarray, b: np.ndarray, scale: np.float32) -> np.ndarray:
    """The LoRA unit on x [B, in]: h = tree_sum_in(x * A_r) per rank row; u = tree_sum_r(B_o * h);
    u * scale -> [B, out] fp32."""
    h = A.tree_sum(x[:, None, :] * a[None])  # [B, r]
    u = A.tree_sum(b[None] * h[:, None, :])  # [B, out]
    return u * scale


class LookupGroup:
    """MAC tiles (role lookup) of the embedding: a token id selects a row of codes x scales. Only
    the rows of the tokens asked for are dequantized (the 8B embedding is 525 M weights); a token
    no tile holds gives zeros."""

    def __init__(self, programs: list[Program]):
        self.names = [p.name for p in programs]
        self.programs = programs
        self.width = max(p.header.out_off + p.header.n_cols for p in programs)

    def __call__(self, tokens: np.ndarray) -> np.ndarray:
        """tokens [B, >= 1] fp32 (token ids) -> rows [B, width]."""
        t = tokens[:, 0].astype(np.int64)
        out = np.zeros((len(t), self.width), np.float32)
        for p in self.programs:
            n_rows, n_cols, out_off, first = p.header.n_rows, p.header.n_cols, p.header.out_off, p.header.first
            hit = np.flatnonzero((t >= first) & (t < first + n_rows))
            if hit.size:
                r = t[hit] - first
                rows = (p.codes[r].astype(np.float32) * p.scales[r][:, :, None]).reshape(hit.size, -1)[:, :n_cols]
                out[hit, out_off : out_off + n_cols] += rows
        return out
