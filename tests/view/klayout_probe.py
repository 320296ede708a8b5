"""Run by KLayout after klayout_session.py (tests/view/test_klayout_gui.py): once the event loop has
run the session's own start-up, write what a user sees to the file in the variable `out` — the
visible windows besides the main one and the layouts in the view — and exit. A modal dialog in
front of the chip keeps this from running at all (the test times out)."""

import json

import pya

_TIMER = pya.QTimer()


def report():
    app = pya.Application.instance()
    mw = app.main_window()
    view = mw.current_view()
    windows = [w.windowTitle for w in pya.QApplication.topLevelWidgets() if w.isVisible() and w.windowTitle != mw.windowTitle]
    layouts = [view.cellview(i).filename() for i in range(view.cellviews())] if view else []
    with open(out, "w") as f:  # noqa: F821 -- `out` is set by `klayout -rd out=FILE`
        json.dump({"windows": windows, "layouts": layouts, "max_hier": view.max_hier_levels if view else 0}, f)
    app.exit(0)


_TIMER.singleShot = True
_TIMER.timeout = report
_TIMER.start(0)
