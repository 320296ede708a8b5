"""Per-layer trace: emulator and reference agree stage by stage on a good chip; on a chip with a
broken matrix in layer 1 the first difference is named L1."""

import numpy as np

from taalas_compile.emulator.chip import from_netlist
from taalas_compile.emulator.run import Emulator
from taalas_compile.emulator.trace import (
    compare_stages,
    emulator_stages,
    reference_stages,
)
from taalas_compile.inputs import resolve
from taalas_compile.reference import build_references

SEQ = [1, 17, 200, 3, 99, 42]


def test_trace_names_the_first_diverging_layer(tiny):
    pl, roms, die = tiny
    ref = reference_stages(build_references(resolve("tiny-llama")).quant_model, SEQ)
    good = compare_stages(emulator_stages(Emulator(from_netlist(pl, roms, die)), SEQ), ref)
    assert [r["stage"] for r in good["stages"]] == ["embed", "L0", "L1", "norm", "logits"]
    assert good["first_difference"] is None and all(r["exact"] and r["max_abs_diff"] == 0 for r in good["stages"])
    broken = dict(roms)
    for name in [n for n in roms if n.startswith("L1.o_proj.")]:
        broken[name] = roms[name].copy()
        broken[name][1:] = 0  # every code and scale digit of the block
    bad = compare_stages(emulator_stages(Emulator(from_netlist(pl, broken, die)), SEQ), ref)
    assert bad["first_difference"] == "L1"
    assert [r["exact"] for r in bad["stages"]][:2] == [True, True]


def test_emulator_stages_are_the_units_outputs(tiny_emu):
    st = emulator_stages(tiny_emu, SEQ)
    assert st["embed"].shape == (6, 64) and st["logits"].shape == (6, 256) and tiny_emu.trace is None
    assert np.array_equal(st["logits"], tiny_emu.teacher_forced(SEQ))
