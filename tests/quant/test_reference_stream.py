"""The layer-by-layer references (quant/reference_stream.py) compute exactly what the whole
PyTorch models compute."""

import numpy as np
import torch

from taalas_compile.inputs import resolve
from taalas_compile.quant.etched import Etched
from taalas_compile.quant.reference_stream import run_streamed
from taalas_compile.reference import build_references


def test_layer_by_layer_equals_the_whole_models():
    inp = resolve("tiny-llama")
    refs = build_references(inp)
    seq = [1, 5, 9, 200, 17, 3]
    a = inp.die.arith
    s = run_streamed(Etched(inp.source, refs.specs, inp.recipe.quant.clip_search), seq, a.act_bits, a.kv_bits)
    with torch.no_grad():
        x = torch.tensor([seq])
        q, f = refs.quant_model(x)[0].numpy(), refs.float_model(x)[0].numpy()
        h = refs.quant_model.model.embed_tokens(x)
        want = {"embed": h[0].numpy()}
        for i, layer in enumerate(refs.quant_model.model.layers):
            h = layer(h)
            want[f"layers.{i}"] = h[0].numpy()
    np.testing.assert_allclose(s.quant_logits, q, rtol=0, atol=1e-5 * np.abs(q).max())
    np.testing.assert_allclose(s.float_logits, f, rtol=0, atol=1e-5 * np.abs(f).max())
    assert list(s.hidden) == list(want)
    for k, w in want.items():
        np.testing.assert_allclose(s.hidden[k], w, rtol=0, atol=1e-5 * np.abs(w).max())
