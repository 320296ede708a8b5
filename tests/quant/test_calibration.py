"""Calibration input, the no-calibration fallback, and what the manifest records about both."""

import json

import pytest
import torch

from taalas_compile.config.recipe import load_recipe
from taalas_compile.errors import UserError
from taalas_compile.inputs import calib_source, calibration_of, resolve
from taalas_compile.quant.calibrate import calibration_windows, load_calibration
from taalas_compile.reference import build_references


def test_windows_are_bos_plus_a_disjoint_span_and_drop_the_partial_tail():
    stream = list(range(100, 200))
    w = calibration_windows(stream, 1, 40, 30, 8)  # tokens 40..69 -> 4 windows of BOS + 7
    assert w.shape == (4, 8) and (w[:, 0] == 1).all()
    assert w[:, 1:].reshape(-1).tolist() == stream[40:68]
    with pytest.raises(UserError, match="at least 7 tokens"):
        calibration_windows(stream, 1, 98, 30, 8)


def test_token_id_files_and_missing_files(tmp_path):
    ids = tmp_path / "calib.ids"
    ids.write_text(" ".join(str(i % 200) for i in range(300)))
    c = load_calibration(ids, None, 0, 300, 16, 1)
    assert c.source == "ids" and c.tokens.shape == (20, 16)  # 300 tokens = 20 windows of BOS + 15
    with pytest.raises(UserError, match="calibration file not found"):
        load_calibration(tmp_path / "nope.txt", None, 0, 10, 8, 1)
    with pytest.raises(UserError, match="needs --tokenizer"):
        (tmp_path / "t.txt").write_text("hello")
        load_calibration(tmp_path / "t.txt", None, 0, 10, 8, 1)


def test_recipe_without_calibration_needs_none():
    assert calib_source(load_recipe("tiny-llama"), None) is None  # gptq asked, no data: the RTN fallback
    r = load_recipe("tiny-llama").model_copy(update={"quant": load_recipe("tiny-llama").quant.model_copy(update={"method": "rtn"})})
    assert calib_source(r, None) is None


def test_synthetic_model_falls_back_to_rtn_and_says_so(tiny_chip):
    man = json.loads((tiny_chip / "manifest.json").read_text())
    assert man["quant"]["method"] == "rtn" and man["calibration"] is None and man["quant"]["quality"] is None
    assert any("no calibration data" in n for n in man["quant"]["notes"])
    assert all(t["group"] == 32 for t in man["quant"]["tensors"].values())


def test_gptq_on_calibration_ids_is_reproducible(tmp_path, monkeypatch):
    monkeypatch.setenv("TAALAS_CACHE", "off")  # really quantize twice
    ids = tmp_path / "calib.ids"
    g = torch.Generator().manual_seed(0)
    ids.write_text(" ".join(map(str, torch.randint(3, 256, (1200,), generator=g).tolist())))
    inp = resolve("tiny-llama", calib=ids)
    assert inp.calib is not None and calibration_of(inp).tokens.shape[1] == 256
    a, b = build_references(inp), build_references(inp)
    assert a.allocation.method == "gptq" and not a.allocation.notes
    for name in a.qweights:
        assert (a.qweights[name].codes == b.qweights[name].codes).all()
        assert (a.qweights[name].scales == b.qweights[name].scales).all()


def test_compiled_stories_chip_records_its_calibration_and_allocation(stories_chip):
    man = json.loads((stories_chip / "manifest.json").read_text())
    cal = man["calibration"]
    assert cal["source"] == "text" and cal["start_token"] == 40000 and len(cal["sha256"]) == 64
    assert (stories_chip / cal["path"]).resolve().is_file()
    q = man["quant"]
    assert q["policy"] == "measured" and q["method"] == "gptq" and q["budget_bits"] == 4.0
    assert man["figures"]["bits_per_weight"] <= 4.0
    assert {t["bits"] for t in q["tensors"].values()} == {3, 6} and all("sensitivity_kl" in t for t in q["tensors"].values())
    assert q["quality"]["on"] == "calibration windows" and q["quality"]["ppl_quant"] > q["quality"]["ppl_float"]
