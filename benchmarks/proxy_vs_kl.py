"""The streamed sensitivity proxy (quant/proxy.py) against the measured ΔKL it stands in for, tensor
by tensor, on the real stories260K model: each tensor quantized alone (round-to-nearest + clip
search) at 3 and 6 bits, group 64, on the recipe's first 16 calibration windows.

    python benchmarks/proxy_vs_kl.py          # a table; the spread of proxy/ΔKL is what matters
                                              # to the knapsack (a constant factor is not)

docs/quantization.md quotes the ratio range.
"""

from __future__ import annotations

import time
from pathlib import Path

from taalas_compile.inputs import calibration_of, resolve
from taalas_compile.quant.arith import QLinear
from taalas_compile.quant.codes import QuantSpec
from taalas_compile.quant.proxy import measure_proxy
from taalas_compile.quant.sensitivity import measure_sensitivity

MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"
OPTIONS = [QuantSpec(3, 64), QuantSpec(6, 64)]
WINDOWS = 16


def main() -> None:
    inp = resolve("stories260k", MODELS / "stories260K/stories260K.bin", MODELS / "stories260K/tok512.bin")
    tokens = calibration_of(inp).tokens[:WINDOWS]
    src = inp.source
    names = [n for n in src.names() if n.endswith("proj.weight") or n == "model.embed_tokens.weight"]
    t = time.perf_counter()
    proxy = measure_proxy(src, names, OPTIONS, tokens, clip_search=True)
    t_proxy = time.perf_counter() - t
    t = time.perf_counter()
    kl = measure_sensitivity(src, names, OPTIONS, tokens, True, lambda q: QLinear(q, 8))
    t_kl = time.perf_counter() - t
    print(f"{'tensor':34s} {'ΔKL 3b':>8s} {'proxy 3b':>9s} {'ratio':>7s} {'ΔKL 6b':>9s} {'proxy 6b':>9s} {'ratio':>7s}")
    ratios = []
    for n in names:
        r = [proxy[n][i] / kl[n][i] for i in range(len(OPTIONS))]
        ratios += r
        print(f"{n.removeprefix('model.layers.'):34s} {kl[n][0]:8.4f} {proxy[n][0]:9.4f} {r[0]:7.2f} {kl[n][1]:9.5f} {proxy[n][1]:9.5f} {r[1]:7.2f}")
    print(f"\nproxy / ΔKL from {min(ratios):.2f} to {max(ratios):.2f} ({max(ratios) / min(ratios):.0f}x spread); "
          f"proxy {t_proxy:.1f} s, ΔKL passes {t_kl:.1f} s")


if __name__ == "__main__":
    main()
