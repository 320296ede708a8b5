"""The quantized reference as a golden model: the PyTorch Llama with every module computing the
die's arithmetic exactly (`die/arithmetic.py`; docs/die-model.md, "Arithmetic").

This is the second of the specification's two implementations, written from the model (its
etched codes and scales, its config) where the emulator works from the extracted chip (decoded
ROMs, the netlist's wiring, tile headers). Both compose the same primitives — the quantizer, the
fixed-point accumulator, the adder tree, exp, the RoPE table, the KV format — and must agree bit
for bit on every activation and logit (`verify`, `emulate --trace`).

`golden(module, codes_of, act_bits, kv_bits)` swaps, in a float `Llama` or one `DecoderLayer`:
`nn.Linear` -> `MacLinear`, `RMSNorm` -> `GoldenRMSNorm`, `Rotary` -> `GoldenRotary`,
`CausalAttention` -> `GoldenAttention`, `MLP` -> `GoldenMLP`. The quantizer keeps its own fast,
differentiable stand-in (`quant/arith.py` QLinear), which need not be exact.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from taalas_compile.die import arithmetic as A
from taalas_compile.model.llama import MLP, CausalAttention, Llama, RMSNorm, build_model
from taalas_compile.model.rope import Rotary
from taalas_compile.model.weights import WeightSource
from taalas_compile.quant.codes import QTensor

ELEMENTS = 1 << 23  # intermediate elements a module holds at once (rows or queries are chunked to it)
ATTENTION_ELEMENTS = 1 << 21  # attention's products per chunk of queries (kept near the cache size)


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().contiguous().float().numpy()


def _fp32(v: float) -> torch.Tensor:
    return torch.tensor(np.float32(v))


class MacLinear(nn.Module):
    """y = W x on MAC tiles: x quantized per weight group (int8 codes, fp32 scale); per group an
    exact integer dot product with the weight codes; each group's acc x weight scale x activation
    scale rounded into the int64 Q31.32 accumulator; with an adapter, the LoRA result rounded in
    too; the accumulator read out as fp32."""

    def __init__(self, q: QTensor, act_bits: int):
        super().__init__()
        out, n_in = q.codes.shape
        g = q.group
        ng = -(-n_in // g)
        codes = np.zeros((out, ng * g), np.float32)
        codes[:, :n_in] = q.codes
        dtype = A.mac_dtype(g, q.bits, act_bits)
        self.register_buffer("codes", torch.from_numpy(np.ascontiguousarray(codes.reshape(out, ng, g).transpose(1, 2, 0)).astype(dtype)))  # [ng, g, out]
        self.wscale = np.ascontiguousarray(q.scales.astype(np.float32).T)  # [ng, out], fp16 values
        self.in_features, self.out_features, self.group, self.act_bits = n_in, out, g, act_bits
        self.lora: tuple[torch.Tensor, torch.Tensor, np.float32] | None = None

    def attach_lora(self, a: torch.Tensor, b: torch.Tensor, scale: float) -> None:
        """A [r, in], B [out, r] (fp16 values) and the adapter's scale: the LoRA SRAM slot of this matrix."""
        self.lora = (a.float(), b.float(), np.float32(scale))

    def _lora(self, x: torch.Tensor) -> np.ndarray:
        a, b, scale = self.lora
        h = torch.from_numpy(A.tree_sum(_np(x[:, None, :] * a[None])))  # [M, r]
        u = A.tree_sum(_np(h[:, None, :] * b[None]))  # [M, out]
        return u * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        xs = x.reshape(-1, x.shape[-1]).float()
        m, ng = xs.shape[0], self.wscale.shape[0]
        acc = np.empty((m, self.out_features), np.int64)
        step = max(1, ELEMENTS // (ng * self.out_features))
        for r0 in range(0, m, step):
            codes, sx = A.quantize_groups(_np(xs[r0 : r0 + step]), self.group, self.act_bits)  # [M, ng, g], [M, ng]
            dots = torch.matmul(torch.from_numpy(codes).to(self.codes.dtype).transpose(0, 1), self.codes)  # [ng, M, out]
            fixed = A.to_fixed(dots.numpy(), self.wscale[:, None, :], sx.T[:, :, None])
            acc[r0 : r0 + step] = fixed.sum(axis=0)
        if self.lora is not None:
            acc += A.fixed_of(self._lora(xs))
        return torch.from_numpy(A.from_fixed(acc)).reshape(*lead, self.out_features)


class GoldenRMSNorm(nn.Module):
    """ms = tree_sum(x x x) / n; r = 1 / sqrt(ms + eps); (x x r) x gain, gains fp16 values."""

    def __init__(self, gain: torch.Tensor, eps: float):
        super().__init__()
        self.weight = nn.Parameter(gain.detach().half().float(), requires_grad=False)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        ms = torch.from_numpy(A.tree_sum(_np(x * x))) / _fp32(x.shape[-1])
        r = _fp32(1.0) / torch.from_numpy(A.sqrt(_np(ms + _fp32(self.eps))))
        return (x * r[..., None]) * self.weight


class GoldenRotary(nn.Module):
    """Rotate-half RoPE of a flat [B, S, heads * hd] activation with the die's cos / sin table."""

    def __init__(self, rot: Rotary):
        super().__init__()
        self.n_heads, self.head_dim = rot.n_heads, rot.head_dim
        self.inv_freq = _np(rot.inv_freq)

    def forward(self, x: torch.Tensor, start_pos: int | torch.Tensor = 0) -> torch.Tensor:
        b, s, _ = x.shape
        cos, sin = (torch.from_numpy(t)[None, :, None, :] for t in A.rope_cos_sin(np.arange(s) + int(start_pos), self.inv_freq))
        xh = x.float().view(b, s, self.n_heads, self.head_dim)
        half = self.head_dim // 2
        a, c = xh[..., :half], xh[..., half:]
        return torch.cat([a * cos - c * sin, c * cos + a * sin], dim=-1).reshape(b, s, -1)


class GoldenAttention(CausalAttention):
    """Causal grouped-query attention with K and V stored in the die's KV format; per query and
    head: s_t = tree_sum(q x k_t) x 1/sqrt(hd), e_t = exp(s_t - max s), p_t = e_t / tree_sum(e),
    out = tree_sum_t(p_t x v_t), over exactly the keys it may see (later ones weigh +0)."""

    def __init__(self, attn: CausalAttention, kv_bits: int):
        super().__init__(attn.n_heads, attn.n_kv_heads, attn.head_dim)
        self.kv_bits = kv_bits

    def _kv(self, x: torch.Tensor) -> torch.Tensor:
        codes, scales = A.round_kv(_np(x), self.kv_bits)
        return torch.from_numpy(A.dequantize_kv(codes, scales))

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, start_pos: int | torch.Tensor = 0) -> torch.Tensor:
        b, s, _ = q.shape
        hd, nkv = self.head_dim, self.n_kv_heads
        rep = self.n_heads // nkv
        k = self._kv(k.view(b, s, nkv, hd).transpose(1, 2))  # [B, nkv, S, hd]
        v = self._kv(v.view(b, s, nkv, hd).transpose(1, 2))
        start = int(start_pos)
        if self.cache_k is not None and self.cache_v is not None:
            end = start + s
            if end > self.cache_k.shape[2] or b > self.cache_k.shape[0]:
                raise ValueError(f"KV cache {tuple(self.cache_k.shape)} too small for batch {b}, position {end}")
            self.cache_k[:b, :, start:end], self.cache_v[:b, :, start:end] = k, v
            k, v = self.cache_k[:b, :, :end], self.cache_v[:b, :, :end]
        elif start != 0:
            raise ValueError("start_pos must be 0 without a KV cache")
        t = k.shape[2]
        qh = q.float().view(b, s, nkv, rep, hd).permute(0, 2, 3, 1, 4)  # [B, nkv, rep, S, hd]
        kt = k.transpose(2, 3).contiguous()  # [B, nkv, hd, T]: the tree over hd runs on contiguous rows
        scale = _fp32(A.attention_scale(hd))
        out = torch.empty(b, nkv, rep, s, hd)
        step = max(1, ATTENTION_ELEMENTS // (b * nkv * rep * t * hd))
        for i0 in range(0, s, step):
            i1 = min(s, i0 + step)
            te = start + i1  # the keys these queries may see: later ones would weigh +0
            prod = qh[:, :, :, i0:i1, :, None] * kt[:, :, None, None, :, :te]  # [B, nkv, rep, Sc, hd, Te]
            sc = torch.from_numpy(A.tree_sum(_np(prod), axis=-2)) * scale  # [B, nkv, rep, Sc, Te]
            visible = torch.arange(te)[None, :] <= (torch.arange(i0, i1) + start)[:, None]  # [Sc, Te]
            sc = sc.masked_fill(~visible, float("-inf"))
            e = torch.from_numpy(A.exp(_np(sc - sc.amax(dim=-1, keepdim=True))))
            p = e / torch.from_numpy(A.tree_sum(_np(e)))[..., None]
            pv = p[..., None] * v[:, :, None, None, :te]  # [B, nkv, rep, Sc, Te, hd]
            out[:, :, :, i0:i1] = torch.from_numpy(A.tree_sum(_np(pv), axis=-2))
        return out.permute(0, 3, 1, 2, 4).reshape(b, s, self.n_heads * hd)


class GoldenMLP(nn.Module):
    """SwiGLU: down((gate / (1 + exp(-gate))) x up)."""

    def __init__(self, mlp: MLP):
        super().__init__()
        self.gate_proj, self.up_proj, self.down_proj = mlp.gate_proj, mlp.up_proj, mlp.down_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, u = self.gate_proj(x), self.up_proj(x)
        silu = a / (_fp32(1.0) + torch.from_numpy(A.exp(_np(-a))))
        return self.down_proj(silu * u)


def golden(module: nn.Module, codes_of: Callable[[str], QTensor], act_bits: int, kv_bits: int) -> nn.Module:
    """`module` (a float Llama or DecoderLayer) turned, in place, into the golden model: each
    linear named N runs the codes `codes_of(N)` on MAC arithmetic; norms, RoPE, attention and
    SwiGLU compute as the die does. Returns `module`."""
    for name, mod in list(module.named_modules()):
        if not name:
            continue
        parent, _, attr = name.rpartition(".")
        owner = module.get_submodule(parent) if parent else module
        if isinstance(mod, nn.Linear):
            setattr(owner, attr, MacLinear(codes_of(name), act_bits))
        elif isinstance(mod, RMSNorm):
            setattr(owner, attr, GoldenRMSNorm(mod.weight, mod.eps))
        elif isinstance(mod, Rotary):
            setattr(owner, attr, GoldenRotary(mod))
        elif isinstance(mod, CausalAttention):
            setattr(owner, attr, GoldenAttention(mod, kv_bits))
    for name, mod in list(module.named_modules()):  # after the linears: GoldenMLP takes them as they are now
        if isinstance(mod, MLP) and name:
            parent, _, attr = name.rpartition(".")
            setattr(module.get_submodule(parent) if parent else module, attr, GoldenMLP(mod))
    return module


def build_golden_model(source: WeightSource, qweights: dict[str, QTensor], act_bits: int, kv_bits: int) -> Llama:
    """The quantized reference: the etched codes and scales on the die's exact arithmetic
    (`quant/golden.py`), the embedding a table of codes x fp16 scales."""
    model = build_model(source)
    tied = source.args.tie_embeddings
    emb = "model.embed_tokens.weight"
    with torch.no_grad():
        model.model.embed_tokens.weight = nn.Parameter(qweights[emb].dequantize(), requires_grad=False)
    golden(model, lambda name: qweights[emb if (tied and name == "lm_head") else f"{name}.weight"], act_bits, kv_bits)
    return model.eval()
