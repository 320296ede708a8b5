"""The streaming OASIS reader: agrees with KLayout on our masks, gives back the ROM digits, checks
the CRC, and names what it does not support."""

from __future__ import annotations

import types

import klayout.db as kdb
import numpy as np
import pytest

from taalas_compile.backend.masks import write_masks
from taalas_compile.die.cell_names import cell_name
from taalas_compile.die.geometry import Geometry
from taalas_compile.signoff.oasis_read import OasisError, read_cells


@pytest.fixture(scope="module")
def tiny(tiny_ir, tmp_path_factory):
    inp, c = tiny_ir
    path = tmp_path_factory.mktemp("oasis") / "chip.oas"
    write_masks(path, inp.recipe.name, c.placement, c.routing, c.roms, inp.die, fmt="oasis")
    return types.SimpleNamespace(path=path, pl=c.placement, roms=c.roms, die=inp.die)


def _klayout_cell(ly: kdb.Layout, c: kdb.Cell):
    rects, texts, insts = {}, [], {}
    for li in ly.layer_indexes():
        info = ly.get_info(li)
        for s in c.shapes(li).each():
            if s.is_text():
                texts.append((s.text_string, info.layer, info.datatype, s.text.x, s.text.y))
            else:
                b = s.bbox()
                rects.setdefault((info.layer, info.datatype), []).append((b.left, b.bottom, b.right, b.top))
    for i in c.each_inst():
        for a in range(max(1, i.na)):
            for b in range(max(1, i.nb)):
                d = i.trans.disp + (i.a * a + i.b * b if i.is_regular_array() else kdb.Vector())
                insts.setdefault(i.cell.name, []).append((d.x, d.y))
    return ({k: sorted(v) for k, v in rects.items()}, sorted(texts), {k: sorted(v) for k, v in insts.items()})


def test_reader_agrees_with_klayout(tiny):
    ly = kdb.Layout()
    ly.read(str(tiny.path))
    ours = {c.name: c for c in read_cells(tiny.path)}
    assert set(ours) == {c.name for c in ly.each_cell()}
    for c in ly.each_cell():
        rects, texts, insts = _klayout_cell(ly, c)
        o = ours[c.name]
        assert {k: sorted(map(tuple, v.tolist())) for k, v in o.rects.items()} == rects, c.name
        assert sorted(o.texts) == texts, c.name
        assert {k: sorted(map(tuple, v.tolist())) for k, v in o.placements.items()} == insts, c.name


def test_select_vias_give_back_the_rom_digits(tiny):
    """Every tile's SEL placements, decoded by position, are its ROM image."""
    geo = Geometry(tiny.die)
    p, off = tiny.die.cell.pitch, geo.digit_offsets()
    digit_at = {(int(x), int(y)): d for d, (x, y) in enumerate(off)}
    cells = {c.name: c for c in read_cells(tiny.path)}
    for t in tiny.pl.tiles[:12]:
        img = tiny.roms[t.name]
        pos = cells[cell_name("T", t.name)].placements["SEL"]
        rows, cols = pos[:, 1] // p, pos[:, 0] // p
        got = np.full(img.shape, 255, np.uint8)
        got[rows, cols] = [digit_at[(int(x), int(y))] for x, y in (pos - np.stack([cols, rows], 1) * p).tolist()]
        assert np.array_equal(got, img), t.name


def test_cells_come_one_at_a_time(tiny):
    it = read_cells(tiny.path)
    first = next(it)
    assert first.name == "ROMCELL" and first.placements == {}
    it.close()


