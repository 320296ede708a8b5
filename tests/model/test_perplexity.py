"""The scoring protocol reproduces the reference figures of the models README."""

import math

import pytest
import torch

from taalas_compile.model import build_model, compare, document_windows, make_windows
from taalas_compile.model.synthetic import SyntheticWeights


@pytest.fixture(scope="module")
def stream(tok512, tinystories_text):
    return tok512.encode(tinystories_text)  # BOS + 100,707 tokens


def test_make_windows():
    assert make_windows([1, 10, 11, 12, 13, 14], 3, 1) == [[1, 10, 11], [1, 12, 13], [1, 14]]
    assert make_windows([10, 11, 12], 3, 1) == [[1, 10, 11], [1, 12]]  # a stream without BOS
    assert make_windows([1, 10, 11, 12, 13, 14], 3, 1, max_tokens=4) == [[1, 10, 11], [1, 12]]


@pytest.mark.parametrize(
    "context, max_tokens, scored, nll, ppl",
    [
        (512, None, 100_707, 1.8987, 6.677),
        (256, None, 100_707, 1.9443, 6.989),
        # The README lists 19,921 tokens here; its PPL belongs to the first 20,000 stream tokens,
        # i.e. 19,999 scored (19,921 would be 20,000 tokens fed, window BOS included: PPL 4.921).
        (256, 20_000, 19_999, None, 4.917),
    ],
)
def test_tinystories_stream(stories_model, stream, context, max_tokens, scored, nll, ppl):
    r = compare(stories_model, None, make_windows(stream, context, 1, max_tokens))
    assert r["tokens_scored"] == scored
    if nll is not None:
        assert round(r["nll_float"], 4) == nll
    assert round(r["ppl_float"], 3) == ppl
    assert set(r) == {"tokens_scored", "nll_float", "ppl_float"}


def test_sample_stories_separately(stories_model, tok512, sample_text):
    windows = document_windows(sample_text, tok512)
    assert len(windows) == 5 and all(w[0] == 1 for w in windows)
    r = compare(stories_model, None, windows)
    assert r["tokens_scored"] == 1_804
    assert round(r["nll_float"], 4) == 1.2664 and round(r["ppl_float"], 3) == 3.548


def test_compare_against_itself_and_a_perturbed_copy(stories_model, stories_source, stream):
    windows = make_windows(stream, 128, 1, max_tokens=2_000)
    same = compare(stories_model, stories_model, windows, batch_size=5)
    assert same["kl"] == pytest.approx(0.0, abs=1e-6) and same["top1_agreement"] == 1.0
    assert same["nll_quant"] == pytest.approx(same["nll_float"])

    noisy = build_model(stories_source)
    with torch.no_grad():
        for name, p in noisy.named_parameters():
            if name.endswith("proj.weight"):
                p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(0)) * 0.05 * p.std())
    r = compare(stories_model, noisy, windows)
    assert r["tokens_scored"] == same["tokens_scored"] == 1_999
    assert 0 < r["kl"] < 0.5 and 0.5 < r["top1_agreement"] < 1.0
    assert r["ppl_quant"] == pytest.approx(math.exp(r["nll_quant"]))
    assert r["nll_quant"] > r["nll_float"]


def test_batching_does_not_change_the_result(stream, stories_model):
    windows = make_windows(stream, 64, 1, max_tokens=700)
    a = compare(stories_model, None, windows, batch_size=1)
    b = compare(stories_model, None, windows, batch_size=64)
    assert a["tokens_scored"] == b["tokens_scored"]
    assert a["nll_float"] == pytest.approx(b["nll_float"], rel=1e-5)


def test_any_callable_model():
    from taalas_compile.model import ModelArgs

    args = ModelArgs(dim=16, n_layers=1, n_heads=2, n_kv_heads=1, hidden_dim=24, vocab_size=40)
    model = build_model(SyntheticWeights(args, 0))
    windows = [[1, 5, 6, 7], [1, 8]]
    r = compare(model, lambda tokens: model(tokens) * 1.0, windows)
    assert r["tokens_scored"] == 4 and r["kl"] == pytest.approx(0.0, abs=1e-6)
