"""GDSII written record by record: read back by KLayout and gdstk, equal to the gdstk-built masks,
byte-reproducible, and within GDSII's AREF limits."""

from __future__ import annotations

import gdstk
import numpy as np
import pytest
from mask_compare import assert_same_masks

from taalas_compile.backend import gds_stream
from taalas_compile.backend.layout_ir import CellSpec, Ref
from taalas_compile.backend.mask_file import MaskFile
from taalas_compile.backend.masks import write_masks
from taalas_compile.die.rom_format import NO_CELL
from taalas_compile.errors import UserError


def test_gds_matches_the_gdstk_masks(masks, reference_gds, design):
    assert_same_masks(masks["gds"], reference_gds, design[-1])


def test_the_compile_writes_these_masks(masks, tiny_chip):
    assert (tiny_chip / "chip.gds").read_bytes() == masks["gds"].read_bytes()


def test_gds_is_byte_reproducible(masks, design, tmp_path):
    again = tmp_path / "again.gds"
    write_masks(again, *design, fmt="gds")
    assert again.read_bytes() == masks["gds"].read_bytes()


def test_gdstk_reads_one_sel_reference_per_digit(masks, design):
    _, pl, _, roms, _ = design
    lib = gdstk.read_gds(str(masks["gds"]))
    assert lib.unit == 1e-9 and lib.precision == 1e-9
    cells = {c.name: c for c in lib.cells}
    t = pl.tiles[0]
    tc = cells["T_" + t.name.replace(".", "_")]
    sel = [r for r in tc.references if r.cell_name == "SEL"]
    assert len(sel) == int((roms[t.name] != NO_CELL).sum())


def test_units_record_matches_gdstk(tmp_path):
    lib = gdstk.Library(unit=1e-9, precision=1e-9)
    lib.new_cell("A")
    lib.write_gds(str(tmp_path / "a.gds"))
    data = (tmp_path / "a.gds").read_bytes()
    units = data.index(b"\x00\x14\x03\x05")  # UNITS record: 20 bytes, two 8-byte reals
    assert gds_stream.header().endswith(data[units : units + 20])


def _arefs(path):
    (cell,) = [c for c in gdstk.read_gds(str(path)).cells if c.name == "T"]
    return [(r.repetition.columns, r.repetition.rows) for r in cell.references if r.cell_name == "ROMCELL"]


def test_arrays_beyond_32767_are_split(tmp_path, design):
    die = design[-1]
    img = np.full((3, 40000), NO_CELL, np.uint8)
    img[:, :40000] = 3  # rows of 40,000 used cells: more columns than one AREF holds
    path = tmp_path / "wide.gds"
    big = CellSpec("BIG", refs=(Ref("ROMCELL", 0, 0, cols=3, rows=70000, dx=192, dy=192),))
    with MaskFile(path, "gds") as f:
        f.add(gds_stream.cell_bytes(CellSpec("ROMCELL")) + gds_stream.cell_bytes(CellSpec("SEL")))
        f.add(gds_stream.rom_tile_bytes("T", img, die) + gds_stream.cell_bytes(big))
    arefs = _arefs(path)
    assert sorted(arefs) == [(7233, 3), (32767, 3)]
    (b,) = [c for c in gdstk.read_gds(str(path)).cells if c.name == "BIG"]
    dims = sorted((r.repetition.columns, r.repetition.rows) for r in b.references)
    assert dims == [(3, 4466), (3, 32767), (3, 32767)]
    assert max(max(d) for d in arefs + dims) <= gds_stream.MAX_REPEAT


def test_an_unknown_format_is_a_user_error(design, tmp_path):
    with pytest.raises(UserError, match="unknown mask format 'svg'"):
        write_masks(tmp_path / "chip.svg", *design, fmt="svg")
    assert not (tmp_path / "chip.svg").exists()
