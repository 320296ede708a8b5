"""Where per-block work runs: this process, N local worker processes, or a Dask cluster.

`run_jobs(fn, jobs, cfg, on_done)` returns `fn(job)` for every job in job order, whatever order
they finish in, so the outputs do not depend on the executor. `on_done(result)` is called in this
process as each one finishes (progress). A cluster's workers must see the same file system paths
(the block cache), as on an EDA farm's shared disk.
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context, parent_process
from typing import Literal

from taalas_compile.errors import UserError


@dataclass(frozen=True)
class ExecutorCfg:
    jobs: int | None = 1  # local worker processes (1: run in this process; None: the compile picks, volume.auto_jobs)
    kind: Literal["local", "dask"] = "local"
    scheduler: str | None = None  # Dask scheduler address, e.g. tcp://10.0.0.5:8786

    def __post_init__(self) -> None:  # checked when the options are given, before any work
        if self.jobs is not None and self.jobs < 1:
            raise UserError(f"--jobs must be at least 1, got {self.jobs}")
        if self.kind == "dask" and not self.scheduler:
            raise UserError("--executor dask needs --scheduler ADDRESS (e.g. tcp://127.0.0.1:8786)")

    def describe(self) -> str:
        if self.kind == "dask":
            return f"dask scheduler {self.scheduler}"
        if self.jobs is None:
            return "local worker processes, one per core as memory allows"
        return "this process" if self.jobs <= 1 else f"{self.jobs} local worker processes"


def die_with_parent() -> None:
    """In a local worker process: end when the process that started it ends, however it ends.
    A main process stopped by SIGKILL (the kernel's out-of-memory killer picks the largest
    process) runs no clean-up, and its workers would otherwise go on with their blocks for
    minutes, holding memory and cores. Linux only (prctl PR_SET_PDEATHSIG); elsewhere nothing."""
    parent = parent_process()
    if parent is None:
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(1, signal.SIGTERM, 0, 0, 0) != 0:  # 1: PR_SET_PDEATHSIG
            return
    except (OSError, AttributeError):  # no prctl on this system
        return
    if os.getppid() != parent.pid:  # the parent ended before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def run_jobs(fn: Callable, jobs: Sequence, cfg: ExecutorCfg, on_done: Callable = lambda r: None,
             init: Callable[[], None] | None = None) -> list:
    if cfg.kind == "dask":
        return _dask(fn, jobs, cfg, on_done)
    if cfg.jobs is None:
        raise ValueError("run_jobs needs a number of workers: resolve jobs=None first (volume.auto_jobs)")
    if cfg.jobs == 1 or len(jobs) <= 1:
        out = []
        for j in jobs:
            out.append(fn(j))
            on_done(out[-1])
        return out
    results: list = [None] * len(jobs)
    # spawn: a fresh interpreter per worker (forking a process that has started torch's threads is unsafe)
    with ProcessPoolExecutor(max_workers=min(cfg.jobs, len(jobs)), mp_context=get_context("spawn"), initializer=init) as pool:
        futures = {pool.submit(fn, j): i for i, j in enumerate(jobs)}
        try:
            for f in as_completed(futures):
                results[futures[f]] = f.result()
                on_done(results[futures[f]])
        except BaseException:  # Ctrl-C, SIGTERM, a failed block: stop every worker now, not after its block
            for proc in list(getattr(pool, "_processes", {}).values()):  # no public API before Python 3.14
                proc.terminate()
            raise
    return results


def _dask(fn: Callable, jobs: Sequence, cfg: ExecutorCfg, on_done: Callable) -> list:
    try:
        from distributed import Client
        from distributed import as_completed as dask_completed
    except ImportError:
        raise UserError("--executor dask needs the dask distributed package: pip install 'taalas-compile[dask]'") from None
    try:
        client = Client(cfg.scheduler, timeout="10s")
    except OSError as e:
        raise UserError(f"cannot reach the Dask scheduler at {cfg.scheduler}: {e}") from None
    try:
        futures = client.map(fn, list(jobs), pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        results: list = [None] * len(jobs)
        for f in dask_completed(futures):
            results[index[f.key]] = f.result()
            on_done(results[index[f.key]])
        return results
    finally:
        client.close()
