"""The cost model: dies per wafer and yield by hand, every USD figure sourced, overrides by file
and by what-if, and no report citing a development folder."""

import math

import pytest

from taalas_compile.errors import UserError
from taalas_compile.plan.cost import dies_per_wafer, murphy_yield
from taalas_compile.plan.report import build_plan
from taalas_compile.plan.subject import load_subject
from taalas_compile.plan.whatif import plan_inputs
from taalas_compile.plan.write import make_plan

USD = ("custom_masks_usd", "base_mask_set_usd", "wafer_usd", "die_usd", "card_usd", "chip_usd_per_mtok", "gpu_usd_per_mtok")


@pytest.fixture(scope="module")
def stories():
    return load_subject("stories260k")


def test_dies_per_wafer_and_yield_by_hand():
    assert dies_per_wafer(300, 100) == math.floor(math.pi * 150**2 / 100 - math.pi * 300 / math.sqrt(200))  # 640
    assert murphy_yield(100, 0.1) == pytest.approx(((1 - math.exp(-0.1)) / 0.1) ** 2)
    assert murphy_yield(800, 0.1) < murphy_yield(100, 0.1)


def test_cost_figures_are_in_usd_and_sourced(stories):
    doc = build_plan(stories)
    f = {x["id"]: x for x in doc["cost"]["figures"]}
    for k in USD:
        assert f[k]["unit"] == "USD" and f[k]["value"] > 0 and f[k]["source"]["kind"] in ("computed", "cited", "assumption"), k
    for row in doc["cost"]["tables"]["parameters"]["rows"]:
        assert row[4].split(":")[0] in ("cited", "assumption"), row
    assert f["die_usd"]["value"] > f["die_silicon_usd"]["value"] and f["card_usd"]["value"] > f["die_usd"]["value"]
    assert "10x cheaper" in f["cost_ratio"]["source"]["ref"]


def test_cost_file_and_what_ifs_replace_parameters(stories, tmp_path):
    base = {x["id"]: x["value"] for x in build_plan(stories)["cost"]["figures"]}
    (tmp_path / "c.toml").write_text("wafer_usd = 18692\n")
    doc = build_plan(stories, inputs=plan_inputs(["clock_mhz=250", "mask_slip_weeks=2"], str(tmp_path / "c.toml")))
    f = {x["id"]: x for x in doc["cost"]["figures"]}
    assert f["wafer_usd"]["value"] == 18692 and f["wafer_usd"]["source"] == {"kind": "input", "ref": f"--cost {tmp_path / 'c.toml'}"}
    assert f["die_silicon_usd"]["value"] == pytest.approx(2 * base["die_silicon_usd"])
    clock = next(x for x in doc["performance"]["figures"] if x["id"] == "clock_mhz")
    assert clock["value"] == 250 and clock["source"]["kind"] == "input" and "--what-if clock_mhz=250" in clock["source"]["ref"]
    masks = next(t for t in doc["schedule"]["tasks"] if t["id"] == "masks0")
    assert masks["weeks"] == stories.die.fab.mask_weeks + 2 and masks["source"]["ref"] == "--what-if mask_slip_weeks=2"
    for bad in (["nope=1"], ["clock_mhz=fast"], ["jobs=0"], ["clock_mhz"]):
        with pytest.raises(UserError):
            plan_inputs(bad)
    (tmp_path / "bad.toml").write_text("wafer_dollars = 1\n")
    with pytest.raises(UserError, match="unknown key"):
        plan_inputs((), str(tmp_path / "bad.toml"))


def test_gpu_baseline_counts_kv_cache_and_activations(plan_70b):
    g = {x["id"]: x for x in plan_70b["baseline"]["figures"]}
    assert "KV" in g["gpu_count"]["label"] and "activations" in g["gpu_count"]["source"]["ref"]
    # 70.6 GB of FP8 weights + the KV cache of the sequences the chip serves, in 90% of 80 GB: more than one GPU
    assert g["gpu_count"]["value"] >= 2


def test_no_report_cites_a_development_folder(tiny_plan, plan_70b):
    for text in (tiny_plan[1]["plan.json"].read_text(), tiny_plan[1]["plan.md"].read_text(), tiny_plan[1]["plan.html"].read_text(),
                 str(plan_70b)):
        for folder in ("../shared", "shared/DOMAIN", "shared/seed", "DOMAIN.md"):
            assert folder not in text, folder


def test_make_plan_checks_what_ifs_before_the_analysis(tmp_path):
    with pytest.raises(UserError, match="what-if"):
        make_plan("llama-3.1-70b", what_if=("clock=1",), out=tmp_path)
