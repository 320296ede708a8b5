"""verify writes signoff.json and a KLayout marker database that points at each violation."""

import json

import gdstk
import klayout.db as kdb
from klayout import rdb

from taalas_compile.signoff.verify import verify


def test_planted_violation_is_a_marker_at_its_place(chip_copy):
    lib = gdstk.read_gds(str(chip_copy / "chip.gds"))
    top = lib.top_level()[0]
    top.add(gdstk.rectangle((10_000, 20_000), (10_400, 20_400), layer=1, datatype=0))  # a shape off the two layers
    lib.write_gds(str(chip_copy / "chip.gds"))

    res = verify(chip_copy, tokens=2)
    assert not res["passed"]
    saved = json.loads((chip_copy / "signoff" / "signoff.json").read_text())
    assert saved["counts"] == res["counts"] and saved["passed"] is False

    db = rdb.ReportDatabase("check")
    db.load(str(chip_copy / "signoff" / "violations.lyrdb"))
    assert db.top_cell_name == top.name and db.num_items() == len(res["violations"])
    hits = []
    for item in db.each_item():
        name = db.category_by_id(item.category_id()).path()
        boxes = [v.box() for v in item.each_value() if v.is_box()]
        texts = [v.string() for v in item.each_value() if not v.is_box()]
        hits += [(name, b, t) for b in boxes for t in texts]
    assert any(name == "layout.layer" and b.contains(kdb.DPoint(10.2, 20.2)) and "1/0" in t for name, b, t in hits), hits
