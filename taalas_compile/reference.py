"""Rebuild the PyTorch references (float and quantized) of a recipe or of a compiled chip, with
the codes the compile etches (`etch.py`: one path for both)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np

from taalas_compile.chip_dir import inputs_of_chip, read_manifest
from taalas_compile.errors import UserError
from taalas_compile.etch import choose_bits, etch
from taalas_compile.files import write_atomic
from taalas_compile.inputs import Inputs
from taalas_compile.model.llama import Llama, build_model
from taalas_compile.quant.bits import Allocation
from taalas_compile.quant.cache import stream_store
from taalas_compile.quant.calibrate import Calibration
from taalas_compile.quant.codes import QTensor, QuantSpec
from taalas_compile.quant.etched import Etched
from taalas_compile.quant.golden import build_golden_model
from taalas_compile.quant.reference_stream import StreamedReference, run_streamed


@dataclass
class References:
    graph: nx.DiGraph
    specs: dict[str, QuantSpec]
    qweights: dict[str, QTensor]
    float_model: Llama
    quant_model: Llama
    allocation: Allocation
    calib: Calibration | None


def build_references(inp: Inputs) -> References:
    """The float model and the quantized reference (the golden model: the die's exact arithmetic,
    KV cache in the die's format), with the bits and codes the compile etches (`etch.choose_bits`
    and `etch.etch`: the same calibration windows, allocation and quantizer)."""
    bits = choose_bits(inp)
    with tempfile.TemporaryDirectory(prefix="taalas-quant-") as tmp:  # unit files when the cache is off
        etched, _ = etch(inp, bits, stream_store() or Path(tmp))
        qw = {name: etched.tensor(name) for name in bits.specs}
    quant = build_golden_model(inp.source, qw, inp.die.arith.act_bits, inp.die.arith.kv_bits)
    return References(bits.graph, bits.specs, qw, build_model(inp.source), quant, bits.allocation, bits.calib)


def streamed_reference(out: Path, tokens: list[int], stages: Path | None = None, last_layer: int | None = None) -> StreamedReference:
    """The references of a compiled chip run layer by layer on `tokens` (`quant/reference_stream.py`),
    for chips too large for `build_references`; same inputs and bit allocation as the compile.
    With `stages`, each quantized hidden state is also written there as it is computed
    (`STAGE.npy`, atomically), for a consumer in another process. `last_layer`: stop there (a die
    of a system that sends its link after that layer; -1: after the embedding)."""
    man = read_manifest(out)
    inp = inputs_of_chip(out, man)
    etched = chip_codes(out, man, inp)
    a = inp.die.arith

    def emit(stage: str, h: np.ndarray) -> None:
        if stages is not None:
            def save(p: Path) -> None:
                with open(p, "wb") as f:  # a file object: np.save would append .npy to a name
                    np.save(f, h)

            write_atomic(stages / f"{stage}.npy", save)

    return run_streamed(etched, tokens, a.act_bits, a.kv_bits, emit, last_layer)


def chip_codes(out: Path, man: dict, inp: Inputs) -> Etched:
    """Where a compiled chip's codes come from, by the calls the compile made (same calibration
    windows, allocation and quantizer): the streamed quantizer's unit files (found in the quant
    cache, else quantized again, layer by layer, into a temporary directory), checked against the
    sha256 the manifest records for each unit; round-to-nearest without calibration data."""
    bits = choose_bits(inp)
    if bits.calib is None:
        return etch(inp, bits)[0]
    store = stream_store() or Path(tempfile.mkdtemp(prefix="taalas-quant-"))
    etched, res = etch(inp, bits, store)
    want = {u["unit"]: u["sha256"] for u in (man.get("quant", {}).get("stream") or {}).get("units", [])}
    got = {u["unit"]: u["sha256"] for u in res.units} if res else {}
    if want and want != got:
        bad = sorted(u for u in want if got.get(u) != want[u])
        raise UserError(f"the codes quantized again for {out} differ from the compiled ones in units {bad[:3]} "
                        f"(another device or compiler version?)")
    return etched
