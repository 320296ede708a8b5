"""Bad inputs a user can give end in one red line `error: ...` and exit code 2, never a traceback
or a run that quietly does nothing (issue 13, parts 5 and 6).

Each case runs `main()` in-process (the exit code is the one the console script exits with; a few
cases also run the installed console script as a subprocess, as CI or a farm scheduler runs it). One compiled tiny-llama chip (256-token vocabulary, 128-token context) is
shared; a test that damages a chip, or may write into it (verify), works on its own copy.
"""

import contextlib
import io
import json
import os
import re
import shutil
import struct
import subprocess
import traceback
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from taalas_compile.chip_dir import check_tokens, read_manifest
from taalas_compile.die.load import load_die
from taalas_compile.errors import UserError
from taalas_compile.paths import DIES_DIR


def cli(*argv, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`taalas-compile argv` run in this process through `main()`, which exits with the code the
    console script exits with (tests/cli/test_console_script.py checks that as a subprocess; here
    in-process keeps ~50 cases to seconds instead of a torch import each). An exception that
    escapes `main()` is written to stderr as the console script would print its traceback."""
    from taalas_compile.cli.app import main

    out, err = io.StringIO(), io.StringIO()
    old = Path.cwd()
    code = 0
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main([str(a) for a in argv])
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except Exception:  # noqa: BLE001 (shown as the console script would show it)
                traceback.print_exc()
                code = 1
    finally:
        os.chdir(old)
    return subprocess.CompletedProcess(["taalas-compile", *map(str, argv)], code, out.getvalue(), err.getvalue())


def assert_user_error(res: subprocess.CompletedProcess, message: str) -> None:
    """Exit 2, no traceback, and exactly one `error:` line, which holds `message`."""
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert res.returncode == 2 and len(errors) == 1, (res.returncode, res.stderr[-3000:])
    assert message in errors[0], errors[0]


@pytest.fixture
def chip(tiny_chip, tmp_path) -> Path:
    """A copy of the shared tiny-llama chip to damage, at the same directory depth (the manifest's
    relative paths resolve the same way)."""
    out = tmp_path / "chip"
    shutil.copytree(tiny_chip, out)
    return out


def die_with(tmp_path: Path, old: str, new: str) -> Path:
    """base_die/mini.toml with one line changed, as a .toml path."""
    text = (DIES_DIR / "mini.toml").read_text()
    assert old in text
    p = tmp_path / "die.toml"
    p.write_text(text.replace(old, new, 1))
    return p


# --- configuration files -----------------------------------------------------------------------
@pytest.mark.parametrize("command", [["tiny-llama"], ["plan", "tiny-llama"]])
def test_zero_clock_is_refused_by_compile_and_plan(tmp_path, command):
    die = die_with(tmp_path, "mhz = 500", "mhz = 0")
    res = cli(*command, "--die", die, "-o", tmp_path / "out")
    assert_user_error(res, "clock.mhz = 0: Input should be greater than 0")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("old, new, message", [
    ("mhz = 500", "mhz = -5", "clock.mhz = -5"),
    ("mhz = 500", "mhz = nan", "clock.mhz = nan: Input should be a finite number"),
    ("mhz = 500", "mhz = inf", "clock.mhz = inf"),
    ("metal_width = ", "metal_width = 0 #", "rules.metal_width = 0"),
    ("track_pitch = ", "track_pitch = 0 #", "routing.track_pitch = 0"),
    ("mask_weeks = ", "mask_weeks = -1 #", "fab.mask_weeks = -1"),
    ("mask_weeks = ", "mask_weeks = nan #", "fab.mask_weeks = nan"),
])
def test_die_values_that_must_be_positive_and_finite(tmp_path, old, new, message):
    with pytest.raises(UserError, match=re.escape(message)):
        load_die(die_with(tmp_path, old, new))


@pytest.mark.parametrize("what, command", [("recipe", ["{p}"]), ("die", ["tiny-llama", "--die", "{p}"])])
def test_non_utf8_config_file(tmp_path, what, command):
    p = tmp_path / "bad.toml"
    p.write_bytes(b'name = "caf\xe9"\n')  # Latin-1, not UTF-8
    res = cli(*[a.format(p=p) for a in command], "-o", tmp_path / "out")
    assert_user_error(res, f"{what} {p}: not UTF-8 text (byte 0xe9 at offset 11)")


# --- a damaged chip ----------------------------------------------------------------------------
def garbage(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(5000))


def bad_offsets(path: Path) -> None:
    header = json.dumps({"x": {"dtype": "U8", "shape": [3], "data_offsets": [0, 99]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"abc")


@pytest.mark.parametrize("damage, message", [(garbage, "not a safetensors file"), (bad_offsets, "not a safetensors file")])
@pytest.mark.parametrize("command", [["emulate", "{c}", "--tokens", "2"], ["verify", "{c}"]])
def test_garbage_rom_file(chip, damage, message, command):
    damage(chip / "roms" / "L0.safetensors")
    res = cli(*[a.format(c=chip) for a in command])
    assert_user_error(res, f"{chip}/roms/L0.safetensors: damaged ROM file: {message}")


def test_rom_file_without_a_tile_or_with_floats(chip):
    f = chip / "roms" / "L0.safetensors"
    images = load_file(str(f))
    save_file({**images, "L0.attn": images["L0.attn"].astype(np.float32)}, str(f))
    assert_user_error(cli("emulate", chip, "--tokens", "2"), "image 'L0.attn' is float32 [1, 121], a ROM image is 2-D uint8 digits")
    del images["L0.attn"]
    save_file(images, str(f))
    assert_user_error(cli("emulate", chip, "--tokens", "2"), "damaged ROM file: no image of tile 'L0.attn'")


@pytest.mark.parametrize("command", [["verify", "{c}"], ["emulate", "{c}"], ["plan", "{c}"]])
def test_empty_manifest(chip, command):
    (chip / "manifest.json").write_text("{}")
    assert_user_error(cli(*[a.format(c=chip) for a in command]), f"{chip}/manifest.json: not a taalas-manifest file")


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(version=7), "manifest version 7, this compiler reads version 1"),
    (lambda m: m.pop("die"), "no 'die.name'"),
    (lambda m: m["recipe"]["settings"].pop("target"), "no 'recipe.settings.target.context'"),
    (lambda m: m["die"].update(path=5), "'die.path' is 5, not a str"),
    (lambda m: m.pop("figures"), "no 'figures.params'"),
])
def test_manifest_is_checked_in_one_place(chip, edit, message):
    man = json.loads((chip / "manifest.json").read_text())
    edit(man)
    (chip / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(UserError, match=re.escape(message)) as e:
        read_manifest(chip)
    assert "compile the chip again" in str(e.value)


def test_manifest_of_a_good_chip_reads(tiny_chip):
    assert read_manifest(tiny_chip)["recipe"]["settings"]["target"]["context"] == 128


# --- token counts and ids ----------------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["--tokens", "0"], "--tokens 0: nothing to generate; give 1 or more"),
    (["--tokens", "-5"], "--tokens -5: nothing to generate"),
    (["--prompt", "999", "--tokens", "2"], "prompt token id 999 is outside the model's 256-token vocabulary: give ids 0..255"),
    (["--prompt", "-1", "--tokens", "2"], "prompt token id -1 is outside"),
    (["--prompt", "1 2 256"], "prompt token id 256 is outside"),
    (["--tokens", "129"], "--tokens 129: 129 tokens exceed the chip's 128-token context"),
    (["--prompt", "1 2 3", "--tokens", "126"], "4-token prompt + 126 tokens exceed the chip's 128-token context"),
])
def test_emulate_refuses_tokens_it_cannot_run(tiny_chip, argv, message):
    res = cli("emulate", tiny_chip, *argv)
    assert_user_error(res, message)
    assert res.stdout.strip() == ""


def test_emulate_runs_up_to_the_last_position_of_the_context(tiny_chip):
    res = cli("emulate", tiny_chip, "--prompt", "1 2 3", "--tokens", "125")  # 4 + 125 - 1 = 128 positions
    assert res.returncode == 0 and len(res.stdout.split()) == 125, res.stderr[-2000:]


@pytest.mark.parametrize("argv, message", [
    (["--tokens", "-3"], "--tokens -3: nothing to generate"),
    (["--tokens", "0"], "--tokens 0: nothing to generate"),
    (["--prompt", "999"], "prompt token id 999 is outside the model's 256-token vocabulary"),
    (["--prompt", "-1"], "prompt token id -1 is outside"),
])
def test_generate_refuses_bad_tokens(argv, message):
    assert_user_error(cli("generate", "tiny-llama", *argv), message)


def test_check_tokens_against_the_chips_context(tiny_chip):
    """chip_dir.check_tokens: what verify and emulate run must fit the KV cache (128 positions)."""
    man = read_manifest(tiny_chip)
    check_tokens(man, 128)  # BOS + 127: 128 positions
    check_tokens(man, 1)
    for bad, message in [(0, "--tokens 0: nothing to run; give 1 or more"), (-3, "--tokens -3: nothing to run"),
                         (129, "exceed the chip's 128-token context"), (100_000, "give --tokens 128 or fewer")]:
        with pytest.raises(UserError, match=message):
            check_tokens(man, bad)
    with pytest.raises(UserError, match="10-token prompt"):
        check_tokens(man, 120, prompt=10)


@pytest.mark.parametrize("tokens, message", [("-3", "--tokens -3"), ("129", "--tokens 129: 129 tokens exceed the chip's 128-token context")])
def test_verify_refuses_tokens_beyond_the_context(chip, tokens, message):
    res = subprocess.run(check=False, args=["taalas-compile", "verify", str(chip), "--tokens", tokens], capture_output=True, text=True, timeout=120)
    assert_user_error(res, message)


@pytest.fixture
def stories(stories_path, tok512_path) -> list[str]:
    return ["stories260k", "-w", str(stories_path), "-t", str(tok512_path)]


@pytest.mark.parametrize("text, argv, message", [
    ("", [], "has no tokens to score"),
    ("Once upon a time", ["--context", "1"], "--context 1: a window holds BOS and at least one token to score; give 2 or more"),
    ("Once upon a time", ["--max-tokens", "0"], "--max-tokens 0: the text's BOS counts"),
])
def test_eval_refuses_what_it_cannot_score(tmp_path, stories, text, argv, message):
    (tmp_path / "t.txt").write_text(text)
    assert_user_error(cli("eval", *stories, "--text", tmp_path / "t.txt", *argv), message)


# --- plan --------------------------------------------------------------------------------------
@pytest.mark.parametrize("sub", ["", "sub"])
def test_plan_onto_a_file(tiny_chip, tmp_path, sub):
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    res = cli("plan", tiny_chip, "-o", f / sub if sub else f)
    assert_user_error(res, f"{f} is a file, not a directory: give --out a directory")
    assert f.read_text() == "mine"


@pytest.mark.parametrize("week", ["nan", "inf", "-3", "1e9"])
def test_plan_change_week_must_be_a_finite_week(tiny_chip, tmp_path, week):
    res = cli("plan", tiny_chip, "-o", tmp_path / "plan", "--change-week", week)
    assert_user_error(res, f"--change-week {float(week):g}: give a number of weeks from 0 to 10,000")
    assert not (tmp_path / "plan").exists()
