"""Full-chip sign-off figures (docs/performance.md, "Full chip"): `verify` of a chip signed off
cell by cell, block by block (the 8B chip: llama-3.1-8b compiled with OASIS masks).

    python benchmarks/full_verify.py out/llama-3.1-8b             # quick: the blocks head and L0 only
    python benchmarks/full_verify.py out/llama-3.1-8b --all -j 2  # the whole `verify`, with peak memory

Quick: for the chosen blocks, from the chip's netlist ROM images, the seconds the block-by-block
emulator takes (decode, fuse, run the teacher-forced positions twice) and the seconds the
layer-by-layer reference takes for the same layers (draw or load the weights, re-quantize, run both
models), so the whole chip's cost can be read off per layer. The reading of the masks has its own
benchmark (benchmarks/signoff_read.py).

--all: runs `verify` as the command does and prints its wall time, per-step seconds, result, and
the peak of the summed resident memory of its whole process tree (main process, mask-reading
workers, reference worker), sampled every 0.2 s. The machine's load is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path

import psutil


def tree_rss(root: psutil.Process | None = None) -> int:
    """Resident bytes of `root` (default: this process) and all its children."""
    me = root or psutil.Process()
    total = 0
    for p in [me, *me.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def whole(out: Path, tokens: int, jobs: int | None) -> dict:
    from taalas_compile.signoff.verify import verify

    peak, stop = [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], tree_rss())
            time.sleep(0.2)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t0 = time.perf_counter()
    try:
        res = verify(out, tokens, jobs=jobs)
    finally:
        stop.set()
        th.join()
    e = res["emulation"]
    return {"passed": res["passed"], "wall_s": time.perf_counter() - t0, "peak_rss_tree": peak[0], "seconds": res["seconds"],
            "tokens": e.get("tokens"), "exact": e.get("exact"), "end_to_end_exact": (e.get("end_to_end") or {}).get("exact"),
            "blocks_exact": [b["block"] for b in e.get("blocks", []) if b.get("compared") and b["exact"]],
            "blocks_differing": [b["block"] for b in e.get("blocks", []) if b.get("compared") and not b["exact"]],
            "vs_float": e.get("vs_float"), "extracted": res["extracted"]}


def quick(out: Path, blocks: list[str], tokens: int) -> dict:
    import torch

    from taalas_compile.backend.netlist import read_block_roms, read_placement
    from taalas_compile.chip_dir import chip_die, inputs_of_chip, read_manifest
    from taalas_compile.emulator.stream import StreamEmulator
    from taalas_compile.frontend.lower import lower_args
    from taalas_compile.quant.bits import allocate_bits
    from taalas_compile.quant.codes import quantize_tensor
    from taalas_compile.quant.reference_stream import float_layer, golden_layer
    from taalas_compile.signoff.emulation import sequence

    torch.set_num_threads(1)
    man = read_manifest(out)
    pl, doc = read_placement(out)
    die = chip_die(out, man)
    argmax = next(t for t in pl.tiles if t.role.name == "ARGMAX")
    seq = sequence(man.get("bos_id", 1), argmax.program.n, tokens)
    emu = StreamEmulator(pl, die, seq)
    order = list(doc["roms"])
    last = max(order.index(b) for b in blocks)
    rows = []
    for b in order[: last + 1]:  # every block up to the last asked for: each needs its inputs
        t0 = time.perf_counter()
        roms = read_block_roms(out, doc, b)
        t_read = time.perf_counter() - t0
        r = emu.run_block(b, roms, None)
        if b in blocks:
            rows.append({"block": b, "stage": r.stage, "weights": sum((t.slice.r1 - t.slice.r0) * (t.slice.c1 - t.slice.c0) for t in pl.tiles if t.block == b and t.slice),
                         "read_roms_s": t_read, "emulate_s": r.seconds})
    inp = inputs_of_chip(out, man)
    specs = allocate_bits(lower_args(inp.source.args), inp.recipe.quant, inp.die, None).specs
    a, clip = inp.die.arith, inp.recipe.quant.clip_search
    for row in rows:
        if not (row["stage"] or "").startswith("layers."):
            continue
        i = int(row["stage"].split(".")[1])
        x = torch.zeros(1, len(seq), inp.source.args.dim)
        t0 = time.perf_counter()
        with torch.no_grad():
            float_layer(inp.source, i)(x)
            golden_layer(inp.source, i, lambda n: quantize_tensor(inp.source.get(n), specs[n], clip), a.act_bits, a.kv_bits)(x)
        row["reference_s"] = time.perf_counter() - t0
    return {"chip": str(out), "tokens": len(seq), "blocks": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--blocks", default="head,L0", help="comma-separated layer blocks (quick mode)")
    ap.add_argument("--tokens", type=int, default=8)
    ap.add_argument("--all", action="store_true", help="the whole verify")
    ap.add_argument("-j", "--jobs", type=int, default=None, help="ROM reader processes (default: as verify picks them)")
    a = ap.parse_args()
    load0 = os.getloadavg()[0]
    res = whole(a.out, a.tokens, a.jobs) if a.all else quick(a.out, a.blocks.split(","), a.tokens)
    print(json.dumps({**res, "load_before": load0, "load_after": os.getloadavg()[0]}, indent=1))


if __name__ == "__main__":
    main()
