"""ROM tiles of an OASIS mask file checked block by block, in worker processes: the streaming
sign-off of `rom_cells.py` spread over cores, with the same findings for any number of jobs.

    blocks, reading = check_rom_blocks(out, doc, path, pl, die, jobs=2)
    for b in blocks:          # file order; at most `jobs` blocks are read ahead of this loop
        b.violations, b.images  # what check_rom_cells adds for the block's cells; its tiles' digits

The file's cells are cut into segments of consecutive cells: the tile cells and block cell of one
layer block (checked in a worker, which also checks the netlist's ROM images of the block), or a
run of other cells (the die's ROMCELL and SEL, ROUTING, the top cell: small, checked here). Byte
ranges come from `cell_index.scan_cells`; a file it cannot index is read serially, in this
process, into the same segments. After the last segment comes one more, block "", holding the
"tile cell missing" findings.
"""

from __future__ import annotations

import ctypes
import itertools
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from taalas_compile.backend.netlist import read_block_roms
from taalas_compile.backend.volume import (
    available_memory,
    largest_block_digits,
    usable_cores,
)
from taalas_compile.config.die import Die
from taalas_compile.die.cell_names import cell_name
from taalas_compile.executor import ExecutorCfg, die_with_parent
from taalas_compile.mapper.ir import Placement
from taalas_compile.signoff.cell_index import scan_cells
from taalas_compile.signoff.findings import Findings, Violation
from taalas_compile.signoff.lvs import check_netlist_roms
from taalas_compile.signoff.oasis_cells import OasisCell
from taalas_compile.signoff.oasis_read import (
    check_crc,
    read_cells,
    read_cells_at,
)
from taalas_compile.signoff.rom_cells import RomCheck, RomChecker

# a reader worker's peak on a block (3.7 GB on the 1.15 G-cell tail block of the 8B chip) and the
# images it hands to the main process
READER_BYTES_PER_DIGIT = 4


@dataclass
class BlockCheck:
    block: str  # layer block; "" for a run of cells outside the blocks, and for the final missing-tile check
    violations: list[Violation]  # in file order, as check_rom_cells adds them
    tiles: int  # tile cells checked
    vias: int  # select vias read
    cells: int  # digit cells (pads) read
    images: dict[str, np.ndarray]  # extracted digits of each tile of the block: uint8 [rows, cols]
    other: list[OasisCell] = field(default_factory=list)  # cells that are neither tiles, blocks nor die cells (ROUTING, top)
    tile_cells: set[str] = field(default_factory=set)  # tile cells read (for the missing-tile check)
    cpu_s: float = 0.0  # processor time the segment took in its process (for measuring)


@dataclass(frozen=True)
class Segment:
    block: str  # "" : cells outside the layer blocks
    start: int  # byte range in the file (0, 0 when read serially)
    end: int
    cells: tuple[str, ...]


@dataclass(frozen=True)
class BlockReading:
    parallel: bool  # cells read by byte range (False: the file could not be indexed, read serially)
    segments: int
    blocks: int  # segments checked in workers
    jobs: int


class _Keep:
    """Findings that keep every violation, in order (a block's own; `Findings` caps per category)."""

    def __init__(self) -> None:
        self.items: list[Violation] = []

    def add(self, v: Violation) -> None:
        self.items.append(v)


@dataclass(frozen=True)
class _Context:
    out: Path
    doc: dict  # the netlist's "roms" and "tiles"
    path: Path
    pl: Placement
    die: Die


def _check(ctx: _Context, block: str, cells: Iterable[OasisCell]) -> BlockCheck:
    """check_rom_cells on one segment's cells, without the missing-tile check."""
    keep, images, t0 = _Keep(), {}, time.process_time()

    def images_of(b: str) -> dict[str, np.ndarray]:
        imgs = read_block_roms(ctx.out, ctx.doc, b)
        check_netlist_roms(ctx.pl, imgs, {"tiles": [t for t in ctx.doc["tiles"] if t["block"] == b]}, keep)
        return imgs

    chk = RomChecker(ctx.pl, images_of, ctx.die, keep, images.__setitem__)
    for c in cells:
        chk.check(c)
    r = chk.res
    return BlockCheck(block, keep.items, r.tiles, r.vias, r.cells, images, r.other, r.seen, time.process_time() - t0)


_WORKER: _Context | None = None  # set in each worker process by _init


def _libc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:  # not glibc: the allocator's defaults
        return None


def _init(ctx: _Context) -> None:
    """A worker: the context, and an allocator that keeps freed memory for reuse within a block.
    By default glibc maps each large array afresh and the kernel zeroes its pages on first touch:
    a fifth of a worker's time went to those page faults (measured on L0 of the 8B chip: system
    time 1.8 s -> 0.5 s, wall 9.1 s -> 7.7 s). `_check_range` hands the memory back after each block."""
    global _WORKER
    _WORKER = ctx
    die_with_parent()
    libc = _libc()
    if libc is not None:
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD: arrays below 1 GiB come from the heap
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: and their memory stays there when freed


def _check_range(seg: Segment) -> BlockCheck:
    assert _WORKER is not None, "a worker of _parallel"
    try:
        return _check(_WORKER, seg.block, read_cells_at(_WORKER.path, seg.start, seg.end))
    finally:
        libc = _libc()
        if libc is not None:
            libc.malloc_trim(0)  # the block's freed memory back to the system


