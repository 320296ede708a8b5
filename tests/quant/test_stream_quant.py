"""The streamed quantizer (quant/stream.py): the same codes as the whole-model path, layer by layer
from unit files, and the references read the very codes the blocks etch."""

import pickle
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch

from taalas_compile.frontend.lower import lower_args
from taalas_compile.inputs import calibration_of, resolve
from taalas_compile.model.perplexity import compare
from taalas_compile.quant.arith import quantize_activation
from taalas_compile.quant.bits import allocate_bits
from taalas_compile.quant.etched import read_unit
from taalas_compile.quant.reference import (
    build_quant_model,
    etched_codes,
    quantize_in_memory,
)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """tiny-llama with 1,200 random calibration token ids (4 windows of 256... as .ids)."""
    d = tmp_path_factory.mktemp("calib")
    ids = d / "calib.ids"
    g = torch.Generator().manual_seed(0)
    ids.write_text(" ".join(map(str, torch.randint(3, 256, (1200,), generator=g).tolist())))
    inp = resolve("tiny-llama", calib=ids)
    calib = calibration_of(inp)
    specs = allocate_bits(lower_args(inp.source.args), inp.recipe.quant, inp.die, None).specs
    return inp, calib, specs, d


def test_streamed_codes_equal_the_whole_model_path(calibrated, tmp_path):
    inp, calib, specs, _ = calibrated
    cfg = inp.recipe.quant
    whole = quantize_in_memory(inp.source, specs, cfg, calib, 8)
    etched, res = etched_codes(inp.source, specs, cfg, calib, 8, tmp_path, device="cpu")
    for name in specs:  # same windows, batches, float64 Hessians: bit for bit
        q = etched.tensor(name)
        assert (q.codes == whole[name].codes).all() and (q.scales == whole[name].scales).all(), name
    assert [u["unit"] for u in res.units] == ["embed", "layers.0", "layers.1", "head"]
    assert all(u["report"]["stream_rel_err"] > 0 for u in res.units[:3])
    # the quality from the two streams (head in bands, softmax online) is the whole models' on the windows
    with torch.no_grad():
        from taalas_compile.quant.calibrate import calib_model

        ref = compare(calib_model(inp.source), build_quant_model(inp.source, whole, 8), calib.tokens.tolist())
    for k in ("ppl_float", "ppl_quant", "kl", "top1_agreement"):
        assert res.quality[k] == pytest.approx(ref[k], rel=1e-4, abs=1e-6), k


def test_a_second_run_reuses_every_unit_file(calibrated, tmp_path):
    inp, calib, specs, _ = calibrated
    _, a = etched_codes(inp.source, specs, inp.recipe.quant, calib, 8, tmp_path, device="cpu")
    _, b = etched_codes(inp.source, specs, inp.recipe.quant, calib, 8, tmp_path, device="cpu")
    assert a.seconds and not b.seconds  # nothing computed the second time
    assert a.units == b.units and a.quality == b.quality


def test_killed_after_a_layer_resumes_at_the_next_with_the_same_bytes(calibrated, tmp_path):
    inp, calib, specs, _ = calibrated
    cfg = inp.recipe.quant
    _, whole = etched_codes(inp.source, specs, cfg, calib, 8, tmp_path / "a", device="cpu")

    def kill(unit):
        if unit == "layers.0":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        etched_codes(inp.source, specs, cfg, calib, 8, tmp_path / "b", device="cpu", on_unit=kill)
    assert len(list((tmp_path / "b").glob("unit-*"))) == 2 and len(list((tmp_path / "b").glob("state-*"))) == 1
    _, resumed = etched_codes(inp.source, specs, cfg, calib, 8, tmp_path / "b", device="cpu")
    assert sorted(resumed.seconds) == ["head", "layers.1"]  # embed and layers.0 were not recomputed
    assert resumed.units == whole.units  # same keys, same sha256 of every unit file
    for u in whole.units:
        name = f"unit-{u['key']}.safetensors"
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert resumed.quality == whole.quality


def test_block_jobs_carry_unit_file_paths_never_arrays(calibrated, tmp_path, monkeypatch):
    monkeypatch.setenv("TAALAS_CACHE", str(tmp_path / "cache"))
    from taalas_compile import pipeline

    inp = calibrated[0]
    c = pipeline.compile_ir(inp)
    jobs = pipeline.block_jobs(c, inp, "gds")
    layer = next(j for j in jobs if j.block == "L0")
    assert set(layer.files) == set(layer.specs) and all(Path(f).is_file() for f in layer.files.values())
    for j in jobs:
        for f in fields(j):
            v = getattr(j, f.name)
            assert not isinstance(v, (np.ndarray, torch.Tensor)), f.name
            if isinstance(v, dict):
                assert not any(isinstance(x, (np.ndarray, torch.Tensor, tuple)) for x in v.values()), f.name
        assert len(pickle.dumps(j.files)) < 4096
    # the ROM images come from the unit files: the tile codes are the streamed ones
    roms = {n: img for j in jobs for n, img in pipeline.block_images(j).items()}
    assert roms
    whole = read_unit(Path(layer.files[min(layer.files)]))
    assert min(layer.specs) in whole


def test_activation_quantization_is_the_die_formula():
    x = torch.randn(3, 5, 172) * 4
    x[..., :32] = 0  # a zero group quantizes to zeros
    qmax = 127
    xp = torch.nn.functional.pad(x, (0, -172 % 32)).reshape(3, 5, -1, 32)
    s = xp.abs().amax(-1, keepdim=True) / qmax
    want = (torch.where(s > 0, torch.round(xp / torch.where(s > 0, s, 1.0)), 0.0).clamp(-qmax, qmax) * s).reshape(3, 5, -1)[..., :172]
    assert torch.equal(quantize_activation(x, 32, 8), want)


def test_end_to_end_tuning_runs_on_the_streamed_codes(calibrated, tmp_path):
    inp, calib, specs, _ = calibrated
    cfg = inp.recipe.quant.model_copy(update={"tune_steps": 3, "tune_batch": 2})
    etched, res = etched_codes(inp.source, specs, cfg, calib, 8, tmp_path, device="cpu")
    assert "tune end to end" in res.seconds and res.quality["kl"] > 0
    base, _ = etched_codes(inp.source, specs, inp.recipe.quant, calib, 8, tmp_path, device="cpu")
    assert etched.files != base.files  # the tuned codes are their own unit files
    assert any((etched.tensor(n).scales != base.tensor(n).scales).any() for n in specs)
