"""The tiny-llama design (placement, routing, ROM images) from the session compile, its masks
written by gdstk (the reference) and by our writers in both formats."""

from __future__ import annotations

from pathlib import Path

import pytest
from gdstk_reference import write_reference_gds

from taalas_compile.backend.masks import write_masks


@pytest.fixture(scope="session")
def design(tiny_ir):
    """(top, placement, routing, roms, die) of tiny-llama."""
    inp, c = tiny_ir
    return inp.recipe.name, c.placement, c.routing, c.roms, inp.die


@pytest.fixture(scope="session")
def reference_gds(design, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("masks") / "reference.gds"
    write_reference_gds(path, *design)
    return path


@pytest.fixture(scope="session")
def masks(design, tmp_path_factory) -> dict[str, Path]:
    """fmt -> our masks of the design in that format."""
    d = tmp_path_factory.mktemp("masks")
    out = {"gds": d / "chip.gds", "oasis": d / "chip.oas"}
    for fmt, path in out.items():
        write_masks(path, *design, fmt=fmt)
    return out
