"""Named steps with their wall time, for the pipeline and sign-off."""

from __future__ import annotations

import time
from collections.abc import Callable


def step_timer(seconds: dict[str, float], step: Callable[[str], None]):
    """timed(name, fn, *args): announce the step, run it, record its seconds in `seconds`."""

    def timed(name, fn, *a):
        step(name)
        t0 = time.perf_counter()
        out = fn(*a)
        seconds[name] = time.perf_counter() - t0
        return out

    return timed
