"""Chips to cut views from: tiny-llama as GDSII (`tiny_chip`) and as OASIS, stories260K (GDSII).
The sign-off's fault-injection helpers (`tests/signoff/gds_edit.py`) are importable here."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "signoff"))


@pytest.fixture(scope="session")
def tiny_oasis(tmp_path_factory) -> Path:
    """tiny-llama compiled once with OASIS masks."""
    from taalas_compile.inputs import resolve
    from taalas_compile.pipeline import CompileOptions, compile_chip

    out = tmp_path_factory.mktemp("chips") / "tiny-llama-oasis"
    compile_chip(resolve("tiny-llama"), out, opts=CompileOptions(fmt="oasis"))
    return out
