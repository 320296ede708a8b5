"""plan.html (self-contained: inline CSS, SVG charts drawn by inline JS from the embedded plan
data, the floorplan picture as a data URI) and plan.md, both from the plan document alone."""

from __future__ import annotations

import html
import json
from importlib.resources import files

SECTIONS = [  # (key in plan.json, heading, charts under its figures)
    ("model", "Model", []),
    ("fit", "Fit", ["fit-dies", "bits-tensor", "bits-layer"]),
    ("partition", "Partition over dies", ["stages"]),
    ("floorplan", "Floorplan", ["floorplan", "blocks"]),
    ("performance", "Performance", ["context-curve", "users-curve"]),
    ("capacity", "Context and LoRA capacity", ["context"]),
    ("baseline", "GPU serving baseline", []),
    ("cost", "Cost", []),
    ("masks", "Mask data, compile and verify times", []),
    ("schedule", "Schedule: model to chip", ["gantt", "whatif"]),
]
CHART_TITLES = {"fit-dies": "utilization per die", "bits-tensor": "3- and 6-bit weights per tensor kind", "bits-layer": "3- and 6-bit weights per layer",
                "stages": "latency per die (µs, one token)", "blocks": "ROM fill per layer block", "context": "context per user for N concurrent users",
                "gantt": "schedule (critical path in red)", "context-curve": "tokens/s against context, one user",
                "users-curve": "tokens/s against concurrent sequences (each at the longest context the SRAM holds for that many)", "whatif": "what-if: weeks to boards running", "floorplan": "floorplan"}


def fmt(v, unit: str = "") -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if unit == "fraction" or unit.startswith("fraction"):
        return f"{v:.1%}"
    if unit == "B":
        for u in ("B", "kB", "MB", "GB", "TB", "PB"):
            if abs(v) < 1000 or u == "PB":
                return f"{v:,.0f} {u}" if u == "B" else f"{v:,.2f} {u}"
            v /= 1000
    if isinstance(v, int):
        return f"{v:,}"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:,.3g}" if abs(v) < 1 else f"{v:,.2f}"


COUNTED = ("dies", "GPUs", "adapters", "layers", "weights", "tokens", "cells", "masks", "users")


def _shown_unit(unit: str, value=None) -> str:
    """The unit as printed after the value: none for bytes, fractions and dates; singular for one of a count."""
    if unit in ("B", "fraction", "date") or unit.startswith("fraction"):
        return ""
    return unit[:-1] if value == 1 and unit in COUNTED else unit


def value_text(f: dict) -> str:
    """A figure's value and unit as one string ("1 die", "85.8%", "59.40 µs")."""
    u = _shown_unit(f["unit"], f["value"])
    return fmt(f["value"], f["unit"]) + (f" {u}" if u else "")


def _src(s: dict) -> str:
    return f"{s['kind']}: {s['ref']}"


def _e(x) -> str:
    return html.escape(str(x))


def _html_table(t: dict) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in t["columns"])
    body = "".join("<tr>" + "".join(f"<td class='num'>{_e(fmt(v))}</td>" if isinstance(v, (int, float)) and not isinstance(v, bool)
                                    else f"<td>{_e(fmt(v))}</td>" for v in r) + "</tr>" for r in t["rows"])
    return (f"<h3>{_e(t['title'])}</h3><table><tr>{head}</tr>{body}</table>"
            f"<p class='src'><span class='kind'>{_e(t['source']['kind'])}</span> {_e(t['source']['ref'])}</p>")


def _html_figures(figs: list[dict]) -> str:
    rows = "".join(f"<tr><td>{_e(f['label'])}</td><td class='num'>{_e(fmt(f['value'], f['unit']))}</td><td>{_e(_shown_unit(f['unit'], f['value']))}</td>"
                   f"<td class='src'><span class='kind'>{_e(f['source']['kind'])}</span> {_e(f['source']['ref'])}</td></tr>" for f in figs)
    return f"<table><tr><th>figure</th><th>value</th><th>unit</th><th>source</th></tr>{rows}</table>"


def _charts(key: str, doc: dict) -> str:
    out = []
    for c in next(s[2] for s in SECTIONS if s[0] == key):
        if c == "floorplan":
            fp = doc["floorplan"]
            for d in fp["dies"]:
                out.append(f"<h3>{_e(CHART_TITLES[c])}, die {d['die']}</h3><div class='chart' data-chart='floorplan' data-die='{d['die']}'></div>")
            out.append(f"<p class='src'><span class='kind'>{_e(fp['source']['kind'])}</span> {_e(fp['source']['ref'])}</p>")
        elif c == "stages" and doc["partition"]["dies"] < 2:
            continue
        else:
            out.append(f"<h3>{_e(CHART_TITLES[c])}</h3><div class='chart' data-chart='{c}'></div>")
    return "".join(out)


