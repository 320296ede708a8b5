"""Time and peak memory of GPTQ on one Llama-3.1-8B-sized layer: down_proj, 4096 x 14336.

    python benchmarks/gptq_8b_layer.py [--dtype float32|float64] [--tokens 2048]

H = 2·XᵀX/N from random correlated inputs (the Hessian of a real layer has the same size; its
values do not change the cost). Reports seconds for the Hessian and for GPTQ, and the process's
peak resident memory.
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from taalas_compile.quant.codes import QuantSpec
from taalas_compile.quant.gptq import gptq_quantize, hessian_add


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--out", type=int, default=4096)
    ap.add_argument("--inputs", type=int, default=14336)
    a = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    w = torch.randn(a.out, a.inputs, generator=g) * 0.02  # [out, in]
    t0 = time.perf_counter()
    h, n = None, 0
    for i in range(0, a.tokens, 512):  # batches of calibration tokens, as the layer loop feeds them
        x = torch.randn(512, a.inputs, generator=g)  # [512, in]
        h, n = hessian_add(h, x, n)
    t1 = time.perf_counter()
    q = gptq_quantize(w, h, QuantSpec(3, 32), dtype=getattr(torch, a.dtype))
    t2 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(f"layer {a.out}x{a.inputs}, {a.tokens} tokens, {a.dtype}: Hessian {t1 - t0:.1f} s, GPTQ {t2 - t1:.1f} s, "
          f"peak RSS {peak:.2f} GiB, threads {torch.get_num_threads()}, codes {q.codes.shape}")


if __name__ == "__main__":
    main()
