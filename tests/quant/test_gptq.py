"""GPTQ on small matrices, checked against brute force: it must really lower the output error
tr((W - Q) H (W - Q)ᵀ) below round-to-nearest with the same scales, and never beat the optimum."""

import itertools

import numpy as np
import pytest
import torch

from taalas_compile.quant.codes import CLIP_RATIOS, QTensor, QuantSpec, code_range
from taalas_compile.quant.gptq import (
    fp16_scale,
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


def textbook_gptq(w: torch.Tensor, h: torch.Tensor, spec: QuantSpec, damp: float = 0.01, act_order: bool = True) -> QTensor:
    """The reference: GPTQ as first written, in float64, one column at a time, the rest of W
    updated after every column through U, the upper Cholesky factor of H⁻¹. No blocks, no tricks."""
    W, H = w.double().clone(), h.double().clone()  # [out, in], [in, in]
    n = W.shape[1]
    lo, hi = code_range(spec.bits)
    dead = torch.diag(H) == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    diag = torch.diag(H).clone()
    H.diagonal().add_(damp * diag.mean())
    scales = weighted_scales(W, torch.diag(H), spec)  # [out, ng] static groups
    perm = torch.argsort(diag, descending=True, stable=True) if act_order else torch.arange(n)
    W, H = W[:, perm], H[perm][:, perm]
    U = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)  # H⁻¹ = UᵀU
    codes = torch.zeros(W.shape, dtype=torch.float64)
    for i in range(n):
        s = scales[:, int(perm[i]) // spec.group]  # [out]
        q = torch.clamp(torch.round(W[:, i] / s), lo, hi)
        codes[:, perm[i]] = q
        e = (W[:, i] - q * s) / U[i, i]
        W[:, i:] -= e[:, None] * U[i, i:][None, :]
    return QTensor(codes.numpy().astype(np.int8), scales.numpy().astype(np.float16), spec.bits, spec.group)


def textbook_scales(w: torch.Tensor, d: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """The scale search as first written: whole-array torch float64 passes, one per clipping ratio."""
    out, n = w.shape
    ng = -(-n // spec.group)
    lo, hi = code_range(spec.bits)
    wg = torch.nn.functional.pad(w.double(), (0, ng * spec.group - n)).view(out, ng, spec.group)
    dg = torch.nn.functional.pad(d.double(), (0, ng * spec.group - n)).view(1, ng, spec.group)
    amax = wg.abs().amax(dim=2)
    best_err, best_s = torch.full_like(amax, float("inf")), torch.ones_like(amax)
    for r in CLIP_RATIOS:
        s = fp16_scale(amax * (r / hi))
        q = torch.clamp(torch.round(wg / s[:, :, None]), lo, hi)
        err = (dg * (wg - q * s[:, :, None]) ** 2).sum(dim=2)
        best_err, best_s = torch.where(err < best_err, err, best_err), torch.where(err < best_err, s, best_s)
    return best_s


def test_weighted_scales_are_the_textbook_search_bit_for_bit():
    g = torch.Generator().manual_seed(11)
    w = torch.randn(300, 1000, generator=g) * torch.exp(2 * torch.randn(1000, generator=g))  # 2 decades of scale
    w[:, 64:96] = 0  # an all-zero group: the smallest fp16 normal
    d = torch.rand(1000, generator=g).double() + 0.01
    for spec in (QuantSpec(3, 32), QuantSpec(6, 48)):  # 1000 = 20*48 + 40: ragged
        assert torch.equal(weighted_scales(w.double(), d, spec), textbook_scales(w, d, spec))


CASES = {  # name: (out, in, bits, group, act_order, dead inputs)
    "64x96": (64, 96, 3, 32, True, ()),
    "64x96-natural-order": (64, 96, 3, 32, False, ()),
    "128x256-groups": (128, 256, 3, 64, True, ()),
    "128x256-natural-6bit": (128, 256, 6, 64, False, ()),
    "96x200-ragged-dead": (96, 200, 3, 48, True, (3, 77, 199)),  # 200 = 4*48 + 8
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("case", list(CASES))
def test_blocked_gptq_gives_the_textbook_codes(case, dtype):
    out, n, bits, group, act_order, dead = CASES[case]
    g = torch.Generator().manual_seed(n + out)
    x = correlated_inputs(4 * n, n, n)  # [4n, in] float32, as layer inputs come
    x[:, :: 17] *= 8  # outlier channels
    x[:, list(dead)] = 0
    w = torch.randn(out, n, generator=g) * 0.02
    h, _ = hessian_add(None, x, 0)
    spec = QuantSpec(bits, group)
    ref = textbook_gptq(w, h, spec, act_order=act_order)
    fast = gptq_quantize(w, h, spec, act_order=act_order, block=32, dtype=dtype)  # several blocks
    assert np.array_equal(fast.scales, ref.scales)
    diff = fast.codes.astype(np.int16) - ref.codes.astype(np.int16)
    assert np.abs(diff).max() <= 1 and (diff != 0).mean() <= 0.005  # only float ties flip
    assert (fast.codes[:, list(dead)] == 0).all()
    assert hessian_error(w, fast, h) == pytest.approx(hessian_error(w, ref, h), rel=0.01)


def test_blocked_gptq_is_bit_identical_run_to_run():
    x = correlated_inputs(600, 300, 8)
    w = torch.randn(40, 300, generator=torch.Generator().manual_seed(9))
    h, _ = hessian_add(None, x, 0)
    for dtype in (torch.float32, torch.float64):
        a, b = (gptq_quantize(w, h, QuantSpec(3, 32), block=64, dtype=dtype) for _ in range(2))
        assert np.array_equal(a.codes, b.codes) and np.array_equal(a.scales, b.scales)


def test_float32_hessian_is_the_float64_one_to_float32_precision():
    x = correlated_inputs(700, 40, 10)  # float32
    h32, n = hessian_add(None, x[:300], 0)
    h32, n = hessian_add(h32, x[300:], n)
    h64, _ = hessian_add(None, x.double(), 0)
    assert h32.dtype == torch.float64 and n == 700
    assert torch.allclose(h32, h64, rtol=1e-5, atol=1e-5 * float(h64.diagonal().max()))
