"""Reading TOML into pydantic models with one-line errors a user can act on."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import pydantic
import tomllib

from taalas_compile.errors import UserError

M = TypeVar("M", bound=pydantic.BaseModel)


def read_toml(path: Path, what: str) -> dict:
    if not path.is_file():
        raise UserError(f"{what} file not found: {path}")
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8"))  # TOML is UTF-8 whatever the locale says
    except UnicodeDecodeError as e:
        raise UserError(f"{what} {path}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start}); "
                        "save it as UTF-8") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{what} {path}: not valid TOML: {e}") from None


def shipped(folder: Path) -> list[str]:
    """Names of the TOML files that ship in `folder`."""
    return sorted(p.stem for p in folder.glob("*.toml"))


def find_config(name_or_path: str | Path, folder: Path, what: str, also: str = "") -> Path:
    """A shipped config by name (`folder/NAME.toml`), or any path ending in .toml (`also`: what
    else the error says may be given)."""
    p = Path(name_or_path)
    if p.suffix == ".toml":
        return p
    p = folder / f"{name_or_path}.toml"
    if not p.is_file():
        raise UserError(f"unknown {what} '{name_or_path}' (shipped: {', '.join(shipped(folder))}; or pass a .toml path{f' or {also}' if also else ''})")
    return p


def validate(model: type[M], data: dict, where: str) -> M:
    """Build `model` from `data`; the first validation problem becomes a one-line UserError."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if isinstance(err.get("input"), int | float | str | bool) and err["type"] not in ("missing", "extra_forbidden"):
            loc += f" = {err['input']!r}"  # the value as given, so the user sees what to change
        more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
        raise UserError(f"{where}: {loc}: {err['msg']}{more}") from None


class Strict(pydantic.BaseModel):
    """Base for config sections: unknown keys are errors, values are immutable, and a float is
    finite (TOML accepts `nan` and `inf`, which would reach the arithmetic and plan.json)."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
