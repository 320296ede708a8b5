"""Mask volume and the pre-flight refusal."""

from collections import namedtuple

import pytest

from taalas_compile.backend import volume
from taalas_compile.config.die import load_die
from taalas_compile.errors import UserError


def test_masks_that_would_not_fit_on_disk_are_refused(tiny_chip, monkeypatch, tmp_path):
    from taalas_compile.backend.netlist import read_netlist

    pl, _, _ = read_netlist(tiny_chip)
    monkeypatch.setattr(volume.shutil, "disk_usage", lambda p: namedtuple("U", "total used free")(1, 1, 1000))
    with pytest.raises(UserError, match=r"GDSII masks would take ~.* GB .* GB free; --format oasis needs"):
        volume.check_resources(pl, load_die("mini"), tmp_path / "new")
