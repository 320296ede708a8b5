"""Emulator fixtures: the session's tiny chip loaded, and a tiny chip compiled for three sequences."""

import re

import pytest

from taalas_compile.backend.netlist import read_netlist
from taalas_compile.die.load import load_die
from taalas_compile.emulator.chip import from_netlist
from taalas_compile.emulator.run import Emulator
from taalas_compile.paths import RECIPES_DIR


@pytest.fixture(scope="module")
def tiny(tiny_chip):
    """(placement, ROM images, die) of the session's tiny-llama chip."""
    pl, roms, _ = read_netlist(tiny_chip)
    return pl, roms, load_die("mini")


@pytest.fixture
def tiny_emu(tiny) -> Emulator:
    return Emulator(from_netlist(*tiny))


@pytest.fixture(scope="session")
def tiny3_chip(tmp_path_factory):
    """tiny-llama compiled with KV SRAM for three sequences in flight."""
    from taalas_compile.inputs import resolve
    from taalas_compile.pipeline import compile_chip

    d = tmp_path_factory.mktemp("tiny3")
    text = (RECIPES_DIR / "tiny-llama.toml").read_text()
    (d / "tiny3.toml").write_text(re.sub(r"(?m)^sequences = 1$", "sequences = 3", text))
    compile_chip(resolve(str(d / "tiny3.toml")), d / "chip")
    return d / "chip"
