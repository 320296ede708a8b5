"""Bad inputs, as a user or a CI job brings them, through the console script: the exit code and the
message of each, written as docs/reliability.md.

    python benchmarks/reliability.py                 # run every case, rewrite docs/reliability.md
    python benchmarks/reliability.py --only 12 30    # run some, print the rows (doc untouched)

Every case runs `taalas-compile ...` as a subprocess in a scratch workspace (a compiled tiny-llama,
a small Hugging Face checkpoint of its shape, damaged copies of both) and is checked, not only
recorded: the exit code is the expected one, there is no traceback, a user error is exactly one
`error:` line, and no file outside the case's output directory changed (every file of the
workspace is hashed before and after). A case that breaks any of these fails the script (exit 1).
Full-disk and read-only cases mount a small tmpfs and need root; elsewhere they are reported as
skipped. Takes ~4 min on 2 cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "models"
STORIES, TOK512 = SHARED / "stories260K" / "stories260K.bin", SHARED / "stories260K" / "tok512.bin"
DOC = ROOT / "docs" / "reliability.md"


@dataclass(frozen=True)
class Case:
    area: str  # the command or input it exercises
    what: str  # the bad input, in words
    argv: tuple[str, ...]  # after `taalas-compile`; {ws} is the workspace, {chip} a compiled tiny-llama copy
    code: int  # the exit code a user gets: 2 user error, 1 verify FAILED, 0 accepted
    setup: Callable[[Path], None] | None = None  # prepares the workspace before the run
    out: str | None = None  # the case's output directory (relative to the workspace): may change
    root: bool = False  # needs root (mounts a tmpfs)
    expect: str = ""  # a fragment the message must contain
    stdout: str = ""  # for accepted inputs: a fragment stdout must contain


@dataclass
class Row:
    case: Case
    code: int | None = None
    message: str = ""
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    skipped: str = ""


# --- workspace -----------------------------------------------------------------------------------

def _run(argv: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(["taalas-compile", *argv], check=False, capture_output=True, text=True, cwd=cwd, timeout=timeout)


def make_workspace(ws: Path) -> None:
    """The compiled chip every chip case copies, and a tiny-llama-shaped HF checkpoint."""
    from taalas_compile.config.recipe import load_recipe
    from taalas_compile.inputs import args_of
    from taalas_compile.model.hf import save_hf_checkpoint
    from taalas_compile.model.sources import open_weights

    p = _run(["tiny-llama", "-o", str(ws / "base-chip")], ws)
    if p.returncode != 0:
        sys.exit(f"compiling tiny-llama failed:\n{p.stderr}")
    r = load_recipe("tiny-llama")
    save_hf_checkpoint(ws / "ckpt", open_weights("synthetic", None, args_of(r.model.architecture), r.model.seed))
    (ws / "text.txt").write_text("Once upon a time there was a little dog. " * 40)
    (ws / "empty.txt").write_text("")
    (ws / "ids.ids").write_text(" ".join(str(i % 256) for i in range(4000)))
    write_recipe("sys2.toml", two_dies)(ws)  # tiny-llama as a system of two mini dies
    p = _run([str(ws / "sys2.toml"), "-o", str(ws / "base-system")], ws)
    if p.returncode != 0:
        sys.exit(f"compiling tiny-llama as two dies failed:\n{p.stderr}")


def two_dies(recipe: str) -> str:
    return recipe.replace("[target]\n", "[target]\ndies = 2\n")


def copy_system(edit: Callable[[Path], None] = lambda d: None) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        shutil.copytree(ws / "base-system", ws / "system")
        edit(ws / "system")
    return setup


def other_base_die(system: Path) -> None:
    man = json.loads((system / "die1" / "manifest.json").read_text())
    man["die"] |= {"name": "hc1", "sha256": "0" * 64}
    (system / "die1" / "manifest.json").write_text(json.dumps(man, indent=1))


def copy_chip(name: str = "chip") -> Callable[[Path], None]:
    return lambda ws: shutil.copytree(ws / "base-chip", ws / name)


def copy_ckpt(edit: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        shutil.copytree(ws / "ckpt", ws / "bad-ckpt")
        edit(ws / "bad-ckpt")
    return setup


def poke_tensor(name: str, value: float, index: tuple[int, ...] = (0, 0)) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        import torch
        from safetensors.torch import load_file, save_file

        for f in sorted(d.glob("*.safetensors")):
            tensors = load_file(f)
            if name in tensors:
                t = tensors[name].clone()
                t[index if t.dim() == len(index) else index[:1]] = value
                tensors[name] = t.to(torch.float32) if t.dtype == torch.float32 else t
                save_file(tensors, f, metadata={"format": "pt"})
    return edit


def edit_config(**changes) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        cfg = json.loads((d / "config.json").read_text())
        (d / "config.json").write_text(json.dumps(cfg | changes, indent=1))
    return edit


def write_recipe(name: str, edit: Callable[[str], str]) -> Callable[[Path], None]:
    return lambda ws: (ws / name).write_text(edit((ROOT / "recipes" / "tiny-llama.toml").read_text()))


def write_die(name: str, edit: Callable[[str], str]) -> Callable[[Path], None]:
    return lambda ws: (ws / name).write_text(edit((ROOT / "base_die" / "mini.toml").read_text()))


def chip_edit(edit: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        copy_chip()(ws)
        edit(ws / "chip")
    return setup


def set_manifest(doc: dict) -> Callable[[Path], None]:
    return lambda chip: (chip / "manifest.json").write_text(json.dumps(doc))


def garbage_rom(chip: Path) -> None:
    next(iter(sorted((chip / "roms").glob("*.safetensors")))).write_bytes(os.urandom(4096))


def wrong_hash(chip: Path) -> None:
    man = json.loads((chip / "manifest.json").read_text())
    man["outputs"]["chip.gds"]["sha256"] = "0" * 64
    (chip / "manifest.json").write_text(json.dumps(man, indent=1))


def delete_via(chip: Path) -> None:
    """One select via removed from a ROM tile; the manifest's hash refreshed so LVS must catch it."""
    sys.path.insert(0, str(ROOT / "tests" / "signoff"))
    from gds_edit import Gds, sel_refs

    from taalas_compile.files import sha256_file

    g = Gds(chip)
    cell = next(c for n, c in g.cells.items() if n.startswith("T_") and sel_refs(c))
    cell.remove(sel_refs(cell)[0])
    g.save()
    man = json.loads((chip / "manifest.json").read_text())
    man["outputs"]["chip.gds"] = {"bytes": (chip / "chip.gds").stat().st_size, "sha256": sha256_file(chip / "chip.gds")}
    (chip / "manifest.json").write_text(json.dumps(man, indent=1))


