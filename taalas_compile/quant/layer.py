"""One decoder layer of the streamed quantizer: its float weights read from the checkpoint when it
is reached, a forward pass staged by the linears' shared inputs (so each stage can be quantized
between the passes), and sequential GPTQ of its linears on the Hessians of the quantized stream.

The staged pass computes exactly what `DecoderLayer.forward` computes (same ops, same batches), so
GPTQ here equals the in-memory `calibrate.gptq_model` on the same windows (tests/quant/test_stream.py).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from taalas_compile.model.llama import CausalAttention, RMSNorm
from taalas_compile.model.rope import Rotary, inv_freq
from taalas_compile.model.weights import WeightSource
from taalas_compile.quant.arith import quantize_activation
from taalas_compile.quant.calibrate import STAGES, corrected_target, gptq_dtype
from taalas_compile.quant.codes import QTensor, QuantSpec, round_fp16
from taalas_compile.quant.gptq import gptq_quantize

LINEARS = tuple(m for stage in STAGES for m in stage)
BATCH_TOKENS = 4096  # tokens per forward batch (at most 8 windows, as calibrate.BATCH)
EXACT_HESSIAN_IN = 512  # Hessians of layers with at most this many inputs are accumulated in float64 products


def windows_per_batch(seq: int) -> int:
    return max(1, min(8, BATCH_TOKENS // seq))


def batches(h: torch.Tensor) -> list[torch.Tensor]:
    b = windows_per_batch(h.shape[1])
    return [h[i : i + b] for i in range(0, h.shape[0], b)]


class Layer:
    """Decoder layer `i`: float weights [out, in] by module name ("self_attn.q_proj", ...), fp16
    norm gains (as etched, for both streams), rotary and attention. `quantized[m]` holds the
    dequantized etched weight of linear m once it is quantized (with its activation group)."""

    def __init__(self, source: WeightSource, i: int, device: torch.device):
        a = source.args
        p = f"model.layers.{i}."
        self.name = p
        self.w = {m: source.get(f"{p}{m}.weight").to(device) for m in LINEARS}
        self.norm1, self.norm2 = RMSNorm(a.dim, a.norm_eps), RMSNorm(a.dim, a.norm_eps)
        for norm, n in ((self.norm1, "input_layernorm"), (self.norm2, "post_attention_layernorm")):
            norm.weight = torch.nn.Parameter(round_fp16(source.get(f"{p}{n}.weight")).to(device), requires_grad=False)
        freq = inv_freq(a).to(device)
        self.q_rope, self.k_rope = Rotary(a.n_heads, a.head_dim, freq), Rotary(a.n_kv_heads, a.head_dim, freq)
        self.attn = CausalAttention(a.n_heads, a.n_kv_heads, a.head_dim)
        self.quantized: dict[str, tuple[torch.Tensor, int]] = {}
        self.act_bits = 8

    def set_codes(self, m: str, q: QTensor, act_bits: int) -> None:
        self.quantized[m] = (q.dequantize().to(self.w[m].device), q.group)
        self.act_bits = act_bits

    def linears(self, ms: tuple[str, ...], x: torch.Tensor, quant: bool) -> list[torch.Tensor]:
        """Linears `ms` on one input x [B, S, in]: float, or as the MAC tiles compute them once
        quantized (the int8 activation quantization done once per group)."""
        out, xq = [], {}
        for m in ms:
            if quant and m in self.quantized:
                w, g = self.quantized[m]
                if g not in xq:
                    xq[g] = quantize_activation(x, g, self.act_bits)
                out.append(F.linear(xq[g], w))
            else:
                out.append(F.linear(x, self.w[m]))
        return out

    def forward(self, h: torch.Tensor, quant: bool, at_stage: Callable[[int, list[torch.Tensor]], None] | None = None) -> torch.Tensor:
        """h [N, S, D] -> [N, S, D], batch by batch, stage by stage: `at_stage(k, xs)` gets stage
        k's inputs (one [B, S, in] per batch) before the stage's linears run on them."""
        at = at_stage or (lambda k, xs: None)
        hs = batches(h)
        x = [self.norm1(hb) for hb in hs]
        at(0, x)
        a = []
        for xb in x:
            q, k, v = self.linears(STAGES[0], xb, quant)
            a.append(self.attn(self.q_rope(q), self.k_rope(k), v))  # [B, S, nh*hd]
        del x
        at(1, a)
        mid = [hb + self.linears(STAGES[1], ab, quant)[0] for hb, ab in zip(hs, a)]
        del a
        x = [self.norm2(m) for m in mid]
        at(2, x)
        act = []
        for xb in x:
            g, u = self.linears(STAGES[2], xb, quant)
            act.append(F.silu(g) * u)  # [B, S, F]
        del x
        at(3, act)
        out = [m + self.linears(STAGES[3], y, quant)[0] for m, y in zip(mid, act)]
        return torch.cat(out)


def _hessian(xs: list[torch.Tensor], group: int, act_bits: int, ys: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Running mean of 2·XᵀX̃ over the batches (float64 [in, in]): X̃ = the int8-quantized inputs
    xs as the tile sees them, X = ys (the float model's inputs, for the cross term) or X̃ itself.
    Small layers multiply in float64 (as calibrate.gptq_model), large ones in float32."""
    acc, n_seen = None, 0
    n_in = xs[0].shape[-1]
    dt = torch.float64 if n_in <= EXACT_HESSIAN_IN else torch.float32
    for b, x in enumerate(xs):
        xt = quantize_activation(x, group, act_bits).reshape(-1, n_in).to(dt)
        xs_ = xt if ys is None else ys[b].reshape(-1, n_in).to(dt)
        n_new = n_seen + xt.shape[0]
        add = (2 * xs_.T @ xt).double()
        acc = add / n_new if acc is None else acc * (n_seen / n_new) + add / n_new
        n_seen = n_new
    return acc


