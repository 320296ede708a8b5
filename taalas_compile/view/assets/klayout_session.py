"""Open a taalas-compile chip in KLayout: masks (or a view) + overview + sign-off markers, with the
layer names and colours of chip.lyp, the hierarchy expanded down to the digit cells.

    klayout -rm DIR/klayout_session.py                         # the chip: masks + overview
    klayout -rd view=DIR/view/tile-L0.q_proj.r0c0.oas -rm DIR/klayout_session.py   # a view
    klayout -rd shot=chip.png -z -rm DIR/klayout_session.py    # save a screenshot and exit

`-rm` (a start-up script) rather than `-rr`: KLayout shows its start-up tips between the two, so
this script marks the two a viewer would meet seen before they come up, and opens the chip once
the event loop runs (the marker browser needs the window up).

A chip too large for a layout database (the 8B chip's billions of vias) opens as its overview
alone: cut the part to look at with `taalas-compile view DIR --tile NAME` (or --block, --window,
--marker). Written by every compile; runs inside KLayout (`pya`), not in taalas-compile.
"""

import json
import os
import re
import xml.etree.ElementTree as ET

import pya

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_MASK_DIGITS = 50_000_000  # above this the masks are not opened (taalas_compile/pipeline.py RENDER_FROM_MASKS_DIGITS)
TIPS = ("only-top-level-shown-by-default", "editor-mode")  # KLayout's keys of the startup tips it shows a viewer
REGION_LAYER = (1040, 0)  # a view's region outline (taalas_compile/view/layers.py REGION)


def _var(name):
    return globals().get(name) or None  # set with -rd name=value


def _layouts():
    """The files to open, first one first: a view, or the masks and the overview."""
    view = _var("view")
    if view:
        return [os.path.abspath(view)]
    with open(os.path.join(HERE, "manifest.json")) as f:
        man = json.load(f)
    masks = man["figures"]["masks"].get("file")
    overview = os.path.join(HERE, "chip.overview.oas")
    if masks and man["figures"]["fit"]["digits_total"] <= MAX_MASK_DIGITS:
        return [os.path.join(HERE, masks), overview]
    print(f"{HERE}: {man['figures']['fit']['digits_total']:,} digit cells, too many to open; showing the overview. "
          f"Cut a part of the masks with: taalas-compile view {HERE} --tile NAME (or --block B: its outline view and one view per tile; "
          f"--window X0,Y0,X1,Y1, --marker N)")
    return [overview]


def _layer_props(view, n_layouts):
    """chip.lyp's entries, once per opened layout."""
    view.clear_layers()
    for cv in range(n_layouts):
        for p in ET.parse(os.path.join(HERE, "chip.lyp")).getroot().iter("properties"):
            lp = pya.LayerPropertiesNode()
            lp.name = p.findtext("name") + (f" [{cv + 1}]" if n_layouts > 1 and cv else "")
            lp.source = re.sub(r"@\d+$", "", p.findtext("source")) + f"@{cv + 1}"
            lp.fill_color = lp.frame_color = 0xFF000000 | int(p.findtext("fill-color")[1:], 16)
            lp.dither_pattern = int(p.findtext("dither-pattern").lstrip("I"))
            lp.width = int(p.findtext("width"))
            lp.visible = p.findtext("visible") == "true"
            view.insert_layer(view.end_layers(), lp)


def _region(view):
    """A view's region (its outline on the region layer), else None."""
    ly = view.cellview(0).layout()
    li = ly.find_layer(*REGION_LAYER)
    if li is None:
        return None
    box = view.cellview(0).cell.dbbox_per_layer(li)
    return None if box.empty() else box.enlarged(max(box.width(), box.height()) * 0.1)


def _no_tips(app):
    """No modal tips in front of the chip: "child cells are not drawn" (this script opens the
    hierarchy itself, max_hier below) and "started in viewer mode" (a viewer is what it is).
    KLayout shows them after this script has run; they are marked seen the way its own "don't show
    again" box marks them (`key=3`, "no"), other tips untouched."""
    hidden = app.get_config("tip-window-hidden") or ""
    seen = {entry.split("=")[0] for entry in hidden.split(",")}
    more = [f"{tip}=3" for tip in TIPS if tip not in seen]
    if more:
        app.set_config("tip-window-hidden", ",".join(filter(None, [hidden, *more])))


def _open(mw):
    """Masks (or a view) + overview in one view, layer names and colours, hierarchy expanded, zoomed."""
    files = _layouts()
    mw.load_layout(files[0], 1)
    view = mw.current_view()
    for f in files[1:]:
        view.load_layout(f, True)
    _layer_props(view, len(files))
    view.set_config("background-color", "#ffffff")
    view.set_config("grid-visible", "false")
    view.max_hier()  # down to the digit cells (ROMCELL pads, SEL vias), no "child cells not drawn"
    box = _region(view)
    view.zoom_box(box) if box is not None else view.zoom_fit()
    return view


def _show(mw):
    view = _open(mw)
    markers = os.path.join(HERE, "signoff", "violations.lyrdb")
    if os.path.isfile(markers) and ET.parse(markers).find("items/item") is not None:  # violations: browse them
        index = view.create_rdb("sign-off")
        view.rdb(index).load(markers)
        view.show_rdb(index, 0)


_START = pya.QTimer()  # fires once KLayout's event loop runs: the window is up, the marker browser loaded


def main():
    app = pya.Application.instance()
    shot = _var("shot")
    if shot:  # klayout -z: draw, save, exit
        view = _open(app.main_window())
        app.process_events()  # let the view take the layers and hierarchy before it is drawn
        view.save_image(shot, int(_var("width") or 1200), int(_var("height") or 900))
        app.exit(0)
        return
    _no_tips(app)  # before KLayout shows its start-up tips (under -rm; an -rr script runs after them)
    _START.singleShot = True
    _START.timeout = lambda: _show(app.main_window())
    _START.start(0)


main()
