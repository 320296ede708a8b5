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

import itertools
import struct
import zlib

import numpy as np

from taalas_compile.backend.layout_ir import CellSpec, Label, Rect, Ref
from taalas_compile.backend.rom_layout import row_runs, used_widths
from taalas_compile.config.die import Die
from taalas_compile.die.cell_names import ROMCELL, SEL
from taalas_compile.die.geometry import Geometry

MAGIC = b"%SEMI-OASIS\r\n"
LEVEL = 1  # zlib level of the CBLOCKs: fast; higher levels buy a few percent (benchmarks/mask_emission.py)
# ROM tiles are deflated Huffman-only: their bytes are via spacings with almost no repeated
# strings, so string matching costs time and gains nothing (measured: smaller and ~2x faster)
TILE_STRATEGY = zlib.Z_HUFFMAN_ONLY
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
    """Many unsigned-integers at once (int [n] >= 0) -> their concatenated encodings. Built for
    streams of mostly one-byte values: multi-byte values get their further bytes inserted."""
    v = np.asarray(v, np.int64)
    out = (v & 0x7F).astype(np.uint8)
    big = np.flatnonzero(v >= 0x80)
    if big.size == 0:
        return out.tobytes()
    out[big] |= 0x80
    vb = v[big]
    nb = np.ones(big.size, np.int64)  # bytes per multi-byte value
    t = vb >> 7
    while t.any():
        nb += t > 0
        t >>= 7
    k = np.arange(int((nb - 1).sum())) - np.repeat(np.cumsum(nb - 1) - (nb - 1), nb - 1) + 1  # byte number 1..nb-1
    owner = np.repeat(np.arange(big.size), nb - 1)
    more = ((vb[owner] >> (7 * k)) & 0x7F) | ((k < nb[owner] - 1) << 7)
    return np.insert(out, np.repeat(big + 1, nb - 1), more.astype(np.uint8)).tobytes()


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


def cblock(body: bytes, level: int = LEVEL, strategy: int = zlib.Z_DEFAULT_STRATEGY) -> bytes:
    """CBLOCK of raw DEFLATE (comp-type 0); empty bodies are written as nothing."""
    if not body:
        return b""
    z = zlib.compressobj(level, zlib.DEFLATED, -15, 9, strategy)
    comp = z.compress(body) + z.flush()
    return uint(CBLOCK) + uint(0) + uint(len(body)) + uint(len(comp)) + comp


def _cell(name: str, body: bytes, level: int, strategy: int = zlib.Z_DEFAULT_STRATEGY) -> bytes:
    return uint(CELL) + string(name) + cblock(body, level, strategy)


def raw_cell(name: str, body: bytes, level: int = LEVEL) -> bytes:
    """A cell from records already encoded (`body`), in one CBLOCK (`view/` writes polygons and
    rectangles by the million this way)."""
    return _cell(name, body, level)


def placement(cell: str, x: int, y: int) -> bytes:
    """One PLACEMENT of `cell` at (x, y)."""
    return _ref(Ref(cell, x, y))


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
        rep = uint(10) + uint(len(pts) - 2) + b"".join(_gdelta(b[0] - a[0], b[1] - a[1]) for a, b in itertools.pairwise(pts))
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
    p, (n_rows, n_cols) = geo.die.cell.pitch, img.shape
    flat, off = img.reshape(-1), geo.digit_offsets()
    row_starts = np.arange(n_rows + 1) * n_cols
    order = np.argsort(flat, kind="stable")  # one radix pass: cells grouped by digit, row-major within
    cuts = np.searchsorted(flat[order], np.arange(len(off) + 1))
    streams = []
    for d in range(len(off)):
        pos = order[cuts[d] : cuts[d + 1]]  # row-major
        if pos.size == 0:
            continue
        bounds = np.searchsorted(pos, row_starts)
        n = np.diff(bounds)
        rows = np.flatnonzero(n)
        n, first = n[rows], bounds[rows]
        x, y = (pos[first] - rows * n_cols) * p + off[d, 0], rows * p + off[d, 1]
        # a record as unsigned-integer tokens: 17, info, x, y [, 5, n - 2, grid, the n - 1 spacings]
        # (info is a raw byte; both values used are < 0x80, so it encodes the same; x, y >= 0 are
        # signed-integers: 2 * value)
        multi = n > 1
        hlen = 4 + 3 * multi
        hdr = np.empty((n.size, 7), np.int64)
        hdr[:, 0], hdr[:, 1] = PLACEMENT, np.where(multi, P_X | P_Y | P_R, P_X | P_Y)
        hdr[:, 2], hdr[:, 3], hdr[:, 4], hdr[:, 5], hdr[:, 6] = 2 * x, 2 * y, 5, n - 2, p
        hdr = hdr[np.arange(7)[None, :] < hlen[:, None]]
        tok = np.diff(pos, prepend=0)  # spacings in cells within a row
        last = np.cumsum(hlen) - 1
        tok[first] = hdr[last]  # a record's first slot holds the last token of its header ...
        tok = np.insert(tok, np.repeat(first, hlen - 1), np.delete(hdr, last))  # ... the rest go before it
        streams.append(tok)
    if not streams:
        return b""
    # the first record names the cell: its first two tokens are written as bytes
    head = uint(PLACEMENT) + bytes([int(streams[0][1]) | P_C]) + string(SEL)
    return head + b"".join(uints(t) for t in [streams[0][2:], *streams[1:]])


def rom_tile_bytes(name: str, img: np.ndarray, die: Die, level: int = LEVEL, strategy: int = TILE_STRATEGY) -> bytes:
    """The cell `name` of one tile's ROM: PLACEMENT arrays of ROMCELL over its used cells (one per
    run of rows of equal used width) and the select vias (`sel_placements`), in one CBLOCK."""
    geo, p = Geometry(die), die.cell.pitch
    pads = [_ref(Ref(ROMCELL, 0, r0 * p, w, n, p, p)) for r0, n, w in row_runs(used_widths(img, name))]
    return _cell(name, b"".join(pads) + sel_placements(img, geo), level, strategy)
