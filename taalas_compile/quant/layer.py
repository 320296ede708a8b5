"""One decoder layer of the streamed quantizer: its float weights read from the checkpoint when it
is reached, a forward pass staged by the linears' shared inputs (so each stage can be quantized
between the passes), and sequential GPTQ of its linears on the Hessians of the quantized stream.

The staged pass computes exactly what `DecoderLayer.forward` computes (same ops, same batches), and
layers with at most EXACT_HESSIAN_IN inputs build their Hessians and targets exactly as the
in-memory `calibrate.gptq_model` does, so on small models the codes are equal bit for bit
(tests/quant/test_stream.py). Larger layers use the fast forms below (float32 products, one
accumulator, the symmetric half of XᵀX, one solve per stage): at Llama-3.1-8B shape every part
but the big matrix products is negligible (benchmarks/stream_layer_8b.py).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from taalas_compile.model.llama import CausalAttention, RMSNorm
from taalas_compile.model.rope import Rotary, inv_freq
from taalas_compile.model.weights import WeightSource
from taalas_compile.quant.arith import quantize_activation
from taalas_compile.quant.calibrate import (
    STAGES,
    _running,
    corrected_target,
    gptq_dtype,
)
from taalas_compile.quant.codes import QTensor, QuantSpec, round_fp16
from taalas_compile.quant.gptq import gptq_quantize

LINEARS = tuple(m for stage in STAGES for m in stage)
BATCH_TOKENS = 4096  # tokens per forward batch (at most 8 windows, as calibrate.BATCH)
EXACT_HESSIAN_IN = 512  # up to this many inputs: float64 products, as calibrate.gptq_model (bit for bit)
OUTPUT_CROSS_IN = 4096  # above: the target's cross term from the teacher's outputs (XᵀX̃ would cost in² per token)
PANEL = 512  # rows of XᵀX per product when only its upper half is computed

StageHook = Callable[[int, list[torch.Tensor]], "dict[int, list[torch.Tensor]] | None"]


def _dequantize(q: QTensor, device: torch.device) -> torch.Tensor:
    """q.dequantize() on `device` with torch's threads: codes x fp16 scales are exact in float32
    (8 x 11 significant bits), so equal bit for bit to QTensor.dequantize's numpy product."""
    out, n_in = q.codes.shape
    if n_in % q.group:
        return q.dequantize().to(device)
    w = torch.from_numpy(q.codes).to(device).float().view(out, -1, q.group)  # [out, ng, g]
    return w.mul_(torch.from_numpy(q.scales).to(device).float()[:, :, None]).view(out, n_in)


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
        self.quantized[m] = (_dequantize(q, self.w[m].device), q.group)
        self.act_bits = act_bits

    def linears(self, ms: tuple[str, ...], x: torch.Tensor, quant: bool, xq: dict[int, torch.Tensor] | None = None) -> list[torch.Tensor]:
        """Linears `ms` on one input x [B, S, in]: float, or as the MAC tiles compute them once
        quantized (the int8 activation quantization done once per group; `xq` gives it by group
        where the caller has it already)."""
        out, xq = [], dict(xq or {})
        for m in ms:
            if quant and m in self.quantized:
                w, g = self.quantized[m]
                if g not in xq:
                    xq[g] = quantize_activation(x, g, self.act_bits)
                out.append(F.linear(xq[g], w))
            else:
                out.append(F.linear(x, self.w[m]))
        return out

    def forward(self, h: torch.Tensor, quant: bool, at_stage: StageHook | None = None,
                at_output: Callable[[int, list[torch.Tensor]], None] | None = None) -> torch.Tensor:
        """h [N, S, D] -> [N, S, D], batch by batch, stage by stage: `at_stage(k, xs)` gets stage
        k's inputs (one [B, S, in] per batch) before the stage's linears run on them, and may return
        their int8-quantized form by group (one [B, S, in] per batch) for the linears to use;
        `at_output(k, ys)` gets each batch's outputs of stage k's linears."""

        def at(k: int, xs: list[torch.Tensor]) -> list[dict[int, torch.Tensor]]:
            xq = at_stage(k, xs) if at_stage is not None else None
            return [{g: v[b] for g, v in xq.items()} for b in range(len(xs))] if xq else [{}] * len(xs)

        def run(k: int, xb: torch.Tensor, xq: dict[int, torch.Tensor]) -> list[torch.Tensor]:
            ys = self.linears(STAGES[k], xb, quant, xq)
            if at_output is not None:
                at_output(k, ys)
            return ys

        hs = batches(h)
        x = [self.norm1(hb) for hb in hs]
        xq = at(0, x)
        a = []
        for xb, xqb in zip(x, xq):
            q, k, v = run(0, xb, xqb)
            a.append(self.attn(self.q_rope(q), self.k_rope(k), v))  # [B, S, nh*hd]
        del x, xq, q, k, v
        xq = at(1, a)
        mid = [hb + run(1, ab, xqb)[0] for hb, ab, xqb in zip(hs, a, xq)]
        del a, xq
        x = [self.norm2(m) for m in mid]
        xq = at(2, x)
        act = []
        for xb, xqb in zip(x, xq):
            g, u = run(2, xb, xqb)
            act.append(F.silu(g).mul_(u))  # [B, S, F]
        del x, xq, g, u
        xq = at(3, act)
        out = torch.empty_like(h)
        i = 0
        for m, y, xqb in zip(mid, act, xq):
            torch.add(m, run(3, y, xqb)[0], out=out[i : i + len(m)])
            i += len(m)
        return out


