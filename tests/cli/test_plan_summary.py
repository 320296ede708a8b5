"""`taalas-compile plan` on an 80-column pipe (COLUMNS=80, stdout not a terminal): every figure's
value is printed in full and no line is wider than 80 columns."""

import json
import os
import shutil
import subprocess

from taalas_compile.cli.show import PLAN_SECTIONS
from taalas_compile.plan.render import value_text


def test_summary_shows_every_value_at_80_columns(tmp_path):
    env = dict(os.environ, COLUMNS="80")
    env.pop("FORCE_COLOR", None)
    p = subprocess.run([shutil.which("taalas-compile"), "plan", "llama-3.1-8b", "-o", str(tmp_path)], env=env, capture_output=True, text=True, timeout=300, check=True)
    doc = json.loads((tmp_path / "plan.json").read_text())
    lines = p.stdout.splitlines()
    assert lines[-1] == str(tmp_path) and max(len(line) for line in lines[:-1]) <= 80  # the output folder whole, to copy
    cells = [line.split("│")[-2].strip() for line in lines if line.count("│") == 3]  # the value column of the figures table
    for key in PLAN_SECTIONS:
        for f in doc[key]["figures"]:
            text = value_text(f)
            if len(text) <= 24:  # numbers with their units: on one line, whole
                assert text in cells, (f["id"], text)
            else:  # longer text folds over lines of the value column
                assert text.replace(" ", "") in "".join(cells).replace(" ", ""), f["id"]
    assert "sources: plan.md" in p.stdout
