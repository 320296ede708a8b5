"""The model-to-chip schedule as a task graph: durations from the die's [fab] weeks and the
compile/verify times (measured or estimated), earliest starts, the critical path (zero slack),
and what-if scenarios re-scheduled on the same graph (data only).

Tasks: model freeze and quantization sign-off; per die: compile, sign-off (DRC, LVS, emulation),
mask making (two layers), processing on banked base wafers, packaging and test; then board
bring-up of all dies. Compiles and sign-offs share one build machine, so they run one die after
another; mask making and processing of several dies run side by side.
"""

from __future__ import annotations

import datetime as dt
import math

import networkx as nx

from taalas_compile.errors import UserError
from taalas_compile.plan.figures import die_ref, fig, src
from taalas_compile.plan.masks import times
from taalas_compile.plan.subject import Subject
from taalas_compile.plan.whatif import DEFAULT_INPUTS, PlanInputs

WEEK_S = 7 * 86400
MAX_WEEKS = 10_000  # about 190 years: any later week is a typo, and dates past year 9999 do not exist


def check_week(weeks: float, what: str = "--change-week") -> None:
    """A week of the schedule a user gives: finite (NaN or infinity would be written into plan.json,
    which JSON cannot hold) and between 0 and MAX_WEEKS."""
    if not math.isfinite(weeks) or not 0 <= weeks <= MAX_WEEKS:
        raise UserError(f"{what} {weeks:g}: give a number of weeks from 0 to {MAX_WEEKS:,}")


def _task(g: nx.DiGraph, name: str, label: str, weeks: float, source: dict, after: list[str], die: int | None = None) -> None:
    g.add_node(name, label=label, weeks=weeks, source=source, die=die)
    g.add_edges_from((a, name) for a in after)


def compile_time(t: dict) -> tuple[float, str, str]:
    """The compile a tape-out runs: with calibrated quantization when the recipe asks for it."""
    return t.get("compile_calibrated", t["compile"])


def task_graph(s: Subject, extra_dies: int = 0, inputs: PlanInputs = DEFAULT_INPUTS) -> nx.DiGraph:
    """Tasks and their dependencies; `extra_dies` adds a second chip's copies of every per-die task."""
    f, die = s.die.fab, s.die
    g = nx.DiGraph()
    _task(g, "freeze", "model freeze + quantization sign-off", f.freeze_weeks, src("die", die_ref(die, "fab", "freeze_weeks")), [])
    tt = times(s, inputs)
    slip = inputs.get("mask_slip_weeks", 0.0)
    mask_src = src(*inputs.source("mask_slip_weeks")) if slip else src("die", die_ref(die, "fab", "mask_weeks"))
    prev_c, prev_v, packaged = "freeze", None, []
    copies = [(1, t) for t in tt] + [(2, t) for _ in range(extra_dies) for t in tt]
    for k, (chip, t) in enumerate(copies):
        parts = ([f"chip {chip}"] if chip > 1 else []) + ([f"die {t['die']}"] if len(tt) > 1 else [])
        sfx = f" ({', '.join(parts)})" if parts else ""
        c, v = f"compile{k}", f"verify{k}"
        ct = compile_time(t)
        _task(g, c, f"compile{sfx}", ct[0] / WEEK_S, src(ct[1], ct[2]), ["freeze", prev_c] if prev_c != "freeze" else ["freeze"], t["die"])
        _task(g, v, f"sign-off: DRC, LVS, emulation{sfx}", t["verify"][0] / WEEK_S, src(t["verify"][1], t["verify"][2]), [c] + ([prev_v] if prev_v else []), t["die"])
        _task(g, f"masks{k}", f"mask making, via + metal{sfx}" + (f" ({slip:g} weeks late)" if slip else ""), f.mask_weeks + slip, mask_src, [v], t["die"])
        _task(g, f"process{k}", f"processing on banked base wafers{sfx}", f.process_weeks, src("die", die_ref(die, "fab", "process_weeks")), [f"masks{k}"], t["die"])
        _task(g, f"package{k}", f"packaging + test{sfx}", f.package_test_weeks, src("die", die_ref(die, "fab", "package_test_weeks")), [f"process{k}"], t["die"])
        prev_c, prev_v = c, v
        packaged.append(f"package{k}")
    n_first = len(tt)
    _task(g, "bring_up", "board bring-up", f.bring_up_weeks, src("die", die_ref(die, "fab", "bring_up_weeks")), packaged[:n_first])
    if extra_dies:
        _task(g, "bring_up2", "board bring-up (chip 2)", f.bring_up_weeks, src("die", die_ref(die, "fab", "bring_up_weeks")), packaged[n_first:])
    return g


