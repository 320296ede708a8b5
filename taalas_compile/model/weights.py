"""WeightSource: where a model's float32 tensors come from, one tensor at a time."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch

from taalas_compile.errors import UserError
from taalas_compile.model.args import ModelArgs


@runtime_checkable
class WeightSource(Protocol):
    """A checkpoint seen as Hugging Face-named float32 tensors, read lazily."""

    args: ModelArgs

    def names(self) -> list[str]:
        """HF parameter names in checkpoint order (== ``args.param_shapes()`` keys)."""
        ...

    def get(self, name: str) -> torch.Tensor:
        """A fresh float32 tensor in HF layout."""
        ...

    def rows(self, name: str, r0: int, r1: int) -> torch.Tensor:
        """Rows [r0, r1) of a tensor, float32, reading no more of the checkpoint than those rows
        (so a compile streams an 8B model in bounded memory); equal to ``get(name)[r0:r1]``."""
        ...

    def fingerprint(self) -> dict:
        """JSON-able identity: {"kind", "seed"?, "files": [{"path", "bytes", "sha256"}]}."""
        ...


# The die stores weight scales and norm gains in fp16: a value beyond fp16's largest finite one
# would become inf there (a weight w at most makes a scale |w| / qmax <= |w|), so it is refused.
FP16_MAX = 65504.0


def _first_bad(t: torch.Tensor) -> tuple[int, ...]:
    """Index of the first value of `t` that is not finite or exceeds FP16_MAX in magnitude."""
    flat = (~(t.abs() <= FP16_MAX)).flatten().nonzero()[0, 0]  # NaN compares false: it is bad
    return tuple(int(i) for i in torch.unravel_index(flat, t.shape))


def check_values(name: str, t: torch.Tensor, row0: int = 0) -> torch.Tensor:
    """`t` (rows `row0..` of tensor `name`) unchanged, or a UserError naming its first NaN, Inf or
    value too large for fp16. One aminmax pass (NaN propagates into it): cheap next to a read."""
    if t.numel():
        lo, hi = torch.aminmax(t)
        if not (-FP16_MAX <= float(lo) and float(hi) <= FP16_MAX):
            i = _first_bad(t)
            v = float(t[i])
            at = ", ".join(str(k) for k in (i[0] + row0, *i[1:]))
            why = ("checkpoint weights must be finite" if not math.isfinite(v) else
                   f"larger than {FP16_MAX:g}, the fp16 maximum (the die stores weight scales and norm gains in fp16)")
            raise UserError(f"{name}[{at}] = {v:g}: {why}")
    return t


class CheckedWeights:
    """A checkpoint's WeightSource whose every tensor and row band is checked as it is read
    (`check_values`), so a 16 GB checkpoint is checked while it streams, not in a pass of its own.
    Other attributes (`path`, `bos_id`, ...) are the wrapped source's."""

    def __init__(self, inner: WeightSource):
        self.inner = inner
        self.args = inner.args

    def names(self) -> list[str]:
        return self.inner.names()

    def get(self, name: str) -> torch.Tensor:
        return check_values(name, self.inner.get(name))

    def rows(self, name: str, r0: int, r1: int) -> torch.Tensor:
        return check_values(name, self.inner.rows(name, r0, r1), max(r0, 0))

    def fingerprint(self) -> dict:
        return self.inner.fingerprint()

    def __getattr__(self, name: str):
        if name == "inner":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)


def file_fingerprint(path: Path) -> dict:
    """{"path", "bytes", "sha256"} of one file, hashed in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": h.hexdigest()}


def release_pages(source: WeightSource) -> None:
    """Drop the checkpoint pages read so far from this process's resident memory: a memory-mapped
    shard keeps every page it served mapped (+0.41 GiB per 8B layer, measured), so without this
    the RSS of a streamed compile grows with the number of layers."""
    release = getattr(source, "release_pages", None)
    if release is not None:
        release()
