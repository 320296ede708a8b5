"""End-to-end tuning of the scales and (learnt rounding) the codes, on the synthetic tiny-llama."""

import numpy as np
import pytest
import torch

from taalas_compile.inputs import resolve
from taalas_compile.model.perplexity import compare
from taalas_compile.quant.codes import code_range
from taalas_compile.quant.reference import build_quant_model
from taalas_compile.quant.tune import tune_end_to_end
from taalas_compile.reference import build_references


@pytest.fixture(scope="module")
def tiny():
    inp = resolve("tiny-llama")
    refs = build_references(inp)
    tokens = torch.randint(3, 256, (6, 64), generator=torch.Generator().manual_seed(1))
    tokens[:, 0] = 1
    return inp, refs, tokens


def _kl(inp, refs, qw, tokens) -> float:
    return compare(refs.float_model, build_quant_model(inp.source, qw, 8), tokens.tolist())["kl"]


def test_scale_tuning_is_deterministic_keeps_codes_and_lowers_kl(tiny):
    inp, refs, tokens = tiny
    a = tune_end_to_end(inp.source, refs.qweights, tokens, 8, steps=12, lr=1e-2, batch=3)
    b = tune_end_to_end(inp.source, refs.qweights, tokens, 8, steps=12, lr=1e-2, batch=3)
    for n, q in refs.qweights.items():
        assert (a[n].codes == q.codes).all() and (a[n].scales == b[n].scales).all()
    assert _kl(inp, refs, a, tokens) < _kl(inp, refs, refs.qweights, tokens)


def test_code_tuning_is_deterministic_keeps_codes_in_range_and_lowers_kl(tiny):
    inp, refs, tokens = tiny
    kw = {"steps": 40, "lr": 1e-2, "batch": 6, "codes_lr": 0.03}
    a = tune_end_to_end(inp.source, refs.qweights, tokens, 8, **kw)
    b = tune_end_to_end(inp.source, refs.qweights, tokens, 8, **kw)
    moved = 0
    for n, q in refs.qweights.items():
        lo, hi = code_range(q.bits)
        assert a[n].codes.dtype == np.int8 and lo <= a[n].codes.min() and a[n].codes.max() <= hi
        assert a[n].scales.dtype == np.float16 and a[n].scales.shape == q.scales.shape
        assert (a[n].codes == b[n].codes).all() and (a[n].scales == b[n].scales).all()
        moved += int((a[n].codes != q.codes).sum())
    assert moved > 0
    assert _kl(inp, refs, a, tokens) < _kl(inp, refs, refs.qweights, tokens)
