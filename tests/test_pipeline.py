"""The compile pipeline writes its output directory whole or not at all, resumes an interrupted
compile from its finished blocks, and gives the same bytes on any executor."""

import json
import shutil
from pathlib import Path

import pytest

from taalas_compile import pipeline
from taalas_compile.executor import ExecutorCfg
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
    for name in ("chip.gds", "netlist.json", "roms/L0.safetensors", "manifest.json"):
        assert after[Path(name)] == before[Path(name)]  # same inputs, same bytes
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == ["tiny-llama"]  # no staging leftovers


OUTPUTS = ("chip.gds", "netlist.json", "manifest.json", "roms/L0.safetensors", "roms/tail.safetensors")


def same_outputs(a: Path, b: Path) -> None:
    for name in OUTPUTS:
        assert (a / name).read_bytes() == (b / name).read_bytes(), f"{name} differs"


def test_two_local_workers_give_the_same_bytes(tiny_chip, tmp_path):
    out = tmp_path / "tiny-llama"
    pipeline.compile_chip(resolve("tiny-llama"), out, opts=pipeline.CompileOptions(executor=ExecutorCfg(jobs=2)))
    same_outputs(tiny_chip, out)


def test_without_jobs_a_small_model_compiles_in_this_process(tiny_chip, tmp_path):
    out = tmp_path / "tiny-llama"
    pipeline.compile_chip(resolve("tiny-llama"), out, opts=pipeline.CompileOptions(executor=ExecutorCfg(jobs=None)))
    assert json.loads((out / "run.json").read_text())["executor"] == "this process"  # volume.auto_jobs
    same_outputs(tiny_chip, out)


def test_a_dask_cluster_gives_the_same_bytes(tiny_chip, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None,
                                  processes=True) as cluster:
        out = tmp_path / "tiny-llama"
        ex = ExecutorCfg(kind="dask", scheduler=cluster.scheduler_address)
        pipeline.compile_chip(resolve("tiny-llama"), out, opts=pipeline.CompileOptions(executor=ex))
    same_outputs(tiny_chip, out)


def test_an_interrupted_compile_resumes_from_its_finished_blocks(tiny_chip, tmp_path, monkeypatch):
    out = tmp_path / "tiny-llama"
    run_block, calls = pipeline.run_block, []

    def interrupted(job, cache):
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C (or a killed worker) after three blocks
        calls.append(job.block)
        return run_block(job, cache)

    monkeypatch.setattr(pipeline, "run_block", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pipeline.compile_chip(resolve("tiny-llama"), out)
    assert not out.exists() and (tmp_path / ".tiny-llama.blocks").is_dir()

    monkeypatch.undo()
    pipeline.compile_chip(resolve("tiny-llama"), out)
    blocks = json.loads((out / "run.json").read_text())["blocks"]
    assert [b["block"] for b in blocks if b["reused"]] == calls  # the three finished blocks, not recomputed
    assert not any(b["reused"] for b in blocks[3:])
    same_outputs(tiny_chip, out)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["tiny-llama"]  # the block cache is gone once complete


def test_a_block_from_other_inputs_is_not_reused(tmp_path):
    from taalas_compile.paths import RECIPES_DIR

    inp = resolve("tiny-llama")
    c = pipeline.compile_ir(inp)
    keys = [j.key for j in pipeline.block_jobs(c, inp, "gds")]
    assert keys == [j.key for j in pipeline.block_jobs(pipeline.compile_ir(inp), inp, "gds")]  # same inputs, same keys
    assert set(keys).isdisjoint(j.key for j in pipeline.block_jobs(c, inp, "oasis"))  # another mask format
    reseeded = tmp_path / "tiny-reseeded.toml"
    reseeded.write_text((RECIPES_DIR / "tiny-llama.toml").read_text().replace("seed = 1234", "seed = 1235"))
    other = resolve(str(reseeded))
    other_keys = [j.key for j in pipeline.block_jobs(pipeline.compile_ir(other), other, "gds")]
    assert all(a != b for a, b in zip(keys[1:], other_keys[1:]))  # other weights: every block but the I/O


def test_a_calibrated_compile_killed_after_a_layer_resumes_at_the_next_one(tmp_path, monkeypatch):
    """The streamed quantizer's unit files survive a killed compile (`.NAME.quant/` with the cache
    off); the rerun quantizes only the units after the last one written and gives the same bytes."""
    import torch

    monkeypatch.setenv("TAALAS_CACHE", "off")
    ids = tmp_path / "calib.ids"
    ids.write_text(" ".join(map(str, torch.randint(3, 256, (1200,), generator=torch.Generator().manual_seed(0)).tolist())))
    inp = resolve("tiny-llama", calib=ids)
    whole = tmp_path / "a" / "tiny-llama"
    pipeline.compile_chip(inp, whole)

    def kill(unit):
        if unit == "layers.0":
            raise KeyboardInterrupt  # Ctrl-C, or the process killed, after layer 0's file is written

    out = tmp_path / "b" / "tiny-llama"
    with pytest.raises(KeyboardInterrupt):
        pipeline.compile_chip(inp, out, opts=pipeline.CompileOptions(on_unit=kill))
    assert not out.exists() and len(list((tmp_path / "b" / ".tiny-llama.quant").glob("unit-*"))) == 2
    pipeline.compile_chip(inp, out)
    units = json.loads((out / "run.json").read_text())["quantize"]["units"]
    assert [u["unit"] for u in units if u["reused"]] == ["embed", "layers.0"]
    assert [u["unit"] for u in units if not u["reused"]] == ["layers.1", "head"]
    same_outputs(whole, out)
    assert (whole / "manifest.json").read_bytes() == (out / "manifest.json").read_bytes()
    assert sorted(p.name for p in (tmp_path / "b").iterdir() if not p.name.endswith(".lock")) == ["tiny-llama"]  # unit files gone once complete
