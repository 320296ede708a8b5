"""The command line: default command, exit codes, one-line errors."""

import json
import subprocess
import sys

import pytest

from taalas_compile.cli.app import main


def run(capsys, *argv):
    """(exit code, stdout, stderr) of `taalas-compile argv` run in-process."""
    try:
        main(list(argv))
        code = 0
    except SystemExit as e:
        code = e.code or 0
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_recipe_alone_compiles_and_verify_passes(tmp_path, capsys):
    out = tmp_path / "chip"
    code, stdout, _ = run(capsys, "tiny-llama", "--out", str(out))
    assert code == 0 and (out / "chip.gds").is_file() and "outputs in" in stdout
    code, stdout, _ = run(capsys, "verify", str(out), "--json", "--tokens", "4")
    res = json.loads(stdout)
    assert code == 0 and res["passed"] and [c["name"] for c in res["checks"]] == ["outputs", "netlist", "layers", "drc", "lvs", "emulation"]
    code, stdout, _ = run(capsys, "emulate", str(out), "--prompt", "5 6 7", "--tokens", "5")
    assert code == 0 and len(stdout.split()) == 5 and all(t.isdigit() for t in stdout.split())
    code, stdout, _ = run(capsys, "plan", str(out), "--json", "--out", str(tmp_path / "plan"))
    assert code == 0 and json.loads(stdout)["fit"]["tables"]["dies"]["rows"][0][1] > 0 and (tmp_path / "plan" / "plan.html").is_file()


def test_compile_output_names_the_mask_file_to_open(tmp_path, capsys):
    out = tmp_path / "chip"
    code, stdout, _ = run(capsys, "tiny-llama", "--out", str(out), "--format", "oasis")
    assert code == 0 and (out / "chip.oas").is_file() and not (out / "chip.gds").exists()
    assert f"klayout -rm {out}/klayout_session.py" in " ".join(stdout.split())  # rich may wrap the line
    assert "roms/ (5 files)" in stdout
    code, stdout, _ = run(capsys, "view", str(out), "--tile", "L0.q_proj.r0c0")
    view = out / "view" / "tile-L0.q_proj.r0c0.oas"
    assert code == 0 and view.is_file() and f"klayout -rd view={view} -rm {out}/klayout_session.py" in " ".join(stdout.split())


@pytest.mark.parametrize("argv, message", [
    (["no-such-recipe"], "unknown recipe 'no-such-recipe'"),
    (["stories260k"], "recipe stories260k needs --weights"),
    (["stories260k", "--weights", "/nonexistent/stories.bin"], "/nonexistent/stories.bin: no such file"),
    (["llama-3.1-8b", "--die", "mini"], "model does not fit die mini, not even split over several: block head alone"),
    (["tiny-llama", "--die", "no-such-die"], "unknown die 'no-such-die'"),
    (["verify", "/nonexistent/dir"], "no manifest.json"),
    (["verify", "/nonexistent/dir", "--jobs", "0"], "--jobs must be at least 1"),
    (["plan", "no-such-recipe"], "unknown recipe"),
])
def test_user_errors_are_one_red_line_and_exit_2(capsys, argv, message):
    code, _, stderr = run(capsys, *argv)
    assert code == 2
    last = stderr.strip().splitlines()[-1]  # progress lines may come before it
    assert last.startswith("error: ") and message in last and "Traceback" not in stderr


def test_corrupt_checkpoint(tmp_path, capsys, stories_path):
    bad = tmp_path / "truncated.bin"
    bad.write_bytes(stories_path.read_bytes()[:5000])
    code, _, stderr = run(capsys, "stories260k", "--weights", str(bad), "--out", str(tmp_path / "o"))
    assert code == 2 and "truncated.bin" in stderr.strip().splitlines()[-1] and "Traceback" not in stderr
    assert not (tmp_path / "o").exists()  # nothing written for a bad input


def test_unreadable_masks_are_a_clear_error(tiny_chip, tmp_path, capsys):
    import shutil

    bad = tmp_path / "chip"
    shutil.copytree(tiny_chip, bad)
    (bad / "chip.gds").write_bytes(b"not a GDSII stream")
    code, _, stderr = run(capsys, "verify", str(bad))
    assert code == 2 and "cannot read the masks" in stderr.strip().splitlines()[-1] and "Traceback" not in stderr


def test_debug_shows_the_traceback(capsys):
    from taalas_compile.errors import UserError

    with pytest.raises(UserError):
        main(["no-such-recipe", "--debug"])


def test_listing_commands(capsys):
    code, stdout, _ = run(capsys, "recipes")
    assert code == 0 and all(n in stdout for n in ("tiny-llama", "stories260k", "llama-3.1-8b"))
    code, stdout, _ = run(capsys, "dies")
    assert code == 0 and "mini" in stdout and "hc1" in stdout
    code, stdout, _ = run(capsys, "graph", "tiny-llama")
    assert code == 0 and "q_proj" in stdout


def test_every_command_has_help_with_an_example():
    for cmd in ("compile", "verify", "emulate", "generate", "eval", "plan", "graph"):
        res = subprocess.run([sys.executable, "-m", "taalas_compile", cmd, "--help"], capture_output=True, text=True, check=False)
        assert res.returncode == 0 and "xample" in res.stdout, cmd
