"""The reference Llama: float32, Hugging Face parameter names, torch.fx-traceable.

The frontend traces this with a ``torch.fx.Tracer`` that keeps ``nn.Linear``, ``nn.Embedding``,
``RMSNorm``, ``Rotary`` and ``CausalAttention`` as leaf modules, so every reshape lives inside a
leaf; the other forwards use only module calls, ``F.silu``, ``*`` and ``+``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from taalas_compile.errors import UserError
from taalas_compile.model.args import ModelArgs
from taalas_compile.model.rope import Rotary, inv_freq

if TYPE_CHECKING:
    from taalas_compile.model.weights import WeightSource


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [..., D]; normalised in float32 like Hugging Face
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


class CausalAttention(nn.Module):
    """Grouped-query causal attention over already-rotated q, k and v, with an optional KV cache
    (the golden model's, in the die's KV format: quant/golden.py GoldenAttention)."""

    def __init__(self, n_heads: int, n_kv_heads: int, head_dim: int):
        super().__init__()
        self.n_heads = n_heads
        self.n_kv_heads = n_kv_heads
        self.head_dim = head_dim
        self.cache_k: torch.Tensor | None = None  # [B, n_kv, T_max, hd], set by Llama.setup_cache
        self.cache_v: torch.Tensor | None = None  # [B, n_kv, T_max, hd]

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, start_pos: int | torch.Tensor = 0
    ) -> torch.Tensor:
        # q: [B, S, nh*hd]; k, v: [B, S, nkv*hd] -> [B, S, nh*hd]
        b, s, _ = q.shape
        hd = self.head_dim
        q = q.view(b, s, self.n_heads, hd).transpose(1, 2)  # [B, nh, S, hd]
        k = k.view(b, s, self.n_kv_heads, hd).transpose(1, 2)  # [B, nkv, S, hd]
        v = v.view(b, s, self.n_kv_heads, hd).transpose(1, 2)
        start = int(start_pos)
        if self.cache_k is not None and self.cache_v is not None:
            end = start + s
            if end > self.cache_k.shape[2] or b > self.cache_k.shape[0]:
                raise ValueError(f"KV cache {tuple(self.cache_k.shape)} too small for batch {b}, position {end}")
            self.cache_k[:b, :, start:end] = k
            self.cache_v[:b, :, start:end] = v
            k, v = self.cache_k[:b, :, :end], self.cache_v[:b, :, :end]  # [B, nkv, T, hd]
        elif start != 0:
            raise ValueError("start_pos must be 0 without a KV cache")
        t = k.shape[2]
        n_rep = self.n_heads // self.n_kv_heads
        k = k.repeat_interleave(n_rep, dim=1)  # [B, nh, T, hd]; kv head j serves heads j*n_rep..
        v = v.repeat_interleave(n_rep, dim=1)
        # [B, nh, S, hd]; query i sits at position start + i and sees keys 0 .. start + i
        if start == 0 and t == s:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            q_pos = torch.arange(s, device=q.device)[:, None] + start  # [S, 1]
            k_pos = torch.arange(t, device=q.device)[None, :]  # [1, T]
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=k_pos <= q_pos)
        return out.transpose(1, 2).reshape(b, s, self.n_heads * hd)


class Attention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        d, hd, nh, nkv = args.dim, args.head_dim, args.n_heads, args.n_kv_heads
        self.q_proj = nn.Linear(d, nh * hd, bias=False)
        self.k_proj = nn.Linear(d, nkv * hd, bias=False)
        self.v_proj = nn.Linear(d, nkv * hd, bias=False)
        self.o_proj = nn.Linear(nh * hd, d, bias=False)
        freq = inv_freq(args)
        self.q_rope = Rotary(nh, hd, freq)
        self.k_rope = Rotary(nkv, hd, freq)
        self.attn = CausalAttention(nh, nkv, hd)

    def forward(self, x: torch.Tensor, start_pos: int | torch.Tensor = 0) -> torch.Tensor:
        # x: [B, S, D] -> [B, S, D]
        q = self.q_rope(self.q_proj(x), start_pos)
        k = self.k_rope(self.k_proj(x), start_pos)
        v = self.v_proj(x)
        return self.o_proj(self.attn(q, k, v, start_pos))


class MLP(nn.Module):
    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden_dim, bias=False)
        self.up_proj = nn.Linear(dim, hidden_dim, bias=False)
        self.down_proj = nn.Linear(hidden_dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [B, S, D] -> [B, S, D] through SwiGLU [B, S, F]
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.input_layernorm = RMSNorm(args.dim, args.norm_eps)
        self.self_attn = Attention(args)
        self.post_attention_layernorm = RMSNorm(args.dim, args.norm_eps)
        self.mlp = MLP(args.dim, args.hidden_dim)

    def forward(self, x: torch.Tensor, start_pos: int | torch.Tensor = 0) -> torch.Tensor:
        h = x + self.self_attn(self.input_layernorm(x), start_pos)
        return h + self.mlp(self.post_attention_layernorm(h))


class LlamaBody(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.embed_tokens = nn.Embedding(args.vocab_size, args.dim)
        self.layers = nn.ModuleList(DecoderLayer(args) for _ in range(args.n_layers))
        self.norm = RMSNorm(args.dim, args.norm_eps)

    def forward(self, tokens: torch.Tensor, start_pos: int | torch.Tensor = 0) -> torch.Tensor:
        # tokens: [B, S] -> hidden [B, S, D]
        h = self.embed_tokens(tokens)
        for layer in self.layers:
            h = layer(h, start_pos)
        return self.norm(h)


class Llama(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.model = LlamaBody(args)
        self.lm_head = nn.Linear(args.dim, args.vocab_size, bias=False)
        if args.tie_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    def forward(self, tokens: torch.Tensor, start_pos: int | torch.Tensor = 0) -> torch.Tensor:
        # tokens: [B, S] long -> logits [B, S, V]
        return self.lm_head(self.model(tokens, start_pos))

    def _attentions(self) -> list[CausalAttention]:
        return [layer.self_attn.attn for layer in self.model.layers]

    def setup_cache(self, batch: int, max_seq: int) -> None:
        """Allocate a zeroed KV cache for `batch` sequences of up to `max_seq` positions."""
        w = self.model.embed_tokens.weight  # a float tensor in every variant (the golden lm_head holds codes)
        for attn in self._attentions():
            shape = (batch, attn.n_kv_heads, max_seq, attn.head_dim)
            attn.cache_k = torch.zeros(shape, dtype=w.dtype, device=w.device)
            attn.cache_v = torch.zeros(shape, dtype=w.dtype, device=w.device)

    def clear_cache(self) -> None:
        for attn in self._attentions():
            attn.cache_k = attn.cache_v = None

    def load_weights(self, source: WeightSource) -> None:
        """Copy every tensor of `source` into place; names and shapes must match exactly."""
        params = dict(self.named_parameters())  # a tied lm_head is listed once, as the embedding
        names = source.names()
        unknown = [n for n in names if n not in params]
        missing = [n for n in params if n not in set(names)]
        if unknown or missing:
            raise UserError(
                f"weights do not match the model: unknown {unknown[:3]} missing {missing[:3]}"
                f" ({len(unknown)} unknown, {len(missing)} missing)"
            )
        with torch.no_grad():
            for name in names:
                t = source.get(name)
                p = params[name]
                if tuple(t.shape) != tuple(p.shape):
                    raise UserError(f"weight {name} has shape {tuple(t.shape)}, the model expects {tuple(p.shape)}")
                p.copy_(t)


def build_meta_model(args: ModelArgs) -> Llama:
    """A Llama on the meta device: shapes only, nothing allocated (for tracing large models)."""
    with torch.device("meta"):
        return Llama(args)


def build_model(source: WeightSource, device: str | torch.device = "cpu") -> Llama:
    """A float32 Llama in eval mode with the weights of `source` loaded."""
    model = build_meta_model(source.args).to_empty(device=device)  # skips the random init
    # to_empty leaves buffers uninitialised and may untie parameters: restore both
    if source.args.tie_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    freq = inv_freq(source.args).to(device)
    for layer in model.model.layers:
        layer.self_attn.q_rope.inv_freq = freq.clone()
        layer.self_attn.k_rope.inv_freq = freq.clone()
    model.load_weights(source)
    return model.eval()
