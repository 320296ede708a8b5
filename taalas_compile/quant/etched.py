"""The codes and scales a chip etches, and the per-unit result files of the streamed quantizer.

A *unit* is what the streamed quantizer (`quant/stream.py`) finishes at a time: "embed", "layers.I",
"head". Its result file is a safetensors file `unit-KEY.safetensors` holding, per weight tensor,
`NAME.codes` (int8 [out, in]) and `NAME.scales` (fp16 [out, n_groups]); the metadata carries the
unit, its key and its bit specs. A file is named by its content key, written atomically, never
changed.

`Etched.rows(name, r0, r1)` is the one function through which everything that needs etched codes
gets them — the block jobs building ROM images and the quantized references — so "the reference
runs exactly the etched codes" holds by construction: calibrated codes are read from the unit
files (only the rows asked for leave the file), uncalibrated ones are round-to-nearest + clip
search of the checkpoint's rows (exact per (row, group), so any row band equals the whole tensor).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from taalas_compile.model.weights import WeightSource
from taalas_compile.quant.codes import QTensor, QuantSpec, quantize_tensor


def unit_path(store: Path, key: str) -> Path:
    return store / f"unit-{key}.safetensors"


def write_unit(store: Path, unit: str, key: str, qw: dict[str, QTensor], report: dict | None = None) -> Path:
    """The unit's codes and scales into `store/unit-KEY.safetensors` (atomically; same bytes for
    the same content)."""
    store.mkdir(parents=True, exist_ok=True)
    path = unit_path(store, key)
    arrays = {}
    for name, q in qw.items():
        arrays[f"{name}.codes"] = np.ascontiguousarray(q.codes, dtype=np.int8)
        arrays[f"{name}.scales"] = np.ascontiguousarray(q.scales, dtype=np.float16)
    # one metadata entry: safetensors writes several in hash order, and the bytes must not vary
    meta = {"taalas": json.dumps({"unit": unit, "key": key, "specs": {n: [q.bits, q.group] for n, q in qw.items()},
                                  "report": report or {}}, sort_keys=True)}
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    save_file(arrays, str(tmp), metadata=meta)
    os.replace(tmp, path)
    return path


def unit_meta(path: Path) -> dict:
    with safe_open(str(path), framework="np") as f:
        return json.loads((f.metadata() or {})["taalas"])


def read_rows(path: Path, name: str, r0: int, r1: int) -> QTensor:
    """Rows [r0, r1) of tensor `name` from a unit file (only those rows are read)."""
    with safe_open(str(path), framework="np") as f:
        bits, group = json.loads(f.metadata()["taalas"])["specs"][name]
        codes = f.get_slice(f"{name}.codes")[r0:r1]
        scales = f.get_slice(f"{name}.scales")[r0:r1]
    return QTensor(np.ascontiguousarray(codes), np.ascontiguousarray(scales), int(bits), int(group))


def read_unit(path: Path) -> dict[str, QTensor]:
    """Every tensor of a unit file, whole (one decoder layer's worth)."""
    specs = unit_meta(path)["specs"]
    with safe_open(str(path), framework="np") as f:
        return {n: QTensor(f.get_tensor(f"{n}.codes"), f.get_tensor(f"{n}.scales"), int(b), int(g)) for n, (b, g) in specs.items()}


@dataclass(frozen=True)
class Etched:
    """Where a chip's codes come from: `files[name]` (a unit file, for calibrated codes) or, for a
    tensor without one, round-to-nearest + clip search of the checkpoint. Picklable and small: a
    block job carries one restricted to its tensors (`only`), never arrays."""

    source: WeightSource
    specs: dict[str, QuantSpec]
    clip_search: bool
    files: dict[str, str] = field(default_factory=dict)  # tensor -> unit file path

    def rows(self, name: str, r0: int, r1: int) -> QTensor:
        """Codes and scales of rows [r0, r1) of tensor `name`, as etched."""
        if name in self.files:
            return read_rows(Path(self.files[name]), name, r0, r1)
        return quantize_tensor(self.source.rows(name, r0, r1), self.specs[name], self.clip_search)

    def tensor(self, name: str) -> QTensor:
        return self.rows(name, 0, self.source.args.param_shapes()[name][0])

    def only(self, names) -> Etched:
        names = set(names)
        return Etched(self.source, {n: s for n, s in self.specs.items() if n in names}, self.clip_search,
                      {n: f for n, f in self.files.items() if n in names})

    def file_keys(self) -> dict[str, str]:
        """tensor -> the content key of its unit file (what a block's bytes depend on)."""
        return {n: Path(f).stem.removeprefix("unit-") for n, f in sorted(self.files.items())}
