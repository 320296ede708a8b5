"""ROM tiles checked block by block in worker processes: the same findings, counts and digits as
`check_rom_cells` on the whole file, for any number of jobs, with or without the cell index."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from mapped_models import placement

from taalas_compile.backend import oasis_stream
from taalas_compile.backend.mask_file import MaskFile
from taalas_compile.backend.netlist import read_block_roms, read_netlist
from taalas_compile.die.cell_names import cell_name
from taalas_compile.die.load import load_die
from taalas_compile.inputs import resolve
from taalas_compile.mapper.legality import block_order
from taalas_compile.pipeline import CompileOptions, compile_chip
from taalas_compile.signoff.cell_index import scan_cells
from taalas_compile.signoff.findings import Findings
from taalas_compile.signoff.oasis_read import read_cells
from taalas_compile.signoff.rom_blocks import check_rom_blocks, collect, default_jobs
from taalas_compile.signoff.rom_cells import check_rom_cells

XYABSOLUTE = b"\x0f"  # a record the serial reader takes anywhere, but no cell's


@pytest.fixture(scope="module")
def chip(tmp_path_factory):
    """tiny-llama with OASIS masks in which one weight tile's digits differ from the netlist's."""
    out = tmp_path_factory.mktemp("blocks") / "tiny-llama"
    compile_chip(resolve("tiny-llama"), out, opts=CompileOptions(fmt="oasis"))
    pl, roms, doc = read_netlist(out)
    tile = next(t for t in pl.tiles if t.slice is not None and t.block == "L1")
    img = roms[tile.name].copy()
    cells = img[1:] != 255
    img[1:][cells] = (img[1:][cells] + 1) % 8  # every weight digit of the tile moves to the next site
    name = cell_name("T", tile.name)
    rebuild(out / "chip.oas", {name: oasis_stream.rom_tile_bytes(name, img, load_die("mini"))})
    return out, pl, doc


def rebuild(path, replace: dict[str, bytes], insert_before: str | None = None) -> None:
    """The file again, cell by cell, with some cells' bytes replaced (and a record inserted)."""
    data = path.read_bytes()
    index = scan_cells(path)
    with MaskFile(path, "oasis") as f:
        for c in index:
            if c.name == insert_before:
                f.add(XYABSOLUTE)
            f.add(replace.get(c.name, data[c.start : c.end]))


def reference(chip):
    out, pl, doc = chip
    f, images = Findings(), {}
    res = check_rom_cells(read_cells(out / "chip.oas"), pl, lambda b: read_block_roms(out, doc, b), load_die("mini"), f, images.__setitem__)
    return f, images, res


def blockwise(chip, jobs: int):
    out, pl, doc = chip
    f, images, order = Findings(), {}, []
    blocks, reading = check_rom_blocks(out, doc, out / "chip.oas", pl, load_die("mini"), jobs)

    def on_block(b):
        order.append(b.block)
        images.update(b.images)

    return f, images, collect(blocks, f, on_block), order, reading


@pytest.mark.parametrize("jobs", [1, 2])
def test_blocks_find_what_the_whole_file_check_finds(chip, jobs):
    f0, img0, r0 = reference(chip)
    f, img, r, order, reading = blockwise(chip, jobs)
    assert reading.parallel and reading.jobs == jobs
    assert {v.category for v in f0.items} == {"lvs.rom"} and f.counts == f0.counts and f.items == f0.items
    assert (r.tiles, r.vias, r.cells) == (r0.tiles, r0.vias, r0.cells) and r.tiles == len(chip[1].tiles)
    assert list(img) == list(img0) and all(np.array_equal(img[n], img0[n]) for n in img0)
    assert [c.name for c in r.other] == [c.name for c in r0.other] == ["ROUTING", "CHIP_tiny_llama"]
    assert [b for b in order if b] == block_order(chip[1])  # file order, one segment per block


def test_a_file_without_a_cell_index_is_read_serially_with_the_same_findings(chip, tmp_path):
    out, pl, doc = chip
    odd = tmp_path / "odd"
    shutil.copytree(out, odd)
    rebuild(odd / "chip.oas", {}, insert_before="B_L0")
    assert scan_cells(odd / "chip.oas") is None
    f0, img0, r0 = reference(chip)
    f, img, r, _, reading = blockwise((odd, pl, doc), 2)
    assert not reading.parallel
    assert f.items == f0.items and (r.tiles, r.vias, r.cells) == (r0.tiles, r0.vias, r0.cells)
    assert all(np.array_equal(img[n], img0[n]) for n in img0)


def test_a_missing_tile_cell_is_found_after_the_blocks(chip, tmp_path):
    out, pl, doc = chip
    gone = tmp_path / "gone"
    shutil.copytree(out, gone)
    tile = next(t for t in pl.tiles if t.block == "L0")
    rebuild(gone / "chip.oas", {cell_name("T", tile.name): b""})
    f, _, _, order, _ = blockwise((gone, pl, doc), 1)
    assert order[-1] == "" and f.items[-1].category == "lvs.rom" and f.items[-1].where == tile.name
    assert "missing" in f.items[-1].message


def test_readers_by_default_one_per_core_as_half_the_memory_holds():
    small, _ = placement("stories260k", "mini")
    assert default_jobs(small, cores=64, avail=8 << 30) == 64  # blocks of 74 k digit cells: cores bound it
    big, _ = placement("llama-3.1-8b", "hc1")  # largest block 1.15 G digit cells: ~4.6 GB a reader
    assert default_jobs(big, cores=2, avail=24 << 30) == 2  # the development machine
    assert default_jobs(big, cores=64, avail=24 << 30) == 2  # not 64 readers on 24 GiB
    assert default_jobs(big, cores=64, avail=256 << 30) == 29
    assert default_jobs(big, cores=64, avail=4 << 30) == 1  # at least one
