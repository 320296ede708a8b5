"""Running models for the user: the emulator on a compiled chip, the PyTorch reference, and the
float-vs-quantized evaluation. Each returns data; the CLI renders it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from taalas_compile.backend.netlist import read_netlist
from taalas_compile.config.die import Die
from taalas_compile.emulator.chip import from_netlist
from taalas_compile.emulator.cycles import CycleModel
from taalas_compile.emulator.lora import load_lora
from taalas_compile.emulator.run import Emulator
from taalas_compile.emulator.tiles import EmulationError
from taalas_compile.emulator.trace import (
    compare_stages,
    emulator_stages,
    reference_stages,
)
from taalas_compile.errors import UserError
from taalas_compile.inputs import resolve
from taalas_compile.model.generate import greedy
from taalas_compile.model.lora import apply_adapter, load_adapter
from taalas_compile.model.perplexity import compare, make_windows
from taalas_compile.model.tokenizer import Tokenizer
from taalas_compile.quant.plan import bits_per_weight
from taalas_compile.reference import (
    build_references,
    chip_die,
    inputs_of_chip,
    read_manifest,
)


def prompt_ids(prompt: str, tok: Tokenizer | None, bos: int) -> list[int]:
    if tok is not None:
        return tok.encode(prompt, bos=True)
    try:
        return [bos] + [int(x) for x in prompt.split()]
    except ValueError:
        raise UserError("this chip has no tokenizer: give the prompt as token ids separated by spaces") from None


@dataclass
class Emulation:
    """What `emulate` ran: prompts and generated ids per sequence, the cycle model's timing, and
    the per-layer trace against the reference when asked for."""

    prompts: list[list[int]]
    generated: list[list[int]]
    tokenizer: Tokenizer | None
    timing: dict
    trace: dict | None = None


def load_chip(out: Path) -> tuple[dict, Emulator, Die, Tokenizer | None]:
    """(manifest, emulator of the chip's netlist, die, tokenizer or None) of a compile output directory."""
    from taalas_compile.model.tokenizer import load_tokenizer

    man = read_manifest(out)
    pl, roms, _ = read_netlist(out)
    die = chip_die(out, man)
    tok = None
    if man.get("tokenizer"):
        tpath = (out / man["tokenizer"]["path"]).resolve()
        if not tpath.is_file():
            raise UserError(f"tokenizer {tpath} recorded in {out}/manifest.json is missing")
        tok = load_tokenizer(tpath)
    try:
        return man, Emulator(from_netlist(pl, roms, die)), die, tok
    except EmulationError as e:
        raise UserError(f"emulation failed: {e}") from None


def emulate_chip(out: Path, prompts: list[str], n: int, lora: Path | None = None, trace: bool = False,
                 trace_out: Path | None = None) -> Emulation:
    """Greedy generation on the emulator for every prompt at once (sequences in flight), with an
    optional LoRA adapter loaded into the chip's SRAM; `trace` also runs the quantized reference on
    the first sequence and compares them layer by layer (`trace_out`: save both as safetensors)."""
    man, emu, die, tok = load_chip(out)
    adapter = load_adapter(lora) if lora is not None else None
    load_lora(emu, adapter)
    ids = [prompt_ids(p, tok, man.get("bos_id", 1)) for p in prompts]
    try:
        new = emu.generate_batch(ids, n)
        timing = CycleModel(emu, die).report(emu.positions)
        res = Emulation(ids, new, tok, timing)
        if trace or trace_out is not None:
            res.trace = trace_chip(out, man, emu, ids[0] + new[0][:-1], adapter, trace_out)
    except EmulationError as e:
        raise UserError(f"emulation failed: {e}") from None
    return res


def trace_chip(out: Path, man: dict, emu: Emulator, tokens: list[int], adapter, trace_out: Path | None) -> dict:
    refs = build_references(inputs_of_chip(out, man))
    model = refs.quant_model if adapter is None else apply_adapter(refs.quant_model, adapter)
    e, r = emulator_stages(emu, tokens), reference_stages(model, tokens)
    if trace_out is not None:
        from safetensors.numpy import save_file

        trace_out.parent.mkdir(parents=True, exist_ok=True)
        save_file({**{f"emulator.{k}": np.ascontiguousarray(v) for k, v in e.items()},
                   **{f"reference.{k}": np.ascontiguousarray(v) for k, v in r.items()}}, str(trace_out))
    return {**compare_stages(e, r), "tokens": len(tokens), "saved": None if trace_out is None else str(trace_out)}


def generate_reference(recipe, weights, tokenizer, die, prompt: str, n: int, precision: str, calib: Path | None = None):
    inp = resolve(recipe, weights, tokenizer, die, calib)
    if precision == "quant":
        model = build_references(inp).quant_model
    else:
        from taalas_compile.model.llama import build_model

        model = build_model(inp.source)
    ids = prompt_ids(prompt, inp.tokenizer, inp.tokenizer.bos_id if inp.tokenizer else 1)
    if len(ids) + n > inp.source.args.max_seq_len:
        raise UserError(f"{len(ids)} prompt + {n} new tokens exceed the model's {inp.source.args.max_seq_len}-token context")
    with torch.no_grad():
        return ids, greedy(model, ids, n), inp.tokenizer


def evaluate(recipe, weights, tokenizer, die, text: Path, context: int, max_tokens: int | None, calib: Path | None = None) -> dict:
    inp = resolve(recipe, weights, tokenizer, die, calib)
    if inp.tokenizer is None:
        raise UserError("eval needs --tokenizer to turn the text into tokens")
    if not text.is_file():
        raise UserError(f"text file not found: {text}")
    if context > inp.source.args.max_seq_len:
        raise UserError(f"--context {context} exceeds the model's {inp.source.args.max_seq_len}-token context")
    refs = build_references(inp)
    stream = inp.tokenizer.encode(text.read_text(encoding="utf-8", errors="replace"), bos=True)
    windows = make_windows(stream, context, inp.tokenizer.bos_id, max_tokens)
    with torch.no_grad():
        res = compare(refs.float_model, refs.quant_model, windows)
    res["bits_per_weight"] = bits_per_weight(refs.graph, refs.plan, inp.die)
    res["ppl_increase"] = res["ppl_quant"] / res["ppl_float"] - 1
    res.update({"recipe": inp.recipe.name, "die": inp.die.name, "context": context, "text": str(text)})
    res["quant"] = quant_summary(refs, inp)
    return res


def quant_summary(refs, inp) -> dict:
    """How the quantized reference was made: policy, method, notes, calibration span, bits per tensor."""
    a, c = refs.allocation, inp.calib
    return {"policy": a.policy, "method": a.method, "notes": list(a.notes),
            "calibration": None if refs.calib is None else
            {"path": str(c.path), "start_token": c.start_token, "tokens": c.tokens, "context": c.context, "windows": int(refs.calib.tokens.shape[0])},
            "tensors": {n: [s.bits, s.group] for n, s in refs.plan.items()}}
