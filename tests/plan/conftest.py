"""Plans shared by the plan tests, each made once per session."""

import datetime as dt

import pytest

START = dt.date(2026, 12, 1)


@pytest.fixture(scope="session")
def tiny_plan(tiny_chip, tmp_path_factory):
    """(plan.json document, written paths) of the compiled tiny-llama chip."""
    from taalas_compile.plan.write import make_plan

    return make_plan(str(tiny_chip), start=START, out=tmp_path_factory.mktemp("plan") / "tiny")


@pytest.fixture(scope="session")
def plan_70b():
    """The plan document of the llama-3.1-70b recipe (several hc1 dies)."""
    from taalas_compile.plan.report import build_plan
    from taalas_compile.plan.subject import load_subject

    return build_plan(load_subject("llama-3.1-70b"), START)
