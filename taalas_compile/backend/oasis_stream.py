"""OASIS (SEMI P39) written record by record, the bulk vectorised with numpy.

Why hand-written records: an 8B chip has ~1.2e10 select vias; no library writes OASIS repetitions
from arrays at that rate. Here a tile's vias go from the ROM image to deflated bytes in one
vectorised pass (~1 byte per via before compression); cells are independent byte strings that can
be produced in any process and concatenated. Tests read our files back with KLayout.

The subset written (docs/file-formats.md, "OASIS masks"):
- magic + START: version "1.0", unit 1000 grid steps per µm (1 nm), offset-flag 1 with no tables
  (every cell is named by an explicit string: no CELLNAME/TEXTSTRING/... records at all).
- per cell: CELL (explicit name) then one CBLOCK (raw DEFLATE, comp-type 0) holding its
  RECTANGLE, PLACEMENT (angle 0, no flip) and TEXT records; modal variables only within a cell.
- repetitions: type 1/2/3 (regular arrays: ROMCELL pads), type 5 (x-spacings on a grid: the select
  vias of one digit in one ROM row, grid = cell pitch), type 10 (explicit offsets).
- END: 256 bytes; table offsets (all absent), padding, validation scheme 1 and the CRC32 of every
  byte before the signature (least significant byte first).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from taalas_compile.backend.layout_ir import CellSpec, Label, Rect, Ref
from taalas_compile.backend.rom_layout import digit_offsets, row_runs, used_widths
from taalas_compile.config.die import Die
from taalas_compile.die.geometry import Geometry
from taalas_compile.die.rom_format import NO_CELL

MAGIC = b"%SEMI-OASIS\r\n"
LEVEL = 1  # zlib level of the CBLOCKs: fast; higher levels buy a few percent (benchmarks/mask_emission.py)
END_BYTES = 256

# record ids
START, END, CELL, PLACEMENT, TEXT, RECTANGLE, CBLOCK = 1, 2, 14, 17, 19, 20, 34
# info-byte bits: PLACEMENT CNXYRAAF, RECTANGLE SWHXYRDL, TEXT 0CNXYRTL
P_C, P_X, P_Y, P_R = 0x80, 0x20, 0x10, 0x08
R_W, R_H, R_X, R_Y, R_R, R_D, R_L = 0x40, 0x20, 0x10, 0x08, 0x04, 0x02, 0x01
T_C, T_X, T_Y, T_T, T_L = 0x40, 0x10, 0x08, 0x02, 0x01


# --- primitives ------------------------------------------------------------------------------
def uint(v: int) -> bytes:
    """unsigned-integer: 7 bits per byte, least significant first, high bit = more follow."""
    assert v >= 0, v
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def sint(v: int) -> bytes:
    """signed-integer: magnitude << 1 | sign, as an unsigned-integer."""
    return uint((-v << 1) | 1 if v < 0 else v << 1)


def string(s: str) -> bytes:
    b = s.encode("ascii")
    return uint(len(b)) + b


def uints(v: np.ndarray) -> bytes:
    """Many unsigned-integers at once (int64 [n] >= 0) -> their concatenated encodings."""
    v = np.asarray(v, np.int64)
    if v.size == 0:
        return b""
    if v.max() < 0x80:
        return v.astype(np.uint8).tobytes()
    n = np.ones(v.size, np.int64)  # bytes per value
    t = v >> 7
    while (t > 0).any():
        n += t > 0
        t >>= 7
    end = np.cumsum(n)
    start = end - n
    out = np.empty(int(end[-1]), np.uint8)
    for k in range(int(n.max())):
        sel = np.flatnonzero(n > k)
        out[start[sel] + k] = ((v[sel] >> (7 * k)) & 0x7F) | ((n[sel] > k + 1) << 7)
    return out.tobytes()


def _gdelta(dx: int, dy: int) -> bytes:
    """g-delta, general form: (|dx| << 2 | x sign << 1 | 1) then dy as a signed-integer."""
    return uint((abs(dx) << 2) | (2 if dx < 0 else 0) | 1) + sint(dy)


def _repetition(cols: int, rows: int, dx: int, dy: int) -> bytes:
    assert dx >= 0 and dy >= 0, "regular repetitions with negative spacing are not written"
    if cols > 1 and rows > 1:
        return uint(1) + uint(cols - 2) + uint(rows - 2) + uint(dx) + uint(dy)
    if cols > 1:
        return uint(2) + uint(cols - 2) + uint(dx)
    return uint(3) + uint(rows - 2) + uint(dy)


def cblock(body: bytes, level: int = LEVEL) -> bytes:
    """CBLOCK of raw DEFLATE (comp-type 0); empty bodies are written as nothing."""
    if not body:
        return b""
    z = zlib.compressobj(level, zlib.DEFLATED, -15)
    comp = z.compress(body) + z.flush()
    return uint(CBLOCK) + uint(0) + uint(len(body)) + uint(len(comp)) + comp


def _cell(name: str, body: bytes, level: int) -> bytes:
    return uint(CELL) + string(name) + cblock(body, level)


# --- file ------------------------------------------------------------------------------------
def header() -> bytes:
    """Magic and START: version 1.0, 1000 grid steps per µm (real type 0: whole number), tables in END."""
    return MAGIC + uint(START) + string("1.0") + uint(0) + uint(1000) + uint(1)


def trailer(crc: int) -> bytes:
    """END (256 bytes) given `crc`, the CRC32 (zlib.crc32) of every byte written before it."""
    head = uint(END) + bytes(12)  # six tables, each (strict flag 0, offset 0): absent
    pad = END_BYTES - len(head) - 1 - 4 - 2  # padding b-string: 2-byte length + bytes
    body = head + uint(pad) + bytes(pad) + uint(1)  # validation scheme 1: CRC32
    assert len(body) + 4 == END_BYTES, len(body)
    return body + struct.pack("<I", zlib.crc32(body, crc))


# --- small cells -----------------------------------------------------------------------------
def _rect(r: Rect) -> bytes:
    info = R_W | R_H | R_X | R_Y | R_D | R_L
    return (uint(RECTANGLE) + bytes([info]) + uint(r.layer) + uint(r.datatype) + uint(r.x1 - r.x0) + uint(r.y1 - r.y0)
            + sint(r.x0) + sint(r.y0))


def _ref(r: Ref) -> bytes:
    head = uint(PLACEMENT)
    if r.offsets:
        pts = [(0, 0), *r.offsets]
        rep = uint(10) + uint(len(pts) - 2) + b"".join(_gdelta(b[0] - a[0], b[1] - a[1]) for a, b in zip(pts, pts[1:]))
        return head + bytes([P_C | P_X | P_Y | P_R]) + string(r.cell) + sint(r.x) + sint(r.y) + rep
    if r.cols == r.rows == 1:
        return head + bytes([P_C | P_X | P_Y]) + string(r.cell) + sint(r.x) + sint(r.y)
    rep = _repetition(r.cols, r.rows, r.dx, r.dy)
    return head + bytes([P_C | P_X | P_Y | P_R]) + string(r.cell) + sint(r.x) + sint(r.y) + rep


def _label(lb: Label) -> bytes:
    info = T_C | T_X | T_Y | T_T | T_L
    return uint(TEXT) + bytes([info]) + string(lb.text) + uint(lb.layer) + uint(lb.texttype) + sint(lb.x) + sint(lb.y)


def cell_bytes(spec: CellSpec, level: int = LEVEL) -> bytes:
    body = [_rect(r) for r in spec.rects] + [_ref(r) for r in spec.refs] + [_label(lb) for lb in spec.labels]
    return _cell(spec.name, b"".join(body), level)


# --- ROM tiles -------------------------------------------------------------------------------
def sel_placements(img: np.ndarray, geo: Geometry) -> bytes:
    """The select vias of an image as PLACEMENTs of SEL: one per (digit, row), repeated along x on
    the cell-pitch grid (repetition type 5), ordered by digit then row. The first names SEL, the
    others reuse the modal cell."""
    p, ncols = geo.die.cell.pitch, img.shape[1]
    flat = img.reshape(-1)
    idx = np.flatnonzero(flat != NO_CELL)
    if idx.size == 0:
        return b""
    digit = flat[idx]
    order = np.argsort(digit, kind="stable")  # radix sort: (digit, row, col) order
    idx, digit = idx[order], digit[order].astype(np.int64)
    rows, cols = np.divmod(idx, ncols)
    key = digit * img.shape[0] + rows
    first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])  # first via of each record
    n = np.diff(np.r_[first, idx.size])  # vias per record
    off = digit_offsets(geo)[digit[first]]
    x, y = cols[first] * p + off[:, 0], rows[first] * p + off[:, 1]
    # each record as unsigned-integer tokens: 17, info, x, y [, 5, n - 2, grid, n - 1 spacings]
    # (info bytes are raw bytes; both values used here are < 0x80, so they encode the same)
    multi = n > 1
    length = 4 + multi * (n + 2)
    at = np.cumsum(length) - length
    tok = np.empty(int(length.sum()), np.int64)
    tok[at] = PLACEMENT
    tok[at + 1] = np.where(multi, P_X | P_Y | P_R, P_X | P_Y)
    tok[at + 2], tok[at + 3] = 2 * x, 2 * y  # signed-integers >= 0
    m = np.flatnonzero(multi)
    tok[at[m] + 4], tok[at[m] + 5], tok[at[m] + 6] = 5, n[m] - 2, p
    gaps = np.diff(cols)
    gaps = np.delete(gaps, first[1:] - 1)  # spacings within a record only
    gstart = np.cumsum(n - 1) - (n - 1)
    tok[np.repeat(at + 7 - gstart, n - 1) + np.arange(gaps.size)] = gaps
    # the first record names the cell: rewrite its first two tokens as bytes
    head = uint(PLACEMENT) + bytes([int(tok[1]) | P_C]) + string("SEL")
    return head + uints(tok[2:])


def rom_tile_bytes(name: str, img: np.ndarray, die: Die, level: int = LEVEL) -> bytes:
    """The cell `name` of one tile's ROM: PLACEMENT arrays of ROMCELL over its used cells (one per
    run of rows of equal used width) and the select vias (`sel_placements`), in one CBLOCK."""
    geo, p = Geometry(die), die.cell.pitch
    pads = [_ref(Ref("ROMCELL", 0, r0 * p, w, n, p, p)) for r0, n, w in row_runs(used_widths(img, name))]
    return _cell(name, b"".join(pads) + sel_placements(img, geo), level)
