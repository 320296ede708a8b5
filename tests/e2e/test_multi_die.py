"""A model larger than one die, end to end through the console script: a 2.2 M-parameter Llama
(written here as a Hugging Face checkpoint) on the mini die compiles into a system of three dies;
verify passes; emulate prints what `generate --precision quant` prints; `--only-die K` for each K
assembles into the bytes of one whole compile; the system's errors are one line each."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from taalas_compile.files import sha256_file

PROMPT = "Once upon a time"


def cli(*argv, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(["taalas-compile", *map(str, argv)], check=False, capture_output=True, text=True, cwd=cwd, timeout=900)


def one_error_line(p: subprocess.CompletedProcess) -> str:
    assert p.returncode == 2, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    assert "Traceback" not in p.stderr + p.stdout
    (line,) = [ln for ln in p.stderr.splitlines() if ln.startswith("error: ")]
    return line


def files_of(d: Path) -> dict[str, str]:
    """Every file under `d` but the run log (run.json: times) and sign-off results, with its sha256."""
    return {str(p.relative_to(d)): sha256_file(p) for p in sorted(d.rglob("*"))
            if p.is_file() and p.name != "run.json" and "signoff" not in p.parts}


@pytest.fixture(scope="module")
def whole(tmp_path_factory, system_ckpt) -> Path:
    out = tmp_path_factory.mktemp("whole") / "sys"
    p = cli(system_ckpt, "--die", "mini", "-o", out)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "as a system of 3 mini dies" in " ".join(p.stdout.split())
    return out


def test_a_model_larger_than_the_die_compiles_into_a_system(whole):
    doc = json.loads((whole / "system.json").read_text())
    net = json.loads((whole / "system-netlist.json").read_text())
    assert [d["dir"] for d in doc["dies"]] == ["die0", "die1", "die2"]
    blocks = [b for d in doc["dies"] for b in d["blocks"]]
    assert blocks == ["head", "L0", "L1", "L2", "tail"]
    for d in doc["dies"]:  # each die: what a single-die compile writes, its manifest naming its place
        man = json.loads((whole / d["dir"] / "manifest.json").read_text())
        assert man["system"] == {"die": d["index"], "dies": 3, "blocks": d["blocks"]}
        assert {"chip.gds", "netlist.json", "graph.json", "recipe.toml", "chip.overview.oas", "floorplan.png"} <= {p.name for p in (whole / d["dir"]).iterdir()}
        assert man["die"]["name"] == "mini" and man["die"]["sha256"] == doc["die"]["sha256"]
    assert [(lk["from"]["die"], lk["to"]["die"], lk["values"], lk["bytes_per_token"]) for lk in net["links"]] == [(0, 1, 256, 1024), (1, 2, 256, 1024)]
    assert net["token_in"]["die"] == 0 and net["token_out"]["die"] == 2


def test_verify_passes(whole):
    p = cli("verify", whole, "--tokens", "4", "--json")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    res = json.loads(p.stdout)
    assert res["passed"] and res["dies_checked"] == [0, 1, 2]
    emu = res["emulation"]
    assert emu["dies"]["2"]["exact"] and all(emu["dies"][k]["exact"] for k in ("0", "1"))
    assert emu["system"]["chained"]["exact"]
    for k in range(3):  # each die's own sign-off, as a chip's
        assert json.loads((whole / f"die{k}" / "signoff" / "signoff.json").read_text())["passed"]


def test_emulate_prints_what_generate_prints(whole, system_ckpt):
    emu = cli("emulate", whole, "--prompt", PROMPT, "--tokens", "12")
    gen = cli("generate", system_ckpt, "--die", "mini", "--prompt", PROMPT, "--tokens", "12", "--precision", "quant")
    assert emu.returncode == 0 and gen.returncode == 0, emu.stderr + gen.stderr
    assert emu.stdout.strip() and emu.stdout == gen.stdout


def test_emulate_timing_counts_the_links(whole):
    p = cli("emulate", whole, "--prompt", PROMPT, "--tokens", "4", "--timing")
    assert p.returncode == 0, p.stderr
    assert "3 dies" in p.stdout and "links" in p.stdout, p.stdout


def test_only_die_for_each_die_assembles_into_the_whole_compile(system_ckpt, tmp_path):
    for k in range(3):  # each die on its own "machine": a directory of its own, at the same depth
        p = cli(system_ckpt, "--die", "mini", "-o", tmp_path / f"machine{k}" / "sys", "--only-die", k)
        assert p.returncode == 0, p.stderr[-3000:]
        assert {e.name for e in (tmp_path / f"machine{k}" / "sys").iterdir()} == {"system.json", "system-netlist.json", f"die{k}"}
    assembled = tmp_path / "assembled" / "sys"
    assembled.mkdir(parents=True)
    for k in range(3):
        for e in (tmp_path / f"machine{k}" / "sys").iterdir():
            (shutil.copytree if e.is_dir() else shutil.copyfile)(e, assembled / e.name, **({"dirs_exist_ok": True} if e.is_dir() else {}))
    at_once = tmp_path / "whole" / "sys"  # the same depth, so the input paths recorded relative to it read the same
    assert cli(system_ckpt, "--die", "mini", "-o", at_once).returncode == 0
    assert files_of(assembled) == files_of(at_once)


def test_only_die_keeps_the_other_dies(system_chip, system_ckpt, tmp_path):
    out = tmp_path / "sys"
    shutil.copytree(system_chip, out)
    before = files_of(out / "die0")
    p = cli(system_ckpt, "--die", "mini", "-o", out, "--only-die", 2)
    assert p.returncode == 0, p.stderr[-3000:]
    assert files_of(out / "die0") == before and (out / "die1" / "manifest.json").is_file()


def test_only_die_out_of_range_and_on_a_one_die_model(system_ckpt, tmp_path):
    line = one_error_line(cli(system_ckpt, "--die", "mini", "-o", tmp_path / "a", "--only-die", 3))
    assert "--only-die 3" in line and "3 mini dies (0..2)" in line
    line = one_error_line(cli("tiny-llama", "-o", tmp_path / "b", "--only-die", 0))
    assert "fits one mini die" in line


def test_dies_asked_for_in_the_recipe(system_ckpt, tmp_path):
    recipe = tmp_path / "r.toml"
    assert cli("recipe", system_ckpt, "--die", "mini", "-o", recipe).returncode == 0
    text = recipe.read_text().replace("[target]\n", "[target]\ndies = 9\n")
    (tmp_path / "r9.toml").write_text(text)
    line = one_error_line(cli(tmp_path / "r9.toml", "--weights", system_ckpt, "-o", tmp_path / "o"))
    assert "dies = 9" in line and "5 layer blocks" in line


def test_a_system_missing_a_die(system_chip, tmp_path):
    out = tmp_path / "sys"
    shutil.copytree(system_chip, out)
    shutil.rmtree(out / "die1")
    for cmd in (("verify", out), ("emulate", out, "--prompt", PROMPT), ("plan", out)):
        line = one_error_line(cli(*cmd))
        assert "die 1 is missing" in line and "--only-die 1" in line, line


def test_a_system_of_different_base_dies(system_chip, tmp_path):
    out = tmp_path / "sys"
    shutil.copytree(system_chip, out)
    man_path = out / "die2" / "manifest.json"
    man = json.loads(man_path.read_text())
    man["die"] |= {"name": "hc1", "sha256": "0" * 64}
    man_path.write_text(json.dumps(man))
    line = one_error_line(cli("verify", out))
    assert "die 2 was compiled for base die hc1" in line and "same base die" in line


def test_a_die_without_a_link_cannot_be_one_of_several(system_ckpt, tmp_path):
    from taalas_compile.paths import DIES_DIR

    text = (DIES_DIR / "mini.toml").read_text()
    die = tmp_path / "nolink.toml"
    die.write_text(text[: text.index("[link]")].replace('name = "mini"', 'name = "nolink"'))
    line = one_error_line(cli(system_ckpt, "--die", die, "-o", tmp_path / "o"))
    assert "has no [link]" in line and "3 dies" in line


def test_verify_of_one_die_directory_points_at_the_system(system_chip):
    line = one_error_line(cli("verify", system_chip / "die1"))
    assert f"die 1 of the system in {system_chip}" in line and "--die 1" in line


def test_plan_of_a_system(system_chip, tmp_path):
    out = tmp_path / "sys"
    shutil.copytree(system_chip, out)
    p = cli("plan", out)
    assert p.returncode == 0, p.stderr[-2000:]
    plan = json.loads((out / "plan" / "plan.json").read_text())
    assert plan["partition"]["dies"] == 3