def _target(w: torch.Tensor, cross: torch.Tensor, h: torch.Tensor, damp: float) -> torch.Tensor:
    """calibrate.corrected_target; above 4096 inputs by a float32 Cholesky solve (a float64 LU of a
    14336² matrix takes minutes here)."""
    if w.shape[1] <= 4096:
        return corrected_target(w.cpu(), cross.cpu(), h.cpu(), damp).to(w.device)
    hd = h.float().clone()
    hd.diagonal().add_(damp * hd.diagonal().mean() + 1e-12)
    lc = torch.linalg.cholesky(hd)
    return torch.cholesky_solve(cross.float() @ w.float().T, lc).T.contiguous()  # (H⁻¹ Cᵀ Wᵀ)ᵀ = W C H⁻¹


@torch.no_grad()
def quantize_layer(layer: Layer, hq: torch.Tensor, hf: torch.Tensor | None, specs: dict[str, QuantSpec], act_bits: int, *,
                   damp: float, act_order: bool, clip_search: bool, correct: bool) -> tuple[dict[str, QTensor], torch.Tensor, torch.Tensor | None]:
    """GPTQ of the layer's linears, stage by stage, each stage's Hessian from the quantized stream
    hq [N, S, D] through the stages already quantized; with `correct` (and the float stream hf) the
    target is the float layer's output (calibrate.corrected_target). Returns (codes by tensor name,
    the quantized stream after the layer, the float stream after the layer)."""
    fin: dict[int, list[torch.Tensor]] = {}
    hf_next = layer.forward(hf, quant=False, at_stage=fin.__setitem__ if correct else None) if hf is not None else None
    qw: dict[str, QTensor] = {}

    def at_stage(k: int, xs: list[torch.Tensor]) -> None:
        ms = STAGES[k]
        hs: dict[int, torch.Tensor] = {}
        for m in ms:
            name = f"{layer.name}{m}.weight"
            spec = specs[name]
            if spec.group not in hs:
                hs[spec.group] = _hessian(xs, spec.group, act_bits)
            h = hs[spec.group]
            w = layer.w[m]
            if correct and k in fin:
                w = _target(w, _hessian(xs, spec.group, act_bits, fin[k]), h, damp)
            qw[name] = gptq_quantize(w.cpu(), h.cpu(), spec, damp=damp, act_order=act_order, clip_search=clip_search,
                                     dtype=gptq_dtype(w.shape[1]))
            layer.set_codes(m, qw[name], act_bits)
        fin.pop(k, None)

    hq_next = layer.forward(hq, quant=True, at_stage=at_stage)
    return qw, hq_next, hf_next