def _exact_mean_product(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    """2·AᵀB/N [in, in] in float64 as a running mean over the batches, exactly as
    calibrate.gptq_model accumulates it (so small layers stay bit for bit the in-memory path's)."""
    n_in = b[0].shape[-1]
    acc, n_seen = None, 0
    for fa, fb in zip(a, b):
        xb, xa = fb.reshape(-1, n_in).double(), fa.reshape(-1, n_in).double()
        n_new = n_seen + xb.shape[0]
        acc = _running(acc, 2 * xa.T @ xb, n_seen, n_new)
        n_seen = n_new
    return acc


def hessian_of(xq: list[torch.Tensor]) -> torch.Tensor:
    """H = 2·X̃ᵀX̃/N [in, in] of the int8-quantized inputs (one [B, S, in] per batch).
    Up to EXACT_HESSIAN_IN inputs: float64 products and running mean, as calibrate.gptq_model.
    Above: float32 sums of the upper half's row panels into one buffer, mirrored once at the end
    (≈55% of the full product's flops), in gptq_dtype: ~1e-6 relative, far below calibration noise."""
    n_in = xq[0].shape[-1]
    if n_in <= EXACT_HESSIAN_IN:
        return _exact_mean_product(xq, xq)
    acc = torch.zeros(n_in, n_in, device=xq[0].device)
    n = 0
    for x in xq:
        x2 = x.reshape(-1, n_in)  # [n, in] a view
        n += x2.shape[0]
        for r in range(0, n_in, PANEL):
            acc[r : r + PANEL, r:].addmm_(x2[:, r : r + PANEL].T, x2[:, r:])  # the panel's upper part
    for r in range(PANEL, n_in, PANEL):  # below the diagonal blocks (never computed): the mirror
        acc[r:, r - PANEL : r] = acc[r - PANEL : r, r:].T
    return acc.mul_(2.0 / n).to(gptq_dtype(n_in))


def cross_of(xf: list[torch.Tensor], xq: list[torch.Tensor]) -> torch.Tensor:
    """C = 2·XᵀX̃/N [in, in] (X the float model's inputs, X̃ the quantized stream's, per batch):
    float64 as calibrate.gptq_model up to EXACT_HESSIAN_IN inputs, float32 sums above."""
    n_in = xq[0].shape[-1]
    if n_in <= EXACT_HESSIAN_IN:
        return _exact_mean_product(xf, xq)
    acc = torch.zeros(n_in, n_in, device=xq[0].device)
    n = 0
    for f, x in zip(xf, xq):
        x2 = x.reshape(-1, n_in)
        n += x2.shape[0]
        acc.addmm_(f.reshape(-1, n_in).T, x2)
    return acc.mul_(2.0 / n)


def output_cross_of(ys: list[torch.Tensor], xq: list[torch.Tensor]) -> torch.Tensor:
    """R = 2·X̃ᵀY/N [in, out] = Cᵀ Wᵀ, with Y = X Wᵀ the float model's outputs of the linear (per
    batch): the target's right-hand side at out·in instead of in² per token (down_proj: 3.5x fewer)."""
    n_in, n_out = xq[0].shape[-1], ys[0].shape[-1]
    acc = torch.zeros(n_in, n_out, device=xq[0].device)
    n = 0
    for y, x in zip(ys, xq):
        x2 = x.reshape(-1, n_in)
        n += x2.shape[0]
        acc.addmm_(x2.T, y.reshape(-1, n_out))
    return acc.mul_(2.0 / n)


def _factor(h: torch.Tensor, damp: float, dtype: torch.dtype) -> torch.Tensor:
    """Lower Cholesky factor of H damped as calibrate.corrected_target damps it."""
    hd = h.to(dtype, copy=True)
    hd.diagonal().add_(damp * hd.diagonal().mean() + 1e-12)
    return torch.linalg.cholesky(hd, out=hd)  # in place: no second [in, in] (822 MB at 14336 inputs)


def _target(ws: list[torch.Tensor], h: torch.Tensor, damp: float, *, cross: torch.Tensor | None = None,
            rhs: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """The error-correcting targets W C H⁻¹ (calibrate.corrected_target) of the linears ws [out, in]
    sharing H: from the cross term C (`cross`, [in, in]), or from each linear's Cᵀ Wᵀ (`rhs`, [in, out]).
    Up to EXACT_HESSIAN_IN inputs: corrected_target itself; above, float32 Cholesky solves: one
    M = H⁻¹ Cᵀ per stage and W Mᵀ per linear, or H⁻¹ (CᵀWᵀ) per linear (at 4096 inputs M is 3e-5
    from float64's, in half the time; a float64 factor of 14336² takes minutes here)."""
    n_in = h.shape[0]
    if rhs is not None:
        lc = _factor(h, damp, torch.float32)
        return [torch.cholesky_solve(r, lc).T.contiguous() for r in rhs]  # (H⁻¹ Cᵀ Wᵀ)ᵀ = W C H⁻¹
    if n_in <= EXACT_HESSIAN_IN:
        return [corrected_target(w.cpu(), cross.cpu(), h.cpu(), damp).to(w.device) for w in ws]
    m = torch.cholesky_solve(cross.T.float(), _factor(h, damp, torch.float32))  # [in, in] H⁻¹ Cᵀ
    return [F.linear(w, m) for w in ws]  # W (H⁻¹ Cᵀ)ᵀ = W C H⁻¹


def _gptq_rows(ws: list[torch.Tensor], h: torch.Tensor, specs: list[QuantSpec], **kw) -> list[QTensor]:
    """GPTQ of the linears ws [out, in] sharing H. Above EXACT_HESSIAN_IN inputs, linears with the
    same spec are quantized as one matrix of their stacked rows (q with k, gate with up): GPTQ's rows
    are independent given H, so the codes are the same, and H's factor and the column loop's steps
    are paid once."""
    dt = gptq_dtype(h.shape[0])
    if h.shape[0] <= EXACT_HESSIAN_IN:
        return [gptq_quantize(w.cpu(), h.cpu(), sp, dtype=dt, **kw) for w, sp in zip(ws, specs)]
    out: list[QTensor | None] = [None] * len(ws)
    for sp in dict.fromkeys(specs):
        idx = [i for i, s in enumerate(specs) if s == sp]
        q = gptq_quantize(torch.cat([ws[i] for i in idx]).cpu() if len(idx) > 1 else ws[idx[0]].cpu(), h.cpu(), sp, dtype=dt, **kw)
        r0 = 0
        for i in idx:
            r1 = r0 + ws[i].shape[0]
            out[i] = QTensor(q.codes[r0:r1], q.scales[r0:r1], q.bits, q.group)
            r0 = r1
    return out


@torch.no_grad()
def quantize_layer(layer: Layer, hq: torch.Tensor, hf: torch.Tensor | None, specs: dict[str, QuantSpec], act_bits: int, *,
                   damp: float, act_order: bool, clip_search: bool, correct: bool) -> tuple[dict[str, QTensor], torch.Tensor, torch.Tensor | None]:
    """GPTQ of the layer's linears, stage by stage, each stage's Hessian from the quantized stream
    hq [N, S, D] through the stages already quantized; with `correct` (and the float stream hf) the
    target is the float layer's output (calibrate.corrected_target). Returns (codes by tensor name,
    the quantized stream after the layer, the float stream after the layer)."""
    correct = correct and hf is not None
    # per stage, what the teacher keeps for the target: its inputs X (for C = XᵀX̃), or for stages
    # whose linears all have more than OUTPUT_CROSS_IN inputs its outputs Y = XWᵀ (for CᵀWᵀ = X̃ᵀY)
    by_out = {k: all(layer.w[m].shape[1] > OUTPUT_CROSS_IN for m in STAGES[k]) for k in range(len(STAGES))}
    fin: dict[int, list[torch.Tensor]] = {}
    fout: dict[int, list[list[torch.Tensor]]] = {}

    def keep_in(k: int, xs: list[torch.Tensor]) -> None:
        if not by_out[k]:
            fin[k] = xs

    def keep_out(k: int, ys: list[torch.Tensor]) -> None:
        if by_out[k]:
            fout.setdefault(k, []).append(ys)

    hf_next = layer.forward(hf, quant=False, at_stage=keep_in if correct else None,
                            at_output=keep_out if correct else None) if hf is not None else None
    qw: dict[str, QTensor] = {}

    def at_stage(k: int, xs: list[torch.Tensor]) -> dict[int, list[torch.Tensor]]:
        ms = STAGES[k]
        names = {m: f"{layer.name}{m}.weight" for m in ms}
        groups = list(dict.fromkeys(specs[names[m]].group for m in ms))
        # the stage's inputs as the tiles see them, by group; the last group overwrites xs (only
        # the quantized linears read them now)
        xq = {g: [quantize_activation(x, g, act_bits, inplace=g == groups[-1]) for x in xs] for g in groups}
        for g, xg in xq.items():
            h = hessian_of(xg)
            mg = [m for m in ms if specs[names[m]].group == g]
            ws = [layer.w[m] for m in mg]
            if correct and k in fin:
                ws = _target(ws, h, damp, cross=cross_of(fin[k], xg))
            elif correct and k in fout:
                ws = _target(ws, h, damp, rhs=[output_cross_of([ys[ms.index(m)] for ys in fout[k]], xg) for m in mg])
            qs = _gptq_rows(ws, h, [specs[names[m]] for m in mg], damp=damp, act_order=act_order, clip_search=clip_search)
            for m, q in zip(mg, qs):
                qw[names[m]] = q
                layer.set_codes(m, q, act_bits)
            del h, ws
        fin.pop(k, None)
        fout.pop(k, None)
        return xq

    hq_next = layer.forward(hq, quant=True, at_stage=at_stage)
    return qw, hq_next, hf_next