def block_of_cell(pl: Placement) -> dict[str, str]:
    """Cell name -> its layer block, for the tile cells and block cells."""
    return {**{cell_name("T", t.name): t.block for t in pl.tiles}, **{cell_name("B", t.block): t.block for t in pl.tiles}}


def segments_of(cells: Iterable[tuple[str, int, int]], pl: Placement) -> list[Segment]:
    """(name, start, end) of the cells in file order -> runs of consecutive cells of one block
    (or of no block)."""
    of = block_of_cell(pl)
    out = []
    for block, run in itertools.groupby(cells, key=lambda c: of.get(c[0], "")):
        run = list(run)
        out.append(Segment(block, run[0][1], run[-1][2], tuple(c[0] for c in run)))
    return out


def default_jobs(pl: Placement, cores: int | None = None, avail: int | None = None) -> int:
    """Reader workers when --jobs is not given: one per core, as many as half the available memory
    holds at READER_BYTES_PER_DIGIT of the largest block (the other half is for the main process,
    which emulates block by block, and the reference worker)."""
    cores = cores if cores is not None else usable_cores()
    avail = avail if avail is not None else available_memory()
    per_reader = max(largest_block_digits(pl) * READER_BYTES_PER_DIGIT, 1)
    return max(1, min(cores, avail // 2 // per_reader))


def check_rom_blocks(out: Path, doc: dict, path: Path, pl: Placement, die: Die, jobs: int) -> tuple[Iterator[BlockCheck], BlockReading]:
    """The ROM checks of the whole file, one `BlockCheck` per segment in file order (see the module
    docstring). `jobs` worker processes (1: this process); the CRC of the file is checked first."""
    ExecutorCfg(jobs=jobs)  # --jobs must be at least 1
    path = Path(path)
    check_crc(path)
    ctx = _Context(Path(out), {"roms": doc["roms"], "tiles": doc["tiles"]}, path, pl, die)
    index = scan_cells(path)
    if index is None:
        return _then_missing(ctx, _serial(ctx)), BlockReading(False, 0, 0, 1)
    segs = segments_of([(c.name, c.start, c.end) for c in index], pl)
    n_blocks = sum(1 for s in segs if s.block)
    jobs = max(1, min(jobs, n_blocks))
    return _then_missing(ctx, _parallel(ctx, segs, jobs)), BlockReading(True, len(segs), n_blocks, jobs)


def check_segments(out: Path, doc: dict, path: Path, pl: Placement, die: Die, segs: list[Segment], jobs: int) -> Iterator[BlockCheck]:
    """The checks of some segments only (e.g. a few blocks, for measuring): no CRC pass and no
    missing-tile check."""
    ctx = _Context(Path(out), {"roms": doc["roms"], "tiles": doc["tiles"]}, Path(path), pl, die)
    yield from _parallel(ctx, segs, max(1, min(jobs, sum(1 for s in segs if s.block))))


def _then_missing(ctx: _Context, blocks: Iterator[BlockCheck]) -> Iterator[BlockCheck]:
    """The blocks, then one more: the tile cells none of them read."""
    seen: set[str] = set()
    for b in blocks:
        seen |= b.tile_cells
        yield b
    keep = _Keep()
    RomChecker(ctx.pl, lambda b: {}, ctx.die, keep).missing(seen)
    yield BlockCheck("", keep.items, 0, 0, 0, {})


def _serial(ctx: _Context) -> Iterator[BlockCheck]:
    """A file the index does not cover: streamed once, cut into the same segments as it goes."""
    of = block_of_cell(ctx.pl)
    for block, cells in itertools.groupby(read_cells(ctx.path, validate=False), key=lambda c: of.get(c.name, "")):
        yield _check(ctx, block, cells)


def _parallel(ctx: _Context, segs: list[Segment], jobs: int) -> Iterator[BlockCheck]:
    """Block segments in `jobs` spawned workers (in this process when jobs == 1), at most `jobs`
    ahead of the consumer; the other segments here, in their turn."""

    def here(s: Segment) -> BlockCheck:
        return _check(ctx, s.block, read_cells_at(ctx.path, s.start, s.end))

    if jobs == 1:
        yield from map(here, segs)
        return
    # spawn: a fresh interpreter per worker (forking a process that has started torch's threads is unsafe)
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"), initializer=_init, initargs=(ctx,))
    ahead: deque[tuple[Segment, Future | None]] = deque()
    todo = iter(segs)
    try:
        while True:
            while sum(f is not None for _, f in ahead) < jobs and (s := next(todo, None)) is not None:
                ahead.append((s, pool.submit(_check_range, s) if s.block else None))
            if not ahead:
                break
            s, f = ahead.popleft()
            yield f.result() if f is not None else here(s)
    except BaseException:  # an error, Ctrl-C or the consumer stopping: stop every worker now, not after its block
        for proc in list((getattr(pool, "_processes", None) or {}).values()):  # no public API before Python 3.14
            proc.terminate()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def collect(blocks: Iterable[BlockCheck], f: Findings, on_block=lambda b: None) -> RomCheck:
    """Fold the blocks into `f` (violations in file order) and one RomCheck; `on_block(b)` sees
    each block while later ones are read (e.g. to use its images, then let them go)."""
    res = RomCheck()
    for b in blocks:
        for v in b.violations:
            f.add(v)
        res.tiles, res.vias, res.cells = res.tiles + b.tiles, res.vias + b.vias, res.cells + b.cells
        res.other += b.other
        res.seen |= b.tile_cells
        on_block(b)
    return res
