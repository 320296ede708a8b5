"""The compile pipeline writes its output directory whole or not at all."""

import shutil
from pathlib import Path

import pytest

from taalas_compile import pipeline
from taalas_compile.inputs import resolve


def snapshot(d):
    return {p.relative_to(d): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_a_crash_while_writing_leaves_the_previous_output_intact(tiny_chip, tmp_path, monkeypatch):
    out = tmp_path / "tiny-llama"
    shutil.copytree(tiny_chip, out)
    (out / "signoff").mkdir(exist_ok=True)
    (out / "signoff" / "signoff.json").write_text("{}")
    before = snapshot(out)

    def crash(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(pipeline, "write_netlist", crash)
    with pytest.raises(OSError, match="disk full"):
        pipeline.compile_chip(resolve("tiny-llama"), out)
    assert snapshot(out) == before

    monkeypatch.undo()
    pipeline.compile_chip(resolve("tiny-llama"), out)
    assert not (out / "signoff").exists()  # a sign-off of the old masks does not survive new ones
    after = snapshot(out)
    for name in ("chip.gds", "netlist.json", "roms.safetensors", "manifest.json"):
        assert after[Path(name)] == before[Path(name)]  # same inputs, same bytes
    assert [p.name for p in tmp_path.iterdir()] == ["tiny-llama"]  # no staging leftovers
