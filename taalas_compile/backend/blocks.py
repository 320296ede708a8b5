"""Per-block work of a compile: the ROM images and the mask cells of one layer block.

A compile is cut into one `BlockJob` per layer block (io, head, L0.., tail). A job carries
everything its result depends on — its tiles, the die, the mask format, the bit allocation of the tensors
it reads, the weight source (reopened in the worker), and for calibrated codes the paths of the
streamed quantizer's unit files holding them (quant/etched.py; never the arrays) — and `key`, a
sha256 of all of it (the unit files by their content keys) plus the compiler's own code. So:

- jobs run anywhere (this process, a local pool, a Dask cluster) with identical bytes out;
- a finished block is a file set in the block cache named by its key; a resumed compile reuses it.

A block gets its codes one tensor row band at a time through `Etched.rows` — the one function the
quantized references use too: rows of a unit file, or without one round-to-nearest + clip search of
the checkpoint's rows (exact per (row, group)). Memory is bounded by the largest band and one tile,
not by the model.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from taalas_compile.backend.masks import block_part
from taalas_compile.backend.roms import build_tile_image, tile_block, tile_consts
from taalas_compile.code_key import code_digest
from taalas_compile.config.die import Die
from taalas_compile.die.rom_format import NO_CELL
from taalas_compile.executor import die_with_parent
from taalas_compile.files import sha256_file, write_atomic
from taalas_compile.mapper.ir import Tile
from taalas_compile.model.weights import WeightSource
from taalas_compile.quant.codes import QTensor, QuantSpec
from taalas_compile.quant.etched import Etched
from taalas_compile.version import __version__

CODE_ROOTS = ("taalas_compile.backend.blocks",)  # a block's bytes depend on this module and all it imports (code_key.py)


@dataclass(frozen=True)
class BlockJob:
    index: int  # position in the chip's block order
    block: str  # "io", "head", "L0", ..., "tail"
    tiles: tuple[Tile, ...]
    die: Die
    fmt: str  # mask format: "gds" or "oasis"
    specs: dict[str, QuantSpec]  # bits and group of every tensor the block reads
    clip_search: bool
    source: WeightSource
    norm_params: dict[str, str]  # rmsnorm tile -> the gain tensor it etches
    files: dict[str, str] = field(default_factory=dict)  # tensor -> unit file of its calibrated codes (paths, not arrays)
    key: str = field(default="", compare=False)

    @property
    def etched(self) -> Etched:
        """Where the block's codes come from (quant/etched.py)."""
        return Etched(self.source, self.specs, self.clip_search, self.files)

    @property
    def n_weights(self) -> int:
        return sum((t.slice.r1 - t.slice.r0) * (t.slice.c1 - t.slice.c0) for t in self.tiles if t.slice)


@dataclass(frozen=True)
class TileMeta:
    rows: int
    cols: int
    sha256: str
    digits: int  # used digit cells (header included)


@dataclass(frozen=True)
class BlockResult:
    index: int
    block: str
    key: str
    roms: str  # file name in the block cache: the block's ROM images (safetensors, uint8 digits)
    part: str  # file name in the block cache: the block's cells in the mask format (T_ tiles + B_ block)
    part_bytes: int
    roms_sha256: str
    roms_bytes: int
    tiles: dict[str, TileMeta]
    weights: int
    seconds: float
    peak_rss: int  # bytes, of the process that ran the block
    reused: bool = False


def rom_sha256(img: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(img).tobytes() + str(img.shape).encode()).hexdigest()


def job_key(job: BlockJob) -> str:
    """sha256 of everything the block's output bytes depend on."""
    h = hashlib.sha256(f"taalas-block {__version__}\n".encode())
    h.update(code_digest(CODE_ROOTS).encode())
    fp = job.source.fingerprint()
    ident = {"kind": fp.get("kind"), "seed": fp.get("seed"), "sha256": [f["sha256"] for f in fp.get("files", [])]}
    h.update(json.dumps({
        "block": job.block, "fmt": job.fmt, "die": job.die.model_dump(mode="json"), "clip": job.clip_search,
        "specs": {k: [v.bits, v.group] for k, v in sorted(job.specs.items())}, "weights": ident,
        "norms": job.norm_params, "tiles": [repr(t) for t in job.tiles],
        "codes": job.etched.file_keys(),  # unit files by content key (their path may differ run to run)
    }, sort_keys=True).encode())
    return h.hexdigest()


def _weight_blocks(job: BlockJob):
    """(tile, (codes, scales)) for every weight tile of the block, one tensor row band at a time."""
    etched = job.etched
    bands: dict[tuple[str, int, int], list[Tile]] = {}
    for t in job.tiles:
        if t.slice:
            bands.setdefault((t.slice.param, t.slice.r0, t.slice.r1), []).append(t)
    for (param, r0, r1), tiles in bands.items():
        q: QTensor = etched.rows(param, r0, r1)
        for t in tiles:
            yield t.name, tile_block(t, q, row0=r0)
        del q


def block_images(job: BlockJob) -> dict[str, np.ndarray]:
    """The ROM image of every tile of the block, in tile order."""
    blocks = dict(_weight_blocks(job))
    return {t.name: build_tile_image(t, job.die, blocks.get(t.name), tile_consts(t, job.source, job.norm_params.get(t.name)))
            for t in job.tiles}


def _files(cache: Path, job: BlockJob) -> tuple[Path, Path, Path]:
    stem = f"{job.index:03d}-{job.block}-{job.key[:16]}"
    return cache / f"{stem}.roms.safetensors", cache / f"{stem}.{job.fmt}.part", cache / f"{stem}.json"


def load_result(cache: Path, job: BlockJob) -> BlockResult | None:
    """A finished block in the cache (its record is written last), or None."""
    *_, rec = _files(cache, job)
    if not rec.is_file():
        return None
    d = json.loads(rec.read_text())
    if d.get("key") != job.key:
        return None
    d["tiles"] = {k: TileMeta(**v) for k, v in d["tiles"].items()}
    return BlockResult(**{**d, "reused": True})


def run_block(job: BlockJob, cache: Path) -> BlockResult:
    """Compute one block and write its files into `cache` (atomically; the record last)."""
    t0 = time.perf_counter()
    done = load_result(cache, job)
    if done is not None:
        return done
    roms_path, part_path, rec = _files(cache, job)
    images = block_images(job)
    write_atomic(part_path, lambda p: p.write_bytes(block_part(job.block, job.tiles, images, job.die, job.fmt)))
    write_atomic(roms_path, lambda p: (save_file({k: np.ascontiguousarray(v) for k, v in images.items()}, str(p)), p.chmod(0o644)))
    tiles = {name: TileMeta(int(img.shape[0]), int(img.shape[1]), rom_sha256(img), int((img != NO_CELL).sum()))
             for name, img in images.items()}
    res = BlockResult(index=job.index, block=job.block, key=job.key, roms=roms_path.name, part=part_path.name,
                      part_bytes=part_path.stat().st_size, roms_sha256=sha256_file(roms_path), roms_bytes=roms_path.stat().st_size,
                      tiles=tiles, weights=job.n_weights, seconds=time.perf_counter() - t0,
                      peak_rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    doc = {k: v for k, v in res.__dict__.items() if k != "reused"}
    doc["tiles"] = {k: v.__dict__ for k, v in tiles.items()}
    write_atomic(rec, lambda p: p.write_text(json.dumps(doc, indent=1) + "\n"))
    return res


def worker_init() -> None:
    """Worker processes: one thread each (the parallelism is the processes), and they end with the
    process that started them."""
    import torch

    die_with_parent()
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