def mount_tmpfs(name: str, opts: str) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        (ws / name).mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(ws / name)], check=True)
    return setup


def user_dir(ws: Path) -> None:
    (ws / "mine").mkdir()
    (ws / "mine" / "thesis.tex").write_text("precious")


def a_file(ws: Path) -> None:
    (ws / "notes.txt").write_text("keep")


def lora_alpha_pattern(ws: Path) -> None:
    d = ws / "adapter"
    d.mkdir()
    (d / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4, "lora_alpha": 8,
                                                       "target_modules": ["q_proj"], "alpha_pattern": {"q_proj": 16}}))
    import torch
    from safetensors.torch import save_file

    save_file({"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": torch.zeros(4, 64),
               "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": torch.zeros(64, 4)},
              d / "adapter_model.safetensors")


C, S = "{chip}", "{stories}"
CASES: list[Case] = [
    # recipes, dies and the command line
    Case("compile", "unknown recipe", ("no-such-recipe",), 2, expect="unknown recipe"),
    Case("compile", "recipe that needs a checkpoint, given none", ("stories260k",), 2, expect="needs --weights"),
    Case("compile", "checkpoint path that does not exist", ("stories260k", "--weights", "/nonexistent/stories.bin"), 2),
    Case("compile", "model too large for the die", ("llama-3.1-8b", "--die", "mini"), 2, expect="does not fit"),
    Case("compile", "unknown die", ("tiny-llama", "--die", "no-such-die"), 2, expect="unknown die"),
    Case("compile", 'recipe `name = ""`', ("{ws}/r.toml",), 2, write_recipe("r.toml", lambda t: t.replace('name = "tiny-llama"', 'name = ""')), expect="plain file name"),
    Case("compile", "recipe name an absolute path", ("{ws}/r.toml",), 2, write_recipe("r.toml", lambda t: t.replace('name = "tiny-llama"', 'name = "/tmp/x"')), expect="plain file name"),
    Case("compile", "recipe name with `..`", ("{ws}/r.toml",), 2, write_recipe("r.toml", lambda t: t.replace('name = "tiny-llama"', 'name = "../up"')), expect="plain file name"),
    Case("compile", "recipe that is not UTF-8", ("{ws}/r.toml",), 2, lambda ws: (ws / "r.toml").write_bytes(b'name = "\xff\xfe"\n')),
    Case("compile", "recipe with an unknown key", ("{ws}/r.toml",), 2, write_recipe("r.toml", lambda t: t + "\nbogus = 1\n")),
    Case("compile", "die with `clock.mhz = 0`", ("tiny-llama", "--die", "{ws}/d.toml"), 2, write_die("d.toml", lambda t: _set_clock(t, "0"))),
    Case("plan", "die with `clock.mhz = 0`", ("plan", "tiny-llama", "--die", "{ws}/d.toml", "-o", "{ws}/p"), 2, write_die("d.toml", lambda t: _set_clock(t, "0"))),
    Case("compile", "die with a negative clock", ("tiny-llama", "--die", "{ws}/d.toml"), 2, write_die("d.toml", lambda t: _set_clock(t, "-5"))),
    # output directories
    Case("compile", "`-o` a directory of user files", ("tiny-llama", "-o", "{ws}/mine"), 2, user_dir, expect="which no compile wrote"),
    Case("compile", "`-o` the checkpoint directory", ("tiny-llama", "--weights", "{ws}/ckpt", "-o", "{ws}/ckpt"), 2, expect="holds the input"),
    Case("compile", "`-o` an existing file", ("tiny-llama", "-o", "{ws}/notes.txt"), 2, a_file, expect="is a file"),
    Case("compile", "`-o FILE/sub`", ("tiny-llama", "-o", "{ws}/notes.txt/sub"), 2, a_file, expect="is a file"),
    Case("compile", "`-o .`", ("tiny-llama", "-o", "."), 2, expect="current directory"),
    Case("compile", "`-o` on a full disk", ("tiny-llama", "-o", "{ws}/full/chip"), 2, mount_tmpfs("full", "size=64k"), out="full", root=True),
    Case("compile", "`-o` on a disk that fills while the outputs are written", ("tiny-llama", "--format", "oasis", "-o", "{ws}/small/chip"), 2,
         mount_tmpfs("small", "size=600k"), out="small", root=True),
    Case("compile", "`-o` on a read-only file system", ("tiny-llama", "-o", "{ws}/ro/chip"), 2, mount_tmpfs("ro", "ro,size=64k"), out="ro", root=True),
    Case("compile", "`-o` where another compile is writing", ("tiny-llama", "-o", "{ws}/locked"), 2, None, expect="another compile"),
    # checkpoints
    Case("compile", "NaN in a weight", ("tiny-llama", "--weights", "{ws}/bad-ckpt", "-o", "{ws}/o"), 2,
         copy_ckpt(poke_tensor("model.layers.0.mlp.up_proj.weight", float("nan"), (3, 17))), out="o", expect="nan"),
    Case("compile", "+Inf in a norm gain", ("tiny-llama", "--weights", "{ws}/bad-ckpt", "-o", "{ws}/o"), 2,
         copy_ckpt(poke_tensor("model.layers.1.input_layernorm.weight", float("inf"), (5,))), out="o", expect="inf"),
    Case("compile", "1e38 in a weight (beyond fp16 scales)", ("tiny-llama", "--weights", "{ws}/bad-ckpt", "-o", "{ws}/o"), 2,
         copy_ckpt(poke_tensor("model.layers.0.self_attn.q_proj.weight", 1e38, (0, 0))), out="o"),
    Case("compile", '`hidden_act = "gelu"` in config.json', ("tiny-llama", "--weights", "{ws}/bad-ckpt", "-o", "{ws}/o"), 2,
         copy_ckpt(edit_config(hidden_act="gelu")), out="o", expect="hidden_act"),
    Case("compile", "`attention_bias = true` in config.json", ("tiny-llama", "--weights", "{ws}/bad-ckpt", "-o", "{ws}/o"), 2,
         copy_ckpt(edit_config(attention_bias=True)), out="o", expect="attention_bias"),
    Case("compile", "config.json `rope_theta` contradicts the recipe", ("tiny-llama", "--weights", "{ws}/bad-ckpt", "-o", "{ws}/o"), 2,
         copy_ckpt(edit_config(rope_theta=500000.0)), out="o", expect="rope_theta"),
    Case("compile", "config.json context shorter than the recipe's `max_seq_len`", ("tiny-llama", "--weights", "{ws}/bad-ckpt", "-o", "{ws}/o"), 2,
         copy_ckpt(edit_config(max_position_embeddings=64)), out="o", expect="max_seq_len"),
    Case("compile", "checkpoint file that is not safetensors", ("tiny-llama", "--weights", "{ws}/bad-ckpt", "-o", "{ws}/o"), 2,
         copy_ckpt(lambda d: next(iter(sorted(d.glob("*.safetensors")))).write_bytes(b"garbage")), out="o"),
    Case("compile", "`--calib` file that does not exist", ("tiny-llama", "--calib", "{ws}/nope.ids", "-o", "{ws}/o"), 2, out="o"),
    Case("compile", "`--tokenizer` of another vocabulary", ("tiny-llama", "--tokenizer", str(TOK512), "-o", "{ws}/o"), 2, out="o"),
    # verify
    Case("verify", "directory that is not a compile", ("verify", "/nonexistent/dir"), 2, expect="no manifest.json"),
    Case("verify", "`manifest.json` = `{}`", ("verify", C), 2, chip_edit(set_manifest({}))),
    Case("verify", "`manifest.json` not JSON", ("verify", C), 2, chip_edit(lambda c: (c / "manifest.json").write_text("{oops"))),
    Case("verify", "ROM file of random bytes", ("verify", C), 2, chip_edit(garbage_rom), out="chip"),
    Case("verify", "`--tokens -1`", ("verify", C, "--tokens", "-1"), 2, copy_chip()),
    Case("verify", "`--tokens 100000` on a 128-token chip", ("verify", C, "--tokens", "100000"), 2, copy_chip(), expect="128"),
    Case("verify", "`--jobs 0`", ("verify", C, "--jobs", "0"), 2, copy_chip()),
    Case("verify", "mask hash in manifest.json changed", ("verify", C, "--tokens", "4"), 1, chip_edit(wrong_hash), out="chip", stdout="FAILED"),
    Case("verify", "one select via deleted from the masks", ("verify", C, "--tokens", "4"), 1, chip_edit(delete_via), out="chip", stdout="FAILED"),
    # multi-die systems
    Case("compile", "`--only-die 5` of a 2-die system", ("{ws}/sys2.toml", "-o", "{ws}/o", "--only-die", "5"), 2, expect="--only-die 5"),
    Case("compile", "`--only-die 0` of a model that fits one die", ("tiny-llama", "-o", "{ws}/o", "--only-die", "0"), 2, expect="fits one"),
    Case("compile", "`[target] dies = 9` for 4 layer blocks", ("{ws}/r.toml",), 2,
         write_recipe("r.toml", lambda t: t.replace("[target]\n", "[target]\ndies = 9\n")), expect="dies = 9"),
    Case("compile", "two dies of a die without `[link]`", ("{ws}/sys2.toml", "--die", "{ws}/d.toml", "-o", "{ws}/o"), 2,
         write_die("d.toml", lambda t: t[: t.index("[link]")]), expect="no [link]"),
    Case("verify", "system with a die directory missing", ("verify", "{ws}/system"), 2, copy_system(lambda d: shutil.rmtree(d / "die1")),
         expect="die 1 is missing"),
    Case("verify", "system whose dies are of different base dies", ("verify", "{ws}/system"), 2, copy_system(other_base_die),
         expect="same base die"),
    Case("verify", "`--die 7` of a 2-die system", ("verify", "{ws}/system", "--die", "7"), 2, copy_system(), expect="--die 7"),
    Case("verify", "one die directory of a system", ("verify", "{ws}/system/die1"), 2, copy_system(), expect="--die 1"),
    Case("verify", "one select via deleted from die 1 of a system", ("verify", "{ws}/system", "--tokens", "4"), 1,
         copy_system(lambda d: delete_via(d / "die1")), out="system", stdout="FAILED"),
    Case("emulate", "system with a die directory missing", ("emulate", "{ws}/system", "--prompt", "1 2"), 2,
         copy_system(lambda d: shutil.rmtree(d / "die1")), expect="die 1 is missing"),
    # emulate
    Case("emulate", '`--prompt "999"` on a 256-token chip', ("emulate", C, "--prompt", "999"), 2, copy_chip()),
    Case("emulate", '`--prompt "-1"`', ("emulate", C, "--prompt", "-1"), 2, copy_chip()),
    Case("emulate", "`--tokens 0`", ("emulate", C, "--tokens", "0"), 2, copy_chip()),
    Case("emulate", "`--tokens -5`", ("emulate", C, "--tokens", "-5"), 2, copy_chip()),
    Case("emulate", "`--lora` directory that does not exist", ("emulate", C, "--lora", "{ws}/no-adapter"), 2, copy_chip()),
    Case("emulate", "PEFT adapter with `alpha_pattern`", ("emulate", C, "--prompt", "1 2", "--tokens", "2", "--lora", "{ws}/adapter"), 0,
         lambda ws: (copy_chip()(ws), lora_alpha_pattern(ws)), out="chip"),
    # generate, eval
    Case("generate", "`--tokens -3`", ("generate", "tiny-llama", "--tokens", "-3"), 2),
    Case("generate", "token id beyond the vocabulary", ("generate", "tiny-llama", "--prompt", "300"), 2),
    Case("generate", "prompt with rich markup `[/]`", ("generate", "stories260k", "-w", str(STORIES), "-t", str(TOK512), "--prompt", "Once [/] upon [bold]a[/bold]", "--tokens", "3"), 0,
         stdout="Once [/] upon [bold]a[/bold]"),
    Case("eval", "empty text", ("eval", "stories260k", "-w", str(STORIES), "-t", str(TOK512), "--text", "{ws}/empty.txt"), 2),
    Case("eval", "`--context 1`", ("eval", "stories260k", "-w", str(STORIES), "-t", str(TOK512), "--text", "{ws}/text.txt", "--context", "1"), 2),
    Case("eval", "`--max-tokens 0`", ("eval", "stories260k", "-w", str(STORIES), "-t", str(TOK512), "--text", "{ws}/text.txt", "--max-tokens", "0"), 2),
    Case("eval", "text file that does not exist", ("eval", "stories260k", "-w", str(STORIES), "-t", str(TOK512), "--text", "{ws}/nope.txt"), 2),
    # plan
    Case("plan", "`-o` onto a file", ("plan", "tiny-llama", "-o", "{ws}/notes.txt"), 2, a_file),
    Case("plan", "`--change-week nan`", ("plan", "tiny-llama", "--change-week", "nan", "-o", "{ws}/p"), 2, out="p"),
    Case("plan", "`--change-week -1`", ("plan", "tiny-llama", "--change-week", "-1", "-o", "{ws}/p"), 2, out="p"),
    Case("plan", "`--start` not a date", ("plan", "tiny-llama", "--start", "next week", "-o", "{ws}/p"), 2, out="p"),
]


