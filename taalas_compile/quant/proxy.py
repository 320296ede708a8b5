"""A measured sensitivity without a forward pass per tensor and option: one streamed pass of the
float model over a few calibration windows, and per tensor and (bits, group) option the error its
round-to-nearest codes cause in the residual stream, converted to an estimate of the ΔKL the
knapsack weighs (quant/allocate.py), in the same units for every tensor:

- a linear of layer I: its output error x (W − Q)ᵀ carried through the rest of its sublayer to the
  residual stream — through attention and o_proj for q, k and v (attention recomputed with the
  perturbed queries, keys or values), through the SiLU gate and down_proj for gate and up, directly
  for o_proj and down_proj (there mean ‖x ΔWᵀ‖² is the Hessian-weighted error tr(ΔW·H·ΔWᵀ)) —
  as r² = mean_t ‖Δh_t‖² / mean_t ‖h_t‖², the relative perturbation of the residual stream h;
- a relative residual perturbation r² moves the logits by about σ² = mean(W_head²) · mean ‖x_final‖² · r²
  per vocabulary entry (a random direction through the final norm and the head), and a logit
  perturbation of variance σ² costs KL ≈ σ²/2, so ΔKL ≈ κ r² with κ = mean(W_head²) · mean ‖x_final‖² / 2;
- the output head directly: ΔKL ≈ mean_t ‖x_t (W − Q)ᵀ‖² / (2 V); the embedding lookup as a
  residual perturbation of the layer-0 input (and, tied, the head term too).

The errors are measured at TOKENS query positions strided over the windows (attention sees each
window's whole causal prefix). It ignores how later layers amplify or damp a perturbation;
docs/quantization.md compares the allocation it gives with the ΔKL knapsack on stories260K.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from taalas_compile.model.llama import RMSNorm
from taalas_compile.model.weights import WeightSource, release_pages
from taalas_compile.quant.codes import QuantSpec, quantize_tensor, round_fp16
from taalas_compile.quant.layer import LINEARS, Layer

EMBED, HEAD = "model.embed_tokens.weight", "lm_head.weight"
TOKENS = 2048  # inputs per tensor the errors are measured on (evenly strided over the windows)


def _rows(x: torch.Tensor, n: int = TOKENS) -> torch.Tensor:
    x = x.reshape(-1, x.shape[-1])
    step = max(1, x.shape[0] // n)
    return x[::step][:n]


def _positions(n_windows: int, seq: int, n: int = TOKENS) -> torch.Tensor:
    """The query positions measured in every window: strided, ending at the window's last token."""
    step = max(1, -(-n_windows * seq // n))
    return torch.arange(seq - 1, -1, -step).flip(0)


def _err(x: torch.Tensor, w: torch.Tensor, spec: QuantSpec, clip_search: bool) -> float:
    """mean_t ‖x_t (W − Q)ᵀ‖² for x [T, in]."""
    return _sq(F.linear(x, _delta(w, spec, clip_search)))


def _delta(w: torch.Tensor, spec: QuantSpec, clip_search: bool) -> torch.Tensor:
    """W − Q: the round-to-nearest error of `spec`'s codes."""
    return w - quantize_tensor(w, spec, clip_search).dequantize().to(w.device)


def _sq(e: torch.Tensor) -> float:
    """mean over tokens of ‖e_t‖² (e [..., D])."""
    return float(e.reshape(-1, e.shape[-1]).pow(2).sum(-1).mean())


def _layer_errors(layer: Layer, h: torch.Tensor, modules: list[str], options: list[QuantSpec],
                  clip_search: bool) -> tuple[torch.Tensor, dict[str, list[float]]]:
    """The float layer on h [N, S, D] (its output, for the next layer) and, per module and option,
    mean ‖Δh‖² / mean ‖h‖² at the sampled positions: the residual perturbation that module's
    round-to-nearest codes alone cause (the module docstring)."""
    w = layer.w
    n, s, _ = h.shape
    x1 = layer.norm1(h)
    q, k, v = (F.linear(x1, w[f"self_attn.{m}_proj"]) for m in "qkv")
    qr, kr = layer.q_rope(q), layer.k_rope(k)
    a = layer.attn(qr, kr, v)
    mid = h + F.linear(a, w["self_attn.o_proj"])
    x2 = layer.norm2(mid)
    g, u = F.linear(x2, w["mlp.gate_proj"]), F.linear(x2, w["mlp.up_proj"])
    act = F.silu(g) * u
    out = mid + F.linear(act, w["mlp.down_proj"])

    pos = _positions(n, s)
    nh, nkv, hd = layer.attn.n_heads, layer.attn.n_kv_heads, layer.attn.head_dim
    mask = torch.arange(s, device=h.device)[None, :] <= pos.to(h.device)[:, None]  # [P, S]

    def attend(q_at: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Attention outputs at the sampled positions: q_at [N, P, nh*hd], keys/values [N, S, nkv*hd]."""
        qh = q_at.view(n, -1, nh, hd).transpose(1, 2)
        kh = keys.view(n, s, nkv, hd).transpose(1, 2).repeat_interleave(nh // nkv, dim=1)
        vh = values.view(n, s, nkv, hd).transpose(1, 2).repeat_interleave(nh // nkv, dim=1)
        return F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask).transpose(1, 2).reshape(n, -1, nh * hd)

    qr_at, x1_at, x2_at = qr[:, pos], x1[:, pos], x2[:, pos]
    a_at = attend(qr_at, kr, v)
    g_at, u_at = g[:, pos], u[:, pos]
    act_at = act[:, pos]
    w_o, w_down = w["self_attn.o_proj"], w["mlp.down_proj"]

    def residual(m: str, d: torch.Tensor) -> torch.Tensor:
        """Δh at the sampled positions when module m's weight is off by d."""
        if m == "self_attn.q_proj":
            dq = torch.zeros_like(q)
            dq[:, pos] = F.linear(x1_at, d)
            return F.linear(attend(qr_at + layer.q_rope(dq)[:, pos], kr, v) - a_at, w_o)
        if m == "self_attn.k_proj":
            return F.linear(attend(qr_at, kr + layer.k_rope(F.linear(x1, d)), v) - a_at, w_o)
        if m == "self_attn.v_proj":
            return F.linear(attend(qr_at, kr, F.linear(x1, d)), w_o)  # attention is linear in v
        if m == "self_attn.o_proj":
            return F.linear(a_at, d)
        if m == "mlp.gate_proj":
            return F.linear(F.silu(g_at + F.linear(x2_at, d)) * u_at - act_at, w_down)
        if m == "mlp.up_proj":
            return F.linear(F.silu(g_at) * F.linear(x2_at, d), w_down)
        return F.linear(act_at, d)  # mlp.down_proj

    errs = {m: [_sq(residual(m, _delta(w[m], o, clip_search))) for o in options] for m in modules}
    return out, errs


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
    if EMBED in want:
        used = torch.unique(flat)
        counts = torch.bincount(flat, minlength=a.vocab_size)[used].float()
        raw[EMBED] = []
        for o in options:
            d = emb_rows[used] - quantize_tensor(emb_rows[used], o, clip_search).dequantize()
            raw[EMBED].append(float((d.pow(2).sum(-1) * counts).sum() / counts.sum()))
    del emb_rows
    for i in range(a.n_layers):
        layer = Layer(source, i, device)
        h_next, errs = _layer_errors(layer, h, [m for m in LINEARS if f"model.layers.{i}.{m}.weight" in want],
                                     options, clip_search)
        for m, e in errs.items():
            raw[f"model.layers.{i}.{m}.weight"] = e
        h = h_next
        del layer
        release_pages(source)
    norm = RMSNorm(a.dim, a.norm_eps)
    norm.weight = torch.nn.Parameter(round_fp16(source.get("model.norm.weight")).to(device), requires_grad=False)
    x = _rows(norm(h))  # [T, D] final normed hidden states
    energy = _sq(_rows(h))  # mean ‖h_final‖²
    head = EMBED if a.tie_embeddings else HEAD
    w_head = source.get(head).to(device)
    kappa = float(w_head.pow(2).mean()) * _sq(x) / (2 * energy)
    out = {n: [kappa * r for r in raw[n]] for n in raw}
    if head in want:
        direct = [_err(x, w_head, o, clip_search) / (2 * a.vocab_size) for o in options]
        out[head] = [a_ + b for a_, b in zip(out.get(head, [0.0] * len(options)), direct)]
    return {n: out[n] for n in names}
