"""ROM images: what each tile's array of digit cells holds (docs/file-formats.md, "ROM image").

Every tile has a ROM array of digit cells; a used cell stores one octal digit (0..7) as the
position of its select via. An image is a uint8 array [rows, cols] of digits, NO_CELL where the
array is unused (no pad, no vias are drawn there).

- Row 0: the tile's header, `HEADER_WORDS` uint32 words of 11 octal digits each, least
  significant digit first.
- MAC tile, rows 1..n_rows: one output row of the weight block each. The row is a sequence of
  groups; a group is its codes (1 digit per 3-bit code: c + 4; 2 digits per 6-bit code: the high
  digit (c >> 3) + 4 then the low digit c & 7) followed by its fp16 scale as 6 octal digits, least
  significant first. The last group of a row may be ragged.
- Vector unit, rows 1..: its constants, flattened row-major: fp16 norm gains (6 digits each) or
  fp32 RoPE inverse frequencies (11 digits each).
- SRAM and I/O tiles: the header row only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file

NO_CELL = 255
HEADER_WORDS = 11
WORD_DIGITS = 11  # uint32
FP16_DIGITS = 6
FP32_DIGITS = 11


class RomFormatError(ValueError):
    """A ROM image that no compile could have written (bad digit, impossible header)."""


# --- words -----------------------------------------------------------------------------------
def to_digits(values: np.ndarray, n_digits: int) -> np.ndarray:
    """Unsigned integers [...] -> octal digits [..., n_digits], least significant first."""
    v = np.asarray(values, dtype=np.uint64)[..., None]
    shifts = (3 * np.arange(n_digits, dtype=np.uint64))
    return ((v >> shifts) & np.uint64(7)).astype(np.uint8)


def from_digits(d: np.ndarray, bits: int) -> np.ndarray:
    """Octal digits [..., n] (least significant first) -> unsigned integers [...] of `bits` bits."""
    d = d.astype(np.uint64)
    n = d.shape[-1]
    top_max = (1 << (bits - 3 * (n - 1))) - 1
    if d.size and (d.max() > 7 or d[..., -1].max() > top_max):
        raise RomFormatError(f"digit out of range for a {bits}-bit value")
    shifts = 3 * np.arange(n, dtype=np.uint64)
    return (d << shifts).sum(axis=-1)


def f32_word(x: float) -> int:
    return int(np.array([x], np.float32).view(np.uint32)[0])


def word_f32(w: int) -> float:
    return float(np.array([w], np.uint32).view(np.float32)[0])


def header_digits(words: tuple[int, ...]) -> np.ndarray:
    assert len(words) == HEADER_WORDS and all(0 <= w < 1 << 32 for w in words), words
    return to_digits(np.array(words, np.uint64), WORD_DIGITS).reshape(-1)


def parse_header(row: np.ndarray) -> tuple[int, ...]:
    digits = row[: HEADER_WORDS * WORD_DIGITS]
    if (digits == NO_CELL).any():
        raise RomFormatError("header row is incomplete")
    return tuple(int(w) for w in from_digits(digits.reshape(HEADER_WORDS, WORD_DIGITS), 32))


# --- MAC blocks ------------------------------------------------------------------------------
def digits_per_code(bits: int) -> int:
    return 1 if bits == 3 else 2


def group_layout(n_cols: int, group: int, bits: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Column positions of code digits [n_cols, dpw] and scale digits [n_groups, 6] in a row,
    and the row length in digits."""
    dpw = digits_per_code(bits)
    span = group * dpw + FP16_DIGITS  # digits of one full group
    j = np.arange(n_cols)
    k = j // group
    code_pos = (k * span + (j % group) * dpw)[:, None] + np.arange(dpw)[None, :]
    ng = -(-n_cols // group)
    gsize = np.minimum(group, n_cols - np.arange(ng) * group)
    scale_pos = (np.arange(ng) * span + gsize * dpw)[:, None] + np.arange(FP16_DIGITS)[None, :]
    return code_pos, scale_pos, int(scale_pos[-1, -1]) + 1


def block_digits(codes: np.ndarray, scales: np.ndarray, bits: int, group: int) -> np.ndarray:
    """codes int8 [rows, n], scales fp16 [rows, ceil(n/group)] -> digits [rows, row_len].

    Written group-major through reshaped views (the layout of `group_layout`), not by scattering
    each digit to its column: the 8B chip encodes ~10^10 digits."""
    rows, n = codes.shape
    dpw = digits_per_code(bits)
    span = group * dpw + FP16_DIGITS
    width = group_layout(n, group, bits)[2]
    out = np.empty((rows, width), np.uint8)
    if bits == 3:
        cd = (codes.astype(np.int16) + 4).astype(np.uint8)[:, :, None]
    else:
        c = codes.astype(np.int16)
        cd = np.stack([(c >> 3) + 4, c & 7], axis=-1).astype(np.uint8)  # high digit first
    sd = to_digits(scales.view(np.uint16), FP16_DIGITS)  # [rows, ng, 6]
    full, rag = divmod(n, group)
    if full:
        v = out[:, : full * span].reshape(rows, full, span)
        v[:, :, : group * dpw] = cd[:, : full * group].reshape(rows, full, group * dpw)
        v[:, :, group * dpw :] = sd[:, :full]
    if rag:
        base = full * span
        out[:, base : base + rag * dpw] = cd[:, full * group :].reshape(rows, rag * dpw)
        out[:, base + rag * dpw :] = sd[:, full]
    return out


def parse_block(d: np.ndarray, n: int, bits: int, group: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of `block_digits`: digits [rows, >= row_len] -> (codes int8, scales fp16)."""
    code_pos, scale_pos, width = group_layout(n, group, bits)
    d = d[:, :width]
    if (d == NO_CELL).any():
        raise RomFormatError("weight block has missing cells")
    if d.max(initial=0) > 7:
        raise RomFormatError("digit out of range")
    if bits == 3:
        codes = d[:, code_pos[:, 0]].astype(np.int16) - 4
    else:
        codes = (d[:, code_pos[:, 0]].astype(np.int16) - 4) * 8 + d[:, code_pos[:, 1]]
    scales = from_digits(d[:, scale_pos], 16).astype(np.uint16).view(np.float16)
    return codes.astype(np.int8), scales


# --- vector-unit constants -------------------------------------------------------------------
def const_digits(values: np.ndarray) -> np.ndarray:
    """fp16 or fp32 values [n] -> flat digits."""
    if values.dtype == np.float16:
        return to_digits(values.view(np.uint16), FP16_DIGITS).reshape(-1)
    return to_digits(values.astype(np.float32).view(np.uint32), FP32_DIGITS).reshape(-1)


def parse_consts(flat: np.ndarray, n: int, dtype: type) -> np.ndarray:
    nd = FP16_DIGITS if dtype == np.float16 else FP32_DIGITS
    d = flat[: n * nd]
    if d.size < n * nd or (d == NO_CELL).any():
        raise RomFormatError("constant table is incomplete")
    bits = 16 if dtype == np.float16 else 32
    raw = from_digits(d.reshape(n, nd), bits)
    return raw.astype(np.uint16).view(np.float16) if bits == 16 else raw.astype(np.uint32).view(np.float32)


# --- whole images ----------------------------------------------------------------------------
def image(header: np.ndarray, body: np.ndarray | None, cols: int) -> np.ndarray:
    """Assemble header row + body rows into an image as wide as its widest row (at most `cols`;
    NO_CELL-padded).
    A 1-D body is wrapped row-major over `cols`; a 2-D body is placed row by row."""
    if body is None:
        body = np.zeros((0, 0), np.uint8)
    if body.ndim == 1:
        rows = -(-body.size // cols)
        flat = np.full(rows * cols, NO_CELL, np.uint8)
        flat[: body.size] = body
        body = flat.reshape(rows, cols)
        body = body[:, : max(1, min(cols, body.size))] if rows == 1 else body
    width = max(header.size, body.shape[1])
    if width > cols:
        raise RomFormatError(f"a row needs {width} cells, the ROM array has {cols}")
    out = np.full((1 + body.shape[0], width), NO_CELL, np.uint8)
    out[0, : header.size] = header
    out[1:, : body.shape[1]] = body
    return out


def body_rows(img: np.ndarray) -> np.ndarray:
    return img[1:]


def body_flat(img: np.ndarray) -> np.ndarray:
    return img[1:].reshape(-1)


# --- files -----------------------------------------------------------------------------------
def read_rom_file(path: Path) -> dict[str, np.ndarray]:
    """The images of one `roms/BLOCK.safetensors` file, keyed by tile name. A file that is not
    safetensors, or holds anything but 2-D uint8 digit arrays, is a RomFormatError: it was damaged
    after the compile (the emulator and sign-off would otherwise fail deep inside, or cast it)."""
    try:
        images = load_file(str(path))
    except SafetensorError as e:
        raise RomFormatError(f"not a safetensors file ({e})") from None
    for name, img in images.items():
        if img.dtype != np.uint8 or img.ndim != 2:
            raise RomFormatError(f"image '{name}' is {img.dtype} {list(img.shape)}, a ROM image is 2-D uint8 digits")
    return images
