"""ROM image encoding: every value the die etches survives digits -> value."""

import numpy as np
import pytest

from taalas_compile.die import rom_format as rf


def test_words_round_trip_and_top_digit_is_checked():
    words = (0, 1, 2**32 - 1, 123456789, 7, 8, 9, 10, 11, 12, 2**31)
    assert rf.parse_header(rf.header_digits(words)) == words
    bad = rf.header_digits(words).copy()
    bad[10] = 7  # bit 33 does not exist in a 32-bit word
    with pytest.raises(rf.RomFormatError):
        rf.parse_header(bad)


@pytest.mark.parametrize("bits, n, group", [(3, 172, 32), (6, 172, 32), (3, 64, 16), (6, 7, 32)])
def test_weight_blocks_round_trip(bits, n, group):
    rng = np.random.default_rng(0)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    codes = rng.integers(lo, hi + 1, size=(5, n)).astype(np.int8)
    scales = rng.random((5, -(-n // group))).astype(np.float16)
    d = rf.block_digits(codes, scales, bits, group)
    assert d.max() <= 7 and d.shape[1] == n * (1 if bits == 3 else 2) + 6 * -(-n // group)
    c2, s2 = rf.parse_block(d, n, bits, group)
    assert np.array_equal(c2, codes) and np.array_equal(s2.view(np.uint16), scales.view(np.uint16))


def test_six_bit_code_is_high_then_low_digit():
    d = rf.block_digits(np.array([[-32, 31, -1]], np.int8), np.ones((1, 1), np.float16), 6, 32)
    assert d[0, :6].tolist() == [0, 0, 7, 7, 3, 7]  # (-4+4, 0), (3+4, 7), (-1+4, 7)


def test_constants_round_trip():
    g = np.array([1.0, -0.5, 65504.0], np.float16)
    assert np.array_equal(rf.parse_consts(rf.const_digits(g), 3, np.float16), g)
    f = np.array([1e-7, 3.14159], np.float32)
    assert np.array_equal(rf.parse_consts(rf.const_digits(f), 2, np.float32), f)


def test_image_is_as_wide_as_its_widest_row():
    img = rf.image(rf.header_digits((1,) * 11), np.zeros(300, np.uint8), 256)
    assert img.shape == (3, 256) and (img[2, 300 - 256:] == rf.NO_CELL).all()
    with pytest.raises(rf.RomFormatError):
        rf.image(rf.header_digits((1,) * 11), np.zeros((1, 300), np.uint8), 256)
