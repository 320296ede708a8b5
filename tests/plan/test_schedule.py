"""The schedule: durations from the die's [fab] weeks and the chip's measured times, critical path,
what-if scenarios — checked by hand against the task graph."""

import datetime as dt
import math

import pytest

from taalas_compile.plan.masks import times, workers
from taalas_compile.plan.schedule import WEEK_S, schedule, schedule_section, task_graph
from taalas_compile.plan.subject import load_subject
from taalas_compile.plan.time_model import MODEL
from taalas_compile.plan.whatif import PlanInputs


@pytest.fixture(scope="module")
def tiny(tiny_chip):
    return load_subject(str(tiny_chip))


def test_durations_come_from_fab_and_the_measured_compile(tiny, tiny_chip):
    g = task_graph(tiny)
    f = tiny.die.fab
    assert [g.nodes[n]["weeks"] for n in ("freeze", "masks0", "process0", "package0", "bring_up")] == \
        [f.freeze_weeks, f.mask_weeks, f.process_weeks, f.package_test_weeks, f.bring_up_weeks]
    assert g.nodes["compile0"]["source"]["kind"] == "measured" and "run.json" in g.nodes["compile0"]["source"]["ref"]
    assert g.nodes["compile0"]["weeks"] == pytest.approx(math.fsum(tiny.run["seconds"].values()) / WEEK_S)
    # not verified yet: the sign-off time comes from the calibrated time model and says so
    assert g.nodes["verify0"]["source"]["kind"] == "estimate" and "plan/time_model.py" in g.nodes["verify0"]["source"]["ref"]
    digits = tiny.fit(tiny.stages[0])["digits_total"]
    assert g.nodes["verify0"]["weeks"] == pytest.approx(MODEL.verify_seconds(digits, workers(PlanInputs())) / WEEK_S)


def test_one_die_is_one_chain_all_critical(tiny):
    g = task_graph(tiny)
    sch = schedule(g)
    f = tiny.die.fab
    t = times(tiny)[0]
    c_v = (t["compile"][0] + t["verify"][0]) / WEEK_S
    assert sch["finish"] == pytest.approx(f.freeze_weeks + c_v + f.mask_weeks + f.process_weeks + f.package_test_weeks + f.bring_up_weeks)
    assert sch["critical"] == set(g.nodes)


def test_dates_and_whatifs(tiny):
    sec = schedule_section(tiny, dt.date(2026, 12, 1), change_week=3)
    base = sec["figures"][0]["value"]
    tasks = {t["id"]: t for t in sec["tasks"]}
    assert tasks["freeze"]["start_date"] == "2026-12-01" and tasks["freeze"]["end_date"] == "2026-12-08"  # one week
    w = {x["id"]: x for x in sec["whatif"]}
    t = times(tiny)[0]
    c, v = t["compile"][0] / WEEK_S, t["verify"][0] / WEEK_S
    f = tiny.die.fab
    assert w["model_change"]["delay_weeks"] == pytest.approx(3)
    assert "model freeze" in w["model_change"]["how"] and "mask making" in w["model_change"]["how"]  # begun before week 3
    assert w["signoff_respin"]["delay_weeks"] == pytest.approx(f.fix_weeks + c + v, abs=1e-6)
    assert w["silicon_respin"]["delay_weeks"] == pytest.approx(f.fix_weeks + c + v + f.mask_weeks + f.process_weeks + f.package_test_weeks + f.bring_up_weeks, abs=1e-6)
    # the second chip's compile queues behind the first; its sign-off behind both
    assert w["second_die"]["delay_weeks"] == pytest.approx(max(c, v), abs=1e-6)
    assert w["model_change"]["finish_week"] == pytest.approx(base + 3, abs=1e-6)


def test_without_start_there_are_no_dates(tiny):
    sec = schedule_section(tiny, None, 4)
    assert all(t["start_date"] is None for t in sec["tasks"]) and sec["figures"][2]["value"] == f"week {sec['figures'][0]['value']:.1f}"
