"""open_weights: the one registry of checkpoint kinds — synthetic seeded weights, llama2.c `.bin`,
Hugging Face safetensors — each opened as a `WeightSource` (model/weights.py). The loaders import
the protocol; this module imports the loaders, so neither imports the other back."""

from __future__ import annotations

from pathlib import Path

from taalas_compile.errors import UserError
from taalas_compile.model.args import ModelArgs
from taalas_compile.model.weights import CheckedWeights, WeightSource


def open_weights(kind: str, path: str | Path | None, args: ModelArgs | None = None, seed: int = 0) -> WeightSource:
    """Open a checkpoint: kind "synthetic" (needs args), "llama2c" (.bin) or "hf" (dir or .safetensors).
    Checkpoints are read through CheckedWeights (NaN, Inf, beyond fp16 refused); synthetic weights
    are finite and small by construction."""
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

        return CheckedWeights(Llama2cWeights(path))
    from taalas_compile.model.hf import HFWeights

    return CheckedWeights(HFWeights(path))
