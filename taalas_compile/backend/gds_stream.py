"""GDSII (Calma stream format, release 6) written record by record, the bulk vectorised with numpy.

Why hand-written records: a chip's select vias are one SREF each (28 bytes), ~1.2e10 of them for
Llama 3.1 8B. gdstk builds a Python-side library and needs ~1 s per 5M vias; here a tile's vias go
from the ROM image to bytes as one numpy structured array (tens of millions of vias per second),
and cells are independent byte strings that can be produced in any process and concatenated.
The tests read our files back with gdstk and KLayout and compare them with a gdstk-written chip.

A file is `header(libname)` + cells (`cell_bytes`, `rom_tile_bytes`, in any order) + `trailer()`.
Units: 1 nm database unit, 1 nm user unit (as gdstk's unit=precision=1e-9). Timestamps are fixed.
"""

from __future__ import annotations

import struct

import numpy as np

from taalas_compile.backend.layout_ir import CellSpec, Label, Rect, Ref
from taalas_compile.backend.rom_layout import row_runs, used_widths
from taalas_compile.config.die import Die
from taalas_compile.die.cell_names import ROMCELL, SEL
from taalas_compile.die.geometry import Geometry

MAX_REPEAT = 32767  # AREF columns and rows are signed 16-bit
TIMESTAMP = (2000, 1, 1, 0, 0, 0)  # modification and access time of every library and cell

# record type << 8 | data type
HEADER, BGNLIB, LIBNAME, UNITS, ENDLIB = 0x0002, 0x0102, 0x0206, 0x0305, 0x0400
BGNSTR, STRNAME, ENDSTR = 0x0502, 0x0606, 0x0700
BOUNDARY, SREF, AREF, TEXT = 0x0800, 0x0A00, 0x0B00, 0x0C00
LAYER, DATATYPE, XY, ENDEL, SNAME, COLROW, TEXTTYPE, STRING = 0x0D02, 0x0E02, 0x1003, 0x1100, 0x1206, 0x1302, 0x1602, 0x1906


def _rec(kind: int, data: bytes = b"") -> bytes:
    return struct.pack(">HH", 4 + len(data), kind) + data


def _str(s: str) -> bytes:
    b = s.encode("ascii")
    return b + b"\0" * (len(b) % 2)


def _i2(*v: int) -> bytes:
    return struct.pack(f">{len(v)}h", *v)


def _i4(*v: int) -> bytes:
    return struct.pack(f">{len(v)}i", *v)


def real8(v: float) -> bytes:
    """GDSII 8-byte real: sign bit, excess-64 base-16 exponent, 56-bit mantissa."""
    if v == 0:
        return bytes(8)
    sign, v, exp = (0x80 if v < 0 else 0), abs(v), 64
    while v >= 1:
        v, exp = v / 16, exp + 1
    while v < 1 / 16:
        v, exp = v * 16, exp - 1
    mant = round(v * 2**56)
    if mant >= 2**56:
        mant, exp = mant >> 4, exp + 1
    return bytes([sign | exp]) + mant.to_bytes(7, "big")


def header(libname: str = "library") -> bytes:
    return (_rec(HEADER, _i2(600)) + _rec(BGNLIB, _i2(*TIMESTAMP, *TIMESTAMP)) + _rec(LIBNAME, _str(libname))
            + _rec(UNITS, real8(1.0) + real8(1e-9)))


def trailer() -> bytes:
    return _rec(ENDLIB)


def _begin(name: str) -> bytes:
    return _rec(BGNSTR, _i2(*TIMESTAMP, *TIMESTAMP)) + _rec(STRNAME, _str(name))


def _rect(r: Rect) -> bytes:
    pts = (r.x0, r.y0, r.x1, r.y0, r.x1, r.y1, r.x0, r.y1, r.x0, r.y0)
    return _rec(BOUNDARY) + _rec(LAYER, _i2(r.layer)) + _rec(DATATYPE, _i2(r.datatype)) + _rec(XY, _i4(*pts)) + _rec(ENDEL)


def _sref(cell: str, x: int, y: int) -> bytes:
    return _rec(SREF) + _rec(SNAME, _str(cell)) + _rec(XY, _i4(x, y)) + _rec(ENDEL)


