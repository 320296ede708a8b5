"""The plan's compile/verify time model (taalas_compile/plan/time_model.py) against fresh runs on
this machine: times tiny-llama's compile and verify and a stories260k compile through the console
script, as a user runs them, and checks each plan estimate within 3x of the wall measured (the
bound of docs/planning.md). A timing, so it lives here and not in the test suite.

    python benchmarks/time_model.py            # prints a table; exit 1 if an estimate is off by more than 3x
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from taalas_compile.plan.report import build_plan
from taalas_compile.plan.subject import load_subject

FACTOR = 3
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "models"


def figures(recipe: str) -> dict:
    return {f["id"]: f for f in build_plan(load_subject(recipe))["masks"]["figures"]}


def timed(*args: str) -> float:
    t = time.perf_counter()
    subprocess.run([shutil.which("taalas-compile"), *args], check=True, capture_output=True, timeout=1800)
    return time.perf_counter() - t


def main() -> int:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        chip = Path(tmp) / "tiny"
        f = figures("tiny-llama")
        rows.append(("tiny-llama compile", f["compile_seconds"]["value"], timed("tiny-llama", "-o", str(chip))))
        rows.append(("tiny-llama verify", f["verify_seconds"]["value"], timed("verify", str(chip))))
        chip = Path(tmp) / "stories"
        f = figures("stories260k")
        wall = timed("stories260k", "--weights", str(SHARED / "stories260K/stories260K.bin"),
                     "--tokenizer", str(SHARED / "stories260K/tok512.bin"), "-o", str(chip))
        run = json.loads((chip / "run.json").read_text())
        reused = all(u["reused"] for u in run.get("quantize", {}).get("units", []))
        which = "compile_seconds" if reused else "compile_seconds_calibrated"  # the quantizer cache decides which compile ran
        rows.append((f"stories260k compile ({'quantization cached' if reused else 'cold quantizer cache'})", f[which]["value"], wall))
    load = os.getloadavg()[0]
    print(f"{'what':45s} {'plan s':>9s} {'measured s':>11s} {'ratio':>6s}   (load {load:.1f})")
    bad = 0
    for what, est, got in rows:
        ok = got / FACTOR <= est <= got * FACTOR
        bad += not ok
        print(f"{what:45s} {est:9.1f} {got:11.1f} {est / got:6.2f}{'' if ok else '   OFF BY MORE THAN 3x'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
