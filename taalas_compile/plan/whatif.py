"""What-ifs a user gives on the command line (`--what-if KEY=VALUE`, repeatable) and the plan's
other inputs: each replaces one number before the analyses run, and every figure that read the
number names the what-if as its source.

Keys: a die parameter (`clock_mhz`, the `[fab]` weeks, `static_watts`), a plan parameter (`jobs`:
compile and sign-off workers; `mask_slip_weeks`: mask making starts late; `users`: concurrent
sequences the GPU baseline serves) or any cost parameter (plan/cost_params.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from taalas_compile.config.die import Die
from taalas_compile.errors import UserError
from taalas_compile.plan.cost_params import CostParam, cost_params

DIE_KEYS = {  # what-if key -> (die section, field)
    "clock_mhz": ("clock", "mhz"), "static_watts": ("power", "static_watts"),
    **{k: ("fab", k) for k in ("freeze_weeks", "mask_weeks", "process_weeks", "package_test_weeks", "bring_up_weeks", "fix_weeks")},
}
PLAN_KEYS = {"jobs": "compile and sign-off worker processes (default 2, as measured)",
             "mask_slip_weeks": "weeks the mask making starts late",
             "users": "concurrent sequences of the plan's context the GPU baseline serves (default: as many as the chip's SRAM holds)"}


@dataclass(frozen=True)
class WhatIf:
    key: str
    value: float

    @property
    def ref(self) -> str:
        return f"--what-if {self.key}={self.value:g}"


@dataclass(frozen=True)
class PlanInputs:
    """Everything a plan takes besides its subject: what-ifs and the cost parameters."""

    whatifs: tuple[WhatIf, ...] = ()
    cost: tuple[CostParam, ...] = field(default_factory=cost_params)
    cost_file: str | None = None

    def get(self, key: str, default: float) -> float:
        return next((w.value for w in reversed(self.whatifs) if w.key == key), default)

    def source(self, key: str) -> tuple[str, str] | None:
        w = next((w for w in reversed(self.whatifs) if w.key == key), None)
        return ("input", w.ref) if w else None


DEFAULT_INPUTS = PlanInputs()  # no what-ifs, the default cost parameters


def known_keys() -> list[str]:
    return sorted([*DIE_KEYS, *PLAN_KEYS, *(p.key for p in cost_params())])


def parse_whatif(text: str) -> WhatIf:
    key, eq, raw = text.partition("=")
    key = key.strip()
    if not eq or key not in known_keys():
        raise UserError(f"--what-if {text}: give KEY=NUMBER with KEY one of {', '.join(known_keys())}")
    try:
        value = float(raw)
    except ValueError:
        raise UserError(f"--what-if {text}: {raw.strip()!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or (key in ("clock_mhz", "jobs", "users") and value <= 0):
        raise UserError(f"--what-if {text}: give a finite number above zero")
    return WhatIf(key, value)


def plan_inputs(whatifs: list[str] | tuple[str, ...] = (), cost_file: str | None = None) -> PlanInputs:
    ws = tuple(parse_whatif(w) for w in whatifs)
    return PlanInputs(ws, cost_params(cost_file, {w.key: w for w in ws}), cost_file)


def apply_to_die(die: Die, inputs: PlanInputs) -> Die:
    """The die with the what-ifs that change its parameters."""
    for w in inputs.whatifs:
        if w.key in DIE_KEYS:
            sec, key = DIE_KEYS[w.key]
            part = getattr(die, sec)
            value = type(getattr(part, key))(w.value)
            die = die.model_copy(update={sec: part.model_copy(update={key: value})})
    return die


def mark_inputs(doc, inputs: PlanInputs):
    """Every source that names a die parameter a what-if replaced now names the what-if."""
    subs = {f"[{sec}] {key}": w for w in inputs.whatifs if w.key in DIE_KEYS for sec, key in [DIE_KEYS[w.key]]}
    if isinstance(doc, dict):
        if set(doc) == {"kind", "ref"} and isinstance(doc["ref"], str):
            hit = next((w for k, w in subs.items() if k in doc["ref"]), None)
            return {"kind": "input", "ref": f"{hit.ref} (in place of {doc['ref']})"} if hit else doc
        return {k: mark_inputs(v, inputs) for k, v in doc.items()}
    if isinstance(doc, list):
        return [mark_inputs(v, inputs) for v in doc]
    return doc
