"""Time and peak memory of GPTQ on Llama-3.1-8B-sized layers (3-bit, groups of 32, act-order).

    python benchmarks/gptq_8b_layer.py [--shapes down,q,kv,gate] [--dtype auto|float32|float64] [--tokens 2048]

Shapes [out x in]: down_proj 4096 x 14336, q/o_proj 4096 x 4096, k/v_proj 1024 x 4096, gate/up_proj
14336 x 4096. W is random at a trained layer's scale (std 0.02, a few heavy rows); H = 2·XᵀX/N from
`--tokens` inputs with a layer input's structure: a low-rank shared component, per-channel scales
spread over two decades and a few outlier channels 30x the rest (the cost does not depend on the
values, but float32 stability does). `auto` is the compiler's own choice (calibrate.gptq_dtype).
Prints wall seconds for the Hessian and for GPTQ per shape, GPTQ's CPU seconds (on a shared machine
wall time depends on the load; CPU time much less), and the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from taalas_compile.quant.calibrate import gptq_dtype
from taalas_compile.quant.codes import QuantSpec
from taalas_compile.quant.gptq import gptq_quantize, hessian_add

SHAPES = {"down": (4096, 14336), "q": (4096, 4096), "kv": (1024, 4096), "gate": (14336, 4096)}  # [out, in]
BATCH = 512  # calibration tokens per Hessian update, as the layer loop feeds them


def layer_inputs(n: int, d: int, g: torch.Generator) -> torch.Tensor:
    """x [n, d]: rank-64 shared part + noise, per-channel scales 0.1..10, 1% outlier channels x30."""
    scale = torch.exp(torch.randn(d, generator=g))  # [d]
    scale[torch.randperm(d, generator=g)[: d // 100]] *= 30
    x = torch.randn(n, 64, generator=g) @ torch.randn(64, d, generator=g) / 8 + torch.randn(n, d, generator=g)
    return x * scale


def run(name: str, tokens: int, dtype: str) -> None:
    out, n_in = SHAPES[name]
    g = torch.Generator().manual_seed(0)
    w = torch.randn(out, n_in, generator=g) * 0.02  # [out, in]
    w[:: 97] *= 4
    dt = gptq_dtype(n_in) if dtype == "auto" else getattr(torch, dtype)
    x = layer_inputs(tokens, n_in, g)  # [tokens, in]
    t0 = time.perf_counter()
    h, n = None, 0
    for i in range(0, tokens, BATCH):
        h, n = hessian_add(h, x[i : i + BATCH], n)
    t1, c1 = time.perf_counter(), time.process_time()
    q = gptq_quantize(w, h, QuantSpec(3, 32), dtype=dt)
    t2, c2 = time.perf_counter(), time.process_time()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(f"{name:5s} {out}x{n_in}, {tokens} tokens, {str(dt)[6:]}: Hessian {t1 - t0:.1f} s, GPTQ {t2 - t1:.1f} s "
          f"(CPU {c2 - c1:.1f} s), "
          f"peak RSS {peak:.2f} GiB, threads {torch.get_num_threads()}, codes {q.codes.shape}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="down,q,kv,gate", help=f"comma-separated, from {','.join(SHAPES)}")
    ap.add_argument("--dtype", choices=("auto", "float32", "float64"), default="auto")
    ap.add_argument("--tokens", type=int, default=2048)
    a = ap.parse_args()
    for name in a.shapes.split(","):
        run(name, a.tokens, a.dtype)


if __name__ == "__main__":
    main()
