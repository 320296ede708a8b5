"""Mask volume before writing: bytes per format, and the pre-flight that refuses a compile whose
outputs would not fit on disk (or in memory) with the estimate and the alternative."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from taalas_compile.config.die import Die
from taalas_compile.errors import UserError
from taalas_compile.mapper.ir import Placement
from taalas_compile.plan.estimate import fit, tile_digits

GDS_BYTES_PER_VIA = 28  # one SREF of the select-via cell (header, name, XY, end)
OASIS_BYTES_PER_DIGIT = 0.55  # measured on hc1 tiles (benchmarks/mask_emission.py, docs/file-formats.md): 0.547 (3-bit), 0.562 (6-bit)
ROM_BYTES_PER_DIGIT = 1  # roms/*.safetensors: one uint8 per digit cell
WORKER_BYTES_PER_DIGIT = 6  # a block's codes, band, ROM images and mask bytes while it is built
AUTO_WORKERS_MIN_DIGITS = 100_000_000  # below this (~60 M weights) a compile's blocks take a few seconds in one process
NAMES = {"gds": "GDSII", "oasis": "OASIS"}


def mask_bytes_estimate(digits: int, fmt: str = "gds") -> int:
    """Bytes of the mask file(s) for `digits` used digit cells in format `fmt` ("gds" or "oasis")."""
    return int(digits * (GDS_BYTES_PER_VIA if fmt == "gds" else OASIS_BYTES_PER_DIGIT))


def _probe(out: Path) -> Path:
    return out if out.exists() else next((p for p in out.resolve().parents if p.exists()), Path("."))


def output_bytes(pl: Placement, die: Die, fmt: str) -> int:
    """Bytes a compiled chip's masks and ROM images take (estimate)."""
    digits = fit(pl, die)["digits_total"]
    return mask_bytes_estimate(digits, fmt) + digits * ROM_BYTES_PER_DIGIT


def check_resources(pl: Placement, die: Die, out: Path, fmt: str = "gds", jobs: int = 1, others: int = 0) -> None:
    """Refuse before any weight is read when the outputs would not fit on disk (the masks twice:
    block parts, then the assembled file; plus the ROM images; plus `others` bytes the other dies
    of a system compile write) or the block workers in memory."""
    digits = fit(pl, die)["digits_total"]
    masks = mask_bytes_estimate(digits, fmt)
    need = 2 * masks + digits * ROM_BYTES_PER_DIGIT + others
    probe = _probe(out)
    free = shutil.disk_usage(probe).free
    if need > free:
        alt = "" if fmt == "oasis" else f"; --format oasis needs ~{_bytes(2 * mask_bytes_estimate(digits, 'oasis') + digits)}"
        raise UserError(f"the {NAMES[fmt]} masks would take ~{_bytes(masks)} ({digits:,} digit cells; ~{_bytes(need)} "
                        f"with block parts and ROM images), {probe} has {_bytes(free)} free{alt}")
    ram = worker_bytes(pl) * max(jobs, 1)
    avail = available_memory()
    if ram > avail:
        raise UserError(f"{jobs} block worker(s) need ~{ram / 2**30:.1f} GiB, {avail / 2**30:.1f} GiB available: use fewer --jobs")


def worker_bytes(pl: Placement) -> int:
    """Memory of one block worker: its largest block's digit cells at WORKER_BYTES_PER_DIGIT."""
    return largest_block_digits(pl) * WORKER_BYTES_PER_DIGIT


def largest_block_digits(pl: Placement) -> int:
    """Used digit cells of the placement's largest block (what one worker holds at a time)."""
    per_block: dict[str, int] = {}
    for t in pl.tiles:
        per_block[t.block] = per_block.get(t.block, 0) + tile_digits(t)
    return max(per_block.values(), default=0)


def auto_jobs(pl: Placement, cores: int | None = None, avail: int | None = None) -> int:
    """Block workers a compile uses when --jobs is not given: one process for a small model
    (starting a worker that imports torch costs ~1.5 s, more than the whole block work saves
    below AUTO_WORKERS_MIN_DIGITS), else one per core, as many as memory holds, no more than blocks."""
    if sum(tile_digits(t) for t in pl.tiles) < AUTO_WORKERS_MIN_DIGITS:
        return 1
    cores = cores if cores is not None else usable_cores()
    avail = avail if avail is not None else available_memory()
    blocks = len({t.block for t in pl.tiles})
    return max(1, min(cores, avail // max(worker_bytes(pl), 1), blocks))


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the system reports one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def available_memory() -> int:
    """Bytes that can be allocated without swapping: Linux's MemAvailable (free memory plus the
    page cache it can drop, which a compile that just wrote gigabytes of masks has filled), else
    the free pages."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _bytes(n: float) -> str:
    """A size for a message: GB from 1 GB up, else MB (a small disk reads "0.4 MB", not "0.0 GB")."""
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"
