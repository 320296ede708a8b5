"""MaskFile: one mask file streamed from parts (cells as bytes) produced anywhere, in a given order.

    with MaskFile(path, "oasis") as f:   # writes the header
        for part in parts:               # bytes from cell_bytes / rom_tile_bytes, any process
            f.add(part)
    # leaving the block writes the trailer (OASIS: END with the CRC32 of everything before it)

The bytes depend only on the parts and their order. The file is written in place; callers that
need atomicity write to a temporary name and rename (`files.write_atomic`).
"""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path
from types import ModuleType

from taalas_compile.backend import gds_stream, oasis_stream
from taalas_compile.errors import UserError

FORMATS: dict[str, ModuleType] = {"gds": gds_stream, "oasis": oasis_stream}
SUFFIX = {"gds": ".gds", "oasis": ".oas"}


def writer(fmt: str) -> ModuleType:
    """The record writer of a mask format ("gds" or "oasis")."""
    if fmt not in FORMATS:
        raise UserError(f"unknown mask format {fmt!r}: use one of {', '.join(FORMATS)}")
    return FORMATS[fmt]


class MaskFile:
    def __init__(self, path: Path, fmt: str, libname: str = "library"):
        self.fmt, self._w = fmt, writer(fmt)
        self._f = open(path, "wb")  # noqa: SIM115  the writer owns the file until close()
        self.crc, self.size = 0, 0
        self.sha256 = hashlib.sha256()  # of the whole file, for the manifest without reading it back
        self.add(self._w.header(libname) if fmt == "gds" else self._w.header())

    def add(self, part: bytes) -> None:
        self._f.write(part)
        self.crc = zlib.crc32(part, self.crc)
        self.sha256.update(part)
        self.size += len(part)

    def close(self) -> None:
        if self._f.closed:
            return
        self.add(self._w.trailer() if self.fmt == "gds" else self._w.trailer(self.crc))
        self._f.close()

    def __enter__(self) -> MaskFile:  # noqa: PYI034  typing.Self needs Python 3.11
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._f.close()  # a failed write leaves no trailer: the file is visibly incomplete
