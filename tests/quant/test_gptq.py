"""GPTQ on small matrices, checked against brute force: it must really lower the output error
tr((W - Q) H (W - Q)ᵀ) below round-to-nearest with the same scales, and never beat the optimum."""

import itertools

import numpy as np
import pytest
import torch

from taalas_compile.quant.codes import QuantSpec, code_range
from taalas_compile.quant.gptq import (
    gptq_quantize,
    hessian_add,
    hessian_error,
    weighted_scales,
)


def correlated_inputs(n: int, d: int, seed: int) -> torch.Tensor:
    """x [n, d] with strongly correlated columns, as real layer inputs have."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g) + 2 * torch.eye(d)
    return torch.randn(n, d, generator=g) @ mix


def brute_force_best(w: np.ndarray, s: np.ndarray, h: np.ndarray, bits: int) -> float:
    """Least tr((w - q s) H (w - q s)ᵀ) over every code vector, row by row. w [out, d], s [out]."""
    lo, hi = code_range(bits)
    grid = np.array(list(itertools.product(range(lo, hi + 1), repeat=w.shape[1])), np.float64)  # [8^d, d]
    total = 0.0
    for r in range(w.shape[0]):
        e = w[r][None, :] - grid * s[r]  # [8^d, d]
        total += float(np.einsum("kd,de,ke->k", e, h, e).min())
    return total


def test_gptq_closes_most_of_the_gap_to_the_brute_force_optimum():
    d, out = 5, 4  # one group of 5 inputs: 8^5 code vectors per row for brute force
    gap_gptq = gap_rtn = 0.0
    for seed in range(6):
        x = correlated_inputs(400, d, seed).double()
        w = torch.randn(out, d, generator=torch.Generator().manual_seed(100 + seed))
        h, _ = hessian_add(None, x, 0)
        spec = QuantSpec(3, d)
        q = gptq_quantize(w, h, spec, damp=0.0, act_order=True)
        s = torch.from_numpy(q.scales.astype(np.float64))[:, 0]  # GPTQ's static group scales
        assert torch.equal(s, weighted_scales(w.double(), torch.diag(h), spec)[:, 0])
        lo, hi = code_range(3)
        rtn = torch.clamp(torch.round(w.double() / s[:, None]), lo, hi) * s[:, None]  # same scales, nearest codes
        e_rtn = float((((w.double() - rtn) @ h) * (w.double() - rtn)).sum())
        e_gptq = hessian_error(w, q, h)
        e_best = brute_force_best(w.double().numpy(), s.numpy(), h.numpy(), 3)
        assert e_best <= e_gptq + 1e-9 and e_best <= e_rtn + 1e-9
        gap_gptq += e_gptq - e_best
        gap_rtn += e_rtn - e_best
        # the definition: the H-weighted error is the squared output error on the calibration inputs
        y_err = ((x @ (w.double() - q.dequantize().double()).T) ** 2).sum() * 2 / x.shape[0]
        assert e_gptq == pytest.approx(float(y_err), rel=1e-9)
    assert gap_gptq < 0.75 * gap_rtn  # greedy, so not optimal case by case, but well past round-to-nearest


def test_gptq_beats_rtn_clearly_on_average():
    gains = []
    for seed in range(8):
        x = correlated_inputs(512, 64, seed).double()
        w = torch.randn(32, 64, generator=torch.Generator().manual_seed(seed))
        h, _ = hessian_add(None, x, 0)
        spec = QuantSpec(3, 16)
        q = gptq_quantize(w, h, spec)
        s = torch.from_numpy(q.scales.astype(np.float64)).repeat_interleave(16, dim=1)
        rtn = torch.clamp(torch.round(w.double() / s), -4, 3) * s
        e_rtn = float((((w.double() - rtn) @ h) * (w.double() - rtn)).sum())
        gains.append(hessian_error(w, q, h) / e_rtn)
    assert np.mean(gains) < 0.7  # GPTQ removes well over a third of the output error


def test_gptq_ragged_groups_and_dead_inputs():
    x = correlated_inputs(300, 172, 3).double()
    x[:, 7] = 0  # an input that never fires: its weights do not matter, its code is 0
    w = torch.randn(8, 172, generator=torch.Generator().manual_seed(4))
    w[:, 160:] *= 50  # the ragged last group (12 inputs) must get its own scale
    h, _ = hessian_add(None, x, 0)
    q = gptq_quantize(w, h, QuantSpec(3, 32))
    assert q.codes.shape == (8, 172) and q.scales.shape == (8, 6) and q.scales.dtype == np.float16
    assert q.scales[:, 5].astype(np.float32).min() > 10 * q.scales[:, :5].astype(np.float32).max()
    assert (q.codes[:, 7] == 0).all()
    lo, hi = code_range(3)
    assert q.codes.min() >= lo and q.codes.max() <= hi


def test_gptq_is_deterministic_and_6_bit_is_near_exact():
    x = correlated_inputs(256, 48, 5).double()
    w = torch.randn(16, 48, generator=torch.Generator().manual_seed(6))
    h, _ = hessian_add(None, x, 0)
    a, b = gptq_quantize(w, h, QuantSpec(6, 16)), gptq_quantize(w, h, QuantSpec(6, 16))
    assert np.array_equal(a.codes, b.codes) and np.array_equal(a.scales, b.scales)
    assert hessian_error(w, a, h) < 1e-3 * float(((w.double() @ h) * w.double()).sum())


def test_running_hessian_equals_the_one_shot_hessian():
    x = correlated_inputs(90, 6, 7)
    h1, n = hessian_add(None, x[:40], 0)
    h1, n = hessian_add(h1, x[40:], n)
    h2, _ = hessian_add(None, x, 0)
    assert n == 90 and torch.allclose(h1, h2)
