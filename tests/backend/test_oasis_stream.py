"""OASIS written record by record: KLayout reads it as the same masks as the gdstk-built GDSII;
byte-reproducible; parts written in separate processes concatenate to the same file; END carries
a valid CRC32; every repetition we write reads back where it should."""

from __future__ import annotations

import multiprocessing
import zlib
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
from mask_compare import assert_same_masks, load

from taalas_compile.backend import oasis_stream
from taalas_compile.backend.layout_ir import CellSpec, Label, Rect, Ref
from taalas_compile.backend.mask_file import MaskFile
from taalas_compile.backend.masks import (
    block_part,
    block_tiles,
    shared_part,
    top_part,
    write_masks,
)
from taalas_compile.signoff.oasis_read import read_cells


def test_oasis_matches_the_gdstk_masks(masks, reference_gds, design):
    assert_same_masks(masks["oasis"], reference_gds, design[-1])


def test_oasis_is_byte_reproducible(masks, design, tmp_path):
    again = tmp_path / "again.oas"
    write_masks(again, *design, fmt="oasis")
    assert again.read_bytes() == masks["oasis"].read_bytes()


def test_oasis_is_much_smaller_than_gds(masks):
    assert masks["oasis"].stat().st_size * 10 < masks["gds"].stat().st_size


def test_end_record_is_256_bytes_with_the_crc32(masks):
    data = masks["oasis"].read_bytes()
    assert data.startswith(oasis_stream.MAGIC)
    end = data[-256:]
    assert end[0] == oasis_stream.END and end[-5] == 1  # validation scheme 1: CRC32
    assert zlib.crc32(data[:-4]) == int.from_bytes(end[-4:], "little")


def _part(args) -> bytes:
    kind, fmt, payload = args
    if kind == "shared":
        return shared_part(payload, fmt)
    if kind == "top":
        return top_part(*payload, fmt=fmt)
    return block_part(*payload, fmt=fmt)


@pytest.mark.parametrize("fmt", ["gds", "oasis"])
def test_parts_from_other_processes_concatenate_to_the_serial_file(fmt, masks, design, tmp_path):
    top, pl, routing, roms, die = design
    jobs = [("shared", fmt, die)]
    jobs += [("block", fmt, (b, tiles, {t.name: roms[t.name] for t in tiles}, die)) for b, tiles in block_tiles(pl).items()]
    jobs += [("top", fmt, (top, pl, routing, die))]
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as ex:
        parts = list(ex.map(_part, jobs))
    path = tmp_path / f"parts.{fmt}"
    with MaskFile(path, fmt, libname=top) as f:
        for p in parts:
            f.add(p)
    assert path.read_bytes() == masks[fmt].read_bytes()


def test_uints_encode_like_one_at_a_time():
    rng = np.random.default_rng(0)
    v = np.concatenate([rng.integers(0, 128, 1000), rng.integers(0, 1 << 40, 100), [0, 127, 128, 16383, 16384]])
    rng.shuffle(v)
    assert oasis_stream.uints(v) == b"".join(oasis_stream.uint(int(x)) for x in v)
    assert oasis_stream.sint(-5) == bytes([11]) and oasis_stream.sint(5) == bytes([10])


def test_every_repetition_we_write_reads_back(tmp_path):
    """Arrays (both axes, x only, y only), explicit offsets (any sign), rectangles and labels."""
    leaf = CellSpec("LEAF", rects=(Rect(66, 0, -14, -14, 14, 14),))
    refs = (Ref("LEAF", 10, 20, cols=3, rows=2, dx=100, dy=200), Ref("LEAF", 0, 0, cols=4, dx=50),
            Ref("LEAF", 5, 5, rows=3, dy=70), Ref("LEAF", -7, 9, offsets=((300, -40), (-1000, 5), (0, 123456))),
            Ref("LEAF", 1, 2))
    top = CellSpec("TOP", rects=(Rect(67, 0, 0, 0, 500, 80),), refs=refs, labels=(Label("net a", -3, 4, 67, 10),))
    path = tmp_path / "reps.oas"
    with MaskFile(path, "oasis") as f:
        f.add(oasis_stream.cell_bytes(leaf) + oasis_stream.cell_bytes(top))
    expected = sorted([(10 + 100 * i, 20 + 200 * j) for i in range(3) for j in range(2)] + [(50 * i, 0) for i in range(4)]
                      + [(5, 5 + 70 * j) for j in range(3)] + [(-7, 9), (293, -31), (-1007, 14), (-7, 123465), (1, 2)])
    ly = load(path)
    got = sorted((i.trans.disp.x + (i.a * a + i.b * b).x, i.trans.disp.y + (i.a * a + i.b * b).y)
                 for i in ly.cell("TOP").each_inst() for a in range(max(1, i.na)) for b in range(max(1, i.nb)))
    assert got == expected
    cells = {c.name: c for c in read_cells(path)}
    assert sorted(map(tuple, cells["TOP"].placements["LEAF"].tolist())) == expected
    assert cells["TOP"].rects[(67, 0)].tolist() == [[0, 0, 500, 80]]
    assert cells["LEAF"].rects[(66, 0)].tolist() == [[-14, -14, 14, 14]]
    assert cells["TOP"].texts == [("net a", 67, 10, -3, 4)]
