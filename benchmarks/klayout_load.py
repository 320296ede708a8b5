"""How long KLayout takes to open a file and how much memory it holds: klayout.db reads each file
in a fresh process (so peaks do not mix), timed, with its peak resident memory.

    PYTHONPATH=$PWD python benchmarks/klayout_load.py out/llama-3.1-8b/chip.overview.oas \\
        out/llama-3.1-8b/view/tile-L0.q_proj.r0c0.oas out/llama-3.1-8b/view/block-L0.oas \\
        out/llama-3.1-8b/view/block-L0/*.oas

Prints one line per file: bytes, seconds to read, peak RSS (GiB), cells, and the shapes KLayout
counts with repetitions expanded (vias and pads included), and for several files the slowest read
and the highest peak. Used for docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import klayout.db as kdb
t = time.perf_counter()
ly = kdb.Layout()
ly.read(sys.argv[1])
s = time.perf_counter() - t
top = ly.top_cells()[0]
n = 0
for li in ly.layer_indexes():
    it = top.begin_shapes_rec(li)
    n += kdb.Region(it).count() if "--count" in sys.argv else 0
print(json.dumps({"seconds": s, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "cells": ly.cells(), "shapes": n}))
"""


def load(path: Path, count: bool) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), *(["--count"] if count else [])],
                         check=True, capture_output=True, text=True)
    return {"file": str(path), "bytes": path.stat().st_size, **json.loads(out.stdout.strip().splitlines()[-1])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--count", action="store_true", help="also count the shapes, repetitions expanded (slow on large views)")
    args = ap.parse_args()
    runs = []
    for f in args.files:
        r = load(f, args.count)
        runs.append(r)
        print(f"{r['file']}: {r['bytes'] / 1e6:.1f} MB, read in {r['seconds']:.2f} s, peak {r['peak_rss'] / 2**30:.2f} GiB, "
              f"{r['cells']} cells" + (f", {r['shapes']:,} shapes" if args.count else ""), flush=True)
    if len(runs) > 1:  # e.g. the tile views of a block: view/block-L0/*.oas
        print(f"{len(runs)} files, {sum(r['bytes'] for r in runs) / 1e6:.1f} MB: slowest read {max(r['seconds'] for r in runs):.2f} s, "
              f"highest peak {max(r['peak_rss'] for r in runs) / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
