"""Running models for the user: the emulator on a compiled chip, the PyTorch reference, and the
float-vs-quantized evaluation. Each returns data; the CLI renders it."""

from __future__ import annotations

from pathlib import Path

import torch

from taalas_compile.backend.netlist import read_netlist
from taalas_compile.emulator.chip import from_netlist
from taalas_compile.emulator.run import Emulator
from taalas_compile.emulator.tiles import EmulationError
from taalas_compile.errors import UserError
from taalas_compile.inputs import resolve
from taalas_compile.model.generate import greedy
from taalas_compile.model.perplexity import compare, make_windows
from taalas_compile.model.tokenizer import Tokenizer
from taalas_compile.quant.plan import bits_per_weight
from taalas_compile.reference import build_references, chip_die, read_manifest


def prompt_ids(prompt: str, tok: Tokenizer | None, bos: int) -> list[int]:
    if tok is not None:
        return tok.encode(prompt, bos=True)
    try:
        return [bos] + [int(x) for x in prompt.split()]
    except ValueError:
        raise UserError("this chip has no tokenizer: give the prompt as token ids separated by spaces") from None


def emulate_chip(out: Path, prompt: str, n: int) -> tuple[list[int], list[int], Tokenizer | None]:
    """(prompt ids, generated ids, tokenizer) from the emulator running the chip's netlist."""
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
    ids = prompt_ids(prompt, tok, man.get("bos_id", 1))
    try:
        return ids, Emulator(from_netlist(pl, roms, die)).generate(ids, n), tok
    except EmulationError as e:
        raise UserError(f"emulation failed: {e}") from None


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
