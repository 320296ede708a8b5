"""Emulator: tile arithmetic against float math, and the whole chip against the quantized reference."""

import numpy as np
import pytest
import torch

from taalas_compile.backend.netlist import read_netlist
from taalas_compile.die.arithmetic import from_fixed, quantize_groups
from taalas_compile.die.load import load_die
from taalas_compile.die.program import MatVec
from taalas_compile.emulator import tiles as T
from taalas_compile.emulator.chip import ChipImage, from_netlist
from taalas_compile.emulator.run import Emulator
from taalas_compile.inputs import resolve
from taalas_compile.reference import build_references


def test_integer_matvec_equals_float_dot_of_dequantized_values():
    rng = np.random.default_rng(0)
    codes = rng.integers(-4, 4, size=(6, 2, 32)).astype(np.int32)
    codes[:, 1, 20:] = 0  # ragged tail of a 52-wide row
    scales = rng.random((6, 2)).astype(np.float32)
    p = T.Program("t", MatVec(bits=3, group=32, n_rows=6, n_cols=52, in_off=0, out_off=0), codes, scales)
    x = rng.standard_normal(52).astype(np.float32)
    q, sx = quantize_groups(x, 32, 8)
    w = (codes * scales[:, :, None]).reshape(6, 64)[:, :52]
    xd = (q * sx[:, None]).reshape(64)[:52]
    assert np.allclose(from_fixed(T.matvec(p, x[None], 8))[0], w @ xd, rtol=1e-5, atol=1e-5)


def test_chip_matches_quantized_reference(tiny):
    refs = build_references(resolve("tiny-llama"))
    emu = Emulator(from_netlist(*tiny))
    seq = [1, 17, 200, 3, 99, 42]
    got = emu.teacher_forced(seq)
    with torch.no_grad():
        want = refs.quant_model(torch.tensor([seq]))[0].numpy()
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))  # bit for bit


def test_equal_bit_for_bit_over_the_whole_context_and_in_flight(tiny3_chip):
    """Every position up to the chip's context, and three sequences in flight at different
    positions: each sequence's logits equal the reference's whole-sequence forward, bit for bit."""
    from taalas_compile.chip_dir import inputs_of_chip, read_manifest

    pl, roms, _ = read_netlist(tiny3_chip)
    emu = Emulator(from_netlist(pl, roms, load_die("mini")))
    model = build_references(inputs_of_chip(tiny3_chip, read_manifest(tiny3_chip))).quant_model
    rng = np.random.default_rng(5)
    seqs = [[1, *rng.integers(0, 256, n - 1).tolist()] for n in (emu.context, 40, 77)]
    emu.reset()
    got = [[] for _ in seqs]
    for t in range(emu.context):
        live = [i for i, s in enumerate(seqs) if t < len(s)]
        emu.step_batch([seqs[i][t] for i in live], [t] * len(live), live)
        for b, i in enumerate(live):
            got[i].append(emu.logits[b].copy())
    with torch.no_grad():
        for s, g in zip(seqs, got):
            want = model(torch.tensor([s]))[0].numpy()
            assert np.array_equal(np.stack(g).view(np.uint32), want.view(np.uint32))


def test_context_limit_is_an_error(tiny_emu):
    assert tiny_emu.context == 128 and tiny_emu.sequences == 1
    tiny_emu.step(1, 127)
    with pytest.raises(T.EmulationError, match=r"L0.attn: position 128 is past the chip's context of 128 tokens \(1 sequence\(s\) in 65,536 bytes"):
        tiny_emu.step(1, 128)


def test_more_sequences_than_the_kv_sram_holds_is_an_error(tiny_emu):
    with pytest.raises(T.EmulationError, match=r"2 sequences in flight, the chip's KV SRAM holds 1"):
        tiny_emu.generate_batch([[1, 2], [1, 3]], 2)
    with pytest.raises(T.EmulationError, match=r"sequence slot 1 requested, the chip's KV SRAM holds 1 sequence"):
        tiny_emu.step_batch([1], [0], [1])


def test_batched_emulation_equals_one_by_one(tiny3_chip):
    pl, roms, _ = read_netlist(tiny3_chip)
    emu = Emulator(from_netlist(pl, roms, load_die("mini")))
    prompts = [[1, 17, 200], [1, 5], [1, 99, 42, 7, 3]]
    together = emu.generate_batch(prompts, 10)
    assert together == [emu.generate(p, 10) for p in prompts]
    assert emu.positions[0] == [0] and emu.positions[-1] == [13]  # the last run alone: 5 prompt + 10 new - 1 steps
    emu.reset()
    for pos in range(3):  # the same step, batched and alone: same logits
        emu.step_batch([prompts[0][min(pos, 2)], prompts[1][min(pos, 1)]], [pos, pos], [0, 1])
    both = emu.logits.copy()
    alone = [emu.teacher_forced([prompts[0][min(p, 2)] for p in range(3)])[-1], emu.teacher_forced([prompts[1][min(p, 1)] for p in range(3)])[-1]]
    assert np.allclose(both, np.stack(alone), rtol=1e-6, atol=1e-6)


def test_unconnected_input_pin_is_an_error(tiny):
    chip = from_netlist(*tiny)
    cut = tuple(n for n in chip.nets if "L1.silu_mul.b" not in n)
    with pytest.raises(T.EmulationError, match="L1.silu_mul: input pin b is not connected"):
        Emulator(ChipImage(chip.tiles, chip.roms, cut, chip.act_bits, chip.kv_bits, chip.sram_bytes)).step(1, 0)
