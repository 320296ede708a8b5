"""Reading and writing the compiler's own output files."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from taalas_compile.errors import UserError


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """`write(tmp)` then rename over `path`, so a crash never leaves half a file in its place."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(1 << 20):
            h.update(b)
    return h.hexdigest()


def read_json(path: Path, hint: str = "") -> dict:
    """A JSON file the compiler wrote; missing or malformed is a one-line UserError."""
    if not path.is_file():
        raise UserError(f"{path.parent}: no {path.name}{f' ({hint})' if hint else ''}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON: {e}") from None


def staging_dir(out: Path) -> Path:
    """An empty sibling of `out` to build a whole output directory in (same depth, so paths
    recorded relative to it read the same once it is renamed to `out`)."""
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)  # what a crashed run left behind
    tmp.mkdir(parents=True)
    return tmp


def block_cache(out: Path) -> Path:
    """Where a compile keeps its finished blocks until the whole output is in place: a sibling of
    `out` that survives an interrupted compile, so the next one resumes from it."""
    d = out.with_name(f".{out.name}.blocks")
    d.mkdir(parents=True, exist_ok=True)
    return d


def replace_dir(tmp: Path, out: Path) -> None:
    """Put the finished `tmp` in place of `out`: nothing of an earlier output (a stale sign-off
    included) survives next to new masks, and a failed compile never touches `out`."""
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
