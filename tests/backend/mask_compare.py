"""Comparing two mask files as KLayout reads them: cells and hierarchy, flattened regions of the
two custom layers (XOR), and labels."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import klayout.db as kdb


def load(path: Path) -> kdb.Layout:
    ly = kdb.Layout()
    ly.read(str(path))
    return ly


def hierarchy(ly: kdb.Layout) -> dict[str, Counter]:
    """Cell name -> how many placements of each child cell it holds (arrays expanded)."""
    out = {}
    for c in ly.each_cell():
        n: Counter = Counter()
        for inst in c.each_inst():
            n[inst.cell.name] += inst.cell_inst.size()
        out[c.name] = n
    return out


def layer_xor_empty(a: kdb.Layout, b: kdb.Layout, layer: tuple[int, int]) -> tuple[int, bool]:
    """(shapes on the layer when flattened, whether the flattened layers of a and b XOR to nothing).
    Deep regions: the XOR is computed hierarchically, its result is the flat difference."""
    dss = kdb.DeepShapeStore()
    ra, rb = (kdb.Region(ly.top_cell().begin_shapes_rec(ly.find_layer(*layer)), dss) for ly in (a, b))
    return ra.count(), ra.count() == rb.count() and (ra ^ rb).is_empty()


def labels(ly: kdb.Layout, layer: tuple[int, int]) -> list[tuple[str, int, int]]:
    texts = kdb.Texts(ly.top_cell().begin_shapes_rec(ly.find_layer(*layer)))
    return sorted((t.string, t.x, t.y) for t in texts.each())


def assert_same_masks(ours: Path, reference: Path, die) -> None:
    """Same cell names and hierarchy, XOR-identical via and metal layers, equal labels."""
    a, b = load(ours), load(reference)
    assert a.dbu == b.dbu == 0.001
    assert [c.name for c in a.top_cells()] == [c.name for c in b.top_cells()]
    assert hierarchy(a) == hierarchy(b)
    for layer in ((die.layers.via.layer, die.layers.via.datatype), (die.layers.metal.layer, die.layers.metal.datatype)):
        n, same = layer_xor_empty(a, b, layer)
        assert n > 0 and same, f"layer {layer} differs from the reference"
    lab = labels(a, (die.layers.metal.layer, die.layers.label_datatype))
    assert lab and lab == labels(b, (die.layers.metal.layer, die.layers.label_datatype))
