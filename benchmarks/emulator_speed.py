"""Emulator speed against the PyTorch quantized reference on the same tokens.

    python benchmarks/emulator_speed.py out/tiny-llama out/stories260k [--tokens 64] [--repeats 5] [--threads 1]

Mode, both sides: incremental decode, one token per step with a KV cache in the die's format,
batch 1, teacher-forced on the same sequence (BOS + the reference's greedy continuation). The
emulator runs the compiled netlist (every weight decoded from its ROM digits at load time; load
time not counted); the reference is `build_references(...).quant_model` under
`torch.inference_mode()`. Best of `--repeats` timings per side; prints ms/token and the ratio
reference time / emulator time (>= 1/3 is the target; > 1 means the emulator is faster).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from taalas_compile.chip_dir import inputs_of_chip
from taalas_compile.model.generate import greedy
from taalas_compile.reference import build_references
from taalas_compile.run_chip import load_chip


def reference_decode(model, tokens: list[int]) -> None:
    model.setup_cache(1, len(tokens))
    try:
        for pos, tok in enumerate(tokens):
            model(torch.tensor([[tok]]), pos)
    finally:
        model.clear_cache()


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("chips", nargs="+", type=Path, help="compile output directories")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (these models are far too small to gain from more)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"torch threads {torch.get_num_threads()}; incremental decode, batch 1, {a.tokens} tokens, best of {a.repeats}")
    print(f"{'chip':<24} {'emulator ms/token':>18} {'reference ms/token':>19} {'ratio ref/emu':>14}")
    for out in a.chips:
        man, emu, _, _ = load_chip(out)
        model = build_references(inputs_of_chip(out, man)).quant_model
        with torch.inference_mode():
            bos = man.get("bos_id", 1)
            tokens = [bos] + greedy(model, [bos], a.tokens - 1)
            t_ref = best(lambda m=model, t=tokens: reference_decode(m, t), a.repeats)
        t_emu = best(lambda e=emu, t=tokens: e.teacher_forced(t), a.repeats)
        print(f"{out.name:<24} {t_emu / len(tokens) * 1e3:>18.3f} {t_ref / len(tokens) * 1e3:>19.3f} {t_ref / t_emu:>14.2f}")


if __name__ == "__main__":
    main()
