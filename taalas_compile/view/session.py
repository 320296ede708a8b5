"""The KLayout startup script every compile writes beside its masks (`klayout_session.py`, kept in
`view/assets/`), and the command lines that use it."""

from __future__ import annotations

import shlex
from importlib.resources import files
from pathlib import Path

from taalas_compile.files import write_atomic

SESSION = "klayout_session.py"
MAX_OPEN_DIGITS = 50_000_000  # chips above this open as their overview (the script's MAX_MASK_DIGITS)


def write_session(out: Path) -> None:
    """DIR/klayout_session.py: the same bytes for every chip (it finds its files beside itself)."""
    text = files("taalas_compile.view").joinpath("assets", SESSION).read_text()
    write_atomic(out / SESSION, lambda p: p.write_text(text))


def session_command(chip: Path, view: Path | None = None) -> list[str]:
    """`klayout [-rd view=VIEW] -rm DIR/klayout_session.py`: the chip (masks + overview), or a view."""
    return ["klayout", *(["-rd", f"view={view}"] if view is not None else []), "-rm", str(Path(chip) / SESSION)]


def shell(cmd: list[str]) -> str:
    return shlex.join(cmd)
