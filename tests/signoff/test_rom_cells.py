"""ROM tiles checked cell by cell from the OASIS masks (the streaming sign-off of large chips):
a clean chip reads back exactly; every kind of single-via damage is found at its cell."""

import copy

import numpy as np
import pytest

from taalas_compile.backend.netlist import read_block_roms, read_netlist
from taalas_compile.die.cell_names import cell_name
from taalas_compile.die.geometry import Geometry
from taalas_compile.die.load import load_die
from taalas_compile.inputs import resolve
from taalas_compile.pipeline import CompileOptions, compile_chip
from taalas_compile.signoff.findings import Findings
from taalas_compile.signoff.oasis_cells import Elements
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
    off = geo.digit_offsets()
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
    assert streamed["passed"] and emu["streamed"] and emu["tokens"] == 2 and emu["exact"] and emu["end_to_end"]["exact"]
    assert [b["block"] for b in emu["blocks"]] == ["io", "head", "L0", "L1", "tail"]
    assert all(b["exact"] for b in emu["blocks"]) and [b["block"] for b in emu["blocks"] if b["compared"]] == ["head", "L0", "L1"]


# --- the compact path: tile cells as read (records unexpanded) ---------------------------------
def expanded_copy(cell):
    c = copy.deepcopy(cell)
    c.rects, c.placements  # noqa: B018 - expands them: tile_image takes the element-by-element path
    return c


def test_a_clean_tile_is_read_from_its_records_as_from_its_placements(chip):
    from taalas_compile.signoff.rom_cells import clean_tile_image, tile_image

    geo, tile = Geometry(load_die("mini")), weight_tile(chip)
    cell = next(c for c in chip[4] if c.name == cell_name("T", tile))
    shape = chip[2][tile].shape
    fast = clean_tile_image(cell, shape, geo)
    f = Findings()
    slow = tile_image(expanded_copy(cell), shape, geo, f, tile, (0, 0))
    assert not cell.expanded and fast is not None and np.array_equal(fast, slow) and np.array_equal(fast, chip[2][tile])
    assert cell.count("p", "SEL") == len(expanded_copy(cell).placements["SEL"])


def _unpadded_cell(chip, tile):
    i, j = np.argwhere(chip[2][tile] == 255)[0]
    return int(j), int(i)


@pytest.mark.parametrize("edit,category", [
    (lambda c, p, off, cols, free: c.elements[("p", "SEL")].listed.append((7, 7)), "lvs.via_misplaced"),  # off every site
    (lambda c, p, off, cols, free: c.elements[("p", "SEL")].listed.append(c.elements[("p", "SEL")].origins[0]), "lvs.via_extra"),  # doubled
    (lambda c, p, off, cols, free: c.elements[("p", "SEL")].listed.append((cols * p + int(off[0, 0]), int(off[0, 1]))), "lvs.via_misplaced"),  # outside
    (lambda c, p, off, cols, free: c.elements[("p", "SEL")].listed.append((free[0] * p + int(off[0, 0]), free[1] * p + int(off[0, 1]))), "lvs.via_extra"),  # no pad
    (lambda c, p, off, cols, free: c.elements[("p", "SEL")].steps.__setitem__(0, np.r_[0, 0, c.elements[("p", "SEL")].steps[0][2:]]), "lvs.via_extra"),  # spacing 0
    (lambda c, p, off, cols, free: c.elements[("p", "ROMCELL")].listed.__setitem__(0, c.elements[("p", "ROMCELL")].listed[0]._replace(origin=(1, 0))), "drc.rom_grid"),
    (lambda c, p, off, cols, free: c.elements[("p", "ROMCELL")].listed.append(c.elements[("p", "ROMCELL")].listed[0]), "drc.rom_grid"),  # pads twice
    (lambda c, p, off, cols, free: c.elements.setdefault(("r", (66, 0)), Elements()).listed.append((0, 0, 28, 28)), "drc.rom_shape"),  # a loose via
    (lambda c, p, off, cols, free: c.elements.setdefault(("p", "ROUTING"), Elements()).listed.append((0, 0)), "drc.rom_shape"),
])
def test_damage_in_the_records_is_found_as_in_the_placements(chip, edit, category):
    """A tile cell as read, edited in its records: the compact path gives way to the element-by-
    element one, so every violation is reported exactly as for the expanded cell."""
    geo, tile = Geometry(load_die("mini")), weight_tile(chip)
    cells = copy.deepcopy(chip[4])
    c = next(c for c in cells if c.name == cell_name("T", tile))
    edit(c, geo.die.cell.pitch, geo.digit_offsets(), chip[2][tile].shape[1], _unpadded_cell(chip, tile))
    for e in c.elements.values():
        e.count = len(e.expand())
    assert not c.expanded
    f, _, _ = run(chip, cells)
    g, _, _ = run(chip, [expanded_copy(x) if x.name == c.name else x for x in cells])
    assert category in {v.category for v in f.items} and f.items == g.items
