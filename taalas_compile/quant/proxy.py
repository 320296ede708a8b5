"""A measured sensitivity without a forward pass per tensor and option: one streamed pass of the
float model over a few calibration windows, and per tensor and (bits, group) option the output
error its round-to-nearest codes cause, converted to an estimate of the ΔKL the knapsack weighs
(quant/allocate.py), in the same units for every tensor:

- a linear of layer I: r² = mean_t ‖x_t (W − Q)ᵀ‖² / mean_t ‖h_t‖², the relative perturbation of the
  residual stream h it writes into (x: its float inputs);
- a relative residual perturbation r² moves the logits by about σ² = mean(W_head²) · mean ‖x_final‖² · r²
  per vocabulary entry (a random direction through the final norm and the head), and a logit
  perturbation of variance σ² costs KL ≈ σ²/2, so ΔKL ≈ κ r² with κ = mean(W_head²) · mean ‖x_final‖² / 2;
- the output head directly: ΔKL ≈ mean_t ‖x_t (W − Q)ᵀ‖² / (2 V); the embedding lookup as a
  residual perturbation of the layer-0 input (and, tied, the head term too).

It ignores how later layers amplify or damp a perturbation; docs/quantization.md compares the
allocation it gives with the ΔKL knapsack on stories260K.
"""

from __future__ import annotations

import torch

from taalas_compile.model.llama import RMSNorm
from taalas_compile.model.weights import WeightSource, release_pages
from taalas_compile.quant.codes import QuantSpec, quantize_tensor, round_fp16
from taalas_compile.quant.layer import STAGES, Layer

EMBED, HEAD = "model.embed_tokens.weight", "lm_head.weight"
TOKENS = 2048  # inputs per tensor the errors are measured on (evenly strided over the windows)


def _rows(x: torch.Tensor, n: int = TOKENS) -> torch.Tensor:
    x = x.reshape(-1, x.shape[-1])
    step = max(1, x.shape[0] // n)
    return x[::step][:n]


def _err(x: torch.Tensor, w: torch.Tensor, spec: QuantSpec, clip_search: bool) -> float:
    """mean_t ‖x_t (W − Q)ᵀ‖² for x [T, in]."""
    d = w - quantize_tensor(w, spec, clip_search).dequantize().to(w.device)
    return float(torch.nn.functional.linear(x, d).pow(2).sum(-1).mean())


@torch.no_grad()
def measure_proxy(source: WeightSource, names: list[str], options: list[QuantSpec], tokens: torch.Tensor,
                  clip_search: bool, device: torch.device | None = None) -> dict[str, list[float]]:
    """{tensor: [estimated ΔKL per option]} (see the module docstring). tokens: [N, S] windows."""
    device = device or torch.device("cpu")
    a = source.args
    want = set(names)
    raw: dict[str, list[float]] = {}
    flat = tokens.reshape(-1)
    emb_rows = source.get(EMBED)  # [V, D] (the lookup: only the tokens' rows are used below)
    h = emb_rows[tokens].to(device)  # [N, S, D]
    energy = float(h.pow(2).sum(-1).mean())
    if EMBED in want:
        used = torch.unique(flat)
        counts = torch.bincount(flat, minlength=a.vocab_size)[used].float()
        raw[EMBED] = []
        for o in options:
            d = emb_rows[used] - quantize_tensor(emb_rows[used], o, clip_search).dequantize()
            raw[EMBED].append(float((d.pow(2).sum(-1) * counts).sum() / counts.sum()) / energy)
    del emb_rows
    for i in range(a.n_layers):
        layer = Layer(source, i, device)
        energy = float(_rows(h).pow(2).sum(-1).mean())
        xs: dict[int, torch.Tensor] = {}
        h_next = layer.forward(h, quant=False, at_stage=lambda k, x, xs=xs: xs.__setitem__(k, _rows(torch.cat(x))))
        for k, stage in enumerate(STAGES):
            for m in stage:
                n = f"model.layers.{i}.{m}.weight"
                if n in want:
                    raw[n] = [_err(xs[k], layer.w[m], o, clip_search) / energy for o in options]
        h = h_next
        del layer
        release_pages(source)
    norm = RMSNorm(a.dim, a.norm_eps)
    norm.weight = torch.nn.Parameter(round_fp16(source.get("model.norm.weight")).to(device), requires_grad=False)
    x = _rows(norm(h))  # [T, D] final normed hidden states
    head = EMBED if a.tie_embeddings else HEAD
    w_head = source.get(head).to(device)
    kappa = float(w_head.pow(2).mean()) * float(x.pow(2).sum(-1).mean()) / 2
    out = {n: [kappa * r for r in raw[n]] for n in raw}
    if head in want:
        direct = [_err(x, w_head, o, clip_search) / (2 * a.vocab_size) for o in options]
        out[head] = [a_ + b for a_, b in zip(out.get(head, [0.0] * len(options)), direct)]
    return {n: out[n] for n in names}
