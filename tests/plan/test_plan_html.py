"""plan.html: self-contained, and its charts render in headless Chromium (the Debian package in
CI, where a missing browser fails the test instead of skipping it)."""

import os
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from taalas_compile.plan.render import to_html, to_markdown

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    exe = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but Chromium is missing: .ci/run installs the Debian package `chromium`")
        pytest.skip("Chromium is not installed (CI installs it)")
    return exe


class Charts(HTMLParser):
    """Per element with data-chart: its kind, whether the script marked it rendered, SVG shapes inside."""

    def __init__(self):
        super().__init__()
        self.charts, self.depth, self.body = [], [], {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.body = a
        if self.depth:
            self.depth[-1] += 1
            if tag in ("rect", "text", "image"):
                self.charts[-1]["shapes"] += 1
        if "data-chart" in a:
            self.charts.append({"kind": a["data-chart"], "rendered": a.get("data-rendered") == "1", "shapes": 0})
            self.depth.append(1)

    def handle_endtag(self, tag):
        if self.depth:
            self.depth[-1] -= 1
            if self.depth[-1] == 0:
                self.depth.pop()


def rendered(page, tmp_path):
    (tmp_path / "plan.html").write_text(page)
    dom = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", (tmp_path / "plan.html").as_uri()],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    p = Charts()
    p.feed(dom)
    return p


def test_charts_render_in_chromium(tiny_plan, tmp_path):
    p = rendered(tiny_plan[1]["plan.html"].read_text(), tmp_path)
    kinds = [c["kind"] for c in p.charts]
    assert {"fit-dies", "bits-tensor", "bits-layer", "floorplan", "blocks", "context", "gantt", "whatif", "context-curve", "users-curve"} <= set(kinds)
    assert p.body.get("data-charts") == str(len(kinds))  # the script reached the end
    for c in p.charts:
        assert c["rendered"] and c["shapes"] >= 3, c
    gantt = next(c for c in p.charts if c["kind"] == "gantt")
    assert gantt["shapes"] >= 2 * 7  # a label and a bar per task


def test_multi_die_charts_render(plan_70b, tmp_path):
    p = rendered(to_html(plan_70b, None), tmp_path)
    kinds = [c["kind"] for c in p.charts]
    assert kinds.count("floorplan") == plan_70b["subject"]["dies"] and "stages" in kinds
    assert all(c["rendered"] and c["shapes"] >= 3 for c in p.charts)


def test_a_broken_script_is_caught(tiny_plan, tmp_path):
    page = tiny_plan[1]["plan.html"].read_text().replace('"use strict";', '"use strict"; throw new Error("broken");', 1)
    p = rendered(page, tmp_path)
    assert "data-charts" not in p.body and not any(c["rendered"] for c in p.charts)


def test_html_is_self_contained(tiny_plan):
    page = tiny_plan[1]["plan.html"].read_text()
    assert "data:image/png;base64," in page and "<script>" in page and "<link" not in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "") and "https://" not in page


def test_markdown_without_start_says_how_to_get_dates(plan_70b):
    doc = dict(plan_70b, schedule=dict(plan_70b["schedule"], tasks=[dict(t, start_date=None, end_date=None) for t in plan_70b["schedule"]["tasks"]]))
    md = to_markdown(doc)
    assert "give `--start DATE`" in md and "## Partition over dies" in md and "| die | first block |" in md
