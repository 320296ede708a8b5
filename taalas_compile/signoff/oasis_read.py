"""A streaming reader of the OASIS subset our mask writer emits (backend/oasis_stream.py).

    for cell in read_cells(path):   # one cell at a time; memory bounded by the largest cell
        cell.rects[(66, 0)]         # int64 [n, 4]: x0, y0, x1, y1 (nm), repetitions expanded
        cell.placements["SEL"]      # int64 [n, 2]: origins of every placement of SEL
        cell.texts                  # [(text, layer, texttype, x, y)]

The file is memory-mapped; CBLOCKs are inflated one at a time; repetitions are expanded with numpy
(a row of select vias is one record whose spacings are decoded as one array), so reading costs
Python time per record, not per via. The CRC32 in END is checked first (one sequential pass).

Supported records: PAD, START (tables absent or ignored), END, CELL by name, PLACEMENT (angle 0,
no flip), TEXT and RECTANGLE with explicit strings and all modal variables, CBLOCK (DEFLATE);
repetitions of every type except 0 after a record without one. Anything else (name tables,
XYRELATIVE mode, polygons, paths, properties, ...) raises `OasisError` naming the record.
"""

from __future__ import annotations

import mmap
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from taalas_compile.errors import UserError

MAGIC = b"%SEMI-OASIS\r\n"
RECORD_NAMES = {
    0: "PAD", 1: "START", 2: "END", 3: "CELLNAME", 4: "CELLNAME", 5: "TEXTSTRING", 6: "TEXTSTRING",
    7: "PROPNAME", 8: "PROPNAME", 9: "PROPSTRING", 10: "PROPSTRING", 11: "LAYERNAME", 12: "LAYERNAME",
    13: "CELL (by reference number)", 14: "CELL", 15: "XYABSOLUTE", 16: "XYRELATIVE", 17: "PLACEMENT",
    18: "PLACEMENT (magnified or rotated)", 19: "TEXT", 20: "RECTANGLE", 21: "POLYGON", 22: "PATH",
    23: "TRAPEZOID", 24: "TRAPEZOID", 25: "TRAPEZOID", 26: "CTRAPEZOID", 27: "CIRCLE", 28: "PROPERTY",
    29: "PROPERTY", 30: "XNAME", 31: "XNAME", 32: "XELEMENT", 33: "XGEOMETRY", 34: "CBLOCK",
}
CHUNK = 1 << 24  # bytes per step of the CRC pass
HIGH_BYTES = bytes(range(0x80, 0x100))


@dataclass(frozen=True)
class Spaced:
    """An irregular repetition along one axis (types 4-7): offsets are grid * cumsum of spacings."""

    axis: int  # 0: x, 1: y
    grid: int
    spacings: np.ndarray  # [n - 1], any integer dtype

    def offsets(self) -> np.ndarray:
        d = np.zeros((len(self.spacings) + 1, 2), np.int64)
        np.cumsum(self.spacings, out=d[1:, self.axis])
        return d * self.grid


class OasisError(UserError):
    """A mask file that is not (or not the supported subset of) OASIS, or is corrupt."""


@dataclass
class OasisCell:
    name: str
    rects: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)  # (layer, datatype) -> [n, 4]
    placements: dict[str, np.ndarray] = field(default_factory=dict)  # cell name -> origins [n, 2]
    texts: list[tuple[str, int, int, int, int]] = field(default_factory=list)  # (text, layer, texttype, x, y)


def check_crc(path: Path) -> None:
    """Compare the CRC32 of the file with the signature in its END record (scheme 1 only)."""
    size = path.stat().st_size
    if size < len(MAGIC) + 256:
        raise OasisError(f"{path}: too short to be an OASIS file ({size} bytes)")
    with open(path, "rb") as f:
        f.seek(size - 5)
        tail = f.read(5)
        scheme, sig = tail[0], struct.unpack("<I", tail[1:])[0]
        if scheme not in (1, 2) and tail[-1] == 0:
            return  # validation scheme 0: END ends with the scheme, no signature
        if scheme != 1:
            raise OasisError(f"{path}: validation scheme {scheme} is not supported (CRC32 only)")
        f.seek(0)
        crc, left = 0, size - 4
        while left:
            chunk = f.read(min(CHUNK, left))
            crc, left = zlib.crc32(chunk, crc), left - len(chunk)
    if crc != sig:
        raise OasisError(f"{path}: CRC32 mismatch (file {crc:08x}, END says {sig:08x}): the file is corrupt")


