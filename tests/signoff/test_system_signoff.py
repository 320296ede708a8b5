"""Sign-off of a multi-die system: one deleted via on one die fails verify, naming that die (in the
JSON and in what the console script prints), and its exit code says so; `--die K` signs off one
die; a die whose I/O tile does not match the system netlist's link is a finding."""

from __future__ import annotations

import json
import shutil
import subprocess
import types

import pytest
from gds_edit import select_via

from taalas_compile.backend.netlist import read_netlist
from taalas_compile.plan.partition import Cut
from taalas_compile.signoff.findings import Findings
from taalas_compile.signoff.system import check_links, extracted_io, io_of
from taalas_compile.system.files import read_system
from taalas_compile.system.ir import system_of


def cli(*argv) -> subprocess.CompletedProcess:
    return subprocess.run(["taalas-compile", *map(str, argv)], check=False, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def damaged(system_chip, tmp_path_factory, geo):
    """The system with one select via of die 1 deleted (the die's manifest rehashed)."""
    out = tmp_path_factory.mktemp("damaged") / "m3"
    shutil.copytree(system_chip, out)
    netlist = json.loads((out / "die1" / "netlist.json").read_text())
    g, _, cell, ref, _ = select_via(out / "die1", netlist, "L1.k_proj.r0c0", 3, 10, geo)
    cell.remove(ref)
    g.save()
    return out


def test_a_deleted_via_on_one_die_fails_verify_naming_that_die(damaged):
    p = cli("verify", damaged, "--tokens", "4", "--json")
    assert p.returncode == 1, p.stderr[-3000:]
    res = json.loads(p.stdout)
    assert res["passed"] is False and res["counts"] == {"lvs.via_missing": 1}
    (v,) = res["violations"]
    assert v["die"] == 1 and v["message"].startswith("die 1: ") and v["where"] == "L1.k_proj.r0c0 cell (3, 10)", v
    assert [d["passed"] for d in res["dies"]] == [True, False, True]
    assert res["markers_dir"].endswith("die1")
    assert not json.loads((damaged / "die1" / "signoff" / "signoff.json").read_text())["passed"]  # the die's own markers


def test_the_printed_findings_name_the_die(damaged):
    p = cli("verify", damaged, "--die", "1", "--tokens", "2")
    assert p.returncode == 1
    text = " ".join(p.stdout.split())
    assert "lvs.via_missing" in text and "die 1: " in text and "FAILED" in text
    assert "die1/klayout_session.py" in text  # the markers to open are the failing die's


def test_one_die_signed_off_alone(damaged):
    p = cli("verify", damaged, "--die", "0", "--tokens", "4", "--json")
    assert p.returncode == 0, p.stdout[-3000:]
    res = json.loads(p.stdout)
    assert res["dies_checked"] == [0] and res["passed"]
    assert res["emulation"]["dies"]["0"]["exact"]


def test_a_die_out_of_range(system_chip):
    p = cli("verify", system_chip, "--die", "5")
    assert p.returncode == 2 and "--die 5: the system" in p.stderr and "dies 0..2" in p.stderr


def test_an_io_tile_that_does_not_match_its_link_is_a_finding(system_chip):
    s, _ = read_system(system_chip)
    pl, roms, _ = read_netlist(system_chip / "die1")
    ex = types.SimpleNamespace(roms={t.site: roms[t.name] for t in pl.tiles})
    io = extracted_io(pl, ex)
    assert io == io_of(pl)
    f = Findings()
    check_links(s, 1, io, f)
    assert f.count() == 0
    narrower = system_of(s.name, s.die, s.dim // 2, [Cut(d.index, d.blocks, {}) for d in s.dies])
    check_links(narrower, 1, io, f)
    (v,) = f.items
    assert v.category == "system.link" and "die 1" in v.message and "256" in v.message and "128" in v.message


def test_dies_too_large_to_read_whole_are_signed_off_block_by_block(system_ckpt, tmp_path, monkeypatch, capsys):
    """The path every hc1 die of a large system takes (over KLAYOUT_MAX_DIGITS digit cells): the
    OASIS masks read cell by cell, each block teacher-forced; the last die's logits judged."""
    from taalas_compile.inputs import resolve
    from taalas_compile.pipeline import CompileOptions, compile_chip
    from taalas_compile.signoff import system as S

    out = tmp_path / "m3"
    compile_chip(resolve(str(system_ckpt), None, None, "mini"), out, opts=CompileOptions(fmt="oasis"))
    monkeypatch.setattr(S, "KLAYOUT_MAX_DIGITS", 0)
    res = S.verify_system(out, tokens=4)
    assert res["passed"], res["violations"]
    dies = res["emulation"]["dies"]
    assert all(e["streamed"] for e in dies.values())
    assert [b["block"] for b in dies[1]["blocks"] if b["compared"]] == ["L1"] and all(b["exact"] for b in dies[1]["blocks"])
    assert dies[2]["greedy_match"] is not None and "reference_tokens" in dies[2]
    from taalas_compile.cli import show

    show.signoff(res)  # what verify prints for such a system
    text = " ".join(capsys.readouterr().out.split())
    assert "die 1, block by block, teacher-forced at every block boundary" in text and "PASSED" in text
