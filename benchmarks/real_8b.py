"""The calibrated compile of a real Llama 3.1 8B-shaped Hugging Face checkpoint (issue 14).

    python benchmarks/real_8b.py --layers 2 4                    # write checkpoints, compile, time
    python benchmarks/real_8b.py --layers 2 --skip-write --verify --resume-test
    python benchmarks/real_8b.py --tiny --layers 2 --verify --resume-test   # the same in seconds

Nothing can be downloaded from a model hub here, so the checkpoint is generated (checkpoint_8b.py): a directory laid
out as meta-llama/Llama-3.1-8B's is — `config.json` (exactly 3.1 8B's, with num_hidden_layers =
--layers), `generation_config.json`, bf16 safetensors shards of at most 5 GB with
`model.safetensors.index.json`, and a 128,256-token `tokenizer.json` (benchmarks/tokenizer_llama3.py:
byte-level BPE trained on tinystories.txt, filler ids up to 128,000, the 256 Llama 3 special tokens
at their real ids). Weights are seeded normals at realistic scales (linears std 0.02, embedding std
0.01, norm gains 1 + N(0, 0.02)), drawn and written one tensor at a time in row bands, so writing
needs about one tensor's bf16 bytes (the 1 GB embedding) of memory. Checkpoints live under
--out-dir (default /work/bench-8b), never in the repository.

Each model is compiled through the console script, with a recipe written beside the checkpoint
(recipes/llama-3.1-8b.toml with n_layers = N and [quant.calib] tokens = 16384, context = 2048):

    taalas-compile CKPT/recipe.toml --weights CKPT --tokenizer CKPT/tokenizer.json --calib TEXT -o OUT

recording wall time, the peak of the summed resident memory of the whole process tree (sampled
every 0.5 s), and seconds per decoder layer (run.json's streamed-quantizer units). Each compile gets
an empty quant cache ($TAALAS_CACHE = OUT_DIR/cache/CHIP), so every unit is computed; `verify` reads
the same one. A run past --timeout or above --mem-limit is killed and recorded as such (the "before"
figure of a path that cannot finish). --verify adds `taalas-compile verify OUT` (time, peak).
--resume-test SIGTERMs a second compile (its own empty cache) once the embedding's and half the
layers' unit files are written, reruns it, and checks that the rerun quantized fewer layers and wrote
masks and ROMs byte-identical (sha256) to the uninterrupted compile's. The machine's load average
before and after each command is recorded (this machine is shared). Results:
OUT_DIR/results-*.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from checkpoint_8b import LLAMA_8B, TINY, write_checkpoint, write_recipe
from full_verify import tree_rss
from tokenizer_llama3 import TINYSTORIES

# ---------------------------------------------------------------------------------------- measuring

@dataclass
class Run:
    cmd: list[str]
    rc: int | None  # None: killed
    wall_s: float
    peak_rss_tree: int  # bytes
    killed: str = ""  # "", "timeout", "memory" or "asked"
    log: str = ""
    load_before: float = 0.0  # 1-minute load average of the machine (2 cores, shared)
    load_after: float = 0.0
    rss_timeline: list | None = None  # [seconds, GiB] of the tree every 10 s: where the peak happens


def run_measured(cmd: list[str], log: Path, timeout: float, mem_limit: int, env: dict | None = None, stop_when=None) -> Run:
    """Run `cmd` in its own process group; sample the tree's RSS every 0.5 s; SIGTERM the group on
    timeout, above mem_limit bytes, or when stop_when() says so."""
    load0 = os.getloadavg()[0]
    with open(log, "w") as f:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT,
                                env={**os.environ, **(env or {})})
        ps = psutil.Process(proc.pid)
        peak, killed, timeline = 0, "", []
        while proc.poll() is None:
            rss = tree_rss(ps)
            peak = max(peak, rss)
            elapsed = time.perf_counter() - t0
            if not timeline or elapsed - timeline[-1][0] >= 10:
                timeline.append([round(elapsed), round(rss / 2**30, 2)])
            if elapsed > timeout:
                killed = "timeout"
            elif peak > mem_limit:
                killed = "memory"
            elif stop_when is not None and stop_when():
                killed = "asked"
            if killed:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                break
            time.sleep(0.5)
        wall = time.perf_counter() - t0
    return Run(cmd, None if killed else proc.returncode, wall, peak, killed, str(log), load0, os.getloadavg()[0], timeline)


def unit_records(out: Path) -> list[dict]:
    """The streamed quantizer's per-unit records in run.json ("embed", "layers.I", "head": seconds
    computed in this run, None where reused), or [] when the compile recorded none."""
    p = out / "run.json"
    q = json.loads(p.read_text()).get("quantize") if p.is_file() else None
    return q["units"] if isinstance(q, dict) and isinstance(q.get("units"), list) else []


def units_written(cache: Path) -> int:
    """Unit files the streamed quantizer has finished in a cache directory."""
    return len(list((cache / "stream").glob("unit-*.safetensors")))


def digest(out: Path) -> dict[str, str]:
    """sha256 of the masks and ROM images of a compiled chip."""
    files = sorted([*out.glob("chip.oas"), *out.glob("chip.gds"), *out.glob("roms/*.safetensors")])
    res = {}
    for f in files:
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            while b := fh.read(1 << 24):
                h.update(b)
        res[str(f.relative_to(out))] = h.hexdigest()
    return res


def compile_cmd(recipe: Path, ckpt: Path, out: Path, jobs: int | None) -> list[str]:
    cmd = ["taalas-compile", str(recipe), "--weights", str(ckpt), "--tokenizer", str(ckpt / "tokenizer.json"),
           "--calib", str(TINYSTORIES), "-o", str(out)]
    return cmd + (["--jobs", str(jobs)] if jobs else [])


def fresh_cache(out_dir: Path, name: str) -> Path:
    """An empty quant cache ($TAALAS_CACHE) for one chip, so every unit is computed and measured."""
    cache = out_dir / "cache" / name
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    return cache


def summarize(run: Run, out: Path | None) -> dict:
    res = asdict(run)
    if out is None or run.rc != 0:
        return res
    units = unit_records(out)
    layers = [u["seconds"] for u in units if u["unit"].startswith("layers.") and u.get("seconds") is not None]
    doc = json.loads((out / "run.json").read_text())
    man = json.loads((out / "manifest.json").read_text())
    res |= {"units": units, "s_per_layer": sum(layers) / len(layers) if layers else None,
            "s_per_layer_max": max(layers, default=None), "run_seconds": doc.get("seconds"),
            "run_peak_rss": doc.get("peak_rss"), "quality": man.get("quant", {}).get("quality", man.get("quality"))}
    return res


def resume_test(recipe: Path, ckpt: Path, out_dir: Path, ref: Path, n_layers: int, a) -> dict:
    """SIGTERM a compile once about half the decoder layers' unit files are written, rerun it, and
    compare masks and ROMs with the uninterrupted compile `ref`."""
    out = out_dir / f"{ref.name}-resume"
    cache = fresh_cache(out_dir, out.name)
    env = {"TAALAS_CACHE": str(cache)}
    stop_after = 1 + max(1, n_layers // 2)  # the embedding's unit, then half the layers
    first = run_measured(compile_cmd(recipe, ckpt, out, a.jobs), out_dir / f"{out.name}.1.log", a.timeout, a.mem_limit,
                         env, stop_when=lambda: units_written(cache) >= stop_after)
    done = units_written(cache)
    second = run_measured(compile_cmd(recipe, ckpt, out, a.jobs), out_dir / f"{out.name}.2.log", a.timeout, a.mem_limit, env)
    res = {"killed_after_units": done, "first": asdict(first), "second": summarize(second, out)}
    if second.rc == 0:
        layers = [u for u in unit_records(out) if u["unit"].startswith("layers.")]
        res["layers_quantized_in_rerun"] = sum(1 for u in layers if not u.get("reused"))
        res["layers_reused_in_rerun"] = sum(1 for u in layers if u.get("reused"))
        d_ref, d_new = digest(ref), digest(out)
        res["identical"] = d_ref == d_new and bool(d_ref)
        res["files_compared"] = len(d_ref)
        res["differ"] = sorted(k for k in d_ref.keys() | d_new.keys() if d_ref.get(k) != d_new.get(k))
    return res


def fmt_gib(b: int | None) -> str:
    return "-" if not b else f"{b / 2**30:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, nargs="+", default=[2, 4], help="decoder layers of each checkpoint")
    ap.add_argument("--out-dir", type=Path, default=Path("/work/bench-8b"), help="checkpoints, chips, logs, results")
    ap.add_argument("--tiny", action="store_true", help="small dims, same structure (a smoke test in seconds)")
    ap.add_argument("--skip-write", action="store_true", help="reuse the checkpoint already in --out-dir")
    ap.add_argument("--write-only", action="store_true", help="write the checkpoints and recipes, compile nothing")
    ap.add_argument("--verify", action="store_true", help="also `taalas-compile verify` each chip")
    ap.add_argument("--resume-test", action="store_true", help="kill a compile halfway, rerun, compare bytes")
    ap.add_argument("--jobs", type=int, default=None, help="--jobs for taalas-compile (default: its own)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=4 * 3600, help="seconds before a command is killed")
    ap.add_argument("--mem-limit", type=float, default=14.0, help="GiB of tree RSS above which a command is killed")
    a = ap.parse_args()
    a.mem_limit = int(a.mem_limit * 2**30)
    shape = TINY if a.tiny else LLAMA_8B
    a.out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in a.layers:
        ckpt = a.out_dir / f"{shape.name}-{n}l"
        res: dict = {"model": shape.name, "layers": n, "checkpoint": str(ckpt), "shape": asdict(shape),
                     "calib": {"text": str(TINYSTORIES), "tokens": shape.calib_tokens, "context": shape.calib_context}}
        if not a.skip_write:
            res["write"] = write_checkpoint(ckpt, shape, n, a.seed)
            print(f"wrote {ckpt}: {res['write']['bytes'] / 1e9:.2f} GB in {res['write']['shards']} shards, "
                  f"{res['write']['seconds']:.0f} s", flush=True)
        recipe = write_recipe(ckpt, shape, n)
        if a.write_only:
            continue
        out = a.out_dir / f"chip-{shape.name}-{n}l"
        env = {"TAALAS_CACHE": str(fresh_cache(a.out_dir, out.name))}  # verify reads the same unit files
        run = run_measured(compile_cmd(recipe, ckpt, out, a.jobs), a.out_dir / f"{out.name}.log", a.timeout, a.mem_limit, env)
        res["compile"] = summarize(run, out)
        print(f"compile {n} layers: rc {run.rc} {run.killed} {run.wall_s:.0f} s, peak {fmt_gib(run.peak_rss_tree)} GiB, "
              f"{res['compile'].get('s_per_layer')} s/layer", flush=True)
        if a.verify and run.rc == 0:
            v = run_measured(["taalas-compile", "verify", str(out), "--json"], a.out_dir / f"{out.name}.verify.log",
                             a.timeout, a.mem_limit, env)
            res["verify"] = asdict(v)
            print(f"verify: rc {v.rc} {v.killed} {v.wall_s:.0f} s, peak {fmt_gib(v.peak_rss_tree)} GiB", flush=True)
        if a.resume_test and run.rc == 0:
            res["resume"] = resume_test(recipe, ckpt, a.out_dir, out, n, a)
            r = res["resume"]
            print(f"resume: killed after {r['killed_after_units']} units ({r['first']['killed'] or 'not killed'}), rerun rc "
                  f"{r['second']['rc']}, quantized {r.get('layers_quantized_in_rerun')} of {n} layers, identical {r.get('identical')}",
                  flush=True)
        rows.append(res)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        (a.out_dir / f"results-{shape.name}-{n}l-{stamp}.json").write_text(json.dumps(res, indent=1) + "\n")
    if rows:
        print(f"\n{'layers':>6} {'rc':>4} {'wall s':>8} {'peak GiB':>9} {'s/layer':>8} {'verify s':>9} {'v peak':>7} {'resume':>8}")
        for r in rows:
            c, v, rs = r["compile"], r.get("verify", {}), r.get("resume", {})
            spl = c.get("s_per_layer")
            print(f"{r['layers']:>6} {c['rc'] if c['rc'] is not None else c['killed']:>4} {c['wall_s']:>8.0f} "
                  f"{fmt_gib(c['peak_rss_tree']):>9} {spl if spl is None else round(spl, 1)!s:>8} "
                  f"{v.get('wall_s', 0):>9.0f} {fmt_gib(v.get('peak_rss_tree')):>7} {rs.get('identical', '-')!s:>8}")


if __name__ == "__main__":
    main()
