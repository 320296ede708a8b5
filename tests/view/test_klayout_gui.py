"""The real viewer: KLayout (the Debian package CI installs) runs the compile's startup script
under Xvfb on the chip (masks + overview) and on a tile view, and saves screenshots that are not
blank. Skipped without KLayout or Xvfb, except in CI (CI=1), where that is a failure."""

import json
import os
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest
from gds_edit import move_select_via

from taalas_compile.die.geometry import Geometry
from taalas_compile.die.load import load_die
from taalas_compile.signoff.verify import verify
from taalas_compile.view.command import Selection, make_view
from taalas_compile.view.session import session_command


def tools() -> None:
    missing = [t for t in ("klayout", "xvfb-run") if shutil.which(t) is None]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {', '.join(missing)} is missing: .ci/run installs the Debian packages klayout and xvfb")
        pytest.skip(f"{', '.join(missing)} not installed")


def screenshot(cmd: list[str], png) -> float:
    """Run KLayout hidden (-z) under Xvfb with the script's `shot` variable; the share of the
    picture that is not white."""
    run = ["xvfb-run", "-a", cmd[0], "-z", "-nc", "-rx", "-rd", f"shot={png}", *cmd[1:]]
    subprocess.run(run, check=True, timeout=120, capture_output=True)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w = int.from_bytes(data[16:20], "big")
    idat, i = b"", 8
    while i < len(data):
        n, kind = int.from_bytes(data[i : i + 4], "big"), data[i + 4 : i + 8]
        idat += data[i + 8 : i + 8 + n] if kind == b"IDAT" else b""
        i += 12 + n
    raw = zlib.decompress(idat)
    rows = [raw[r * (3 * w + 1) + 1 : (r + 1) * (3 * w + 1)] for r in range(len(raw) // (3 * w + 1))]
    return sum(len(row) - row.count(255) for row in rows) / max(1, sum(len(row) for row in rows))


def test_klayout_draws_the_chip_and_a_tile_view(tiny_oasis, tmp_path):
    tools()
    chip_png, tile_png = tmp_path / "chip.png", tmp_path / "tile.png"
    assert screenshot(session_command(tiny_oasis), chip_png) > 0.05  # tiles, names, routing
    v = make_view(tiny_oasis, Selection(tile="L0.q_proj.r0c0"))
    assert screenshot(session_command(tiny_oasis, v.path), tile_png) > 0.05  # digit cells and vias


def opened(cmd: list[str], tmp_path) -> dict:
    """Start KLayout as a user does (the GUI, a new user's empty configuration) under Xvfb with the
    session command, and report what is on screen once it has started (tests/view/klayout_probe.py).
    A modal window in front of the chip (a start-up tip, a script error) stops the probe: timeout."""
    home, report = tmp_path / "home", tmp_path / "opened.json"
    home.mkdir(exist_ok=True)
    probe = Path(__file__).with_name("klayout_probe.py")
    run = ["xvfb-run", "-a", cmd[0], "-rx", *cmd[1:], "-rd", f"out={report}", "-rr", str(probe)]
    try:
        subprocess.run(run, check=True, timeout=90, capture_output=True, env={**os.environ, "HOME": str(home)})
    except subprocess.TimeoutExpired:
        pytest.fail("KLayout did not get to the chip: a modal window is in front of it")
    return json.loads(report.read_text())


def test_the_session_opens_the_chip_with_nothing_in_front(tiny_oasis, tmp_path):
    tools()
    seen = opened(session_command(tiny_oasis), tmp_path)
    assert seen["windows"] == []  # no tip, no script error, no empty marker browser (verify passed)
    assert [Path(f).name for f in seen["layouts"]] == ["chip.oas", "chip.overview.oas"]
    assert seen["max_hier"] >= 3  # drawn down to the digit cells


def test_the_session_opens_the_markers_of_a_failing_chip(tiny_chip, tmp_path):
    tools()
    chip = tmp_path / "chip"
    shutil.copytree(tiny_chip, chip)
    move_select_via(chip, "L0.q_proj.r0c0", 5, 7, Geometry(load_die("mini")))
    assert not verify(chip, tokens=2)["passed"]
    seen = opened(session_command(chip), tmp_path)
    assert seen["windows"] == ["Marker Database Browser"]  # the violation, listed for the user
