"""Faults in the datapath that LVS cannot see, caught by the exact emulation check.

Each chip here is compiled by a faulty compiler: one tile's ROM image is wrong in the same way in
the masks and in the netlist's ROM images (`backend/blocks.build_tile_image` patched), as a bug in
the compiler's encoding would make it. LVS compares the masks with those images, so it passes;
only the emulator, which runs the chip as extracted against the quantized reference built from
the checkpoint, can see the fault — and with one arithmetic on both sides it sees any bit of it.
`verify` (the console script) must exit 1 naming the emulation.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess

import numpy as np
import pytest

from taalas_compile.backend import blocks


def _program_word(t, die, block, consts):
    """A tile-program header word changed: the final RMSNorm's eps, etched 4x too large."""
    if t.name == "L1.post_attention_layernorm":
        t = dataclasses.replace(t, program=dataclasses.replace(t.program, eps=t.program.eps * 4))
    return t, block, consts


def _swapped_scales(t, die, block, consts):
    """Two group scales of one row of a MAC tile swapped."""
    if t.name == "L0.q_proj.r0c0":
        codes, scales = block
        scales = scales.copy()
        r = int(np.flatnonzero(scales[:, 0] != scales[:, 1])[0])
        scales[r, [0, 1]] = scales[r, [1, 0]]
        block = (codes, scales)
    return t, block, consts


def _shifted_codes(t, die, block, consts):
    """One row of weight codes shifted by one column (an off-by-one in the code layout)."""
    if t.name == "L1.down_proj.r0c0":
        codes, scales = block
        codes = codes.copy()
        codes[3] = np.roll(codes[3], 1)
        block = (codes, scales)
    return t, block, consts


@pytest.mark.parametrize("fault", [_program_word, _swapped_scales, _shifted_codes], ids=["program-word", "swapped-scales", "shifted-codes"])
def test_a_datapath_fault_lvs_cannot_see_fails_verify(fault, tmp_path, monkeypatch):
    from taalas_compile.inputs import resolve
    from taalas_compile.pipeline import compile_chip

    clean = blocks.build_tile_image

    def faulty(t, die, block, consts):
        t, block, consts = fault(t, die, block, consts)
        return clean(t, die, block, consts)

    monkeypatch.setattr(blocks, "build_tile_image", faulty)
    out = tmp_path / "chip"
    compile_chip(resolve("tiny-llama"), out)
    p = subprocess.run(["taalas-compile", "verify", str(out), "--tokens", "6", "--json"], capture_output=True, text=True, timeout=600, check=False)
    assert p.returncode == 1, p.stderr[-2000:]
    res = json.loads(p.stdout)
    checks = {c["name"]: c["passed"] for c in res["checks"]}
    assert checks["lvs"] and checks["drc"] and not checks["emulation"], res["checks"]
    exact = [v for v in res["violations"] if v["category"] == "emulation.exact"]
    assert exact and "differs from the quantized reference: first difference at [" in exact[0]["message"], res["violations"][:3]
    assert not res["emulation"]["exact"]
