"""A view's vias are exactly the masks' vias in its region, as the sign-off reads the masks: on
GDSII (read whole, every tile clipped) and OASIS (tile cells inside the region copied byte for
byte, the others clipped) tiny-llama, and on stories260K."""

import shutil
import subprocess

import numpy as np
import pytest
from vias import mask_vias_in, view_vias

from taalas_compile.backend.netlist import read_netlist
from taalas_compile.die.load import load_die
from taalas_compile.errors import UserError
from taalas_compile.view.command import Selection, make_view


def same_vias(chip, sel):
    view = make_view(chip, sel)
    _, _, doc = read_netlist(chip, roms=False)
    die = load_die("mini")
    want = mask_vias_in(chip / doc["masks"], die, view.region)
    got = view_vias(view.path, die)
    assert len(want) > 0 and got.shape == want.shape and (got == want).all(), (view.region.label, len(got), len(want))
    assert view.vias == len(want)
    return view


@pytest.mark.parametrize("sel", [Selection(tile="L0.q_proj.r0c0"), Selection(block="L1"), Selection(window="150,20,330,75")],
                         ids=["tile", "block", "window"])
def test_view_vias_equal_the_masks_in_the_region(tiny_chip, tiny_oasis, sel):
    v = same_vias(tiny_chip, sel)
    assert v.copied == 0  # GDSII: read whole, clipped
    w = same_vias(tiny_oasis, sel)
    assert w.copied > 0 and (w.clipped > 0) == (sel.window is not None)  # OASIS: tile cells inside copied as they are


def test_stories260k_block_view(stories_chip):
    same_vias(stories_chip, Selection(block="L2"))


def test_the_overview_is_the_context_and_adds_no_via_or_metal(tiny_oasis):
    import klayout.db as kdb

    v = make_view(tiny_oasis, Selection(tile="L0.q_proj.r0c0"))
    ly = kdb.Layout()
    ly.read(str(v.path))
    names = {c.name for c in ly.each_cell()}
    assert {"OV_CONTEXT", "VIEW_CLIP", "VIEW_REF", "T_L0_q_proj_r0c0", "SEL", "ROMCELL"} <= names and "OV_ROUTING" not in names
    assert v.path == tiny_oasis / "view" / "tile-L0.q_proj.r0c0.oas"


@pytest.mark.parametrize("sel, message", [
    (Selection(), "give exactly one of"),
    (Selection(tile="L0.q_proj.r0c0", block="L0"), "give exactly one of"),
    (Selection(tile="q_proj_r0"), "no such tile"),
    (Selection(block="L9"), "no such layer block"),
    (Selection(window="1,2,3"), "expected X0,Y0,X1,Y1"),
    (Selection(window="5,5,1,1"), "not a box on the die"),
    (Selection(marker=1), "run `taalas-compile verify"),
])
def test_bad_selections_are_one_line_errors(tiny_chip, sel, message):
    with pytest.raises(UserError, match=message):
        make_view(tiny_chip, sel)


def test_a_region_with_more_vias_than_max_vias_is_refused_before_writing(tiny_oasis):
    """The console script: one line naming the count and the way out, exit 2, no file."""
    n = make_view(tiny_oasis, Selection(tile="L0.q_proj.r0c0")).vias
    shutil.rmtree(tiny_oasis / "view")
    p = subprocess.run([shutil.which("taalas-compile"), "view", str(tiny_oasis), "--tile", "L0.q_proj.r0c0", "--max-vias", str(n - 1)],
                       check=False, capture_output=True, text=True)
    assert p.returncode == 2 and f"holds {n:,} vias" in p.stderr and f"--max-vias {n}" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and not (tiny_oasis / "view").exists()


def test_a_block_above_max_vias_is_its_abstract_and_one_exact_view_per_tile(tiny_oasis):
    """As the 8B chip's blocks (677 M vias, 13 GiB in KLayout: docs/performance.md): the block's
    view keeps the routing and the overview's outlines and names but no tile cell, and the tiles'
    views together hold exactly the masks' vias of the block."""
    import klayout.db as kdb

    whole = make_view(tiny_oasis, Selection(block="L1"))
    shutil.rmtree(tiny_oasis / "view")
    p = subprocess.run([shutil.which("taalas-compile"), "view", str(tiny_oasis), "--block", "L1", "--max-vias", str(whole.vias - 1)],
                       check=False, capture_output=True, text=True)
    assert p.returncode == 0 and "tiles:" in p.stdout and "a tile: klayout -rd view=" in " ".join(p.stdout.split()), p.stdout + p.stderr
    pl, _, doc = read_netlist(tiny_oasis, roms=False)
    die = load_die("mini")
    files = sorted((tiny_oasis / "view" / "block-L1").glob("*.oas"))
    assert sorted(f.stem for f in files) == sorted(f"tile-{t.name}" for t in pl.tiles if t.block == "L1")
    got = np.concatenate([view_vias(f, die) for f in files])
    want = mask_vias_in(tiny_oasis / doc["masks"], die, whole.region)
    assert len(got) == len(want) == whole.vias and (got[np.lexsort(got.T[::-1])] == want).all()
    ly = kdb.Layout()
    ly.read(str(tiny_oasis / "view" / "block-L1.oas"))
    names = {c.name for c in ly.each_cell()}
    assert {"OV_CONTEXT", "VIEW_CLIP", "VIEW_REF"} <= names and not any(n.startswith("T_") or n in ("ROMCELL", "SEL") for n in names)
    assert len(view_vias(tiny_oasis / "view" / "block-L1.oas", die)) < whole.vias


def test_a_block_with_a_tile_above_max_vias_writes_nothing(tiny_oasis):
    """Each tile of a split block is checked before any file is written: one line, exit 2."""
    n = make_view(tiny_oasis, Selection(tile="L1.up_proj.r0c0")).vias
    shutil.rmtree(tiny_oasis / "view")
    p = subprocess.run([shutil.which("taalas-compile"), "view", str(tiny_oasis), "--block", "L1", "--max-vias", str(n - 1)],
                       check=False, capture_output=True, text=True)
    assert p.returncode == 2 and "holds" in p.stderr and "--window" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and not (tiny_oasis / "view").exists()
