"""Bit-for-bit comparison of the emulator's values with the quantized reference's: the one
judgement sign-off and `emulate --trace` make (no tolerance: the two implement one arithmetic,
`die/arithmetic.py`, and any differing bit is an error in the chip or in one of them)."""

from __future__ import annotations

import numpy as np


def difference(got: np.ndarray, want: np.ndarray) -> dict | None:
    """None when `got` and `want` (fp32, same shape) are equal bit for bit; else where they first
    differ (row-major) and how many values differ: {"at": [i, j, ...], "emulator": x, "reference":
    y, "values": n, "of": size}. Different shapes differ at []."""
    got, want = np.asarray(got, np.float32), np.asarray(want, np.float32)
    if got.shape != want.shape:
        return {"at": [], "emulator": list(got.shape), "reference": list(want.shape), "values": None, "of": None,
                "shape": True}
    bad = got.view(np.uint32) != want.view(np.uint32)
    if not bad.any():
        return None
    at = tuple(int(i) for i in np.argwhere(bad)[0])
    return {"at": list(at), "emulator": float(got[at]), "reference": float(want[at]), "values": int(bad.sum()), "of": int(bad.size)}


def describe(d: dict) -> str:
    """One line for a `difference`."""
    if d.get("shape"):
        return f"shapes differ: emulator {tuple(d['emulator'])}, reference {tuple(d['reference'])}"
    at = ", ".join(map(str, d["at"]))
    return (f"first difference at [{at}]: emulator {d['emulator']!r}, reference {d['reference']!r} "
            f"({d['values']:,} of {d['of']:,} values differ)")


def nonfinite(x: np.ndarray) -> str | None:
    """"[i, j] = nan" for the first NaN or Inf of `x`, None when all are finite."""
    if np.isfinite(x).all():
        return None
    i = tuple(int(k) for k in np.argwhere(~np.isfinite(x))[0])
    return f"[{', '.join(map(str, i))}] = {x[i]}"
