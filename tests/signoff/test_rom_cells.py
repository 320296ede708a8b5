"""ROM tiles checked cell by cell from the OASIS masks (the streaming sign-off of large chips):
a clean chip reads back exactly; every kind of single-via damage is found at its cell."""

import copy

import numpy as np
import pytest

from taalas_compile.backend.masks import cell_name
from taalas_compile.backend.netlist import read_block_roms, read_netlist
from taalas_compile.backend.rom_layout import digit_offsets
from taalas_compile.config.die import load_die
from taalas_compile.die.geometry import Geometry
from taalas_compile.inputs import resolve
from taalas_compile.pipeline import CompileOptions, compile_chip
from taalas_compile.signoff.findings import Findings
from taalas_compile.signoff.oasis_read import read_cells
from taalas_compile.signoff.rom_cells import check_rom_cells


@pytest.fixture(scope="module")
def chip(tmp_path_factory):
    out = tmp_path_factory.mktemp("oasis") / "tiny-llama"
    compile_chip(resolve("tiny-llama"), out, opts=CompileOptions(fmt="oasis"))
    pl, roms, doc = read_netlist(out)
    return out, pl, roms, doc, list(read_cells(out / "chip.oas"))


def run(chip, cells):
    out, pl, _, doc, _ = chip
    f, got = Findings(), {}
    res = check_rom_cells(cells, pl, lambda b: read_block_roms(out, doc, b), load_die("mini"), f, lambda n, img: got.__setitem__(n, img))
    return f, got, res


def edited(chip, tile: str, edit):
    cells = copy.deepcopy(chip[4])
    c = next(c for c in cells if c.name == cell_name("T", tile))
    edit(c)
    return cells


def weight_tile(chip) -> str:
    return next(t.name for t in chip[1].tiles if t.slice is not None)


def test_a_clean_chip_reads_back_its_rom_images(chip):
    f, got, res = run(chip, chip[4])
    assert f.items == []
    assert res.tiles == len(chip[1].tiles) and set(got) == set(chip[2])
    assert all(np.array_equal(got[n], chip[2][n]) for n in got)
    assert {c.name for c in res.other} == {"ROUTING", "CHIP_tiny_llama"}


def test_one_select_via_on_another_digit_site_is_one_lvs_error(chip):
    tile, geo = weight_tile(chip), Geometry(load_die("mini"))
    off = digit_offsets(geo)
    p = geo.die.cell.pitch

    def move(c):
        x, y = c.placements["SEL"][100]
        d = next(k for k, o in enumerate(off) if (x % p, y % p) == tuple(o))
        c.placements["SEL"][100] = (x - x % p + off[(d + 1) % 8][0], y - y % p + off[(d + 1) % 8][1])

    f, _, _ = run(chip, edited(chip, tile, move))
    assert [v.category for v in f.items] == ["lvs.rom"] and tile in f.items[0].where


@pytest.mark.parametrize("edit,category", [
    (lambda c: c.placements.__setitem__("SEL", c.placements["SEL"][1:]), "lvs.rom"),  # a via deleted
    (lambda c: c.placements.__setitem__("SEL", np.r_[c.placements["SEL"], c.placements["SEL"][:1]]), "lvs.via_extra"),  # doubled
    (lambda c: c.placements.__setitem__("SEL", np.r_[c.placements["SEL"], [[7, 7]]]), "lvs.via_misplaced"),  # off every site
    (lambda c: c.placements.__setitem__("ROMCELL", c.placements["ROMCELL"] + [[1, 0]] * (np.arange(len(c.placements["ROMCELL"]))[:, None] == 0)), "drc.rom_grid"),
    (lambda c: c.rects.__setitem__((66, 0), np.array([[0, 0, 28, 28]])), "drc.rom_shape"),  # a loose via
])
def test_damaged_tile_cells_are_found(chip, edit, category):
    f, _, _ = run(chip, edited(chip, weight_tile(chip), edit))
    assert category in {v.category for v in f.items}, [v.category for v in f.items]


def test_a_tile_placed_at_another_site_is_found(chip):
    tile = weight_tile(chip)
    cells = copy.deepcopy(chip[4])
    block = next(c for c in cells if cell_name("T", tile) in c.placements)
    block.placements[cell_name("T", tile)] = block.placements[cell_name("T", tile)] + [[1000, 0]]
    f, _, _ = run(chip, cells)
    assert [v.category for v in f.items] == ["lvs.tile_place"]


def test_streaming_sign_off_agrees_with_the_klayout_one(chip, monkeypatch):
    from taalas_compile.signoff import verify as v

    out = chip[0]
    whole = v.verify(out, tokens=2)
    monkeypatch.setattr(v, "KLAYOUT_MAX_DIGITS", 0)
    streamed = v.verify(out, tokens=2)
    assert whole["passed"] and whole["extracted"]["nets"] == streamed["extracted"]["nets"]
    assert streamed["checks"] == whole["checks"]
    assert streamed["extracted"]["sites_with_cells"] == len(chip[1].tiles)
    emu = streamed["emulation"]
    assert streamed["passed"] and emu["streamed"] and emu["tokens"] == 2 and emu["max_logit_diff"] <= 1e-3 * emu["logit_scale"]
    assert [b["block"] for b in emu["blocks"]] == ["io", "head", "L0", "L1", "tail"]
    assert all(b["max_rel_diff"] < 1e-3 for b in emu["blocks"] if b["stage"] and b["stage"] != "logits")