def schedule(g: nx.DiGraph, offset_weeks: float = 0.0) -> dict:
    """Earliest start/end of every task (weeks from the start), the finish, and the critical tasks."""
    start: dict[str, float] = {}
    for n in nx.topological_sort(g):
        start[n] = max((start[p] + g.nodes[p]["weeks"] for p in g.predecessors(n)), default=offset_weeks)
    end = {n: start[n] + g.nodes[n]["weeks"] for n in g}
    finish = max(end.values())
    late_end: dict[str, float] = {}
    for n in reversed(list(nx.topological_sort(g))):
        late_end[n] = min((late_end[c] - g.nodes[c]["weeks"] for c in g.successors(n)), default=finish)
    critical = {n for n in g if abs(late_end[n] - end[n]) < 1e-9}
    return {"start": start, "end": end, "finish": finish, "critical": critical}


def _date(start: dt.date | None, weeks: float) -> str | None:
    return None if start is None else (start + dt.timedelta(days=round(weeks * 7, 6))).isoformat()


def schedule_section(s: Subject, start: dt.date | None, change_week: float, inputs: PlanInputs = DEFAULT_INPUTS) -> dict:
    check_week(change_week)
    g = task_graph(s, inputs=inputs)
    sch = schedule(g)
    tasks = [{"id": n, "label": g.nodes[n]["label"], "start_week": round(sch["start"][n], 6), "end_week": round(sch["end"][n], 6),
              "weeks": round(g.nodes[n]["weeks"], 6), "critical": n in sch["critical"],
              "start_date": _date(start, sch["start"][n]), "end_date": _date(start, sch["end"][n]), "source": g.nodes[n]["source"]}
             for n in nx.topological_sort(g)]
    base = sch["finish"]
    figs = [fig("weeks_to_chip", "model freeze to boards running", base, "weeks", "computed", "longest path of the task graph (plan/schedule.py)"),
            fig("start_date", "start", start.isoformat() if start else "week 0", "date", "input" if start else "computed",
                "--start" if start else "no --start given: weeks from the start"),
            fig("finish_date", "boards running", _date(start, base) or f"week {base:.1f}", "date", "computed", "start + weeks to chip")]
    return {"figures": figs, "tasks": tasks, "critical_path": [t["id"] for t in tasks if t["critical"]],
            "whatif": whatifs(s, g, sch, start, change_week, inputs)}


def whatifs(s: Subject, g: nx.DiGraph, sch: dict, start: dt.date | None, change_week: float, inputs: PlanInputs = DEFAULT_INPUTS) -> list[dict]:
    f, base = s.die.fab, sch["finish"]
    out = []
    # the model changes at week N: everything restarts from the freeze; tasks begun before N are lost
    lost = [g.nodes[n]["label"] for n in g if sch["start"][n] < change_week]
    fin = change_week + base
    out.append(_whatif("model_change", f"model change after week {change_week:g}", fin, base, start,
                       f"all work restarts from the model freeze at week {change_week:g}; lost: {', '.join(lost) or 'nothing'}",
                       "computed", "--change-week; task graph re-scheduled from that week"))
    # a failed sign-off: find and fix the cause, compile and sign off that die again
    t0 = times(s, inputs)[-1]
    redo = f.fix_weeks + (compile_time(t0)[0] + t0["verify"][0]) / WEEK_S
    out.append(_whatif("signoff_respin", "sign-off fails once (fix, recompile, sign off again)", base + redo, base, start,
                       f"+{f.fix_weeks:g} weeks fixing ({die_ref(s.die, 'fab', 'fix_weeks')}) + one more compile and sign-off of the last die",
                       "die", die_ref(s.die, "fab", "fix_weeks")))
    # silicon respin: bring-up finds a fault the sign-off missed; new masks for the two layers
    spin = redo + f.mask_weeks + f.process_weeks + f.package_test_weeks + f.bring_up_weeks
    out.append(_whatif("silicon_respin", "bring-up fails: new masks and a second run (respin)", base + spin, base, start,
                       "fix + compile + sign-off + masks + processing + packaging + bring-up once more", "die", f"[fab] of base_die/{s.die.name}.toml"))
    # a second chip taped out alongside: its compiles queue behind this one's on the build machine
    g2 = task_graph(s, extra_dies=1, inputs=inputs)
    fin2 = schedule(g2)["finish"]
    out.append(_whatif("second_die", "a second chip of the same size in the same cycle", fin2, base, start,
                       "its compiles and sign-offs run after this chip's on one build machine; masks and wafers in parallel",
                       "computed", "task graph with a second chip's tasks (plan/schedule.py)"))
    return out


def _whatif(id: str, label: str, finish: float, base: float, start: dt.date | None, how: str, kind: str, ref: str) -> dict:
    return {"id": id, "label": label, "finish_week": round(finish, 6), "delay_weeks": round(finish - base, 6),
            "finish_date": _date(start, finish), "how": how, "source": src(kind, ref)}