def read_cells(path: Path, validate: bool = True) -> Iterator[OasisCell]:
    """The cells of an OASIS file in file order (see the module docstring)."""
    path = Path(path)
    if validate:
        check_crc(path)
    with open(path, "rb") as f:
        # closed when the last view of it goes (an error's traceback may still hold one)
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    if mm[: len(MAGIC)] != MAGIC:
        raise OasisError(f"{path}: not an OASIS file (no magic string)")
    r = _Reader(path)
    yield from r.records(mm, len(MAGIC), len(mm), top=True)
    if not r.ended:
        raise OasisError(f"{path}: no END record: the file is truncated")


# --- decoding --------------------------------------------------------------------------------
def _uints(a: np.ndarray, pos: int, n: int) -> tuple[np.ndarray, int]:
    """n unsigned-integers from the byte array `a` at pos -> (int64 values, position after)."""
    if n == 0:
        return np.zeros(0, np.int64), pos
    w = a[pos : pos + n]
    if w.size == n and not (w & 0x80).any():  # all one-byte values
        return w.astype(np.int64), pos + n
    w = a[pos : pos + 10 * n]
    ends = np.flatnonzero(w < 0x80)[:n]
    if ends.size < n:
        raise ValueError("truncated integer list")
    stop = int(ends[-1]) + 1
    w = w[:stop].astype(np.int64)
    starts = np.r_[0, ends[:-1] + 1]
    k = np.arange(stop) - np.repeat(starts, ends - starts + 1)
    return np.add.reduceat((w & 0x7F) << (7 * k), starts), pos + stop


