"""`taalas-compile plan`: analyse a recipe or a compiled chip and write DIR/plan/ (plan.json,
plan.html, plan.md). The pipeline of the command, top to bottom."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from taalas_compile.errors import UserError
from taalas_compile.files import write_atomic
from taalas_compile.plan.floorplan import image_data_uri
from taalas_compile.plan.render import to_html, to_markdown
from taalas_compile.plan.report import build_plan
from taalas_compile.plan.schedule import check_week
from taalas_compile.plan.subject import Subject, load_subject
from taalas_compile.plan.whatif import plan_inputs


def plan_dir(s: Subject, out: Path | None) -> Path:
    """DIR/plan for a chip, out/RECIPE/plan for a recipe, unless --out says otherwise."""
    if out is not None:
        return out
    return (s.chip_dir if s.chip_dir is not None else Path("out") / s.name) / "plan"


def check_out_dir(out: Path) -> None:
    """`out` must be a directory or not exist yet, and its nearest existing parent a directory:
    plan files go inside it, and a file in its place is the user's, never overwritten."""
    for p in (out, *out.parents):
        if p.exists():
            if not p.is_dir():
                where = "" if p == out else f"{out}: "
                raise UserError(f"{where}{p} is a file, not a directory: give --out a directory for plan.json, plan.html and plan.md")
            return


def write_plan(doc: dict, image_uri: str | None, out: Path) -> dict[str, Path]:
    check_out_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"plan.json": out / "plan.json", "plan.html": out / "plan.html", "plan.md": out / "plan.md"}
    # allow_nan=False: a NaN or infinity would make plan.json invalid JSON; fail instead of writing it
    write_atomic(paths["plan.json"], lambda p: p.write_text(json.dumps(doc, indent=1, sort_keys=True, allow_nan=False) + "\n"))
    write_atomic(paths["plan.html"], lambda p: p.write_text(to_html(doc, image_uri)))
    write_atomic(paths["plan.md"], lambda p: p.write_text(to_markdown(doc)))
    return paths


def make_plan(target: str, die: str | None = None, start: dt.date | None = None, change_week: float = 4.0,
              out: Path | None = None, route_stages: bool = False, what_if: tuple[str, ...] = (),
              cost_file: str | None = None) -> tuple[dict, dict[str, Path]]:
    check_week(change_week)  # the inputs first: the analysis can take a while
    inputs = plan_inputs(what_if, cost_file)  # --what-if KEY=VALUE and --cost FILE.toml, checked
    if out is not None:
        check_out_dir(out)
    s = load_subject(target, die, route_stages)  # recipe mapped (one die or several) or chip read back
    doc = build_plan(s, start, change_week, inputs)  # every analysis, each figure with its source
    return doc, write_plan(doc, image_data_uri(s), plan_dir(s, out))  # plan.json, plan.html, plan.md
