"""Rotary position embedding in the Hugging Face rotate-half layout, with Llama 3.1 scaling."""

from __future__ import annotations

import math

import torch
from torch import nn

from taalas_compile.model.args import ModelArgs


def inv_freq(args: ModelArgs) -> torch.Tensor:
    """Inverse frequencies, float32 [head_dim // 2], exactly as Hugging Face computes them."""
    hd = args.head_dim
    freq = 1.0 / (args.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    s = args.rope_scaling
    if s is None:
        return freq
    low_freq_wavelen = s.original_max_position_embeddings / s.low_freq_factor
    high_freq_wavelen = s.original_max_position_embeddings / s.high_freq_factor
    wavelen = 2 * math.pi / freq
    # long wavelengths are slowed by `factor`, short ones kept, the band between interpolated
    scaled = torch.where(wavelen > low_freq_wavelen, freq / s.factor, freq)
    smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor) / (
        s.high_freq_factor - s.low_freq_factor
    )
    smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled
    is_medium = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium, smoothed, scaled)


class Rotary(nn.Module):
    """Rotate each head of a flat [B, S, n_heads * head_dim] activation by its position."""

    def __init__(self, n_heads: int, head_dim: int, inv_freq: torch.Tensor):
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = head_dim
        self.register_buffer("inv_freq", inv_freq.float(), persistent=False)  # [hd/2]

    def forward(self, x: torch.Tensor, start_pos: int | torch.Tensor = 0) -> torch.Tensor:
        b, s, _ = x.shape
        positions = torch.arange(s, device=x.device) + start_pos  # [S]
        freqs = positions.float()[:, None] * self.inv_freq[None, :]  # [S, hd/2]
        emb = torch.cat([freqs, freqs], dim=-1)  # [S, hd]
        cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
        xh = x.view(b, s, self.n_heads, self.head_dim)  # [B, S, H, hd]
        half = self.head_dim // 2
        rotated = torch.cat([-xh[..., half:], xh[..., :half]], dim=-1)  # rotate_half
        out = xh * cos[None, :, None, :] + rotated * sin[None, :, None, :]
        return out.reshape(b, s, self.n_heads * self.head_dim)
