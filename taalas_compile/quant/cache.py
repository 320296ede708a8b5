"""A content-addressed cache for the expensive quantizer results (GPTQ codes, tuned scales,
sensitivities), so compile, verify, eval and generate of the same inputs quantize once.

The key hashes everything the result depends on: the weights' fingerprint, the calibration tokens,
the bit allocation and quant settings, the die's activation bits, and the source of the quantizer and the
reference model themselves (any code change is a miss). Entries are written atomically to
`$TAALAS_CACHE` (default `~/.cache/taalas-compile`); `TAALAS_CACHE=off` disables the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from taalas_compile.code_key import code_digest
from taalas_compile.quant.codes import QTensor

# the quantizer's entry points: their source and everything of ours they import is in every key (code_key.py)
CODE_ROOTS = ("taalas_compile.quant.reference", "taalas_compile.quant.stream", "taalas_compile.quant.tune",
              "taalas_compile.quant.sensitivity", "taalas_compile.quant.proxy")


def cache_dir() -> Path | None:
    v = os.environ.get("TAALAS_CACHE", "")
    if v.lower() in ("off", "0", "none"):
        return None
    return Path(v) if v else Path.home() / ".cache" / "taalas-compile"


def weights_id(source) -> dict:
    """The weights' identity without the path they were opened by."""
    f = source.fingerprint()
    return {"kind": f.get("kind"), "seed": f.get("seed"), "sha256": [x["sha256"] for x in f.get("files", [])]}


def cache_key(kind: str, parts: dict) -> str:
    """sha256 of `parts` (JSON-able; numpy/torch arrays are hashed by bytes) and the quantizer's code (code_key.py)."""
    h = hashlib.sha256(kind.encode())
    h.update(code_digest(CODE_ROOTS).encode())
    for k in sorted(parts):
        v = parts[k]
        h.update(k.encode())
        if hasattr(v, "numpy"):
            v = v.numpy()
        if isinstance(v, np.ndarray):
            h.update(str((v.dtype, v.shape)).encode() + np.ascontiguousarray(v).tobytes())
        else:
            h.update(json.dumps(v, sort_keys=True, default=str).encode())
    return h.hexdigest()


def stream_store() -> Path | None:
    """Where the streamed quantizer keeps its unit files when the cache is on (shared by compile,
    verify, eval and generate of the same inputs)."""
    d = cache_dir()
    return None if d is None else d / "stream"


def _atomic_save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def cached_qweights(key: str, compute: Callable[[], dict[str, QTensor]]) -> dict[str, QTensor]:
    d = cache_dir()
    path = None if d is None else d / "quant" / f"{key}.npz"
    if path is not None and path.is_file():
        try:
            with np.load(path) as z:
                names = json.loads(str(z["__names__"]))
                return {n: QTensor(z[f"{i}.codes"], z[f"{i}.scales"], int(z[f"{i}.bits"]), int(z[f"{i}.group"]))
                        for i, n in enumerate(names)}
        except (OSError, KeyError, ValueError):
            pass  # a damaged entry is recomputed and rewritten
    qw = compute()
    if path is not None:
        arrays: dict[str, np.ndarray] = {"__names__": np.array(json.dumps(list(qw)))}
        for i, (n, q) in enumerate(qw.items()):
            arrays |= {f"{i}.codes": q.codes, f"{i}.scales": q.scales, f"{i}.bits": np.array(q.bits), f"{i}.group": np.array(q.group)}
        try:
            _atomic_save(path, arrays)
        except OSError:
            pass  # a read-only home still compiles, just without the cache
    return qw


def cached_json(key: str, compute: Callable[[], dict]) -> dict:
    d = cache_dir()
    path = None if d is None else d / "sensitivity" / f"{key}.json"
    if path is not None and path.is_file():
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            pass
    out = compute()
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(out))
            os.replace(tmp, path)
        except OSError:
            pass
    return out
