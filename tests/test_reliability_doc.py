"""docs/reliability.md is what benchmarks/reliability.py writes: one row per case, in order, with
the exit code the case expects (the script itself checks each against the console script)."""

import importlib.util
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_cases():
    spec = importlib.util.spec_from_file_location("reliability", ROOT / "benchmarks" / "reliability.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["reliability"] = mod  # dataclasses look their module up while the class is made
    spec.loader.exec_module(mod)
    return mod.CASES


def test_the_doc_lists_every_case_with_its_expected_exit_code():
    cases = load_cases()
    text = (ROOT / "docs" / "reliability.md").read_text()
    table = text[text.index("| # | command |"):]
    rows = [ln for ln in table.splitlines() if re.match(r"\| \d+ \|", ln)]
    assert len(cases) >= 40 and len(rows) == len(cases)
    for case, row in zip(cases, rows):
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        assert cells[1] == case.area and cells[2] == case.what, row
        assert cells[3] in (str(case.code), ""), row  # "": skipped where it needs root
        assert "Traceback" not in row
