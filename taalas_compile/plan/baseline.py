"""The GPU serving baseline a plan compares against, every figure with its citation.

Single-user decoding on a GPU reads every weight once per token from HBM, so its ceiling is
HBM bandwidth / weight bytes (a roofline, an upper bound real serving stays below); the aggregate
ceiling with a large batch is the dense tensor throughput / 2 FLOPs per weight.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Gpu:
    name: str
    hbm_bytes_per_s: float
    dense_fp8_flops: float
    watts: float
    weight_bytes_per_param: float  # FP8 weights, the usual serving precision on this GPU
    citation: str


H100_SXM = Gpu(
    "NVIDIA H100 SXM (80 GB HBM3)", 3.35e12, 1.979e15, 700.0, 1.0,
    "NVIDIA H100 Tensor Core GPU datasheet (nvidia.com/en-us/data-center/h100): H100 SXM 3.35 TB/s HBM3, "
    "FP8 Tensor Core 3,958 TFLOPS with sparsity (1,979 dense), max TDP 700 W",
)

TAALAS_CLAIM = ("Taalas HC1 public claim: ~17,000 tokens/s single user on Llama 3.1 8B, claimed ~10x faster and ~10x less "
                "power than GPU serving (../shared/DOMAIN.md; ../shared/seed/)")


def gpu_ceiling(params: int, gpu: Gpu = H100_SXM) -> dict:
    """Roofline ceilings of one GPU serving a model of `params` weights (needs the model to fit its HBM)."""
    single = gpu.hbm_bytes_per_s / (params * gpu.weight_bytes_per_param)
    aggregate = gpu.dense_fp8_flops / (2 * params)
    return {"gpu": gpu.name, "tokens_per_s_single": single, "tokens_per_s_aggregate": aggregate, "watts": gpu.watts,
            "joules_per_token_single": gpu.watts / single, "joules_per_token_aggregate": gpu.watts / aggregate,
            "gpus_to_hold_weights": max(1, -(-params * gpu.weight_bytes_per_param // 80e9)), "citation": gpu.citation}
