"""Greedy decoding with the KV cache: one prefill of the prompt, then one token per step."""

from __future__ import annotations

from collections.abc import Collection

import torch

from taalas_compile.model.llama import Llama


@torch.inference_mode()
def greedy(model: Llama, prompt_ids: list[int], n_tokens: int, stop_ids: Collection[int] = ()) -> list[int]:
    """The `n_tokens` argmax tokens that follow `prompt_ids`; fewer when one of `stop_ids` (a
    tokenizer's `eos_ids`: Llama 3.1 has three) is generated, which is the last token returned."""
    if not prompt_ids:
        raise ValueError("greedy needs at least one prompt token (usually BOS)")
    device = model.model.embed_tokens.weight.device
    model.setup_cache(1, len(prompt_ids) + n_tokens)
    try:
        tokens = torch.tensor([prompt_ids], dtype=torch.long, device=device)  # [1, P]
        pos = 0
        out: list[int] = []
        while len(out) < n_tokens:
            logits = model(tokens, pos)  # [1, S, V]
            pos += tokens.shape[1]
            nxt = int(logits[0, -1].argmax())
            out.append(nxt)
            if nxt in stop_ids:
                break
            tokens = torch.tensor([[nxt]], dtype=torch.long, device=device)
        return out
    finally:
        model.clear_cache()
