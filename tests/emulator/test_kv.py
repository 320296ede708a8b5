"""KV cache in the die's format (die/arithmetic.round_kv): the rounding, and the store enforcing the
SRAM's limits."""

import numpy as np
import pytest

from taalas_compile.die.arithmetic import round_kv
from taalas_compile.emulator.kv import KvStore
from taalas_compile.emulator.tiles import EmulationError


def test_rounding_is_int8_against_an_fp16_scale():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((50, 4, 16)) * rng.uniform(0.01, 30, (50, 4, 1))).astype(np.float32)
    x[3, 2] = 0  # an all-zero vector keeps a zero scale
    codes, scales = round_kv(x, 8)
    got = codes.astype(np.float32) * scales.astype(np.float32)[..., None]
    s = (np.abs(x).max(-1) / np.float32(127)).astype(np.float16).astype(np.float32)
    assert np.array_equal(scales.astype(np.float32), s)
    assert np.array_equal(codes, np.clip(np.rint(x / np.where(s > 0, s, 1)[..., None]), -127, 127))
    assert np.abs(got - x).max() <= np.abs(x).max() / 127  # within one step of the largest scale
    assert codes.dtype == np.int8 and scales.dtype == np.float16 and not got[3, 2].any()


def test_store_reads_back_what_it_wrote_rounded():
    kv = KvStore("attn", 2, 4, 2, 8, 8, capacity=2 * 4 * 2 * 2 * (8 + 2))
    k, v = np.arange(16, dtype=np.float32).reshape(2, 8), -np.ones((2, 8), np.float32)
    kv.write(1, 0, k, v)
    keys, vals = kv.read(1, 1)
    assert np.allclose(keys[0], k, atol=15 / 127) and np.allclose(vals[0], v, atol=1e-4)  # scales are fp16


def test_store_limits_are_errors():
    with pytest.raises(EmulationError, match=r"attn: KV cache of 2 sequence\(s\) x 4 positions needs 320 bytes of SRAM, 319 connected"):
        KvStore("attn", 2, 4, 2, 8, 8, capacity=319)
    kv = KvStore("attn", 2, 4, 2, 8, 8, capacity=320)
    with pytest.raises(EmulationError, match=r"position 4 is past the chip's context of 4 tokens \(2 sequence\(s\) in 320 bytes"):
        kv.write(0, 4, np.zeros((2, 8), np.float32), np.zeros((2, 8), np.float32))
    with pytest.raises(EmulationError, match=r"sequence slot 2 requested, the chip's KV SRAM holds 2 sequence"):
        kv.check(2, 0)
