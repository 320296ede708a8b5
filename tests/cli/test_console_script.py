"""The console script as a shell, a CI job or a farm scheduler runs it: a subprocess whose exit code
and stderr are the interface. (In-process calls of `main()` cannot see what the shell sees.)

Exit codes: 0 success, 1 verify FAILED, 2 a user error (one red line), 130 SIGINT, 143 SIGTERM."""

from __future__ import annotations

import fcntl
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "signoff"))
from gds_edit import Gds, sel_refs

from taalas_compile.files import sha256_file


def cli(*argv, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run(["taalas-compile", *map(str, argv)], check=False, capture_output=True, text=True, cwd=cwd, timeout=timeout)


def one_error_line(p: subprocess.CompletedProcess) -> str:
    """The single `error:` line of a user error (progress lines may come before it), no traceback."""
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, p.stderr
    return errors[0]


def tree_state(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): sha256_file(p) for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def chip(tmp_path_factory) -> Path:
    """tiny-llama compiled once by the console script."""
    out = tmp_path_factory.mktemp("console") / "tiny"
    p = cli("tiny-llama", "-o", out)
    assert p.returncode == 0, p.stderr
    return out


@pytest.fixture
def chip_copy(chip, tmp_path) -> Path:
    out = tmp_path / "tiny"
    shutil.copytree(chip, out)
    return out


# --- verify's exit code gates a tape-out ---------------------------------------------------------

def test_verify_exits_0_on_a_good_chip_and_1_when_one_via_is_missing(chip_copy):
    p = cli("verify", chip_copy, "--tokens", "4")
    assert p.returncode == 0 and "PASSED" in p.stdout, p.stdout + p.stderr
    g = Gds(chip_copy)
    cell = next(c for name, c in g.cells.items() if name.startswith("T_") and sel_refs(c))
    cell.remove(sel_refs(cell)[0])
    g.save()  # and records the edited file's hash in the manifest: the via itself must be caught
    p = cli("verify", chip_copy, "--tokens", "4")
    assert p.returncode == 1 and "FAILED" in p.stdout and "lvs" in p.stdout, p.stdout + p.stderr


def test_verify_fails_when_outputs_do_not_match_the_manifest(chip_copy):
    """Hashes are checked before anything is read: an edited hash, and a recorded file that is gone,
    are findings naming the file."""
    man = json.loads((chip_copy / "manifest.json").read_text())
    for target in ("chip.gds", "roms/L0.safetensors"):
        man["outputs"][target]["sha256"] = "0" * 64
    (chip_copy / "manifest.json").write_text(json.dumps(man, indent=1))
    (chip_copy / "floorplan.png").unlink()
    p = cli("verify", chip_copy, "--json", "--tokens", "4")
    res = json.loads(p.stdout)
    assert p.returncode == 1 and not res["passed"]
    assert res["checks"][0] == {"name": "outputs", "passed": False, "violations": 3}
    assert sorted((v["category"], v["where"]) for v in res["violations"] if v["category"].startswith("manifest")) == [
        ("manifest.missing", "floorplan.png"), ("manifest.sha256", "chip.gds"), ("manifest.sha256", "roms/L0.safetensors")]


def test_user_error_exits_2_with_one_red_line():
    line = one_error_line(cli("no-such-recipe"))
    assert "unknown recipe 'no-such-recipe'" in line


# --- signals: a killed job is never a success -----------------------------------------------------

def _stop_after(argv: list, sig: int, marker: str, children: bool = False) -> tuple[int, str, list[int]]:
    """Start the console script, wait for `marker` in its stderr (and with `children`, for its worker
    processes), send `sig`; (exit code, stderr, pids of the process tree just before the signal)."""
    p = subprocess.Popen(["taalas-compile", *map(str, argv)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    seen = []
    for line in p.stderr:
        seen.append(line)
        if marker in line:
            break
    else:
        pytest.fail(f"never saw {marker!r}: {''.join(seen)}")
    tree: list[int] = []
    deadline = time.time() + 30
    while children and not tree and time.time() < deadline:
        tree = [c.pid for c in psutil.Process(p.pid).children(recursive=True)]
        time.sleep(0.02)
    if not children:
        time.sleep(0.5)  # into the step after the marker
    p.send_signal(sig)
    err = "".join(seen) + p.stderr.read()
    return p.wait(timeout=120), err, tree


def _no_survivors(pids: list[int]) -> bool:
    deadline = time.time() + 10
    while time.time() < deadline:
        alive = [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
        if not alive:
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_signal_during_verify_exits_with_its_code(chip, sig, code, word):
    rc, err, _ = _stop_after(["verify", chip, "--tokens", "4"], sig, "✓ netlist")
    assert rc == code and f"error: {word}" in err and "Traceback" not in err


@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_signal_during_compile_keeps_the_earlier_output_and_leaves_no_worker(chip_copy, sig, code, word):
    """A second compile into a compiled directory, its block work on 2 worker processes, is stopped
    as soon as the workers exist: the earlier chip is untouched, no worker outlives the compile."""
    before = tree_state(chip_copy)
    rc, err, tree = _stop_after(["tiny-llama", "-o", chip_copy, "--jobs", "2"], sig, "blocks on", children=True)
    assert rc == code and f"error: {word}" in err and "Traceback" not in err
    assert tree, "the compile had started its workers"
    assert _no_survivors(tree)
    assert tree_state(chip_copy) == before


# --- outputs: a compile never destroys what it did not write ----------------------------------------

def test_out_refuses_a_directory_of_user_data(tmp_path):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "thesis.tex").write_text("precious")
    line = one_error_line(cli("tiny-llama", "-o", d))
    assert "thesis.tex" in line and "which no compile wrote" in line
    assert (d / "thesis.tex").read_text() == "precious"


def test_out_refuses_the_checkpoint_directory(tmp_path):
    from taalas_compile.model.args import ModelArgs  # noqa: F401 (the checkpoint is any HF dir)

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text("{}")
    recipe = tmp_path / "r.toml"
    recipe.write_text('name = "r"\ndescription = "d"\n[model]\nformat = "hf"\nsynthetic = false\n')
    p = cli(recipe, "--weights", ckpt, "-o", ckpt)
    assert p.returncode == 2 and (ckpt / "config.json").read_text() == "{}"


def test_out_refuses_a_file_and_a_path_below_one(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("keep")
    assert "is a file" in one_error_line(cli("tiny-llama", "-o", f))
    assert "is a file, not a directory" in one_error_line(cli("tiny-llama", "-o", f / "sub"))
    assert f.read_text() == "keep" and not list(tmp_path.glob(".notes*"))


def test_out_refuses_the_current_directory(tmp_path):
    (tmp_path / "keep.txt").write_text("keep")
    assert "current directory" in one_error_line(cli("tiny-llama", "-o", ".", cwd=tmp_path))
    assert (tmp_path / "keep.txt").read_text() == "keep"


@pytest.mark.parametrize("name", ["", "/tmp/abs", "../up", "a/b", ".hidden"])
def test_recipe_names_are_plain_file_names(tmp_path, name):
    r = tmp_path / "r.toml"
    base = Path(__file__).resolve().parents[2] / "recipes" / "tiny-llama.toml"
    r.write_text(base.read_text().replace('name = "tiny-llama"', f"name = {json.dumps(name)}"))
    assert "not a plain file name" in one_error_line(cli(r, cwd=tmp_path))


def test_recompiling_replaces_a_previous_compile(chip_copy):
    (chip_copy / "plan").mkdir(exist_ok=True)  # what `plan DIR` writes
    p = cli("tiny-llama", "-o", chip_copy)
    assert p.returncode == 0, p.stderr
    assert not (chip_copy / "plan").exists() and (chip_copy / "manifest.json").is_file()


def test_a_second_compile_into_the_same_out_is_refused_while_the_first_runs(tmp_path):
    out = tmp_path / "chip"
    with open(tmp_path / ".chip.lock", "a+") as f:  # what a running compile holds
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        f.write("4242\n")
        f.flush()
        line = one_error_line(cli("tiny-llama", "-o", out))
    assert "another compile (pid 4242) is writing" in line and not out.exists()


# --- untrusted text is printed, never interpreted -------------------------------------------------

def test_markup_in_a_prompt_is_printed_as_typed(stories_path, tok512_path):
    p = cli("generate", "stories260k", "-w", stories_path, "-t", tok512_path, "--prompt", "Once [/] upon [bold]a[/bold] time",
            "--tokens", "3")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("Once [/] upon [bold]a[/bold] time")


def test_markup_in_an_error_is_printed_as_typed(tmp_path):
    line = one_error_line(cli("verify", tmp_path / "[bold]x[/]"))
    assert "[bold]x[/]" in line


@pytest.mark.parametrize("where", ["dir", "under-a-file", "proc"])
def test_a_bad_trace_out_path_is_one_line_and_exit_2(chip, tmp_path, where):
    """--trace-out: a directory, a path under a file, a place nothing may be written."""
    (tmp_path / "f").write_text("x")
    path = {"dir": tmp_path, "under-a-file": tmp_path / "f" / "t.safetensors", "proc": Path("/proc/t.safetensors")}[where]
    line = one_error_line(cli("emulate", chip, "--tokens", "2", "--trace-out", path))
    assert str(path if where != "under-a-file" else tmp_path / "f") in line
