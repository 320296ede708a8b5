"""The die's arithmetic (die/arithmetic.py): each primitive's definition, and the properties that
make two implementations of it agree bit for bit whatever their batching and tiling."""

import math

import numpy as np
import pytest
import torch

from taalas_compile.die import arithmetic as A


def bits(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float32).view(np.uint32)


def test_exp_is_within_two_ulp_and_handles_the_edges():
    x = np.linspace(-87, 88, 1_000_001, dtype=np.float32)
    want = np.exp(x.astype(np.float64))
    ulp = np.abs(A.exp(x) - want) / np.spacing(want.astype(np.float32))
    assert ulp.max() <= 2.0
    edge = A.exp(np.array([-np.inf, np.inf, np.nan, 0.0, -200.0, 200.0], np.float32))
    assert edge[0] == 0 and edge[1] == np.inf and np.isnan(edge[2]) and edge[3] == 1 and edge[4] == 0 and edge[5] == np.inf


def test_exp_does_not_depend_on_the_shape_it_is_computed_in():
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32) * 10
    whole = A.exp(x)
    assert np.array_equal(bits(whole), bits(np.concatenate([A.exp(x[i : i + 7]) for i in range(0, 1000, 7)])))
    assert np.array_equal(bits(whole[::3]), bits(A.exp(x[::3].copy())))


def test_tree_sum_is_pairwise_in_index_order():
    x = np.array([1e8, 1.0, -1e8, 1.0, 0.5], np.float32)
    # ((1e8 + 1) + (-1e8 + 1)) + (0.5 + 0): 1e8 + 1 rounds to 1e8 in fp32, -1e8 + 1 to -1e8
    assert A.tree_sum(x) == np.float32(0.5)
    assert A.tree_sum(np.zeros(0, np.float32)) == 0


def test_tree_sum_ignores_zero_padding_and_gives_plus_zero():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 37)).astype(np.float32)
    padded = np.concatenate([x, np.zeros((6, 91), np.float32), -np.zeros((6, 2), np.float32)], axis=1)
    assert np.array_equal(bits(A.tree_sum(x)), bits(A.tree_sum(padded)))
    assert bits(A.tree_sum(np.array([-0.0, -0.0], np.float32))) == 0  # +0, not -0
    # any axis, same bits as the last
    assert np.array_equal(bits(A.tree_sum(x.T, axis=0)), bits(A.tree_sum(x)))


def test_fixed_point_accumulation_is_exact_in_any_order():
    rng = np.random.default_rng(2)
    acc = rng.integers(-(1 << 17), 1 << 17, (64, 5)).astype(np.float64)
    ws = rng.random((64, 5)).astype(np.float16).astype(np.float32)
    sx = (rng.random((64, 1)) * 0.1).astype(np.float32)
    fixed = A.to_fixed(acc, ws, sx)
    # the product is exact in float64: the same integers as exact rational arithmetic
    from fractions import Fraction

    i, j = 7, 3
    want = Fraction(int(acc[i, j])) * Fraction(float(ws[i, j])) * Fraction(float(sx[i, 0])) * (1 << A.ACC_FRAC_BITS)
    assert fixed[i, j] == round(want)
    forward, backward = fixed.sum(axis=0), fixed[::-1].sum(axis=0)
    assert np.array_equal(forward, backward)
    assert np.array_equal(A.from_fixed(forward), (forward.astype(np.float64) * 2.0**-32).astype(np.float32))
    assert A.from_fixed(np.array([0], np.int64))[0] == 0 and bits(A.from_fixed(np.array([0], np.int64)))[0] == 0


def test_quantize_groups_rounds_half_to_even_against_absmax_over_127():
    x = np.array([[127.0, 0.5, 1.5, -2.5, -127.0, 0.0, 0.0, 0.0, 3.0]], np.float32)
    codes, scale = A.quantize_groups(x, 4, 8)
    assert scale.tolist() == [[1.0, 1.0, np.float32(3.0) / np.float32(127)]]
    assert codes[0, 0].tolist() == [127, 0, 2, -2] and codes[0, 1].tolist() == [-127, 0, 0, 0]
    assert codes[0, 2].tolist() == [127, 0, 0, 0]  # the ragged tail is zero-padded


def test_mac_dtype_keeps_integer_dot_products_exact():
    assert A.mac_dtype(128, 6, 8) is np.float32  # 128 x 32 x 127 < 2^24
    assert A.mac_dtype(8192, 6, 8) is np.float64


def test_rope_table_does_not_depend_on_which_positions_are_asked_together():
    freq = (1.0 / 10000 ** (np.arange(0, 64, 2) / 64)).astype(np.float32)
    cos, sin = A.rope_cos_sin(np.arange(600), freq)
    c2, s2 = A.rope_cos_sin(np.array([599, 3, 256, 255]), freq)
    assert np.array_equal(bits(c2), bits(cos[[599, 3, 256, 255]])) and np.array_equal(bits(s2), bits(sin[[599, 3, 256, 255]]))
    ang = np.float32(599) * freq[5]
    assert cos[599, 5] == np.float32(math.cos(float(ang))) and sin[599, 5] == np.float32(math.sin(float(ang)))


def test_round_kv_codes_against_the_fp16_scale():
    x = np.array([[0.3, -1.7, 2.54, 0.0], [0.0, 0.0, 0.0, 0.0]], np.float32)
    codes, scales = A.round_kv(x, 8)
    s = np.float32(np.float16(np.float32(2.54) / np.float32(127)))
    assert scales.dtype == np.float16 and scales[0] == np.float16(s) and scales[1] == 0
    assert codes[0].tolist() == np.clip(np.rint(x[0] / s), -127, 127).astype(int).tolist() and not codes[1].any()


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_torch_basic_operations_round_as_numpy_does(op):
    """The quantized reference mixes PyTorch's elementwise +, -, x, / with these primitives: they
    must round exactly as IEEE-754 (and numpy) do, in every shape and broadcast the reference uses.
    (torch.sqrt does not on every CPU: `A.sqrt` is the one both sides use.)"""
    rng = np.random.default_rng(3)
    a = (rng.standard_normal((33, 67)) * np.exp(rng.uniform(-20, 20, (33, 67)))).astype(np.float32)
    b = (rng.standard_normal((33, 67)) * np.exp(rng.uniform(-20, 20, (33, 67)))).astype(np.float32)
    fn = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}[op]
    tf = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div}[op]
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    assert np.array_equal(bits(tf(ta, tb).numpy()), bits(fn(a, b)))
    assert np.array_equal(bits(tf(ta, tb[:1]).numpy()), bits(fn(a, b[:1])))  # broadcast row
    assert np.array_equal(bits(tf(ta, tb[0, 0]).numpy()), bits(fn(a, b[0, 0])))  # a 0-dim tensor
    assert np.array_equal(bits(tf(ta[:, :66:2], tb[:, 1::2]).numpy()), bits(fn(a[:, :66:2], b[:, 1::2])))  # strided


def test_the_quantizers_stand_in_rounds_activations_as_the_die_does():
    """quant/arith.quantize_activation (PyTorch, in the quantizer's loops) gives the spec's codes x scales."""
    from taalas_compile.quant.arith import quantize_activation

    x = (np.random.default_rng(4).standard_normal((7, 100)) * 3).astype(np.float32)
    x[2, 32:64] = 0  # a group of zeros
    codes, scale = A.quantize_groups(x, 32, 8)
    want = (codes * scale[..., None]).reshape(7, -1)[:, :100]
    got = quantize_activation(torch.from_numpy(x), 32, 8).numpy()
    assert np.array_equal(bits(got), bits(want))
