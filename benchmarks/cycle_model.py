"""The emulator's cycle model against the analytical estimate of `plan`, on compiled chips.

    python benchmarks/cycle_model.py out/tiny-llama out/stories260k

Prints, per chip, the token latency at sequence length 1 and at the full context and the slowest
tile's cycles: cycle model (emulator/cycles.py) vs plan/estimate.performance, and their ratio.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from taalas_compile.backend.netlist import read_netlist
from taalas_compile.emulator.cycles import CycleModel
from taalas_compile.plan.estimate import performance
from taalas_compile.run_chip import load_chip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("chips", nargs="+", type=Path, help="compile output directories")
    a = ap.parse_args()
    print(f"{'chip':<16} {'figure':<28} {'cycle model':>12} {'estimate':>12} {'ratio':>7}")
    for out in a.chips:
        _, emu, die, _ = load_chip(out)
        pl, _, _ = read_netlist(out)
        cm, est = CycleModel(emu, die), performance(pl, die)
        ctx = est["context"]
        rows = [("latency, 1 token", cm.latency(1)[0], est["latency_cycles"]),
                (f"latency, {ctx} tokens", cm.latency(ctx)[0], est["latency_cycles_full_context"]),
                (f"slowest tile, {ctx} tokens", cm.latency(ctx)[1], est["slowest_tile_cycles"])]
        for name, ours, theirs in rows:
            print(f"{out.name:<16} {name:<28} {ours:>12,} {theirs:>12,.1f} {ours / theirs:>7.3f}")


if __name__ == "__main__":
    main()
