"""Rebuild the PyTorch references (float and quantized) of a recipe or of a compiled chip."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np

from taalas_compile.config.die import Die, load_die
from taalas_compile.config.loading import validate
from taalas_compile.config.recipe import Recipe
from taalas_compile.errors import UserError
from taalas_compile.files import read_json, write_atomic
from taalas_compile.frontend.lower import lower_args
from taalas_compile.inputs import CalibSource, Inputs, calibration_of, open_source
from taalas_compile.manifest import sha256
from taalas_compile.model.llama import Llama, build_model
from taalas_compile.model.tokenizer import load_tokenizer
from taalas_compile.quant.calibrate import Calibration
from taalas_compile.quant.codes import QTensor, QuantSpec
from taalas_compile.quant.plan import Allocation, allocate_bits
from taalas_compile.quant.reference import (
    build_quant_model,
    quantize_weights,
    sensitivity_of,
)
from taalas_compile.quant.reference_stream import StreamedReference, run_streamed


@dataclass
class References:
    graph: nx.DiGraph
    plan: dict[str, QuantSpec]
    qweights: dict[str, QTensor]
    float_model: Llama
    quant_model: Llama
    allocation: Allocation
    calib: Calibration | None


def build_references(inp: Inputs) -> References:
    """The float model and the quantized reference, made by the very calls the compile pipeline
    makes (same calibration windows, same allocation, same quantizer), so its codes are the etched ones.
    The quantized reference also keeps its KV cache in the die's format."""
    g = lower_args(inp.source.args)
    act_bits = inp.die.arith.act_bits
    calib = calibration_of(inp)
    alloc = allocate_bits(g, inp.recipe.quant, inp.die, sensitivity_of(inp.source, calib, inp.recipe.quant, act_bits))
    qw = quantize_weights(inp.source, alloc.plan, inp.recipe.quant, calib, act_bits)
    quant = build_quant_model(inp.source, qw, act_bits)
    quant.set_kv_format(inp.die.arith.kv_bits)  # the cache as the die stores it (die.arith.kv_format)
    return References(g, alloc.plan, qw, build_model(inp.source), quant, alloc, calib)


def read_manifest(out: Path) -> dict:
    return read_json(out / "manifest.json", "is this a compile output directory?")


def chip_die(out: Path, man: dict) -> Die:
    """The die a chip was compiled for: the recorded file if it is still there, else by name."""
    path = (out / man["die"]["path"]).resolve()
    return load_die(path if path.is_file() else man["die"]["name"])


def inputs_of_chip(out: Path, man: dict) -> Inputs:
    """The inputs a chip was compiled from, as recorded in its manifest; weights re-hashed."""
    recipe = validate(Recipe, man["recipe"]["settings"], f"{out}/manifest.json recipe")
    die = chip_die(out, man)
    w = man["weights"]
    wpath = None if w.get("path") is None else (out / w["path"]).resolve()
    if wpath is not None and not wpath.exists():
        raise UserError(f"weights {wpath} recorded in {out}/manifest.json are missing")
    source = open_source(recipe, wpath)
    now = source.fingerprint()
    if [f["sha256"] for f in now.get("files", [])] != [f["sha256"] for f in w.get("files", [])] or now.get("seed") != w.get("seed"):
        raise UserError(f"weights {wpath} changed since {out} was compiled (sha256 differs)")
    tok, tpath = None, None
    if man.get("tokenizer"):
        tpath = (out / man["tokenizer"]["path"]).resolve()
        tok = load_tokenizer(tpath) if tpath.is_file() else None
    return Inputs(recipe, (out / man["recipe"]["path"]).resolve(), die, (out / man["die"]["path"]).resolve(), source, wpath, tok,
                  tpath if tok else None, calib_of_chip(out, man))


def calib_of_chip(out: Path, man: dict) -> CalibSource | None:
    """The calibration source recorded in a manifest, re-hashed: the codes depend on it."""
    c = man.get("calibration")
    if not c:
        return None
    path = (out / c["path"]).resolve()
    if not path.is_file():
        raise UserError(f"calibration data {path} recorded in {out}/manifest.json is missing")
    if sha256(path) != c["sha256"]:
        raise UserError(f"calibration data {path} changed since {out} was compiled (sha256 differs)")
    return CalibSource(path, c["start_token"], c["tokens"], c["context"])


def streamed_reference(out: Path, tokens: list[int], stages: Path | None = None) -> StreamedReference:
    """The references of a compiled chip run layer by layer on `tokens` (`quant/reference_stream.py`),
    for chips too large for `build_references`; same inputs and bit allocation as the compile.
    With `stages`, each quantized hidden state is also written there as it is computed
    (`STAGE.npy`, atomically), for a consumer in another process."""
    man = read_manifest(out)
    inp = inputs_of_chip(out, man)
    if inp.calib is not None:
        raise UserError("the layer-by-layer reference re-quantizes tensor by tensor; this chip's codes come from "
                        "calibrated quantization (GPTQ, tuning) over the whole model")
    alloc = allocate_bits(lower_args(inp.source.args), inp.recipe.quant, inp.die, None)
    a = inp.die.arith

    def emit(stage: str, h: np.ndarray) -> None:
        if stages is not None:
            def save(p: Path) -> None:
                with open(p, "wb") as f:  # a file object: np.save would append .npy to a name
                    np.save(f, h)

            write_atomic(stages / f"{stage}.npy", save)

    return run_streamed(inp.source, alloc.plan, tokens, a.act_bits, a.kv_bits, inp.recipe.quant.clip_search, emit)