def _aref(cell: str, x: int, y: int, cols: int, rows: int, dx: int, dy: int) -> bytes:
    xy = _i4(x, y, x + cols * dx, y, x, y + rows * dy)
    return _rec(AREF) + _rec(SNAME, _str(cell)) + _rec(COLROW, _i2(cols, rows)) + _rec(XY, xy) + _rec(ENDEL)


def _ref(r: Ref) -> bytes:
    if r.offsets:
        return b"".join(_sref(r.cell, r.x + ox, r.y + oy) for ox, oy in ((0, 0), *r.offsets))
    if r.cols == r.rows == 1:
        return _sref(r.cell, r.x, r.y)
    out = []  # arrays larger than an AREF allows become several AREFs
    for j in range(0, r.rows, MAX_REPEAT):
        for i in range(0, r.cols, MAX_REPEAT):
            c, n = min(MAX_REPEAT, r.cols - i), min(MAX_REPEAT, r.rows - j)
            out.append(_aref(r.cell, r.x + i * r.dx, r.y + j * r.dy, c, n, r.dx, r.dy))
    return b"".join(out)


def _label(lb: Label) -> bytes:
    return (_rec(TEXT) + _rec(LAYER, _i2(lb.layer)) + _rec(TEXTTYPE, _i2(lb.texttype)) + _rec(XY, _i4(lb.x, lb.y))
            + _rec(STRING, _str(lb.text)) + _rec(ENDEL))


def cell_bytes(spec: CellSpec) -> bytes:
    body = [_rect(r) for r in spec.rects] + [_ref(r) for r in spec.refs] + [_label(lb) for lb in spec.labels]
    return _begin(spec.name) + b"".join(body) + _rec(ENDSTR)


# one SREF of SEL: SREF, SNAME "SEL", XY (x, y), ENDEL = 28 bytes
_SREF_DTYPE = np.dtype([("head", "u1", 16), ("x", ">i4"), ("y", ">i4"), ("end", "u1", 4)])
_SREF_HEAD = np.frombuffer(_rec(SREF) + _rec(SNAME, _str(SEL)) + struct.pack(">HH", 12, XY), np.uint8)
_SREF_END = np.frombuffer(_rec(ENDEL), np.uint8)


def sel_srefs(img: np.ndarray, geo: Geometry, out: np.ndarray | None = None) -> np.ndarray:
    """One SREF of SEL per used cell of the image (row-major), as uint8 records (written into
    `out`, 28 bytes per used cell, when given)."""
    p = geo.die.cell.pitch
    off = geo.digit_offsets()
    lut = np.zeros((2, 256), np.int32)  # digit -> x, y offset of its via (NO_CELL: unused)
    lut[:, : len(off)] = off.T
    runs = row_runs(used_widths(img))
    n = sum(rows * w for _, rows, w in runs)
    out = np.empty(n * _SREF_DTYPE.itemsize, np.uint8) if out is None else out
    rec = out.view(_SREF_DTYPE)
    rec["head"], rec["end"] = _SREF_HEAD, _SREF_END
    k = 0
    for r0, rows, w in runs:  # used cells are row prefixes: each run of rows is one 2-D block
        block = img[r0 : r0 + rows, :w]
        rec["x"][k : k + rows * w].reshape(rows, w)[...] = lut[0][block] + (np.arange(w, dtype=np.int32) * p)[None, :]
        rec["y"][k : k + rows * w].reshape(rows, w)[...] = lut[1][block] + (np.arange(r0, r0 + rows, dtype=np.int32) * p)[:, None]
        k += rows * w
    return out


def rom_tile_bytes(name: str, img: np.ndarray, die: Die) -> bytes:
    """The cell `name` of one tile's ROM: AREFs of ROMCELL over its used cells (one per run of rows
    of equal used width) and one SREF of SEL per select via."""
    p = die.cell.pitch
    widths = used_widths(img, name)
    pads = [_ref(Ref(ROMCELL, 0, r0 * p, w, n, p, p)) for r0, n, w in row_runs(widths)]
    head, tail = _begin(name) + b"".join(pads), _rec(ENDSTR)
    n = int(widths.sum()) * _SREF_DTYPE.itemsize
    out = np.empty(len(head) + n + len(tail), np.uint8)  # the vias are written in place
    out[: len(head)] = np.frombuffer(head, np.uint8)
    sel_srefs(img, Geometry(die), out[len(head) : len(head) + n])
    out[len(head) + n :] = np.frombuffer(tail, np.uint8)
    return out.tobytes()
