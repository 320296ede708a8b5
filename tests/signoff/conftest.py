"""Fixtures for the sign-off tests: tiny-llama compiled once per session, and fresh copies of it
whose masks a test may damage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from taalas_compile.die.geometry import Geometry
from taalas_compile.die.load import load_die


@pytest.fixture(scope="session")
def die():
    return load_die("mini")


@pytest.fixture(scope="session")
def geo(die) -> Geometry:
    return Geometry(die)


@pytest.fixture(scope="session")
def compiled(tiny_chip) -> Path:
    """tiny-llama (synthetic weights) compiled once for the session; never modified by any test."""
    return tiny_chip


@pytest.fixture(scope="session")
def netlist(compiled) -> dict:
    return json.loads((compiled / "netlist.json").read_text())


@pytest.fixture(scope="session")
def copy_of_compiled(compiled, tmp_path_factory):
    """copy_of_compiled(name) -> a fresh private copy of the compile output, for fixtures that
    share one damaged chip between several tests (same directory depth as the original)."""

    def make(name: str) -> Path:
        dst = tmp_path_factory.mktemp(name) / "out"
        shutil.copytree(compiled, dst)
        return dst

    return make


@pytest.fixture
def chip_copy(compiled, tmp_path) -> Path:
    """A private copy of the compile output, at the same directory depth as the original so the
    manifest's relative paths resolve the same way."""
    dst = tmp_path / "out"
    shutil.copytree(compiled, dst)
    return dst
