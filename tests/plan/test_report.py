"""plan.json: valid against docs/plan.schema.json, every figure sourced, reproducible; the
multi-die plan of llama-3.1-70b; plan.md and plan.html written from it."""

import datetime as dt
import json
from pathlib import Path

import jsonschema
import pytest

from taalas_compile.plan.write import make_plan

START = dt.date(2026, 12, 1)  # as in tests/plan/conftest.py
SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "plan.schema.json").read_text())


def sources(doc):
    """Every object in the document that holds a number for the reader, with its source."""
    for key in ("model", "fit", "partition", "performance", "capacity", "baseline", "cost", "masks", "schedule"):
        sec = doc[key]
        yield from ((f["label"], f["source"]) for f in sec["figures"])
        yield from ((t["title"], t["source"]) for t in sec.get("tables", {}).values())
    yield from ((t["label"], t["source"]) for t in doc["schedule"]["tasks"])
    yield from ((w["label"], w["source"]) for w in doc["schedule"]["whatif"])
    yield from (("advice", a["source"]) for a in doc["fit"]["advice"])
    yield ("floorplan", doc["floorplan"]["source"])


def check(doc):
    jsonschema.validate(doc, SCHEMA)
    for what, src in sources(doc):
        assert src["kind"] and src["ref"].strip(), what


def test_chip_plan_is_valid_sourced_and_reproducible(tiny_plan, tiny_chip, tmp_path):
    doc, paths = tiny_plan
    check(doc)
    assert doc["subject"] == {"kind": "chip", "name": "tiny-llama", "die": "mini", "dies": 1, "path": str(tiny_chip)}
    masks = {f["id"]: f for f in doc["masks"]["figures"]}
    assert masks["chip_gds_bytes"]["value"] == (tiny_chip / "chip.gds").stat().st_size and masks["chip_gds_bytes"]["source"]["kind"] == "measured"
    assert masks["compile_seconds"]["source"]["kind"] == "measured" and masks["oasis_bytes_estimate"]["value"] > 0
    assert doc["floorplan"]["image"] == "floorplan.png" and {b["block"] for b in doc["floorplan"]["dies"][0]["blocks"]} == {"head", "L0", "L1", "tail"}
    _, p2 = make_plan(str(tiny_chip), start=START, out=tmp_path)
    for name in ("plan.json", "plan.html", "plan.md"):
        assert paths[name].read_bytes() == p2[name].read_bytes(), name


def test_markdown_has_every_section_and_the_gantt(tiny_plan):
    md = tiny_plan[1]["plan.md"].read_text()
    for heading in ("## Fit", "## Floorplan", "## Performance", "## GPU serving baseline", "## Cost", "## Mask data", "## Schedule"):
        assert heading in md
    assert "```mermaid\ngantt" in md and ":crit, freeze, 2026-12-01, 7d" in md


def test_stories_chip_plans(stories_chip, tmp_path):
    doc, _ = make_plan(str(stories_chip), out=tmp_path)
    check(doc)
    assert doc["subject"]["name"] == "stories260k" and doc["fit"]["fits_one_die"]


def test_llama_3_1_70b_plans_onto_several_hc1_dies(plan_70b):
    doc = plan_70b
    check(doc)
    n = doc["subject"]["dies"]
    assert 2 <= n <= 12 and doc["subject"]["die"] == "hc1" and not doc["fit"]["fits_one_die"] and doc["fit"]["advice"]
    stages = doc["partition"]["tables"]["stages"]["rows"]
    assert stages[0][1] == "head" and stages[-1][2] == "tail" and sum(r[3] for r in stages) == 80
    blocks = [b["block"] for d in doc["floorplan"]["dies"] for b in d["blocks"]]
    assert blocks == ["head"] + [f"L{i}" for i in range(80)] + ["tail"]
    assert all(r[4] <= 3071 and r[5] <= 384 and r[6] <= 128 for r in stages)  # each stage fits an hc1 die
    assert max(r[4] for r in stages) - min(r[4] for r in stages[1:-1]) < 300  # middle stages even to about one layer
    p = {f["id"]: f for f in doc["performance"]["figures"]}
    stage_us = sum(r[5] for r in doc["performance"]["tables"]["stages"]["rows"])
    assert p["latency_us"]["value"] == pytest.approx(stage_us + p["link_latency_us"]["value"], rel=1e-6)
    assert p["link_latency_us"]["value"] > (n - 1) * 0.5 and p["link_latency_us"]["source"]["kind"] == "die"
    assert p["tokens_per_s_single"]["value"] < 17_000  # slower per user than the 8B on one die
    assert len([t for t in doc["schedule"]["tasks"] if t["id"].startswith("masks")]) == n
