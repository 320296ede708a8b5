"""GPTQ (Frantar et al. 2022) for one weight matrix, as a pure function: W, H -> QTensor.

Given H = 2·XᵀX/N from the inputs X [N, in] the matrix really sees, GPTQ quantizes W [out, in]
column by column and pushes each column's rounding error onto the columns not yet quantized, so
that ‖(W − Q)Xᵀ‖² rather than ‖W − Q‖² is minimised.

- damping: `damp` x mean(diag H) is added to the diagonal (dead inputs get H_jj = 1, W_:j = 0);
- act-order: columns go by descending diag H, with **static groups**: every group's fp16 scale is
  fixed before the column loop (from the original W, in natural column order), so the etched layout
  (codes of a group, then its scale) is unchanged and the emulator needs nothing new;
- Hessian-weighted scale search: each group's clipping ratio minimises Σ_j H_jj (w_j − q_j s)².

How it is computed (same codes as the textbook loop up to float rounding; see the reference loop
in tests/quant/test_gptq.py). The textbook loop takes U, the upper Cholesky factor of H⁻¹, and after
column i does W[:, j] −= e_i U_ij (j > i) with e_i = (w_i − q_i s_i)/U_ii. Summing those updates
gives D = E U with D = W − Q·s (original W, dequantized codes), so E = D U⁻¹, and U⁻¹ is the upper
factor of H = U⁻¹U⁻ᵀ. With the columns stored in *reverse* processing order, that factor is the
plain lower Cholesky factor L of the reordered H (no inverse, no second factorization: one n³/3
Cholesky, ~1 TFLOP at 14336 inputs, instead of three, ~3.9 TFLOP), and the value column p is
rounded from is

    x_p = W_p + Σ_{r > p} D_r L[r, p] / L[p, p]    (r > p: the columns already done),

(the LDL form of GPTQ, as in QuIP's LDLQ). Columns go p = n−1 … 0 in blocks of `block`: one matmul
brings a block's x up to date with every earlier block, then a short loop over the block's columns
adds the in-block terms (rank-1 updates inside sub-blocks of SUB_BLOCK columns, one small matmul per
sub-block for the rest of the block; columns are stored as contiguous rows, [in, out]).

Cost, a 4096 x 14336 layer: Cholesky 14336³/3 ≈ 1 TFLOP plus out·in² ≈ 0.84 TFLOP of block
products. Memory: H reordered and factorized in place [in, in] in `dtype` (14336 inputs: 822 MB in
float32), plus W, D and the codes ([in, out] each).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import torch

from taalas_compile.quant.codes import (
    CLIP_RATIOS,
    FP16_TINY,
    QTensor,
    QuantSpec,
    code_range,
    n_groups,
)

SCALE_ROWS = 128  # rows per pass of the scale search: its temporaries stay a few MB
SUB_BLOCK = 16  # columns per rank-1-update tile inside a block: the [b, out] tile is swept 8x less often
GATHER_ROWS = 1024  # rows of H reordered per step: bounds the float64 temporary to ~120 MB at 14336 inputs


def hessian_add(h: torch.Tensor | None, x: torch.Tensor, n_seen: int) -> tuple[torch.Tensor, int]:
    """Running H = 2·XᵀX/N over batches. x: [..., in] -> (H [in, in] float64, rows seen).
    Each batch's XᵀX is computed in x's precision but at least float32 (float64 inputs stay exact;
    float32 is ~4x faster and its per-batch rounding, ~1e-6 relative, is far below calibration noise)
    and summed into the float64 H."""
    x = x.reshape(-1, x.shape[-1])  # [n, in]
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    n = x.shape[0]
    if h is None:
        h = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64, device=x.device)
    total = n_seen + n
    h.mul_(n_seen / total).add_(x.T @ x, alpha=2.0 / total)
    return h, total


def weighted_scales(w: torch.Tensor, d: torch.Tensor, spec: QuantSpec, clip_search: bool = True) -> torch.Tensor:
    """fp16-exact group scales [out, ng] (as float64) minimising Σ_j d_j (w_j − q_j s)² per group.
    w: [out, in]; d: [in] column weights (diag H); the ragged last group is zero-padded.
    float64 numpy on slices of SCALE_ROWS rows, one slice per worker thread (numpy drops the GIL):
    cache-sized elementwise passes, no OpenMP, the same sums as one whole-array pass."""
    out, n_in = w.shape
    g, ng = spec.group, n_groups(n_in, spec.group)
    wp = np.zeros((out, ng * g))
    wp[:, :n_in] = w.detach().double().cpu().numpy()
    dp = np.zeros(ng * g)
    dp[:n_in] = d.detach().double().cpu().numpy()
    wg, dg = wp.reshape(out, ng, g), dp.reshape(1, ng, g)  # [out, ng, g], [1, ng, g]
    with ThreadPoolExecutor(torch.get_num_threads()) as pool:
        slices = pool.map(lambda a: _group_scales(wg[a : a + SCALE_ROWS], dg, spec.bits, clip_search),
                          range(0, out, SCALE_ROWS))
        best_s = np.concatenate(list(slices))  # [out, ng]
    return torch.from_numpy(best_s).to(w.device)


def _group_scales(wg: np.ndarray, dg: np.ndarray, bits: int, clip_search: bool) -> np.ndarray:
    """Best fp16 scale [rows, ng] of wg [rows, ng, g] under column weights dg [1, ng, g] (first ratio on ties)."""
    lo, hi = code_range(bits)
    amax = np.abs(wg).max(axis=2)  # [rows, ng]
    best_err = np.full(amax.shape, np.inf)
    best_s = np.ones(amax.shape)
    q, e = np.empty_like(wg), np.empty_like(wg)  # reused for every ratio
    for r in CLIP_RATIOS if clip_search else (1.0,):
        s = _fp16_scale_np(amax * (r / hi))
        s3 = s[:, :, None]
        np.clip(np.rint(np.divide(wg, s3, out=q), out=q), lo, hi, out=q)
        np.multiply(q, s3, out=e)
        np.subtract(wg, e, out=e)
        np.multiply(e, e, out=e)
        err = np.multiply(e, dg, out=e).sum(axis=2)  # Σ d (w − q s)²
        better = err < best_err
        best_err = np.where(better, err, best_err)
        best_s = np.where(better, s, best_s)
    return best_s


def _fp16_scale_np(s: np.ndarray) -> np.ndarray:
    """fp16_scale in numpy, bit for bit: torch rounds float64 to fp16 through float32, so do we."""
    with np.errstate(over="ignore"):  # beyond fp16's range is inf, as in torch
        return np.maximum(s, FP16_TINY).astype(np.float32).astype(np.float16).astype(np.float64)


def fp16_scale(s: torch.Tensor) -> torch.Tensor:
    """Scales rounded to fp16 as etched (never below the smallest normal), back in float64."""
    return torch.clamp(s, min=FP16_TINY).half().double()


def gptq_quantize(w: torch.Tensor, h: torch.Tensor, spec: QuantSpec, *, damp: float = 0.01, act_order: bool = True,
                  block: int = 128, clip_search: bool = True, dtype: torch.dtype = torch.float64,
                  device: torch.device | str | None = None) -> QTensor:
    """GPTQ codes and fp16 group scales for w [out, in] given its input Hessian h [in, in].
    `dtype` is the precision of the factorization and the column loop; `device` (default: w's) where
    they run. A float32 Cholesky that fails (H too ill-conditioned) is redone in float64."""
    dev = torch.device(device) if device is not None else w.device
    out, n_in = w.shape
    lo, hi = code_range(spec.bits)
    diag = h.diagonal().to(device=dev, dtype=dtype).clone()  # [in]
    dead = diag == 0
    diag[dead] = 1.0
    damped = diag + damp * diag.mean()  # the diagonal of the damped H
    W = w.detach().to(device=dev, dtype=dtype).clone()  # [out, in]
    W[:, dead] = 0.0
    scales = weighted_scales(W.double(), damped.double(), spec, clip_search)  # [out, ng] float64
    perm = torch.argsort(diag, descending=True, stable=True) if act_order else torch.arange(n_in, device=dev)
    rev = perm.flip(0)  # position p holds column rev[p]; the loop runs p = n-1 ... 0, i.e. in `perm` order
    L = _reversed_cholesky(h, rev, damped[rev], dtype)  # [in, in] lower, H[rev][:, rev] = L Lᵀ
    diag_l = L.diagonal().clone()  # [in]
    Wt = W.T.index_select(0, rev)  # [in, out] original weights, one contiguous row per column
    del W
    St = scales.T.to(dtype).contiguous()  # [ng, out]
    col_group = (rev // spec.group).tolist()  # [in] group of the column at each position
    Dt = torch.empty_like(Wt)  # [in, out] D = W − Q·s, filled as columns are done
    Qt = torch.empty(n_in, out, dtype=torch.int8, device=dev)  # [in, out] codes
    for p2 in range(n_in, 0, -block):
        p1 = max(p2 - block, 0)
        M = L[p1:, p1:p2] / diag_l[p1:p2]  # [in - p1, b] L[r, p] / L[p, p]
        X = torch.addmm(Wt[p1:p2], M[p2 - p1:].T, Dt[p2:]) if p2 < n_in else Wt[p1:p2].clone()  # [b, out]
        with _one_thread():  # µs-sized ops: see _one_thread
            for k2 in range(p2 - p1, 0, -SUB_BLOCK):  # the same split once more inside the block
                k1 = max(k2 - SUB_BLOCK, 0)
                for k in range(k2 - 1, k1 - 1, -1):
                    p = p1 + k
                    s = St[col_group[p]]  # [out]
                    q = torch.div(X[k], s).round_().clamp_(lo, hi)  # [out]
                    Qt[p] = q
                    torch.addcmul(Wt[p], q, s, value=-1.0, out=Dt[p])  # D_p = W_p − q s (exact product)
                    if k > k1:
                        X[k1:k].addr_(M[k, k1:k], Dt[p])  # x_p' += D_p L[p, p'] / L[p', p'], p' < p in the sub-block
                if k1:
                    X[:k1].addmm_(M[k1:k2, :k1].T, Dt[p1 + k1 : p1 + k2])  # the sub-block's errors onto the block's rest
    codes = torch.empty(out, n_in, dtype=torch.int8, device=dev)
    codes[:, rev] = Qt.T
    return QTensor(np.ascontiguousarray(codes.cpu().numpy()), scales.cpu().numpy().astype(np.float16), spec.bits,
                   spec.group)


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch on one thread inside (restored after). The column loop's ops take microseconds;
    as 2-thread OpenMP regions on a busy 2-core machine they cost up to 100x that (measured 18 ms
    vs 0.1 ms per column of 4096 rows). The block products outside keep every thread."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _reversed_cholesky(h: torch.Tensor, rev: torch.Tensor, diag: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Lower Cholesky factor of H[rev][:, rev] with its diagonal replaced by `diag` (dead inputs and
    damping), in `dtype` on rev's device, factorized in place; below float64 a failure is redone in float64."""
    n = rev.shape[0]
    hr = torch.empty(n, n, dtype=dtype, device=rev.device)
    hd = h.detach()
    for a in range(0, n, GATHER_ROWS):  # one gather per slab of rows: no [in, in] float64 temporary
        rows = hd.index_select(0, rev[a : a + GATHER_ROWS].to(hd.device)).to(rev.device)
        hr[a : a + GATHER_ROWS] = rows.index_select(1, rev)
    hr.diagonal().copy_(diag)
    L, info = torch.linalg.cholesky_ex(hr, out=(hr, torch.empty((), dtype=torch.int32, device=rev.device)))
    if int(info) == 0:
        return L
    if dtype != torch.float64:
        del hr, L
        return _reversed_cholesky(h, rev, diag.double(), torch.float64).to(dtype)
    raise torch.linalg.LinAlgError(f"GPTQ: H is not positive definite (leading minor {int(info)}); raise damp")


def hessian_error(w: torch.Tensor, q: QTensor, h: torch.Tensor) -> float:
    """tr((W − Q) H (W − Q)ᵀ): the output error GPTQ minimises (w [out, in], h [in, in])."""
    e = (w.double() - q.dequantize().double())  # [out, in]
    return float(((e @ h.double()) * e).sum())
