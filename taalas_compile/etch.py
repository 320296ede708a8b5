"""The one path from a compile's inputs to the codes etched into its masks: the compile
(`pipeline.compile_ir`), the references (`reference.build_references`) and a compiled chip's
read-back (`reference.chip_codes`) all call these two functions, so "the reference runs exactly
the etched codes" holds by construction.

1. `choose_bits`: lower the model to its graph, take the calibration windows (None: the
   round-to-nearest fallback), measure sensitivity where the policy asks for it, and allocate
   3/6 bits and a group size to every weight tensor (`quant/bits.allocate_bits`).
2. `etch`: the codes of every allocated tensor (`quant/reference.etched_codes`): the streamed
   GPTQ quantizer's unit files with calibration data, round-to-nearest of the checkpoint without.

The compile maps, places and routes between the two (the disk and memory pre-flight must run
before any weight is quantized)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx

from taalas_compile.frontend.lower import lower_args
from taalas_compile.inputs import Inputs, calibration_of
from taalas_compile.quant.bits import Allocation, allocate_bits
from taalas_compile.quant.calibrate import Calibration
from taalas_compile.quant.codes import QuantSpec
from taalas_compile.quant.etched import Etched
from taalas_compile.quant.reference import etched_codes, sensitivity_of
from taalas_compile.quant.stream import StreamResult

Timed = Callable[..., Any]  # timed(step name, fn, *args): fn(*args), timed and reported (timing.step_timer)


def untimed(name: str, fn: Callable, *args: Any, **kw: Any) -> Any:
    return fn(*args, **kw)


@dataclass(frozen=True)
class Bits:
    """What the bit allocation decided, and what it was decided from."""

    graph: nx.DiGraph  # the model IR (frontend)
    calib: Calibration | None  # calibration windows; None: round-to-nearest fallback
    allocation: Allocation  # bits + group per tensor, with the policy's method, notes and sensitivity

    @property
    def specs(self) -> dict[str, QuantSpec]:
        return self.allocation.specs


def choose_bits(inp: Inputs, timed: Timed = untimed) -> Bits:
    """Graph, calibration windows and the bits of every weight tensor, for `inp`."""
    q, src = inp.recipe.quant, inp.source
    graph = timed("lower", lower_args, src.args)  # PyTorch -> layer dataflow graph
    calib = timed("calibration data", calibration_of, inp)  # token windows, or None (RTN fallback)
    sens = sensitivity_of(src, calib, q, inp.die.arith.act_bits)  # per tensor and option, measured on demand
    alloc = timed(f"assign bits ({q.policy})", allocate_bits, graph, q, inp.die, sens)
    return Bits(graph, calib, alloc)


def etch(inp: Inputs, bits: Bits, store: Path | None = None, *, bar: Callable | None = None,
         on_unit: Callable[[str], None] = lambda unit: None) -> tuple[Etched, StreamResult | None]:
    """The etched codes of every tensor `bits` allocated; with calibration data the streamed
    quantizer writes its unit files into `store` (`quant/reference.etched_codes`)."""
    q = inp.recipe.quant
    return etched_codes(inp.source, bits.specs, q, bits.calib, inp.die.arith.act_bits, store, device=q.device, bar=bar,
                        on_unit=on_unit)
