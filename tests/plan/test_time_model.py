"""The compile/verify time model against the measured runs it is calibrated on (fresh runs of the
small chips on this machine: benchmarks/time_model.py, a timing, so not in the suite)."""

import json

import pytest

from taalas_compile.plan.report import build_plan
from taalas_compile.plan.subject import load_subject
from taalas_compile.plan.time_model import (
    BIG_COMPILE,
    BIG_DIGITS,
    BIG_LAYER_QUANT,
    BIG_VERIFY,
    MODEL,
)

FACTOR = 3  # the bound: estimates within 3x of what this machine measures


def within(estimate, measured):
    return measured / FACTOR <= estimate <= measured * FACTOR


def figures(recipe):
    return {f["id"]: f for f in build_plan(load_subject(recipe))["masks"]["figures"]}


def test_llama_3_1_8b_within_3x_of_the_measured_runs():
    gm = lambda ms: (ms[0].wall_s * ms[1].wall_s) ** 0.5
    assert within(MODEL.compile_seconds(BIG_DIGITS, 2), BIG_COMPILE.wall_s)
    for m in BIG_VERIFY:
        assert within(MODEL.verify_seconds(BIG_DIGITS, 2), m.wall_s)
    layer = MODEL.quantize_seconds(1, 218_103_808, 0, 16_384, 0, 0, 0)
    assert all(within(layer, m.wall_s) for m in BIG_LAYER_QUANT) and layer == pytest.approx(gm(BIG_LAYER_QUANT), rel=1e-6)
    # half the workers: the per-digit parts take twice as long
    assert MODEL.compile_seconds(BIG_DIGITS, 1) - MODEL.compile_start_s == pytest.approx(2 * (BIG_COMPILE.wall_s - MODEL.compile_start_s))


def test_a_verified_chip_is_planned_from_its_own_times(tiny_plan, tiny_chip):
    f = {x["id"]: x for x in tiny_plan[0]["masks"]["figures"]}
    run = json.loads((tiny_chip / "run.json").read_text())
    assert f["compile_seconds"]["source"]["kind"] == "measured" and f["compile_seconds"]["value"] == pytest.approx(sum(run["seconds"].values()), rel=1e-5)
    assert tiny_plan[0]["masks"]["tables"]["time_model"]["rows"]  # the measurements with their commands
