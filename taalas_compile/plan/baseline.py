"""The GPU serving baseline a plan compares against, every figure with its citation.

Single-user decoding on a GPU reads every weight once per token from HBM, so its ceiling is
HBM bandwidth / weight bytes (a roofline, an upper bound real serving stays below). A replica of
the model needs GPUs enough for its FP8 weights and the fp16 KV cache of its sequences in the
memory the serving engine gives them (the rest holds activations and workspace). Its aggregate
ceiling is the lower of the compute roofline (dense FLOPS / 2 FLOPs per weight) and the memory
roofline at the largest batch that memory holds (each step reads the weights once and every
sequence's KV cache).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Gpu:
    name: str
    hbm_bytes: float
    hbm_bytes_per_s: float
    dense_fp8_flops: float
    watts: float
    weight_bytes_per_param: float  # FP8 weights, the usual serving precision on this GPU
    kv_bytes_per_value: float  # fp16 KV cache
    citation: str


H100_SXM = Gpu(
    "NVIDIA H100 SXM (80 GB HBM3)", 80e9, 3.35e12, 1.979e15, 700.0, 1.0, 2.0,
    "NVIDIA H100 Tensor Core GPU datasheet (nvidia.com/en-us/data-center/h100): H100 SXM 80 GB, 3.35 TB/s HBM3, "
    "FP8 Tensor Core 3,958 TFLOPS with sparsity (1,979 dense), max TDP 700 W",
)

TAALAS_CLAIM = ("Taalas HC1 public claims: ~17,000 tokens/s single user on Llama 3.1 8B; ~10x faster, ~10x cheaper and ~10x less power "
                "than GPU serving (taalas.com, February 2026; explained in 'How Taalas \"prints\" LLM onto a chip?', anuragk.com, "
                "Hacker News item 47103661)")


@dataclass(frozen=True)
class GpuServing:
    gpus: int  # GPUs one replica needs
    weight_bytes: float
    kv_bytes: float  # for `users` sequences of `context` tokens
    usable_bytes: float  # per GPU
    batch: int  # sequences of `context` tokens the replica's memory holds
    tokens_per_s_single: float
    tokens_per_s_aggregate: float  # one replica at `batch`


def gpu_serving(params: int, kv_values_per_token: int, context: int, users: int, memory_fraction: float, gpu: Gpu = H100_SXM) -> GpuServing:
    """One replica serving `users` sequences of `context` tokens (kv_values_per_token: K and V values of all layers)."""
    w = params * gpu.weight_bytes_per_param
    kv_seq = kv_values_per_token * gpu.kv_bytes_per_value * context
    usable = gpu.hbm_bytes * memory_fraction
    n = max(1, math.ceil((w + users * kv_seq) / usable))
    batch = max(users, int((n * usable - w) // kv_seq)) if kv_seq else users
    compute = n * gpu.dense_fp8_flops / (2 * params)
    memory = batch * n * gpu.hbm_bytes_per_s / (w + batch * kv_seq)
    return GpuServing(n, w, users * kv_seq, usable, batch, n * gpu.hbm_bytes_per_s / w, min(compute, memory))
