"""A Hugging Face checkpoint directory given alone, as a user runs it (the console script), and the
Python API on the same weights: same chip, signed off, emulate prints what generate prints."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from hf_checkpoints import SHAPES, WIDE, write_checkpoint, write_config

import taalas_compile as tc
from taalas_compile.files import sha256_file

PROMPT = "Once upon a time"


def cli(*argv, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run(["taalas-compile", *map(str, argv)], check=False, capture_output=True, text=True, timeout=timeout)


def chip_files(d: Path) -> dict[str, str]:
    """sha256 of what makes the chip (the manifest records paths, which differ)."""
    names = ["chip.gds", "netlist.json", "graph.json", *(f"roms/{p.name}" for p in sorted((d / "roms").iterdir()))]
    return {n: sha256_file(d / n) for n in names}


def same_recipe_but_where(a: Path, b: Path) -> bool:
    """recipe.toml of two chips alike but for the checkpoint and tokenizer paths they name."""
    def strip(d: Path) -> list[str]:
        return [ln for ln in (d / "recipe.toml").read_text().splitlines() if not ln.startswith(("weights_hint", "hint", "# The same"))]
    return strip(a) == strip(b)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """Tied, GQA, bf16, sharded, with tokenizer.json and BOS/EOS ids in config.json."""
    args, dtype, shards = SHAPES["tied-bf16-sharded"]
    return write_checkpoint(tmp_path_factory.mktemp("hf") / "my-llama", args, dtype, shards)


@pytest.fixture(scope="module")
def chip(ckpt, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "my-llama"
    p = cli(ckpt, "-o", out)
    assert p.returncode == 0, p.stderr
    return out


def test_a_directory_alone_compiles_on_mini_and_states_its_recipe(chip, ckpt):
    man = json.loads((chip / "manifest.json").read_text())
    assert man["die"]["name"] == "mini" and man["recipe"]["name"] == "my-llama"
    assert man["recipe"]["path"] == "recipe.toml" and man["recipe"]["sha256"] == sha256_file(chip / "recipe.toml")
    assert len(man["weights"]["files"]) > 1 and man["tokenizer"] and man["bos_id"] == 0  # sharded; BOS from config.json
    assert any("no calibration data" in n for n in man["quant"]["notes"])
    assert f'weights_hint = "{ckpt.resolve()}"' in (chip / "recipe.toml").read_text()


def test_verify_passes(chip):
    res = tc.verify(chip, tokens=4)
    assert res["passed"], [c for c in res["checks"] if not c["passed"]]


def test_emulate_prints_what_generate_prints(chip, ckpt, capsys):
    from taalas_compile.cli.app import main

    emu = cli("emulate", chip, "--prompt", PROMPT, "--tokens", "10")
    with pytest.raises(SystemExit) as e:  # in-process: the console script's start once is enough
        main(["generate", str(ckpt), "--prompt", PROMPT, "--tokens", "10", "--precision", "quant"])
    assert emu.returncode == e.value.code == 0, emu.stderr
    assert emu.stdout.startswith(PROMPT) and emu.stdout == capsys.readouterr().out
    assert tc.emulate(chip, PROMPT, tokens=10).expandtabs() == emu.stdout.rstrip("\n")  # the terminal shows a tab as spaces


def test_api_with_our_llama_makes_the_same_chip(chip, ckpt, tmp_path):
    from taalas_compile.model import build_model, open_weights

    model = build_model(open_weights("hf", ckpt))  # float32 copies of the bf16 weights: the same values
    out = tc.compile_model(model, tokenizer=ckpt / "tokenizer.json", out=tmp_path / "my-llama")
    assert chip_files(out) == chip_files(chip) and same_recipe_but_where(out, chip)
    assert (tmp_path / "my-llama.checkpoint" / "config.json").is_file()


def test_api_never_replaces_a_directory_it_did_not_write(ckpt, tmp_path):
    from taalas_compile.errors import UserError
    from taalas_compile.model import build_model, open_weights

    mine = tmp_path / "my-llama.checkpoint"
    mine.mkdir()
    (mine / "notes.txt").write_text("user data")
    with pytest.raises(UserError, match="did not write"):
        tc.compile_model(build_model(open_weights("hf", ckpt)), out=tmp_path / "my-llama")
    assert (mine / "notes.txt").read_text() == "user data" and not (tmp_path / "my-llama").exists()


def test_api_with_transformers_makes_the_same_chip(chip, ckpt, tmp_path):
    transformers = pytest.importorskip("transformers")
    model = transformers.LlamaForCausalLM.from_pretrained(ckpt, dtype=torch.bfloat16)
    out = tc.compile_model(model, tokenizer=ckpt / "tokenizer.json", out=tmp_path / "my-llama")
    assert chip_files(out) == chip_files(chip) and same_recipe_but_where(out, chip)


def test_a_model_no_shipped_die_holds_is_one_line_and_exit_2(tmp_path):
    p = cli(write_config(tmp_path / "wide", WIDE), "-o", tmp_path / "out")
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error: ")]
    assert p.returncode == 2 and len(errors) == 1 and "Traceback" not in p.stderr, p.stderr
    assert "(39.01 B parameters at 4.99 bits/weight, 2,048-token KV cache) needs 13,372 MAC tiles;" in errors[0]
    assert "the largest shipped die, hc1, has 3,071 MAC tiles" in errors[0] and "--die FILE" in errors[0]
    assert "pass --die hc1 to compile it as a system of several hc1 dies" in errors[0]
    assert not (tmp_path / "out").exists()
