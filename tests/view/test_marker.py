"""`view --marker N` on a chip with an injected fault shows the violation: the marker's box and
message on the marker layer, and the faulty via itself among the view's vias."""

import shutil

import klayout.db as kdb
import numpy as np
from gds_edit import move_select_via
from vias import view_vias

from taalas_compile.die.geometry import Geometry
from taalas_compile.die.load import load_die
from taalas_compile.signoff.verify import verify
from taalas_compile.view import layers as L
from taalas_compile.view.command import Selection, make_view


def test_marker_view_shows_a_moved_via(tiny_chip, tmp_path):
    chip = tmp_path / "out"
    shutil.copytree(tiny_chip, chip)
    geo = Geometry(load_die("mini"))
    moved = np.array(move_select_via(chip, "L0.q_proj.r0c0", 5, 7, geo))
    res = verify(chip, tokens=2)
    assert not res["passed"] and res["counts"] == {"lvs.via_moved": 1}

    v = make_view(chip, Selection(marker=1))
    assert v.region.label == "marker-1" and "select via on digit" in v.region.marker.message
    assert (view_vias(v.path, geo.die) == moved).all(axis=1).any()  # the faulty via is in the view
    ly = kdb.Layout()
    ly.read(str(v.path))
    (top,) = ly.top_cells()
    li = ly.find_layer(L.MARKER.layer, L.MARKER.datatype)
    box = top.bbox_per_layer(li)
    assert box.contains(kdb.Point(*moved.tolist()))  # the marker's box is around it
    texts = [it.shape().text_string for it in top.begin_shapes_rec(li).each() if it.shape().is_text()]
    assert any("select via on digit" in s for s in texts)
