"""Rebuild the PyTorch references (float and quantized) of a recipe or of a compiled chip."""

from __future__ import annotations

import tempfile
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
from taalas_compile.manifest import FORMAT as MANIFEST_FORMAT
from taalas_compile.manifest import VERSION as MANIFEST_VERSION
from taalas_compile.manifest import sha256
from taalas_compile.model.llama import Llama, build_model
from taalas_compile.model.tokenizer import load_tokenizer
from taalas_compile.quant.cache import stream_store
from taalas_compile.quant.calibrate import Calibration
from taalas_compile.quant.codes import QTensor, QuantSpec
from taalas_compile.quant.etched import Etched
from taalas_compile.quant.plan import Allocation, allocate_bits
from taalas_compile.quant.reference import (
    build_quant_model,
    etched_codes,
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


# Keys every reader of a chip relies on (paths through nested objects): checked once, here, so
# a damaged or foreign manifest.json is one line naming the key instead of a KeyError deep inside.
MANIFEST_KEYS: dict[str, type | tuple[type, ...]] = {
    "recipe.name": str, "recipe.path": str, "recipe.settings": dict, "recipe.settings.target.context": int,
    "die.name": str, "die.path": str, "weights": dict, "outputs": dict,
    "figures.params": int, "figures.bits_per_weight": (int, float), "figures.fit": dict, "bits": dict,
}


def read_manifest(out: Path) -> dict:
    """`out`/manifest.json, checked: a taalas-manifest of this compiler's version holding every key
    the chip's readers use (verify, emulate, plan)."""
    path = out / "manifest.json"
    man = read_json(path, "is this a compile output directory?")
    if not isinstance(man, dict) or man.get("format") != MANIFEST_FORMAT:
        raise UserError(f"{path}: not a {MANIFEST_FORMAT} file (is this a compile output directory?)")
    if man.get("version") != MANIFEST_VERSION:
        raise UserError(f"{path}: manifest version {man.get('version')!r}, this compiler reads version "
                        f"{MANIFEST_VERSION}: compile the chip again")
    for key, kind in MANIFEST_KEYS.items():
        value = _lookup(man, key)
        if value is _MISSING:
            raise UserError(f"{path}: no '{key}' (damaged or hand-edited?): compile the chip again")
        if not isinstance(value, kind):
            raise UserError(f"{path}: '{key}' is {value!r}, not a {_kind_name(kind)} (damaged or hand-edited?): "
                            "compile the chip again")
    return man


_MISSING = object()


def _lookup(doc: dict, dotted: str) -> object:
    """doc["a"]["b"] for "a.b", or _MISSING."""
    for part in dotted.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return _MISSING
        doc = doc[part]
    return doc


def _kind_name(kind: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))


def chip_context(man: dict) -> int:
    """Token positions per sequence the chip's KV SRAM holds (recipe target.context)."""
    return int(man["recipe"]["settings"]["target"]["context"])


def check_tokens(man: dict, tokens: int, prompt: int = 1, what: str = "--tokens") -> None:
    """Refuse a run of `tokens` generated (or verified) tokens after a `prompt` of that many tokens
    (1: BOS alone, as verify runs) unless it is at least one token and fits the chip's context: the
    emulator feeds prompt + tokens - 1 positions, and a run past the KV cache would fail only after
    minutes of emulation (or, with --tokens 0, print nothing and succeed)."""
    if tokens < 1:
        raise UserError(f"{what} {tokens}: nothing to run; give 1 or more")
    ctx = chip_context(man)
    if prompt + tokens - 1 > ctx:
        lead = f"{prompt}-token prompt + " if prompt > 1 else ""
        raise UserError(f"{what} {tokens}: {lead}{tokens} tokens exceed the chip's {ctx}-token context "
                        f"(recipe target.context); give {what} {max(ctx - prompt + 1, 0)} or fewer")


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
    etched = chip_codes(out, man, inp)
    a = inp.die.arith

    def emit(stage: str, h: np.ndarray) -> None:
        if stages is not None:
            def save(p: Path) -> None:
                with open(p, "wb") as f:  # a file object: np.save would append .npy to a name
                    np.save(f, h)

            write_atomic(stages / f"{stage}.npy", save)

    return run_streamed(etched, tokens, a.act_bits, a.kv_bits, emit)


def chip_codes(out: Path, man: dict, inp: Inputs) -> Etched:
    """Where a compiled chip's codes come from, by the calls the compile made (same calibration
    windows, allocation and quantizer): the streamed quantizer's unit files (found in the quant
    cache, else quantized again, layer by layer, into a temporary directory), checked against the
    sha256 the manifest records for each unit; round-to-nearest without calibration data."""
    q = inp.recipe.quant
    calib = calibration_of(inp)
    alloc = allocate_bits(lower_args(inp.source.args), q, inp.die, sensitivity_of(inp.source, calib, q, inp.die.arith.act_bits))
    if calib is None:
        return etched_codes(inp.source, alloc.plan, q, None, inp.die.arith.act_bits)[0]
    store = stream_store() or Path(tempfile.mkdtemp(prefix="taalas-quant-"))
    etched, res = etched_codes(inp.source, alloc.plan, q, calib, inp.die.arith.act_bits, store, device=q.device)
    want = {u["unit"]: u["sha256"] for u in (man.get("quant", {}).get("stream") or {}).get("units", [])}
    got = {u["unit"]: u["sha256"] for u in res.units} if res else {}
    if want and want != got:
        bad = sorted(u for u in want if got.get(u) != want[u])
        raise UserError(f"the codes quantized again for {out} differ from the compiled ones in units {bad[:3]} "
                        f"(another device or compiler version?)")
    return etched
