"""Emulator: tile arithmetic against float math, and the whole chip against the quantized reference."""

import numpy as np
import pytest
import torch

from taalas_compile.backend.netlist import read_netlist
from taalas_compile.config.die import load_die
from taalas_compile.emulator import tiles as T
from taalas_compile.emulator.chip import ChipImage, from_netlist
from taalas_compile.emulator.run import Emulator
from taalas_compile.inputs import resolve
from taalas_compile.reference import build_references
from taalas_compile.signoff.verify import LOGIT_TOLERANCE


def test_integer_matvec_equals_float_dot_of_dequantized_values():
    rng = np.random.default_rng(0)
    codes = rng.integers(-4, 4, size=(6, 2, 32)).astype(np.int32)
    codes[:, 1, 20:] = 0  # ragged tail of a 52-wide row
    scales = rng.random((6, 2)).astype(np.float32)
    p = T.Program("t", T.Role.MATVEC, (1, 3, 32, 6, 52, 0, 0, 0, 0, 0, 0), codes, scales)
    x = rng.standard_normal(52).astype(np.float32)
    q, sx = T.quantize_groups(x, 32, 8)
    w = (codes * scales[:, :, None]).reshape(6, 64)[:, :52]
    xd = (q * sx[:, None]).reshape(64)[:52]
    assert np.allclose(T.matvec(p, x, 8), w @ xd, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def tiny(tiny_chip):
    pl, roms, _ = read_netlist(tiny_chip)
    return pl, roms, load_die("mini")


def test_chip_matches_quantized_reference(tiny):
    refs = build_references(resolve("tiny-llama"))
    emu = Emulator(from_netlist(*tiny))
    seq = [1, 17, 200, 3, 99, 42]
    got = emu.teacher_forced(seq)
    with torch.no_grad():
        want = refs.quant_model(torch.tensor([seq]))[0].numpy()
    assert (got.argmax(-1) == want.argmax(-1)).all()
    assert np.abs(got - want).max() <= LOGIT_TOLERANCE * np.abs(want).max()


def test_context_limit_is_an_error(tiny):
    emu = Emulator(from_netlist(*tiny))
    with pytest.raises(T.EmulationError, match="past the chip's context of 128 tokens"):
        emu.step(1, 128)


def test_unconnected_input_pin_is_an_error(tiny):
    chip = from_netlist(*tiny)
    cut = tuple(n for n in chip.nets if "L1.silu_mul.b" not in n)
    with pytest.raises(T.EmulationError, match="L1.silu_mul: input pin b is not connected"):
        Emulator(ChipImage(chip.tiles, chip.roms, cut, chip.act_bits, chip.kv_bits, chip.sram_bytes)).step(1, 0)
