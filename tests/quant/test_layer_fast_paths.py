"""The fast forms of quant/layer.py used above EXACT_HESSIAN_IN inputs (the 8B's layers) against the
exact float64 forms the small layers use: half-Hessians, float32 cross terms, and the error-correcting
target from the teacher's outputs."""

import torch

from taalas_compile.quant import layer as L
from taalas_compile.quant.calibrate import corrected_target


def batches(seed: int, n_in: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    xf = [torch.randn(2, 96, n_in, generator=g) * torch.linspace(0.2, 3, n_in) for _ in range(3)]  # [B, S, in]
    xq = [x + 0.05 * torch.randn(x.shape, generator=g) for x in xf]  # the quantized stream's inputs
    return xf, xq


def exact_hessian(xq: list[torch.Tensor]) -> torch.Tensor:
    x = torch.cat([b.reshape(-1, b.shape[-1]) for b in xq]).double()
    return 2 * x.T @ x / x.shape[0]


def test_half_hessian_equals_the_full_product(monkeypatch):
    monkeypatch.setattr(L, "EXACT_HESSIAN_IN", 16)
    monkeypatch.setattr(L, "PANEL", 24)  # several panels, the last one ragged
    _, xq = batches(0, 80)
    h = L.hessian_of(xq).double()
    ref = exact_hessian(xq)
    assert torch.equal(h, h.T)
    assert (h - ref).abs().max() / ref.abs().max() < 1e-5


def test_exact_hessian_below_the_threshold_is_bit_for_bit():
    _, xq = batches(1, 40)
    assert L.hessian_of(xq).dtype == torch.float64
    assert torch.allclose(L.hessian_of(xq), exact_hessian(xq), rtol=1e-12, atol=1e-12)


def test_target_from_the_teacher_outputs_equals_the_corrected_target(monkeypatch):
    monkeypatch.setattr(L, "EXACT_HESSIAN_IN", 16)
    xf, xq = batches(2, 64)
    w = torch.randn(24, 64, generator=torch.Generator().manual_seed(3)) * 0.05  # [out, in]
    h = L.hessian_of(xq)
    xs = torch.cat([b.reshape(-1, 64) for b in xf]).double()
    xt = torch.cat([b.reshape(-1, 64) for b in xq]).double()
    cross = 2 * xs.T @ xt / xs.shape[0]
    ref = corrected_target(w, cross, exact_hessian(xq), damp=0.01).double()
    ys = [torch.nn.functional.linear(b, w) for b in xf]  # the teacher's outputs of the linear
    (via_outputs,) = L._target([w], h, 0.01, rhs=[L.output_cross_of(ys, xq)])
    (via_cross,) = L._target([w], h, 0.01, cross=L.cross_of(xf, xq))
    for t in (via_outputs, via_cross):
        assert (t.double() - ref).abs().max() / ref.abs().max() < 1e-4
