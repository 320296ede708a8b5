"""Sign-off results on disk: `signoff.json` and a KLayout marker database (`violations.lyrdb`)
that opens next to the masks (Tools > Marker Browser) and points at every listed violation."""

from __future__ import annotations

import json
from pathlib import Path

import klayout.db as kdb
from klayout import rdb

from taalas_compile.files import write_atomic

MARKER_HALF_UM = 0.2  # half-size of the box drawn around a violation's location


def write_lyrdb(path: Path, res: dict, top_cell: str, masks: str) -> None:
    db = rdb.ReportDatabase("taalas-compile sign-off")
    db.top_cell_name = top_cell
    db.original_file = masks
    db.description = f"sign-off of {res['dir']}: {'PASSED' if res['passed'] else 'FAILED'}"
    cell = db.create_cell(top_cell)
    cats: dict[str, rdb.RdbCategory] = {}
    for v in res["violations"]:
        group, _, name = v["category"].partition(".")
        if v["category"] not in cats:
            parent = cats.get(group) or db.create_category(group)
            cats[group] = parent
            cats[v["category"]] = db.create_category(parent, name or group)
        item = db.create_item(cell.rdb_id(), cats[v["category"]].rdb_id())
        x, y, h = v["x_nm"] / 1000, v["y_nm"] / 1000, MARKER_HALF_UM
        item.add_value(kdb.DBox(x - h, y - h, x + h, y + h))
        item.add_value(f"{v['where']}: {v['message']}" if v["where"] else v["message"])
    tmp = path.with_name(path.name + ".tmp")
    db.save(str(tmp))
    tmp.replace(path)


def write_results(out: Path, res: dict, top_cell: str, masks: str) -> Path:
    """DIR/signoff/{signoff.json, violations.lyrdb}; returns the folder."""
    folder = out / "signoff"
    folder.mkdir(exist_ok=True)
    write_atomic(folder / "signoff.json", lambda p: p.write_text(json.dumps(res, indent=1) + "\n"))
    write_lyrdb(folder / "violations.lyrdb", res, top_cell, masks)
    return folder
