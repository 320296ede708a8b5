"""Mask volume before writing: bytes per format, and the pre-flight that refuses a compile whose
outputs would not fit on disk (or in memory) with the estimate and the alternative."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from taalas_compile.config.die import Die
from taalas_compile.errors import UserError
from taalas_compile.mapper.ir import Placement
from taalas_compile.plan.estimate import fit

GDS_BYTES_PER_VIA = 28  # one SREF of the select-via cell (header, name, XY, end)
RAM_BYTES_PER_DIGIT = 3  # codes + ROM image + layout objects while compiling in memory


def mask_bytes_estimate(digits: int, fmt: str = "gds") -> int:
    """Bytes of the mask file(s) for `digits` used digit cells in format `fmt` ("gds" or "oasis")."""
    return digits * GDS_BYTES_PER_VIA


def check_resources(pl: Placement, die: Die, out: Path) -> None:
    """Refuse before writing when the masks would not fit on disk or the compile in memory."""
    digits = fit(pl, die)["digits_total"]
    need = mask_bytes_estimate(digits)
    probe = out if out.exists() else next((p for p in out.resolve().parents if p.exists()), Path("."))
    free = shutil.disk_usage(probe).free
    if need > free:
        raise UserError(f"the GDSII masks would take ~{need / 1e9:.1f} GB ({digits:,} digit cells), {probe} has {free / 1e9:.1f} GB free")
    ram = digits * RAM_BYTES_PER_DIGIT
    avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if ram > avail:
        raise UserError(f"compiling {digits:,} digit cells in memory needs ~{ram / 2**30:.0f} GiB, {avail / 2**30:.0f} GiB available")
