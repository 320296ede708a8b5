"""Speed of the cell-by-cell ROM sign-off of OASIS masks (signoff/rom_blocks.py) on a compiled chip.

    python benchmarks/signoff_read.py /work/big/llama-3.1-8b                 # blocks L0,L1: jobs 1, then jobs 2
    python benchmarks/signoff_read.py OUT --blocks L0 --jobs 1 --read-only   # the reader alone, no checks
    python benchmarks/signoff_read.py OUT --blocks all --jobs 2              # check_rom_blocks over the whole file

For the chosen layer blocks: select vias read, seconds, M select vias/s in all and per process, for
each --jobs, and per processor-second of the block workers (what one free core would do: the
machine may be shared). A block's work is what `verify` does for it: inflate and decode its cells, check the
tile grammar, compare the digits with the netlist's ROM images (loaded and hash-checked per block),
hand back its extracted images. `--blocks all` is the whole `check_rom_blocks`, CRC pass and
missing-tile check included; run it under `/usr/bin/time -v` for the peak memory. The load of the
machine (1-minute load average) is printed before and after: the figures are wall-clock times.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from taalas_compile.backend.netlist import read_netlist
from taalas_compile.chip_dir import chip_die, read_manifest
from taalas_compile.signoff.cell_index import scan_cells
from taalas_compile.signoff.findings import Findings
from taalas_compile.signoff.oasis_read import read_cells_at
from taalas_compile.signoff.rom_blocks import (
    check_rom_blocks,
    check_segments,
    collect,
    segments_of,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="compile output directory with OASIS masks")
    ap.add_argument("--blocks", default="L0,L1", help="comma-separated layer blocks, or 'all' for check_rom_blocks on the whole file")
    ap.add_argument("--jobs", default="1,2", help="comma-separated worker counts to measure")
    ap.add_argument("--read-only", action="store_true", help="decode the cells only (no checks, no netlist images; one process)")
    a = ap.parse_args()
    pl, _, doc = read_netlist(a.out, roms=False)
    die = chip_die(a.out, read_manifest(a.out))
    path = a.out / doc["masks"]
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    if a.blocks == "all":
        for jobs in map(int, a.jobs.split(",")):
            t0 = time.perf_counter()
            f = Findings()
            blocks, reading = check_rom_blocks(a.out, doc, path, pl, die, jobs)
            res = collect(blocks, f)
            s = time.perf_counter() - t0
            print(json.dumps({"blocks": "all", "jobs": reading.jobs, "parallel": reading.parallel, "seconds": round(s, 1), "tiles": res.tiles,
                              "vias": res.vias, "M_vias_per_s": round(res.vias / s / 1e6, 1),
                              "M_vias_per_s_per_process": round(res.vias / s / 1e6 / reading.jobs, 1), "violations": f.counts}))
    else:
        want = a.blocks.split(",")
        segs = [s for s in segments_of([(c.name, c.start, c.end) for c in scan_cells(path)], pl) if s.block in want]
        for jobs in [1] if a.read_only else map(int, a.jobs.split(",")):
            t0 = time.perf_counter()
            if a.read_only:
                vias = sum(c.count("p", "SEL") for s in segs for c in read_cells_at(path, s.start, s.end))
                bad = cpu = 0
            else:
                vias = bad = cpu = 0
                for b in check_segments(a.out, doc, path, pl, die, segs, jobs):  # each block's images dropped as it comes
                    vias, bad, cpu = vias + b.vias, bad + len(b.violations), cpu + b.cpu_s
            s = time.perf_counter() - t0
            print(json.dumps({"blocks": want, "jobs": jobs, "read_only": a.read_only, "seconds": round(s, 2), "vias": vias,
                              "M_vias_per_s": round(vias / s / 1e6, 1), "M_vias_per_s_per_process": round(vias / s / 1e6 / jobs, 1),
                              **({} if a.read_only else {"M_vias_per_cpu_s": round(vias / cpu / 1e6, 1)}), "violations": bad}))
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
