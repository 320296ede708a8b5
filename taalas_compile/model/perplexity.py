"""Scoring protocol: next-token NLL / perplexity of a float model, and how far a quantized one drifts.

A text is one token stream ``BOS + encode(text)``. Its tokens after the leading BOS are cut into
non-overlapping chunks of ``context - 1``; each window is ``[BOS] + chunk`` and every chunk token is
scored (the first one predicted from BOS alone), so the whole stream is scored whatever the context.
``max_tokens`` keeps only the first tokens of the stream (its leading BOS counted).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from taalas_compile.model.tokenizer import Tokenizer

Model = Callable[[torch.Tensor], torch.Tensor]  # tokens [B, S] long -> logits [B, S, V]


def make_windows(stream: list[int], context: int, bos_id: int, max_tokens: int | None = None) -> list[list[int]]:
    """Windows ``[BOS] + chunk`` of at most `context` tokens over ``stream[:max_tokens]``.

    A leading BOS of the stream is dropped (each window brings its own); every chunk token is scored.
    """
    if context < 2:
        raise ValueError(f"context {context} leaves no room for a scored token after BOS")
    stream = stream[:max_tokens]  # max_tokens None keeps it all
    body = stream[1:] if stream and stream[0] == bos_id else stream
    return [[bos_id] + body[i : i + context - 1] for i in range(0, len(body), context - 1)]


def document_windows(
    text: str, tokenizer: Tokenizer, separator: str = "<|endoftext|>", context: int | None = None
) -> list[list[int]]:
    """One window ``BOS + encode(doc.strip())`` per non-empty document (split if over `context`)."""
    windows = []
    for doc in text.split(separator):
        doc = doc.strip()
        if not doc:
            continue
        ids = tokenizer.encode(doc, bos=True)
        windows += [ids] if context is None else make_windows(ids, context, tokenizer.bos_id)
    return windows


def _batches(windows: list[list[int]], batch_size: int, device: torch.device):
    """Yield (tokens [B, S], targets [B, S-1], mask [B, S-1]) with windows right-padded by zeros."""
    for i in range(0, len(windows), batch_size):
        group = windows[i : i + batch_size]
        s = max(len(w) for w in group)
        tokens = torch.zeros(len(group), s, dtype=torch.long)
        mask = torch.zeros(len(group), s - 1, dtype=torch.bool)
        for b, w in enumerate(group):
            tokens[b, : len(w)] = torch.tensor(w)
            mask[b, : len(w) - 1] = True
        yield tokens.to(device), tokens[:, 1:].to(device), mask.to(device)


def _device(model: Model) -> torch.device:
    if isinstance(model, torch.nn.Module):
        for p in model.parameters():
            return p.device
    return torch.device("cpu")


@torch.inference_mode()
def compare(float_model: Model, quant_model: Model | None, windows: list[list[int]], batch_size: int = 16) -> dict:
    """NLL/PPL of the float model over every scored position; with a quantized model also its NLL/PPL,
    mean KL(p_float || p_quant) and the top-1 agreement rate."""
    device = _device(float_model)
    n = 0
    nll_f = nll_q = kl = agree = 0.0
    for tokens, targets, mask in _batches(windows, batch_size, device):
        logp_f = torch.log_softmax(float_model(tokens)[:, :-1].float(), dim=-1)[mask]  # [N, V]
        tgt = targets[mask]  # [N]
        n += tgt.numel()
        nll_f -= logp_f.gather(1, tgt[:, None]).sum().item()
        if quant_model is None:
            continue
        logp_q = torch.log_softmax(quant_model(tokens)[:, :-1].float(), dim=-1)[mask]
        nll_q -= logp_q.gather(1, tgt[:, None]).sum().item()
        kl += (logp_f.exp() * (logp_f - logp_q)).sum().item()
        agree += (logp_f.argmax(-1) == logp_q.argmax(-1)).sum().item()
    if n == 0:
        raise ValueError("no tokens to score")
    out = {"tokens_scored": n, "nll_float": nll_f / n, "ppl_float": math.exp(nll_f / n)}
    if quant_model is not None:
        out |= {
            "nll_quant": nll_q / n,
            "ppl_quant": math.exp(nll_q / n),
            "kl": kl / n,
            "top1_agreement": agree / n,
        }
    return out
