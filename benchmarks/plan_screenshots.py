"""Screenshots of plan.html sections in headless Chromium, for docs/img (docs/planning.md).

    python benchmarks/plan_screenshots.py          # plans llama-3.1-8b and llama-3.1-70b into a temporary folder

Each picture shows one section of the page: the other body elements are hidden by a script added
after the page's own (the charts are drawn first)."""

import shutil
import subprocess
import tempfile
from pathlib import Path

from taalas_compile.plan.write import make_plan

SHOTS = [("llama-3.1-8b", "fit", 2100, "plan-8b-fit"), ("llama-3.1-8b", "performance", 1150, "plan-8b-performance"),
         ("llama-3.1-70b", "schedule", 1250, "plan-70b-schedule"), ("llama-3.1-70b", "floorplan", 900, "plan-70b-floorplan")]
ONLY = """<script>(function () {{ let keep = false;
  for (const e of Array.from(document.body.children)) {{
    if (e.tagName === "H2") keep = e.id === "{section}";
    if (!keep && e.tagName !== "SCRIPT") e.style.display = "none"; }} }})();</script></body>"""


def main() -> None:
    exe = next(p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p)
    img = Path(__file__).parents[1] / "docs" / "img"
    with tempfile.TemporaryDirectory() as tmp:
        pages = {}
        for recipe, section, height, name in SHOTS:
            if recipe not in pages:
                pages[recipe] = make_plan(recipe, out=Path(tmp) / recipe)[1]["plan.html"].read_text()
            page = Path(tmp) / f"{name}.html"
            page.write_text(pages[recipe].replace("</body>", ONLY.format(section=section), 1))
            subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars", f"--user-data-dir={tmp}/profile",
                            f"--window-size=1000,{height}", f"--screenshot={img / (name + '.png')}", page.as_uri()], check=True, capture_output=True, timeout=120)
            print(img / (name + ".png"))


if __name__ == "__main__":
    main()