def test_a_corrupt_byte_fails_the_crc(tiny, tmp_path):
    data = bytearray(tiny.path.read_bytes())
    data[len(data) // 2] ^= 0x01
    bad = tmp_path / "bad.oas"
    bad.write_bytes(bytes(data))
    with pytest.raises(OasisError, match="CRC32 mismatch"):
        next(read_cells(bad))


def test_a_truncated_file_is_an_error(tiny, tmp_path):
    cut = tmp_path / "cut.oas"
    cut.write_bytes(tiny.path.read_bytes()[:-300])
    with pytest.raises(OasisError):
        list(read_cells(cut, validate=False))


def test_unsupported_records_are_named(tmp_path):
    """KLayout's own OASIS uses name tables, which our subset never writes."""
    ly = kdb.Layout()
    top = ly.create_cell("TOP")
    top.shapes(ly.layer(1, 0)).insert(kdb.Polygon([kdb.Point(0, 0), kdb.Point(100, 0), kdb.Point(0, 50)]))
    path = tmp_path / "klayout.oas"
    ly.write(str(path))
    with pytest.raises(OasisError, match=r"record type \d+ \(\w+.*\) is not supported"):
        list(read_cells(path))


def test_every_placement_form_reads_as_klayout_reads_it(tmp_path):
    """The fast PLACEMENT loop and the general decoder: one-axis repetitions with one- and
    multi-byte spacings, with and without a grid, reused by type 0, regular arrays, modal cells."""
    from taalas_compile.backend.mask_file import MaskFile
    from taalas_compile.backend.oasis_stream import (
        CELL,
        PLACEMENT,
        RECTANGLE,
        cblock,
        sint,
        string,
        uint,
    )

    def place(info: int, *fields: bytes) -> bytes:
        return uint(PLACEMENT) + bytes([info]) + b"".join(fields)

    def spaced(t: int, spacings: list[int], grid: int | None = None) -> bytes:
        return uint(t) + uint(len(spacings) - 1) + (uint(grid) if grid else b"") + b"".join(uint(s) for s in spacings)

    leaf = uint(CELL) + string("LEAF") + cblock(uint(RECTANGLE) + bytes([0xDB]) + uint(66) + uint(0) + uint(28) + sint(-14) + sint(-14))
    body = b"".join([
        place(0xB8, string("LEAF"), sint(1000), sint(-300), spaced(5, [1, 200, 3, 70000], grid=7)),  # multi-byte spacings
        place(0x38, sint(-5), sint(20000), uint(0)),  # type 0: the repetition before
        place(0x28, sint(300), spaced(4, [5, 6])),  # modal y, no grid
        place(0x18, sint(77), spaced(5, [2] * 300, grid=192)),  # n - 2 in two bytes
        place(0x08, uint(0)),  # modal x and y, type 0 again
        place(0xB8, string("LEAF"), sint(0), sint(0), uint(1) + uint(0) + uint(1) + uint(50) + uint(60)),  # 2 x 3 array
        place(0xB0, string("OTHER"), sint(9), sint(9)),
        place(0x30, sint(10), sint(11)),
    ])
    top = uint(CELL) + string("TOP") + cblock(body)
    other = uint(CELL) + string("OTHER") + cblock(uint(RECTANGLE) + bytes([0xDB]) + uint(66) + uint(0) + uint(28) + sint(0) + sint(0))
    path = tmp_path / "forms.oas"
    with MaskFile(path, "oasis") as f:
        f.add(leaf + other + top)
    ly = kdb.Layout()
    ly.read(str(path))
    _, _, want = _klayout_cell(ly, ly.cell("TOP"))
    got = {c.name: c for c in read_cells(path)}["TOP"]
    assert {k: got.count("p", k) for k in want} == {k: len(v) for k, v in want.items()}
    assert {k: sorted(map(tuple, v.tolist())) for k, v in got.placements.items()} == want


ONE = bytes([17, 0xB0]) + b"\x04LEAF\x00\x00"  # a plain PLACEMENT of LEAF at (0, 0)


@pytest.mark.parametrize("body,error", [
    (ONE + bytes([17, 0xB1]) + b"\x04LEAF\x00\x00", "rotated or flipped PLACEMENT"),
    (ONE + bytes([17, 0xC0, 1]), "by cell reference number"),
    (bytes([17, 0x30, 0, 0]), "PLACEMENT without a cell name"),
    (ONE + bytes([17, 0x38, 0, 0, 0]), "repetition type 0 with no previous repetition"),
    (ONE + bytes([17, 0xB8]) + b"\x04LEAF\x00\x00" + bytes([5, 3, 7, 1, 2]), "malformed record"),  # spacings cut short
])
def test_placements_outside_the_subset_are_named(tmp_path, body, error):
    from taalas_compile.backend.mask_file import MaskFile
    from taalas_compile.backend.oasis_stream import CELL, cblock, string, uint

    path = tmp_path / "bad.oas"
    with MaskFile(path, "oasis") as f:
        f.add(uint(CELL) + string("TOP") + cblock(body))
    with pytest.raises(OasisError, match=error):
        list(read_cells(path))
