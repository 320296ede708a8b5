"""Full-scale compile figures for llama-3.1-8b (docs/performance.md, "Full chip").

    python benchmarks/full_chip.py                      # quick: blocks L0 and tail only, OASIS, 1 job
    python benchmarks/full_chip.py --blocks all --jobs 2  # the whole chip, as `taalas-compile llama-3.1-8b` on 2 cores
    python benchmarks/full_chip.py --compare out/llama-3.1-8b  # and check the blocks' bytes against a compiled chip

Prints, for the chosen blocks: weights, seconds, weights/s per process, mask bytes per weight,
ROM-image bytes, peak resident memory of the block workers; with --blocks all also the whole
compile's wall time and peak memory from the output's run.json. Synthetic weights of the exact
architecture (the recipe's), so no checkpoint is needed.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

from taalas_compile.backend.blocks import run_block
from taalas_compile.executor import ExecutorCfg, run_jobs
from taalas_compile.inputs import resolve
from taalas_compile.pipeline import CompileOptions, block_jobs, compile_chip, compile_ir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="llama-3.1-8b")
    ap.add_argument("--blocks", default="L0,tail", help="comma-separated layer blocks, or 'all' for the whole compile")
    ap.add_argument("--format", default="oasis", choices=["gds", "oasis"])
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="output directory for --blocks all (default: a temporary one)")
    ap.add_argument("--compare", type=Path, default=None,
                    help="a compiled chip of the same recipe (any --jobs): its ROM files and the blocks' bytes in its masks must equal these")
    a = ap.parse_args()
    inp = resolve(a.recipe)
    if a.blocks == "all":
        out = a.out or Path(tempfile.mkdtemp()) / a.recipe
        t0 = time.perf_counter()
        doc = compile_chip(inp, out, print, CompileOptions(a.format, ExecutorCfg(jobs=a.jobs)))
        wall = time.perf_counter() - t0
        run = json.loads((out / "run.json").read_text())
        w = doc["figures"]["weights_quantized"]
        masks = doc["outputs"]["chip.oas" if a.format == "oasis" else "chip.gds"]["bytes"]
        print(json.dumps({"recipe": a.recipe, "format": a.format, "jobs": a.jobs, "wall_s": wall, "weights": w,
                          "weights_per_s": w / wall, "mask_bytes": masks, "mask_bytes_per_weight": masks / w,
                          "peak_rss_main": run["peak_rss"]["main"], "peak_rss_worker": run["peak_rss"]["workers"],
                          "seconds": run["seconds"]}, indent=1))
        return
    c = compile_ir(inp)
    jobs = [j for j in block_jobs(c, inp, a.format) if j.block in a.blocks.split(",")]
    cache = Path(tempfile.mkdtemp())
    try:
        t0 = time.perf_counter()
        res = run_jobs(lambda j: run_block(j, cache), jobs, ExecutorCfg(jobs=1))
        wall = time.perf_counter() - t0
        same = [compare(a.compare, cache, r) for r in res] if a.compare else None
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    w = sum(r.weights for r in res)
    part = sum(r.part_bytes for r in res)
    print(json.dumps({"recipe": a.recipe, "format": a.format, "blocks": [r.block for r in res], "weights": w,
                      "seconds": wall, "weights_per_s_one_process": w / wall, "mask_bytes_per_weight": part / w,
                      "rom_bytes": sum(r.roms_bytes for r in res),
                      "per_block": [{"block": r.block, "weights": r.weights, "seconds": r.seconds} for r in res],
                      "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      **({"identical_to": str(a.compare), "identical": same} if same else {})}, indent=1))


def compare(out: Path, cache: Path, r) -> dict:
    """Block `r` (computed here) against the compiled chip `out`: its ROM file by hash, its mask
    cells as the very bytes at their place in `out`'s mask file (found by their first bytes)."""
    import mmap

    from taalas_compile.files import sha256_file

    man = json.loads((out / "manifest.json").read_text())
    roms = f"roms/{r.block}.safetensors"
    part = (cache / r.part).read_bytes()
    masks = next(k for k in man["outputs"] if k.startswith("chip.") and k != "chip.lyp")
    with open(out / masks, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        at = mm.find(part[:4096])
        same_part = at >= 0 and mm[at : at + len(part)] == part
    return {"block": r.block, "roms": man["outputs"][roms]["sha256"] == sha256_file(cache / r.roms),
            "mask_bytes": same_part, "mask_offset": at, "part_bytes": len(part)}


if __name__ == "__main__":
    main()
