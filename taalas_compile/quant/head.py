"""The embedding and the output head in row bands, and the final quality from the two streams'
last hidden states: nothing here holds a [vocab, dim] float matrix or a [tokens, vocab] logit
matrix whole (Llama 3.1 8B: 128,256 x 4,096 = 2 GB in fp32; 16,384 tokens x 128,256 = 8 GB)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from taalas_compile.model.weights import WeightSource
from taalas_compile.quant.arith import quantize_activation
from taalas_compile.quant.codes import QTensor, QuantSpec, n_groups, quantize_tensor

BAND = 16384  # rows of the embedding / output head at a time (256 MB in fp32 at dim 4096)
TOKEN_CHUNK = 4096  # tokens whose logits against one band are computed at a time


def quantize_embedding(source: WeightSource, name: str, spec: QuantSpec, clip_search: bool) -> QTensor:
    """Round-to-nearest + clip search of the table, band by band (exact per row: equals the whole)."""
    v, d = source.args.param_shapes()[name]
    codes = np.empty((v, d), np.int8)
    scales = np.empty((v, n_groups(d, spec.group)), np.float16)
    for r0 in range(0, v, BAND):
        q = quantize_tensor(source.rows(name, r0, min(r0 + BAND, v)), spec, clip_search)
        codes[r0 : r0 + len(q.codes)], scales[r0 : r0 + len(q.codes)] = q.codes, q.scales
    return QTensor(codes, scales, spec.bits, spec.group)


def embed_streams(source: WeightSource, name: str, rows: Callable[[int, int], QTensor], tokens: torch.Tensor,
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(float, quantized) hidden states [N, S, D] entering layer 0: the tokens' rows of the table,
    float and etched (`rows(r0, r1)` gives the etched rows)."""
    v, d = source.args.param_shapes()[name]
    flat = tokens.reshape(-1)
    hf = torch.empty(flat.numel(), d)
    hq = torch.empty(flat.numel(), d)
    for r0 in range(0, v, BAND):
        r1 = min(r0 + BAND, v)
        sel = (flat >= r0) & (flat < r1)
        if not bool(sel.any()):
            continue
        idx = flat[sel] - r0
        hf[sel] = source.rows(name, r0, r1)[idx]
        hq[sel] = rows(r0, r1).dequantize()[idx]
    shape = (*tokens.shape, d)
    return hf.reshape(shape).to(device), hq.reshape(shape).to(device)


@torch.no_grad()
def stream_quality(xf: torch.Tensor, xq: torch.Tensor, tokens: torch.Tensor, float_rows: Callable[[int, int], torch.Tensor],
                   quant_rows: Callable[[int, int], QTensor], vocab: int, act_bits: int) -> dict:
    """Perplexity float vs quantized, mean KL(p_float ‖ p_quant) and top-1 agreement over every
    scored position of the windows (position t predicts token t + 1, as `model/perplexity.compare`).

    xf, xq: [N, S, D] the final normed hidden states of the two streams. The head is read one band of
    rows at a time (float rows and etched rows) and the softmax statistics are accumulated online
    over the bands (running max and sum of exponentials), so no [tokens, vocab] matrix exists."""
    d = xf.shape[-1]
    dev = xf.device
    xf = xf[:, :-1].reshape(-1, d)  # [T, D] scored positions
    xq = xq[:, :-1].reshape(-1, d)
    tgt = tokens[:, 1:].reshape(-1).to(dev)  # [T]
    t = xf.shape[0]
    neg = torch.full((t,), -math.inf, dtype=torch.float64, device=dev)
    st = {k: neg.clone() for k in ("mf", "mq", "bf", "bq", "lf_t", "lq_t")}  # maxima, best logits, target logits
    st |= {k: torch.zeros(t, dtype=torch.float64, device=dev) for k in ("sf", "sq", "a")}
    st |= {k: torch.zeros(t, dtype=torch.long, device=dev) for k in ("af", "aq")}
    group = None
    for r0 in range(0, vocab, BAND):
        r1 = min(r0 + BAND, vocab)
        wf = float_rows(r0, r1).to(dev)  # [vb, D]
        q = quant_rows(r0, r1)
        group = q.group
        wq = q.dequantize().to(dev)
        for c0 in range(0, t, TOKEN_CHUNK):
            c = slice(c0, min(c0 + TOKEN_CHUNK, t))
            lf = F.linear(xf[c], wf).double()  # [tc, vb]
            lq = F.linear(quantize_activation(xq[c], group, act_bits), wq).double()
            _update(st, c, lf, lq, tgt[c], r0)
    lse_f = st["mf"] + st["sf"].log()
    lse_q = st["mq"] + st["sq"].log()
    nll_f = float((lse_f - st["lf_t"]).mean())
    nll_q = float((lse_q - st["lq_t"]).mean())
    kl = float((st["a"] / st["sf"] - lse_f + lse_q).mean())
    return {"tokens_scored": t, "nll_float": nll_f, "ppl_float": math.exp(nll_f), "nll_quant": nll_q, "ppl_quant": math.exp(nll_q),
            "kl": kl, "top1_agreement": float((st["af"] == st["aq"]).double().mean())}


def _update(st: dict, c: slice, lf: torch.Tensor, lq: torch.Tensor, tgt: torch.Tensor, r0: int) -> None:
    """Fold one band of logits lf, lq [tc, vb] of tokens `c` into the running statistics."""
    vb = lf.shape[1]
    for side, l in (("f", lf), ("q", lq)):
        m_old = st[f"m{side}"][c]
        bm, barg = l.max(dim=1)
        m_new = torch.maximum(m_old, bm)
        rescale = torch.exp(m_old - m_new)
        e = torch.exp(l - m_new[:, None])
        st[f"s{side}"][c] = st[f"s{side}"][c] * rescale + e.sum(1)
        if side == "f":
            st["a"][c] = st["a"][c] * rescale + (e * (lf - lq)).sum(1)
        st[f"m{side}"][c] = m_new
        better = bm > st[f"b{side}"][c]  # first maximum wins, as argmax
        st[f"b{side}"][c] = torch.where(better, bm, st[f"b{side}"][c])
        st[f"a{side}"][c] = torch.where(better, barg + r0, st[f"a{side}"][c])
        inb = (tgt >= r0) & (tgt < r0 + vb)
        st[f"l{side}_t"][c] = torch.where(inb, l.gather(1, (tgt - r0).clamp(0, vb - 1)[:, None])[:, 0], st[f"l{side}_t"][c])


def head_hessian(x: torch.Tensor, group: int, act_bits: int) -> torch.Tensor:
    """H = 2·X̃ᵀX̃/N (float64 [D, D]) of the head's int8 inputs, from x [N, S, D]."""
    from taalas_compile.quant.gptq import hessian_add

    h, _ = hessian_add(None, quantize_activation(x, group, act_bits).cpu(), 0)
    return h
