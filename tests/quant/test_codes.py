"""Quantizer primitives: group-wise symmetric codes with fp16 scales."""

import numpy as np
import pytest
import torch

from taalas_compile.quant.codes import QuantSpec, code_range, n_groups, quantize_tensor
from taalas_compile.quant.reference import quantize_activation


@pytest.mark.parametrize("bits", [3, 6])
def test_codes_in_range_and_error_bounded(bits):
    w = torch.randn(40, 96, generator=torch.Generator().manual_seed(0))
    q = quantize_tensor(w, QuantSpec(bits, 32))
    lo, hi = code_range(bits)
    assert q.codes.dtype == np.int8 and q.codes.min() >= lo and q.codes.max() <= hi
    assert q.scales.dtype == np.float16 and q.scales.shape == (40, 3)
    err = (q.dequantize() - w).abs()
    step = torch.from_numpy(np.repeat(q.scales.astype(np.float32), 32, axis=1))
    assert (err <= step * (2 ** (bits - 1)) + 1e-6).all()  # clipping never costs more than the range
    assert err.pow(2).mean() < w.pow(2).mean() * (0.2 if bits == 3 else 0.002)


def test_ragged_groups_quantize_the_tail_on_its_own():
    w = torch.randn(8, 172, generator=torch.Generator().manual_seed(1))
    w[:, 160:] *= 100  # a large tail must not inflate the other groups' scales
    q = quantize_tensor(w, QuantSpec(3, 32))
    assert n_groups(172, 32) == 6 and q.scales.shape == (8, 6) and q.codes.shape == (8, 172)
    assert q.scales[:, 5].astype(np.float32).min() > 10 * q.scales[:, :5].astype(np.float32).max()


def test_clip_search_never_worse_than_absmax():
    w = torch.randn(64, 128, generator=torch.Generator().manual_seed(2))
    a = quantize_tensor(w, QuantSpec(3, 32), clip_search=False)
    b = quantize_tensor(w, QuantSpec(3, 32), clip_search=True)
    assert (b.dequantize() - w).pow(2).sum() <= (a.dequantize() - w).pow(2).sum()


def test_zero_group_is_exact():
    q = quantize_tensor(torch.zeros(2, 64), QuantSpec(6, 32))
    assert (q.codes == 0).all() and torch.equal(q.dequantize(), torch.zeros(2, 64))


def test_activation_quantization_is_per_group_and_ragged():
    x = torch.tensor([[1.0, -2.0, 0.5, 127.0, 3.0]])
    y = quantize_activation(x, 2, 8)  # groups [1,-2] [0.5,127] [3]; ties round to even (63.5 -> 64, 0.5 -> 0)
    assert torch.allclose(y, torch.tensor([[2 / 127 * 64, -2.0, 0.0, 127.0, 3.0]]), atol=1e-6)


def _whole_array_search(w: torch.Tensor, spec: QuantSpec):
    """The clip search written plainly over the whole array: the chunked one must match it exactly."""
    from taalas_compile.quant.codes import CLIP_RATIOS, FP16_TINY

    out, n_in = w.shape
    g, ng = spec.group, n_groups(n_in, spec.group)
    wg = np.zeros((out, ng * g), np.float32)
    wg[:, :n_in] = w.numpy()
    wg = wg.reshape(out, ng, g)
    lo, hi = code_range(spec.bits)
    amax = np.abs(wg).max(axis=2)
    best_err, best_s = np.full((out, ng), np.inf, np.float32), np.ones((out, ng), np.float16)
    for r in CLIP_RATIOS:
        s16 = np.maximum(amax * np.float32(r / hi), FP16_TINY).astype(np.float16)
        s = s16.astype(np.float32)[:, :, None]
        err = ((wg - np.clip(np.rint(wg / s), lo, hi) * s) ** 2).sum(axis=2)
        better = err < best_err
        best_err, best_s = np.where(better, err, best_err), np.where(better, s16, best_s)
    return best_s


@pytest.mark.parametrize("shape,bits", [((300, 172), 3), ((9000, 64), 6), ((3, 4100), 3)])
def test_chunked_clip_search_equals_the_whole_array_search(shape, bits):
    w = torch.randn(shape, generator=torch.Generator().manual_seed(7)) * 0.05
    q = quantize_tensor(w, QuantSpec(bits, 32))
    assert np.array_equal(q.scales, _whole_array_search(w, QuantSpec(bits, 32)))