def to_html(doc: dict, image_uri: str | None) -> str:
    asset = files("taalas_compile.plan") / "assets"
    css, js = (asset / "plan.css").read_text(), (asset / "plan.js").read_text()
    sub = doc["subject"]
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>plan: {_e(sub['name'])} on {_e(sub['die'])}</title><style>{css}</style></head><body>",
             f"<h1>Plan: {_e(sub['name'])} on {sub['dies']} {_e(sub['die'])} die{'s' if sub['dies'] > 1 else ''}</h1>",
             (f"<p>{_e('compiled chip ' + sub['path'] if sub['kind'] == 'chip' else 'recipe (mapped here, no weights, no masks)')}; taalas-compile {_e(doc['compiler'])}. "
              "Every figure names its source: <i>die</i> (base die parameter), <i>recipe</i>, <i>input</i> (command line), <i>measured</i>, "
              "<i>computed</i> (from the placement and the die by the code named), <i>estimate</i> (the time model, calibrated on measured runs), <i>cited</i> "
              "(a public source), <i>assumption</i> (a value we chose; override it with --cost or --what-if).</p>")]
    if image_uri:
        parts.append(f"<img id='floorplan-image' src='{image_uri}' alt='floorplan' hidden>")
    for key, heading, _ in SECTIONS:
        sec = doc[key]
        if key == "partition" and sec["dies"] < 2:
            parts.append(f"<h2 id='{key}'>{heading}</h2><p>The model fits one {_e(sub['die'])} die.</p>")
            continue
        parts.append(f"<h2 id='{key}'>{_e(heading)}</h2>")
        if key == "fit" and sec["advice"]:
            parts.append("<div class='note'><b>Does not fit one die.</b> What would have to change:<ul>" +
                         "".join(f"<li>{_e(a['text'])} <span class='src'>({_e(_src(a['source']))})</span></li>" for a in sec["advice"]) + "</ul></div>")
        if sec.get("figures"):
            parts.append(_html_figures(sec["figures"]))
        if key == "performance":
            parts.append(f"<p class='src'>assumptions: {_e(sec['assumptions'])}</p>")
        parts.append(_charts(key, doc))
        if key == "schedule":
            parts.append(_html_table(_task_table(doc)))
            parts.append(_html_table(_whatif_table(doc)))
        for t in sec.get("tables", {}).values():
            parts.append(_html_table(t))
    data = json.dumps(doc, sort_keys=True).replace("</", "<\\/")
    parts.append(f"<script type='application/json' id='plan-data'>{data}</script><script>{js}</script></body></html>\n")
    return "".join(parts)


def _task_table(doc: dict) -> dict:
    tasks = doc["schedule"]["tasks"]
    dated = bool(tasks) and tasks[0]["start_date"] is not None  # without --start: weeks only
    rows = [[t["label"], t["start_week"], t["end_week"], *([t["start_date"], t["end_date"]] if dated else []), "yes" if t["critical"] else "",
             _src(t["source"])] for t in tasks]
    return {"title": "tasks", "columns": ["task", "start week", "end week", *(["start", "end"] if dated else []), "critical", "duration source"], "rows": rows,
            "source": {"kind": "computed", "ref": "plan/schedule.py: earliest starts on the task graph; critical = zero slack"}}


def _whatif_table(doc: dict) -> dict:
    ws = doc["schedule"]["whatif"]
    dated = bool(ws) and ws[0]["finish_date"] is not None
    rows = [[w["label"], w["finish_week"], w["delay_weeks"], *([w["finish_date"]] if dated else []), w["how"], _src(w["source"])] for w in ws]
    return {"title": "what-if scenarios", "columns": ["scenario", "finish week", "delay weeks", *(["finish"] if dated else []), "how", "source"], "rows": rows,
            "source": {"kind": "computed", "ref": "plan/schedule.py whatifs()"}}


def _md_table(t: dict) -> str:
    out = [f"**{t['title']}** ({_src(t['source'])})", "", "| " + " | ".join(t["columns"]) + " |", "|" + " --- |" * len(t["columns"])]
    out += ["| " + " | ".join(fmt(v).replace("|", "/") for v in r) + " |" for r in t["rows"]]
    return "\n".join(out) + "\n"


def to_markdown(doc: dict) -> str:
    sub = doc["subject"]
    out = [f"# Plan: {sub['name']} on {sub['dies']} x {sub['die']}", "",
           ("compiled chip `" + sub["path"] + "`" if sub["kind"] == "chip" else "recipe (mapped here, no weights, no masks)") +
           f"; taalas-compile {doc['compiler']}. Open `plan.html` for the charts and the floorplan.", ""]
    for key, heading, _ in SECTIONS:
        sec = doc[key]
        out += [f"## {heading}", ""]
        if key == "partition" and sec["dies"] < 2:
            out += [f"The model fits one {sub['die']} die.", ""]
            continue
        if key == "fit" and sec["advice"]:
            out += ["Does not fit one die. What would have to change:", ""] + [f"- {a['text']} ({_src(a['source'])})" for a in sec["advice"]] + [""]
        if sec.get("figures"):
            out += ["| figure | value | source |", "| --- | --- | --- |"]
            out += [f"| {f['label']} | {value_text(f)} | {_src(f['source'])} |" for f in sec["figures"]]
            out.append("")
        if key == "floorplan":
            out += ["Blocks per die: " + "; ".join(f"die {d['die']}: " + ", ".join(b["block"] for b in d["blocks"]) for d in sec["dies"]),
                    f"({_src(sec['source'])})", ""]
        if key == "schedule":
            out += [_md_table(_task_table(doc)), _gantt_mermaid(doc), _md_table(_whatif_table(doc))]
        for t in sec.get("tables", {}).values():
            out.append(_md_table(t))
    return "\n".join(out).rstrip() + "\n"


def _gantt_mermaid(doc: dict) -> str:
    """A mermaid Gantt (rendered by GitHub and most Markdown viewers) when the plan has dates."""
    tasks = doc["schedule"]["tasks"]
    if not tasks or tasks[0]["start_date"] is None:
        return "(give `--start DATE` for a dated Gantt chart)\n"
    lines = ["```mermaid", "gantt", "  dateFormat YYYY-MM-DD", "  axisFormat %b %d"]
    for t in tasks:
        days = max(round(t["weeks"] * 7), 1)
        tag = "crit, " if t["critical"] else ""
        lines.append(f"  {t['label'].replace(':', ' -')} :{tag}{t['id']}, {t['start_date'][:10]}, {days}d")
    return "\n".join(lines + ["```", ""])
