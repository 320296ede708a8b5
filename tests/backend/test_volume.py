"""Mask volume and the pre-flight refusal."""

from collections import namedtuple

import pytest
from mapped_models import placement

from taalas_compile.backend import volume
from taalas_compile.die.load import load_die
from taalas_compile.errors import UserError


def test_masks_that_would_not_fit_on_disk_are_refused(tiny_chip, monkeypatch, tmp_path):
    from taalas_compile.backend.netlist import read_netlist

    pl, _, _ = read_netlist(tiny_chip)
    monkeypatch.setattr(volume.shutil, "disk_usage", lambda p: namedtuple("U", "total used free")(1, 1, 1000))
    with pytest.raises(UserError, match=r"GDSII masks would take ~[0-9.]+ MB .* 0.0 MB free; --format oasis needs"):
        volume.check_resources(pl, load_die("mini"), tmp_path / "new")


def test_a_small_model_compiles_in_one_process_whatever_the_machine():
    pl, _ = placement("stories260k", "mini")
    assert volume.auto_jobs(pl, cores=64, avail=1 << 40) == 1


def test_the_8b_chip_takes_a_worker_per_core_as_memory_allows():
    pl, _ = placement("llama-3.1-8b", "hc1")
    per_worker = volume.worker_bytes(pl)
    blocks = len({t.block for t in pl.tiles})
    assert 4 << 30 < per_worker < 8 << 30  # the largest block (the head) at 6 bytes per digit cell
    assert volume.auto_jobs(pl, cores=2, avail=24 << 30) == 2  # the development machine
    assert volume.auto_jobs(pl, cores=64, avail=24 << 30) == (24 << 30) // per_worker  # memory bounds it
    assert volume.auto_jobs(pl, cores=64, avail=per_worker - 1) == 1  # at least one (the pre-flight refuses)
    assert volume.auto_jobs(pl, cores=1000, avail=1 << 50) == blocks  # never more workers than blocks


def test_available_memory_is_positive_and_below_the_machine():
    import os

    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < volume.available_memory() <= total
