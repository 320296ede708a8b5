"""chip.overview.oas: written by every compile, byte-reproducible, recorded in the manifest; the
die, tiles and names on reference layers, the routing on the mask layers, and no ROM via."""

import json

import klayout.db as kdb

from taalas_compile.die.load import load_die
from taalas_compile.inputs import resolve
from taalas_compile.pipeline import compile_ir
from taalas_compile.view import layers as L
from taalas_compile.view.overview import overview_cells, write_overview


def test_overview_holds_the_routing_and_references_only(tiny_chip):
    die = load_die("mini")
    man = json.loads((tiny_chip / "manifest.json").read_text())
    assert {"chip.overview.oas", "klayout_session.py"} <= set(man["outputs"])
    ly = kdb.Layout()
    ly.read(str(tiny_chip / "chip.overview.oas"))
    (top,) = ly.top_cells()
    assert top.name == "OVERVIEW_tiny_llama" and {c.name for c in ly.each_cell()} == {top.name, "OV_CONTEXT", "OV_ROUTING"}
    layers = {(ly.get_info(i).layer, ly.get_info(i).datatype) for i in ly.layer_indexes()}
    masks = {(die.layers.via.layer, die.layers.via.datatype), (die.layers.metal.layer, die.layers.metal.datatype)}
    assert layers - masks <= {(r.layer, r.datatype) for r in L.REF_LAYERS} and all(ly < L.REF_BASE for ly, _ in masks)
    context = ly.cell("OV_CONTEXT")
    assert all(context.shapes(i).is_empty() for i in ly.layer_indexes() if (ly.get_info(i).layer, ly.get_info(i).datatype) in masks)
    netlist = json.loads((tiny_chip / "netlist.json").read_text())
    via = ly.find_layer(die.layers.via.layer, die.layers.via.datatype)
    stubs = kdb.Region(top.begin_shapes_rec(via)).count()
    masks_ly = kdb.Layout()
    masks_ly.read(str(tiny_chip / "chip.gds"))
    assert stubs == kdb.Region(masks_ly.cell("ROUTING").begin_shapes_rec(masks_ly.find_layer(die.layers.via.layer, 0))).count()
    tiles = kdb.Region(top.begin_shapes_rec(ly.find_layer(L.TILES["mac"].layer, L.TILES["mac"].datatype))).count()
    assert tiles == sum(t["kind"] == "mac" for t in netlist["tiles"])


def test_overview_is_byte_reproducible(tiny_chip, tmp_path):
    inp = resolve("tiny-llama")
    c = compile_ir(inp)
    write_overview(tmp_path / "again.oas", "tiny-llama", c.placement, c.routing, inp.die)
    assert (tmp_path / "again.oas").read_bytes() == (tiny_chip / "chip.overview.oas").read_bytes()
    assert overview_cells("tiny-llama", c.placement, c.routing, inp.die) in (tiny_chip / "chip.overview.oas").read_bytes()
