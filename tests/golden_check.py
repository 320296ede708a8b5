"""The golden-model check through the console script (tests/e2e): `emulate` against `generate
--precision quant`, and the saved trace compared stage by stage, bit for bit."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

TOKENS = 64


def cli(*argv) -> subprocess.CompletedProcess:
    p = subprocess.run(["taalas-compile", *map(str, argv)], capture_output=True, text=True, timeout=900, check=False)
    assert p.returncode == 0, (argv, p.stderr[-3000:])
    return p


def assert_golden(chip: Path, generate_args: list, prompt: str, trace: Path, *extra, seed: int | None = None) -> None:
    """emulate (with the trace saved) against generate --precision quant on the same prompt."""
    why = f"seed {seed}" if seed is not None else ""
    emu = cli("emulate", chip, "--prompt", prompt, "--tokens", TOKENS, "--trace-out", trace, *extra).stdout
    ref = cli("generate", *generate_args, "--prompt", prompt, "--tokens", TOKENS, "--precision", "quant", *extra).stdout
    assert ref and emu.startswith(ref), (why, emu[:500], ref[:500])  # then the trace table
    assert "every stage equal bit for bit" in emu, (why, emu[-2000:])
    from safetensors.numpy import load_file

    saved = load_file(str(trace))
    stages = sorted(k.removeprefix("emulator.") for k in saved if k.startswith("emulator."))
    assert {"embed", "L0", "norm", "logits"} <= set(stages)
    for s in stages:
        e, r = saved[f"emulator.{s}"], saved[f"reference.{s}"]
        r = r[:, : e.shape[1]]
        assert e.shape == r.shape and e.shape[0] >= TOKENS and np.array_equal(e.view(np.uint32), r.view(np.uint32)), (why, s)