class _Reader:
    """Record decoder with the OASIS modal variables; `records` yields each finished cell."""

    def __init__(self, path: Path):
        self.path, self.ended, self.cell = path, False, None
        self._parts: dict = {}  # (kind "r"/"p", layer-datatype or cell name) -> arrays
        self._spaced: dict = {}  # same keys -> [(origin, Spaced)], expanded when the cell ends
        self._reset()

    def _reset(self) -> None:
        self.m: dict = {"px": 0, "py": 0, "gx": 0, "gy": 0, "tx": 0, "ty": 0}  # modal variables

    def _fail(self, msg: str, pos: int) -> OasisError:
        where = f" in cell {self.cell.name}" if self.cell else ""
        return OasisError(f"{self.path}: {msg} (at byte {pos}{where})")

    # primitives on (buf, pos): buf supports buf[i] -> int and slicing
    def _u(self) -> int:
        b, p, v, s = self.buf, self.pos, 0, 0
        while True:
            c = b[p]
            p += 1
            v |= (c & 0x7F) << s
            if c < 0x80:
                self.pos = p
                return v
            s += 7

    def _s(self) -> int:
        v = self._u()
        return -(v >> 1) if v & 1 else v >> 1

    def _str(self) -> str:
        n = self._u()
        s = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return s.decode("ascii", "replace")

    def _real(self) -> float:
        t = self._u()
        if t in (0, 1):
            return float(self._u()) * (-1 if t else 1)
        if t in (2, 3):
            return 1.0 / self._u() * (-1 if t == 3 else 1)
        if t in (4, 5):
            return self._u() / self._u() * (-1 if t == 5 else 1)
        if t == 6:
            v = struct.unpack("<f", bytes(self.buf[self.pos : self.pos + 4]))[0]
            self.pos += 4
            return v
        v = struct.unpack("<d", bytes(self.buf[self.pos : self.pos + 8]))[0]
        self.pos += 8
        return v

    def _gdelta(self) -> tuple[int, int]:
        v = self._u()
        if v & 1:  # general form
            dx = (v >> 2) * (-1 if v & 2 else 1)
            return dx, self._s()
        d, m = (v >> 1) & 7, v >> 4
        return [(m, 0), (0, m), (-m, 0), (0, -m), (m, m), (-m, m), (-m, -m), (m, -m)][d]

    def _repetition(self) -> np.ndarray | Spaced:
        """Offsets [n, 2] of every element relative to the first (one-axis repetitions: `Spaced`)."""
        t = self._u()
        if t == 0:
            if "rep" not in self.m:
                raise self._fail("repetition type 0 with no previous repetition", self.pos)
            return self.m["rep"]
        if t in (1, 2, 3):
            nx = self._u() + 2 if t != 3 else 1
            ny = self._u() + 2 if t != 2 else 1
            dx = self._u() if t != 3 else 0
            dy = self._u() if t != 2 else 0
            rep = np.empty((nx * ny, 2), np.int64)  # x fastest, as KLayout lists array members
            rep[:, 0] = np.tile(np.arange(nx, dtype=np.int64) * dx, ny)
            rep[:, 1] = np.repeat(np.arange(ny, dtype=np.int64) * dy, nx)
        elif t in (4, 5, 6, 7):  # spacings along one axis: kept as bytes, expanded per cell
            n = self._u() + 2
            grid = self._u() if t in (5, 7) else 1
            sp = self.buf[self.pos : self.pos + n - 1]
            if len(sp) == n - 1 and len(sp.translate(None, HIGH_BYTES)) == n - 1:  # all one-byte values
                spacings = self.arr[self.pos : self.pos + n - 1]
                self.pos += n - 1
            else:
                spacings, self.pos = _uints(self.arr, self.pos, n - 1)
            self.m["rep"] = Spaced(1 if t >= 6 else 0, grid, spacings)
            return self.m["rep"]
        elif t in (8, 9):
            nn = self._u() + 2
            nm = self._u() + 2 if t == 8 else 1
            a = np.array(self._gdelta())
            b = np.array(self._gdelta()) if t == 8 else np.zeros(2, np.int64)
            i, j = np.meshgrid(np.arange(nn), np.arange(nm))
            rep = i.ravel()[:, None] * a + j.ravel()[:, None] * b
        elif t in (10, 11):
            n = self._u() + 2
            grid = self._u() if t == 11 else 1
            steps = np.array([self._gdelta() for _ in range(n - 1)], np.int64).reshape(-1, 2)
            rep = np.vstack([np.zeros((1, 2), np.int64), np.cumsum(steps, axis=0)]) * grid
        else:
            raise self._fail(f"unknown repetition type {t}", self.pos)
        self.m["rep"] = rep.astype(np.int64, copy=False)
        return self.m["rep"]

    def _add(self, kind: str, key, origin: tuple, rep) -> None:
        """One record's elements: `origin` (x, y[, x1, y1]) plus each offset of `rep` (None: once)."""
        if isinstance(rep, Spaced):
            self._spaced.setdefault((kind, key), []).append((origin, rep))
        else:
            pts = np.array([origin], np.int64)
            if rep is not None:
                pts = pts + (np.hstack([rep, rep]) if pts.shape[1] == 4 else rep)
            self._parts.setdefault((kind, key), []).append(pts)

    def _expand_spaced(self) -> None:
        """All of a cell's records with one-axis repetitions, expanded at once."""
        zero = np.zeros(1, np.uint8)
        for (kind, key), recs in self._spaced.items():
            n = np.array([len(r.spacings) + 1 for _, r in recs])
            at = np.cumsum(n) - n
            steps = np.concatenate([a for _, r in recs for a in (zero, r.spacings)], dtype=np.int64)
            cs = np.cumsum(steps)
            d = cs - np.repeat(cs[at], n)  # offset along the axis, in grid units, per element
            origins = np.array([o for o, _ in recs], np.int64)
            grids = {(r.axis, r.grid) for _, r in recs}
            pts = np.empty((d.size, origins.shape[1]), np.int64)
            for j in range(origins.shape[1]):
                pts[:, j] = np.repeat(origins[:, j], n)
            if len(grids) == 1:  # the usual case: one axis and grid for all
                ((axis, grid),) = grids
                move = d * grid
                pts[:, axis] += move
                if pts.shape[1] == 4:
                    pts[:, axis + 2] += move
            else:
                move = d * np.repeat([r.grid for _, r in recs], n)
                axis = np.repeat([r.axis for _, r in recs], n)
                for j in range(pts.shape[1]):
                    pts[:, j] += np.where(axis == j % 2, move, 0)
            self._parts.setdefault((kind, key), []).append(pts)
        self._spaced = {}

    def _finish(self) -> OasisCell | None:
        if self.cell is None:
            return None
        c = self.cell
        self._expand_spaced()
        for (kind, key), arrs in self._parts.items():
            (c.rects if kind == "r" else c.placements)[key] = arrs[0] if len(arrs) == 1 else np.concatenate(arrs)
        self.cell, self._parts = None, {}
        return c

    def _new_cell(self, name: str) -> OasisCell | None:
        done = self._finish()
        self.cell = OasisCell(name)
        self._reset()
        return done

    def _need_cell(self, what: str, pos: int) -> OasisCell:
        if self.cell is None:
            raise self._fail(f"{what} outside a cell", pos)
        return self.cell

    # --- records ---------------------------------------------------------------------------
    def records(self, buf, pos: int, end: int, top: bool) -> Iterator[OasisCell]:
        self.buf, self.pos = buf, pos
        self.arr = np.frombuffer(buf, np.uint8)
        while self.pos < end and not self.ended:
            at = self.pos
            try:
                rid = self._u()
                if rid == 0:
                    continue
                if rid == 1 and top:
                    self._str()
                    if self._real() != 1000.0:
                        raise self._fail("unit is not 1000 grid steps per µm", at)
                    if self._u() == 0:
                        for _ in range(12):
                            self._u()
                elif rid == 2 and top:
                    self.ended = True
                elif rid == 14:
                    done = self._new_cell(self._str())
                    if done is not None:
                        yield done
                elif rid == 15:
                    pass  # XYABSOLUTE: the default mode
                elif rid == 17:
                    self._placement(at)
                elif rid == 19:
                    self._text(at)
                elif rid == 20:
                    self._rectangle(at)
                elif rid == 34 and top:
                    body = self._cblock(at)
                    saved = self.buf, self.pos, self.arr
                    yield from self.records(body, 0, len(body), top=False)
                    self.buf, self.pos, self.arr = saved
                else:
                    name = RECORD_NAMES.get(rid, "unknown")
                    raise self._fail(f"record type {rid} ({name}) is not supported by this reader", at)
            except KeyError as e:
                raise self._fail(f"modal variable {e} used before it was set", at) from None
            except (IndexError, ValueError, zlib.error) as e:
                raise self._fail(f"malformed record ({e})", at) from None
        if top:
            done = self._finish()
            if done is not None:
                yield done

    def _cblock(self, at: int) -> bytes:
        kind, n, nc = self._u(), self._u(), self._u()
        if kind != 0:
            raise self._fail(f"CBLOCK compression type {kind} is not supported (DEFLATE only)", at)
        comp = self.buf[self.pos : self.pos + nc]
        self.pos += nc
        body = zlib.decompress(comp, -15)
        if len(body) != n:
            raise self._fail(f"CBLOCK inflates to {len(body)} bytes, its header says {n}", at)
        return body

    def _placement(self, at: int) -> None:
        self._need_cell("PLACEMENT", at)
        info, m = self.buf[self.pos], self.m
        self.pos += 1
        if info & 0x80:
            if info & 0x40:
                raise self._fail("PLACEMENT by cell reference number is not supported (no CELLNAME tables)", at)
            m["pc"] = self._str()
        elif "pc" not in m:
            raise self._fail("PLACEMENT without a cell name", at)
        if info & 0x07:
            raise self._fail("rotated or flipped PLACEMENT is not supported", at)
        if info & 0x20:
            m["px"] = self._s()
        if info & 0x10:
            m["py"] = self._s()
        self._add("p", m["pc"], (m["px"], m["py"]), self._repetition() if info & 0x08 else None)

    def _text(self, at: int) -> None:
        cell = self._need_cell("TEXT", at)
        info, m = self.buf[self.pos], self.m
        self.pos += 1
        if info & 0x40:
            if info & 0x20:
                raise self._fail("TEXT by text-string reference number is not supported (no TEXTSTRING tables)", at)
            m["ts"] = self._str()
        if info & 0x01:
            m["tl"] = self._u()
        if info & 0x02:
            m["tt"] = self._u()
        if info & 0x10:
            m["tx"] = self._s()
        if info & 0x08:
            m["ty"] = self._s()
        pts = np.array([[m["tx"], m["ty"]]], np.int64)
        if info & 0x04:
            rep = self._repetition()
            pts = pts + (rep.offsets() if isinstance(rep, Spaced) else rep)
        for x, y in pts.tolist():
            cell.texts.append((m["ts"], m["tl"], m["tt"], x, y))

    def _rectangle(self, at: int) -> None:
        self._need_cell("RECTANGLE", at)
        info, m = self.buf[self.pos], self.m
        self.pos += 1
        if info & 0x01:
            m["l"] = self._u()
        if info & 0x02:
            m["d"] = self._u()
        if info & 0x40:
            m["w"] = self._u()
        if info & 0x80:
            m["h"] = m["w"]
        elif info & 0x20:
            m["h"] = self._u()
        if info & 0x10:
            m["gx"] = self._s()
        if info & 0x08:
            m["gy"] = self._s()
        x, y = m["gx"], m["gy"]
        self._add("r", (m["l"], m["d"]), (x, y, x + m["w"], y + m["h"]), self._repetition() if info & 0x04 else None)
