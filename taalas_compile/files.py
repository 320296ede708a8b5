"""Reading and writing the compiler's own output files."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
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


@contextlib.contextmanager
def staged(out: Path) -> Iterator[Path]:
    """A fresh staging directory for `out` (`staging_dir`), removed when the block raises (a full
    disk, Ctrl-C): only finished blocks are worth keeping for a resumed compile, not half an output."""
    tmp = staging_dir(out)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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
    with _signals_deferred():  # Ctrl-C or SIGTERM between the two renames would leave no output at all
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends (they are then delivered as usual)."""
    import signal

    sigs = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


# What a compile (and the commands run on its output) write into an output directory: a directory
# holding only these may be replaced by a new compile; anything else in it is a user's and stops it.
COMPILE_ENTRIES = frozenset({"chip.gds", "chip.oas", "chip.lyp", "netlist.json", "graph.json", "floorplan.png",
                             "manifest.json", "run.json", "recipe.toml", "roms", "signoff", "plan",
                             "chip.overview.oas", "klayout_session.py", "view"})
MANIFEST_FORMAT = "taalas-manifest"
# ... and what a multi-die system compile writes besides (system/files.py): its two files, one
# directory per die, and each die's staging directory and block cache while it is built.
SYSTEM_ENTRY = re.compile(r"system\.json|system-netlist\.json|die\d+|\.die\d+\.(partial|blocks|old)")


def check_output_dir(out: Path, inputs: Iterable[Path | None] = (), system: bool = False) -> Path:
    """Refuse an output directory a compile must not replace; return it made absolute.

    A compile replaces `out` whole, so `out` must be new, empty, or hold only what a compile writes
    (`COMPILE_ENTRIES`; a manifest.json must be a compile's; for a multi-die `system`, also a
    system's files and die directories, `SYSTEM_ENTRY`). Never the current directory or one
    above it, never a directory holding one of the compile's `inputs` (checkpoint, recipe,
    tokenizer, calibration text), never a file."""
    out = Path(os.path.abspath(out))
    cwd = Path.cwd().resolve()
    real = out.resolve()
    if real == cwd or real in cwd.parents:
        raise UserError(f"--out {out}: is the current directory{' or above it' if real != cwd else ''}; "
                        "a compile replaces its output directory whole: choose a new or compiled directory")
    for p in inputs:
        if p is not None and (real == Path(p).resolve() or real in Path(p).resolve().parents):
            raise UserError(f"--out {out}: holds the input {p}; choose another output directory")
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise UserError(f"--out {out}: {parent} is a file, not a directory")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file; a compile writes a directory there (choose another --out)")
    if out.is_dir():
        was_system = system or (out / "system.json").is_file()  # a system compiled there before
        foreign = sorted(e.name for e in out.iterdir() if e.name not in COMPILE_ENTRIES and not (was_system and SYSTEM_ENTRY.fullmatch(e.name)))
        if foreign:
            raise UserError(f"--out {out}: holds {foreign[0]!r}{f' and {len(foreign) - 1} more' if len(foreign) > 1 else ''}, "
                            "which no compile wrote; refusing to replace it (move it away or choose another --out)")
        man = out / "manifest.json"
        if man.exists():
            try:
                ok = json.loads(man.read_text()).get("format") == MANIFEST_FORMAT
            except (OSError, ValueError, AttributeError):
                ok = False
            if not ok:
                raise UserError(f"--out {out}: its manifest.json is not a taalas-compile manifest; refusing to replace the directory")
    return out


@contextlib.contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Hold `.NAME.lock` beside `out` for the whole compile, so a second compile into the same
    directory stops at once ("another compile is writing ...") instead of racing over the staging
    directory and block cache. An advisory `flock`: the kernel drops it when the process ends,
    however it ends, so a killed compile never leaves a stale lock. The file is removed when the
    compile ends (a killed one leaves it, unlocked, for the next compile to take)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    path = out.with_name(f".{out.name}.lock")
    while True:
        f = open(path, "a+")  # noqa: SIM115 (held open for the duration of the compile)
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            pid = f.read().strip()
            f.close()
            raise UserError(f"another compile{f' (pid {pid})' if pid else ''} is writing {out}; wait for it or choose another --out") from None
        try:  # the holder before us may have removed the file after we opened it: lock the current one
            same = os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        f.close()
    try:
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # while still locked, so nobody takes a lock on a file about to vanish
        f.close()
