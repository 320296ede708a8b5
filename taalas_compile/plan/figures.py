"""Figures and tables that say where they come from: the building blocks of plan.json.

A figure is `{"id", "label", "value", "unit", "source": {"kind", "ref"}}`; a table is `{"title",
"columns", "rows", "source"}`. Source kinds (docs/planning.md):

- "die": a parameter of the base die file (ref: `base_die/hc1.toml [power] static_watts`);
- "recipe": a setting of the recipe (ref: `[target] context`);
- "measured": measured on this chip or this run (ref: the file and key it was read from);
- "computed": worked out from the placement and the die by the named code (ref: module and inputs);
- "cited": a published figure (ref: the citation);
- "estimate": scaled from a measurement or a cited rate (ref: the scaling and what it scales);
- "input": given on the command line (ref: the option);
- "assumption": a value we chose where no public figure exists (ref: what it stands for).
"""

from __future__ import annotations

KINDS = ("die", "recipe", "measured", "computed", "cited", "estimate", "input", "assumption")


def src(kind: str, ref: str) -> dict:
    assert kind in KINDS, kind
    return {"kind": kind, "ref": ref}


def fig(id: str, label: str, value, unit: str, kind: str, ref: str) -> dict:
    """One figure. `value` is a number, a string or None (not available, `ref` says why)."""
    if isinstance(value, float):
        value = round(value, 6)
    return {"id": id, "label": label, "value": value, "unit": unit, "source": src(kind, ref)}


def table(title: str, columns: list[str], rows: list[list], kind: str, ref: str) -> dict:
    rows = [[round(v, 6) if isinstance(v, float) else v for v in r] for r in rows]
    return {"title": title, "columns": columns, "rows": rows, "source": src(kind, ref)}


def die_ref(die, section: str, key: str) -> str:
    return f"base_die/{die.name}.toml [{section}] {key}"