def _set_clock(toml: str, mhz: str) -> str:
    import re

    return re.sub(r"(\[clock\][^\[]*?mhz\s*=\s*)[-0-9.e]+", rf"\g<1>{mhz}", toml, count=1, flags=re.DOTALL)


# --- running ---------------------------------------------------------------------------------------

def snapshot(d: Path, skip: Path | None) -> dict[str, str]:
    """sha256 of every file under d but the case's output directory `skip` and what a compile keeps
    beside it (`.NAME.lock`, `.NAME.blocks/`, `.NAME.partial/`)."""
    out = {}
    for p in sorted(d.rglob("*")):
        rel = p.relative_to(d)
        if skip is not None and any(part == skip.name or part.startswith(f".{skip.name}.") for part in rel.parts[:1]):
            continue
        if p.is_file():
            out[str(p.relative_to(d))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run_case(i: int, case: Case, base: Path) -> Row:
    row = Row(case)
    if case.root and os.geteuid() != 0:
        row.skipped = "needs root (mounts a tmpfs)"
        return row
    if ("stories260k" in case.argv) and not STORIES.is_file():
        row.skipped = "needs ../shared/models"
        return row
    ws = Path(tempfile.mkdtemp(prefix=f"case{i}-", dir=base))
    for name in ("base-chip", "base-system", "sys2.toml", "ckpt", "text.txt", "empty.txt", "ids.ids"):
        src = base / "_shared" / name
        (shutil.copytree if src.is_dir() else shutil.copyfile)(src, ws / name)
    mounted = []
    try:
        if case.setup:
            case.setup(ws)
        if case.root:
            mounted.append(ws / (case.out or ""))
        argv = [a.replace("{ws}", str(ws)).replace("{chip}", str(ws / "chip")) for a in case.argv]
        before = snapshot(ws, ws / case.out if case.out else None)
        t0 = time.perf_counter()
        if "another compile" in case.expect:
            p = _locked_run(argv, ws)
        else:
            p = _run(argv, ws)
        row.seconds = time.perf_counter() - t0
        row.code = p.returncode
        errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
        row.message = errors[-1] if errors else (p.stdout.strip().splitlines() or [""])[-1]
        row.message = row.message.replace(str(ws), "WS").replace(str(ROOT), ".")  # the same text on every run
        if p.returncode != case.code:
            row.problems.append(f"exit {p.returncode}, expected {case.code}")
        if "Traceback" in p.stderr + p.stdout:
            row.problems.append("traceback")
        if case.code == 2 and len(errors) != 1:
            row.problems.append(f"{len(errors)} error lines")
        if case.expect and case.expect.lower() not in row.message.lower():
            row.problems.append(f"message lacks {case.expect!r}")
        if case.stdout and case.stdout not in p.stdout:
            row.problems.append(f"stdout lacks {case.stdout!r}")
        after = snapshot(ws, ws / case.out if case.out else None)
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k) and not k.startswith(".locked."))
        if changed:
            row.problems.append(f"changed outside the output: {changed[:3]}")
    finally:
        for m in mounted:
            subprocess.run(["umount", str(m)], check=False)
        shutil.rmtree(ws, ignore_errors=True)
    return row


