"""GPTQ (Frantar et al. 2022) for one weight matrix, as a pure function: W, H -> QTensor.

Given H = 2·XᵀX/N from the inputs X [N, in] the matrix really sees, GPTQ quantizes W [out, in]
column by column and pushes each column's rounding error onto the columns not yet quantized
through the upper Cholesky factor of H⁻¹, so that ‖(W − Q)Xᵀ‖² rather than ‖W − Q‖² is minimised.

- damping: `damp` x mean(diag H) is added to the diagonal (dead inputs get H_jj = 1, W_:j = 0);
- act-order: columns go by descending diag H, with **static groups**: every group's fp16 scale is
  fixed before the column loop (from the original W, in natural column order), so the etched layout
  (codes of a group, then its scale) is unchanged and the emulator needs nothing new;
- Hessian-weighted scale search: each group's clipping ratio minimises Σ_j H_jj (w_j − q_j s)²;
- lazy block updates: the error is applied inside a block of `block` columns at once and to the
  rest of the matrix once per block.

Memory: H and its inverse factor, [in, in] each (a 14336-input layer: 822 MB in fp32), plus W.
"""

from __future__ import annotations

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


def hessian_add(h: torch.Tensor | None, x: torch.Tensor, n_seen: int) -> tuple[torch.Tensor, int]:
    """Running H = 2·XᵀX/N over batches. x: [..., in] -> (H [in, in] float64, rows seen)."""
    x = x.reshape(-1, x.shape[-1]).double()  # [n, in]
    n = x.shape[0]
    if h is None:
        h = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64)
    total = n_seen + n
    h.mul_(n_seen / total).add_(x.T @ x, alpha=2.0 / total)
    return h, total


def weighted_scales(w: torch.Tensor, d: torch.Tensor, spec: QuantSpec, clip_search: bool = True) -> torch.Tensor:
    """fp16-exact group scales [out, ng] (as float64) minimising Σ_j d_j (w_j − q_j s)² per group.
    w: [out, in]; d: [in] column weights (diag H); the ragged last group is zero-padded."""
    out, n_in = w.shape
    g, ng = spec.group, n_groups(n_in, spec.group)
    lo, hi = code_range(spec.bits)
    wp = torch.zeros(out, ng * g, dtype=torch.float64)
    wp[:, :n_in] = w
    dp = torch.zeros(ng * g, dtype=torch.float64)
    dp[:n_in] = d
    wg, dg = wp.view(out, ng, g), dp.view(1, ng, g)  # [out, ng, g], [1, ng, g]
    amax = wg.abs().amax(dim=2)  # [out, ng]
    best_err = torch.full((out, ng), float("inf"), dtype=torch.float64)
    best_s = torch.ones(out, ng, dtype=torch.float64)
    for r in CLIP_RATIOS if clip_search else (1.0,):
        s = fp16_scale(amax * (r / hi))
        q = torch.clamp(torch.round(wg / s[:, :, None]), lo, hi)
        err = (dg * (wg - q * s[:, :, None]) ** 2).sum(dim=2)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_s = torch.where(better, s, best_s)
    return best_s


def fp16_scale(s: torch.Tensor) -> torch.Tensor:
    """Scales rounded to fp16 as etched (never below the smallest normal), back in float64."""
    return torch.clamp(s, min=FP16_TINY).half().double()


def gptq_quantize(w: torch.Tensor, h: torch.Tensor, spec: QuantSpec, *, damp: float = 0.01, act_order: bool = True,
                  block: int = 128, clip_search: bool = True, dtype: torch.dtype = torch.float64) -> QTensor:
    """GPTQ codes and fp16 group scales for w [out, in] given its input Hessian h [in, in]."""
    W = w.detach().to(dtype).clone()  # [out, in]
    H = h.detach().to(dtype).clone()  # [in, in]
    out, n_in = W.shape
    lo, hi = code_range(spec.bits)
    dead = torch.diag(H) == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    diag = torch.diag(H).clone()
    H.diagonal().add_(damp * diag.mean())
    scales = weighted_scales(W.double(), torch.diag(H).double(), spec, clip_search).to(dtype)  # [out, ng]
    col_group = torch.arange(n_in) // spec.group  # [in]
    perm = torch.argsort(diag, descending=True, stable=True) if act_order else torch.arange(n_in)
    W, H, col_group = W[:, perm], H[perm][:, perm], col_group[perm]
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)  # [in, in]
    del H
    Q = torch.zeros(out, n_in, dtype=dtype)  # codes, permuted order
    for i1 in range(0, n_in, block):
        i2 = min(i1 + block, n_in)
        W1 = W[:, i1:i2].clone()  # [out, b]
        E1 = torch.zeros_like(W1)
        H1 = hinv[i1:i2, i1:i2]  # [b, b]
        for i in range(i2 - i1):
            s = scales[:, col_group[i1 + i]]  # [out]
            q = torch.clamp(torch.round(W1[:, i] / s), lo, hi)
            Q[:, i1 + i] = q
            err = (W1[:, i] - q * s) / H1[i, i]
            W1[:, i:] -= err[:, None] * H1[i, i:][None, :]
            E1[:, i] = err
        W[:, i2:] -= E1 @ hinv[i1:i2, i2:]
    codes = torch.empty_like(Q)
    codes[:, perm] = Q
    return QTensor(np.ascontiguousarray(codes.numpy().astype(np.int8)), scales.numpy().astype(np.float16), spec.bits, spec.group)


def hessian_error(w: torch.Tensor, q: QTensor, h: torch.Tensor) -> float:
    """tr((W − Q) H (W − Q)ᵀ): the output error GPTQ minimises (w [out, in], h [in, in])."""
    e = (w.double() - q.dequantize().double())  # [out, in]
    return float(((e @ h.double()) * e).sum())

