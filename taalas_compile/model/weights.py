"""WeightSource: where a model's float32 tensors come from, one tensor at a time."""

from __future__ import annotations

import hashlib
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


def file_fingerprint(path: Path) -> dict:
    """{"path", "bytes", "sha256"} of one file, hashed in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": h.hexdigest()}


def open_weights(kind: str, path: str | Path | None, args: ModelArgs | None = None, seed: int = 0) -> WeightSource:
    """Open a checkpoint: kind "synthetic" (needs args), "llama2c" (.bin) or "hf" (dir or .safetensors)."""
    if kind == "synthetic":
        from taalas_compile.model.synthetic import SyntheticWeights

        if args is None:
            raise UserError("synthetic weights need model args")
        return SyntheticWeights(args, seed)
    if kind not in ("llama2c", "hf"):
        raise UserError(f"unknown weights kind {kind!r} (expected synthetic, llama2c or hf)")
    if path is None:
        raise UserError(f"{kind} weights need a path")
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file or directory")
    if kind == "llama2c":
        from taalas_compile.model.llama2c import Llama2cWeights

        return Llama2cWeights(path)
    from taalas_compile.model.hf import HFWeights

    return HFWeights(path)