def _locked_run(argv: list[str], ws: Path) -> subprocess.CompletedProcess:
    """The run while another process holds the output's lock, as a running compile does."""
    import fcntl

    with open(ws / ".locked.lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        f.write(f"{os.getpid()}\n")
        f.flush()
        return _run(argv, ws)


def table(rows: list[Row]) -> str:
    lines = ["| # | command | bad input | exit | message |", "|---|---|---|---|---|"]
    for i, r in enumerate(rows, 1):
        c = r.case
        msg = r.skipped and f"(skipped: {r.skipped})" or r.message
        msg = msg.replace("|", "\\|").replace("\n", " ")
        if len(msg) > 220:
            msg = msg[:217] + "…"
        lines.append(f"| {i} | {c.area} | {c.what} | {'' if r.code is None else r.code} | `{msg}` |" if msg else
                     f"| {i} | {c.area} | {c.what} | {r.code} | |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", type=int, nargs="*", help="case numbers (1-based) to run; the doc is not rewritten")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    picked = [(i, c) for i, c in enumerate(CASES, 1) if not a.only or i in a.only]
    base = Path(tempfile.mkdtemp(prefix="taalas-reliability-"))
    t0 = time.perf_counter()
    try:
        (base / "_shared").mkdir()
        make_workspace(base / "_shared")
        with ThreadPoolExecutor(a.workers) as pool:
            rows = list(pool.map(lambda ic: run_case(ic[0], ic[1], base), picked))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    bad = [(i, r) for (i, _), r in zip(picked, rows) if r.problems]
    for i, r in bad:
        print(f"case {i} ({r.case.area}: {r.case.what}): {'; '.join(r.problems)}\n    {r.message}", file=sys.stderr)
    print(table(rows))
    if not a.only and not bad:
        write_doc(rows, time.perf_counter() - t0)
    print(f"{len(rows) - len(bad)} passed, {len(bad)} failed", file=sys.stderr)
    return 1 if bad else 0


def write_doc(rows: list[Row], seconds: float) -> None:
    skipped = sum(bool(r.skipped) for r in rows)
    DOC.write_text(f"""# Reliability: bad inputs and what the user gets

A sign-off tool is driven by scripts, CI jobs and farm schedulers, which read its **exit code**:

| exit | meaning |
|---|---|
| 0 | success (`verify`: every check passed) |
| 1 | `verify`: sign-off FAILED (the findings are listed, and in `signoff/signoff.json`) |
| 2 | a user error: one red line `error: …` on stderr saying what is wrong and where; `--debug` shows the traceback |
| 130 | interrupted (SIGINT, Ctrl-C): `error: interrupted` |
| 143 | terminated (SIGTERM): `error: terminated (SIGTERM)` |

An interrupted or terminated compile stops its workers, keeps its finished layer blocks beside the
output (the next run resumes there) and leaves any earlier output directory as it was. A compile
only replaces an output directory that is new, empty, or holds what a compile writes; only one
compile writes a directory at a time (`.NAME.lock` beside it). `verify` checks every output against
the sha256 recorded in `manifest.json` before it reads anything. Text from users and models is
printed literally (no terminal markup).

The table below is written by `python benchmarks/reliability.py` ({len(rows)} cases, {seconds / 60:.1f} min on
2 cores{f'; {skipped} skipped' if skipped else ''}). Each case runs the console script as a subprocess in a
scratch workspace and is *checked*: the exit code is the one listed, there is no traceback, a user
error is exactly one `error:` line, and no file outside the case's output directory changed (all
files of the workspace are hashed before and after). The console-script contract itself (exit
codes, signals, outputs) is tested in `tests/cli/test_console_script.py`. `WS` stands for the
case's scratch workspace, `.` for the repository.

{table(rows)}
""")


if __name__ == "__main__":
    sys.exit(main())
