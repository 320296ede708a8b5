"""load_die: a base die by name (`base_die/NAME.toml`) or path, typed (`config/die.py`) and
checked against its own design rules (`die/geometry.check_rules`) — the check needs the geometry,
which is derived from the typed die, so loading sits above both."""

from __future__ import annotations

from pathlib import Path

from taalas_compile.config.die import Die
from taalas_compile.config.loading import find_config, read_toml, shipped, validate
from taalas_compile.die.geometry import check_rules
from taalas_compile.errors import UserError
from taalas_compile.paths import DIES_DIR


def available_dies() -> list[str]:
    """Names of the shipped dies."""
    return shipped(DIES_DIR)


def load_die(name_or_path: str | Path) -> Die:
    """A die by name (`base_die/NAME.toml`) or by path to a TOML file."""
    p = find_config(name_or_path, DIES_DIR, "die")
    die = validate(Die, read_toml(p, "die"), f"die {p}")
    problems = check_rules(die)  # the die's own geometry must be DRC-clean
    if problems:
        raise UserError(f"die {p}: {problems[0]}")
    return die
