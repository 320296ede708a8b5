"""Reading and writing the compiler's own output files."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from taalas_compile.errors import UserError


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """`write(tmp)` then rename over `path`, so a crash never leaves half a file in its place."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def read_json(path: Path, hint: str = "") -> dict:
    """A JSON file the compiler wrote; missing or malformed is a one-line UserError."""
    if not path.is_file():
        raise UserError(f"{path.parent}: no {path.name}{f' ({hint})' if hint else ''}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON: {e}") from None
