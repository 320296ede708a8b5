"""The written masks: readable by KLayout, one top cell, only the die's custom layers, and
byte-reproducible together with the netlist and the ROM images."""

from __future__ import annotations

import klayout.db as kdb
import pytest

from taalas_compile.inputs import resolve
from taalas_compile.pipeline import compile_chip


@pytest.fixture(scope="module")
def layout(compiled) -> kdb.Layout:
    ly = kdb.Layout()
    ly.read(str(compiled / "chip.gds"))
    return ly


def test_masks_open_with_klayout_one_top_cell(layout, netlist):
    tops = layout.top_cells()
    assert len(tops) == 1, [c.name for c in tops]
    assert tops[0].name == "CHIP_tiny_llama"
    assert layout.dbu == pytest.approx(0.001)  # 1 nm database unit
    names = {c.name for c in layout.each_cell()}
    assert {"ROMCELL", "SEL", "ROUTING"} <= names
    assert {t["rom_region"]["cell"] for t in netlist["tiles"]} <= names
    assert any(n.startswith("B_") for n in names)


def test_masks_use_only_the_die_layers(layout, die, netlist):
    via = (die.layers.via.layer, die.layers.via.datatype)
    metal = (die.layers.metal.layer, die.layers.metal.datatype)
    labels = (die.layers.metal.layer, die.layers.label_datatype)
    top = layout.top_cell()
    found: dict[tuple[int, int], tuple[int, int]] = {}  # (layer, datatype) -> (polygons, texts)
    for li in layout.layer_indexes():
        info = layout.get_info(li)
        polys = kdb.Region(top.begin_shapes_rec(li)).count()
        texts = kdb.Texts(top.begin_shapes_rec(li)).count()
        if polys or texts:
            found[(info.layer, info.datatype)] = (polys, texts)
    assert set(found) == {via, metal, labels}, found
    assert found[via][0] > 0 and found[via][1] == 0, found
    assert found[metal][0] > 0 and found[metal][1] == 0, found
    assert found[labels][0] == 0, found
    # one label per tile plus the net labels of the routing
    assert found[labels][1] >= len(netlist["tiles"]) + len(netlist["nets"]), found


def test_compile_is_byte_reproducible(compiled, tmp_path):
    again = tmp_path / "again"
    compile_chip(resolve("tiny-llama"), again)
    for name in ("chip.gds", "netlist.json", "roms/L0.safetensors", "chip.overview.oas", "klayout_session.py", "floorplan.png"):
        assert (compiled / name).read_bytes() == (again / name).read_bytes(), f"{name} differs between two compiles"
