"""Local worker processes: they end with the process that started them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

PARENT = textwrap.dedent("""
    import os, sys, time
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context
    from taalas_compile.executor import die_with_parent

    if __name__ == "__main__":
        pool = ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer={init})
        print(pool.submit(os.getpid).result(), flush=True)
        pool.submit(time.sleep, 120)  # a long block
        time.sleep(120)
""")


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _worker_after_parent_killed(init: str, wait: float) -> tuple[int, bool]:
    parent = subprocess.Popen([sys.executable, "-c", PARENT.format(init=init)], stdout=subprocess.PIPE, text=True)
    try:
        worker = int(parent.stdout.readline())
        time.sleep(0.3)  # the worker has taken the long task
        parent.send_signal(signal.SIGKILL)  # no clean-up runs in the parent
        parent.wait()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and not _gone(worker):
            time.sleep(0.05)
        return worker, _gone(worker)
    finally:
        parent.kill()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_worker_ends_when_its_parent_is_killed():
    _, gone = _worker_after_parent_killed("die_with_parent", wait=10)
    assert gone


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_without_it_the_worker_outlives_its_parent():
    """The control: what die_with_parent prevents does happen without it."""
    worker, gone = _worker_after_parent_killed("None", wait=2)
    try:
        assert not gone
    finally:
        if not gone:
            os.kill(worker, signal.SIGKILL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_in_the_main_process_it_does_nothing():
    """Called outside a worker (no multiprocessing parent) it sets no death signal."""
    import ctypes

    from taalas_compile.executor import die_with_parent

    libc = ctypes.CDLL(None)
    sig = ctypes.c_int(-1)
    assert libc.prctl(2, ctypes.byref(sig), 0, 0, 0) == 0  # 2: PR_GET_PDEATHSIG
    before = sig.value
    die_with_parent()
    assert libc.prctl(2, ctypes.byref(sig), 0, 0, 0) == 0
    assert sig.value == before == 0
