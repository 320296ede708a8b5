"""Running models for the user: the emulator on a compiled chip, the PyTorch reference, and the
float-vs-quantized evaluation. Each returns data; the CLI renders it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from taalas_compile.backend.netlist import read_netlist
from taalas_compile.chip_dir import (
    check_tokens,
    chip_die,
    inputs_of_chip,
    read_manifest,
)
from taalas_compile.config.die import Die
from taalas_compile.die import rom_format as rf
from taalas_compile.die.program import Io, decode
from taalas_compile.emulator.chip import from_netlist
from taalas_compile.emulator.cycles import CycleModel
from taalas_compile.emulator.lora import load_lora, load_lora_dies
from taalas_compile.emulator.run import Driver, Emulator
from taalas_compile.emulator.system import SystemCycles, SystemEmulator
from taalas_compile.emulator.tiles import EmulationError
from taalas_compile.emulator.trace import (
    compare_stages,
    emulator_stages,
    reference_stages,
)
from taalas_compile.errors import UserError
from taalas_compile.files import write_atomic
from taalas_compile.inputs import resolve
from taalas_compile.model.generate import greedy
from taalas_compile.model.lora import apply_adapter, load_adapter
from taalas_compile.model.perplexity import compare, make_windows
from taalas_compile.model.tokenizer import Tokenizer, bos_id_of
from taalas_compile.quant.bits import bits_per_weight
from taalas_compile.reference import build_references
from taalas_compile.system.files import die_manifests, is_system, read_system


def prompt_ids(prompt: str, tok: Tokenizer | None, bos: int, vocab: int) -> list[int]:
    """BOS + the prompt's tokens: encoded by `tok`, or given as token ids when there is none."""
    if tok is not None:
        ids = tok.encode(prompt, bos=True)
    else:
        try:
            ids = [bos] + [int(x) for x in prompt.split()]
        except ValueError:
            raise UserError("this chip has no tokenizer: give the prompt as token ids separated by spaces") from None
    check_ids(ids, vocab)
    return ids


def check_ids(ids: list[int], vocab: int) -> None:
    """Every token id must index the `vocab`-row embedding: a negative id would wrap around (Python
    indexing) and generate from the wrong token, one past the end has no row at all."""
    bad = next((i for i in ids if not 0 <= i < vocab), None)
    if bad is not None:
        raise UserError(f"prompt token id {bad} is outside the model's {vocab}-token vocabulary: give ids 0..{vocab - 1}")


def check_count(n: int, what: str, least: int, why: str) -> None:
    """A count from the command line (--tokens, --context, ...) below `least` would run nothing,
    or crash deep inside: refuse it first, saying `why`."""
    if n < least:
        raise UserError(f"{what} {n}: {why}; give {least} or more")


def chip_vocab(emu: Emulator) -> int:
    """The vocabulary etched in the chip: its I/O tile's program (die/program.py)."""
    io = decode(rf.parse_header(emu.chip.roms[emu.io][0]))
    if not isinstance(io, Io):
        raise EmulationError(f"{emu.io}: the I/O tile holds a {io.role.name.lower()} program")
    return io.vocab


@dataclass
class Emulation:
    """What `emulate` ran: prompts and generated ids per sequence, the cycle model's timing, and
    the per-layer trace against the reference when asked for."""

    prompts: list[list[int]]
    generated: list[list[int]]
    tokenizer: Tokenizer | None
    timing: dict
    trace: dict | None = None


def load_chip(out: Path) -> tuple[dict, Driver, Die, Tokenizer | None]:
    """(manifest, emulator of the chip's netlist, die, tokenizer or None) of a compile output
    directory; of a multi-die system, die 0's manifest and the dies chained (`SystemEmulator`)."""
    from taalas_compile.model.tokenizer import load_tokenizer

    dirs = system_dies(out)
    man = read_manifest(dirs[0])
    die = chip_die(dirs[0], man)
    tok = None
    if man.get("tokenizer"):
        tpath = (dirs[0] / man["tokenizer"]["path"]).resolve()
        if not tpath.is_file():
            raise UserError(f"tokenizer {tpath} recorded in {dirs[0]}/manifest.json is missing")
        tok = load_tokenizer(tpath)
    try:
        emus = [Emulator(from_netlist(*read_netlist(d)[:2], die)) for d in dirs]
        return man, emus[0] if len(emus) == 1 else SystemEmulator(emus), die, tok
    except EmulationError as e:
        raise UserError(f"emulation failed: {e}") from None


def system_dies(out: Path) -> list[Path]:
    """The chip directories of `out`: itself, or each die of the system in it (checked: all
    present, one recipe, one base die)."""
    if not is_system(out):
        return [out]
    s, doc = read_system(out)
    die_manifests(out, s, doc)
    return [out / d.dir for d in s.dies]


def emulate_chip(out: Path, prompts: list[str], n: int, lora: Path | None = None, trace: bool = False,
                 trace_out: Path | None = None) -> Emulation:
    """Greedy generation on the emulator for every prompt at once (sequences in flight), with an
    optional LoRA adapter loaded into the chip's SRAM; `trace` also runs the quantized reference on
    the first sequence and compares them layer by layer (`trace_out`: save both as safetensors).
    A multi-die system runs its dies chained through the links, timed with them."""
    check_count(n, "--tokens", 1, "nothing to generate")
    if trace_out is not None and trace_out.is_dir():
        raise UserError(f"--trace-out {trace_out} is a directory: give a file name (e.g. {trace_out / 'trace.safetensors'})")
    man, emu, die, tok = load_chip(out)
    ids = [prompt_ids(p, tok, man.get("bos_id", 1), chip_vocab(emu)) for p in prompts]
    check_tokens(man, n, max(map(len, ids)))
    adapter = load_adapter(lora) if lora is not None else None
    if isinstance(emu, SystemEmulator):
        load_lora_dies(emu.dies, adapter)
    else:
        load_lora(emu, adapter)
    try:
        new = emu.generate_batch(ids, n)
        cycles = SystemCycles(emu, die) if isinstance(emu, SystemEmulator) else CycleModel(emu, die)
        res = Emulation(ids, new, tok, cycles.report(emu.positions))
        if trace or trace_out is not None:
            res.trace = trace_chip(system_dies(out)[0], man, emu, ids[0] + new[0][:-1], adapter, trace_out)
    except EmulationError as e:
        raise UserError(f"emulation failed: {e}") from None
    return res


def trace_chip(out: Path, man: dict, emu: Emulator, tokens: list[int], adapter, trace_out: Path | None) -> dict:
    refs = build_references(inputs_of_chip(out, man))
    model = refs.quant_model if adapter is None else apply_adapter(refs.quant_model, adapter)
    e, r = emulator_stages(emu, tokens), reference_stages(model, tokens)
    if trace_out is not None:  # serialised in memory: a path error is an OSError naming it (one line, exit 2)
        from safetensors.numpy import save

        blob = save({**{f"emulator.{k}": np.ascontiguousarray(v) for k, v in e.items()},
                     **{f"reference.{k}": np.ascontiguousarray(v) for k, v in r.items()}})
        trace_out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(trace_out, lambda p: p.write_bytes(blob))
    return {**compare_stages(e, r), "tokens": len(tokens), "saved": None if trace_out is None else str(trace_out)}


def generate_reference(recipe, weights, tokenizer, die, prompt: str, n: int, precision: str, calib: Path | None = None,
                       lora: Path | None = None):
    """Greedy generation on the float model or the quantized reference (the golden model: what
    `emulate` prints on the compiled chip), with a LoRA adapter applied as the chip applies it."""
    check_count(n, "--tokens", 1, "nothing to generate")
    adapter = load_adapter(lora) if lora is not None else None
    inp = resolve(recipe, weights, tokenizer, die, calib)
    ids = prompt_ids(prompt, inp.tokenizer, bos_id_of(inp.tokenizer, inp.source), inp.source.args.vocab_size)
    if len(ids) + n > inp.source.args.max_seq_len:
        raise UserError(f"{len(ids)} prompt + {n} new tokens exceed the model's {inp.source.args.max_seq_len}-token context")
    if precision == "quant":
        model = build_references(inp).quant_model
    else:
        from taalas_compile.model.llama import build_model

        model = build_model(inp.source)
    if adapter is not None:
        model = apply_adapter(model, adapter)
    with torch.no_grad():
        return ids, greedy(model, ids, n), inp.tokenizer


def evaluate(recipe, weights, tokenizer, die, text: Path, context: int, max_tokens: int | None, calib: Path | None = None) -> dict:
    """Every input is checked before the references are built (which takes the longest)."""
    check_count(context, "--context", 2, "a window holds BOS and at least one token to score")
    if max_tokens is not None:
        check_count(max_tokens, "--max-tokens", 2, "the text's BOS counts, and at least one token must be scored")
    if not text.is_file():
        raise UserError(f"text file not found: {text}")
    inp = resolve(recipe, weights, tokenizer, die, calib)
    if inp.tokenizer is None:
        raise UserError("eval needs --tokenizer to turn the text into tokens")
    if context > inp.source.args.max_seq_len:
        raise UserError(f"--context {context} exceeds the model's {inp.source.args.max_seq_len}-token context")
    stream = inp.tokenizer.encode(text.read_text(encoding="utf-8", errors="replace"), bos=True)
    windows = make_windows(stream, context, inp.tokenizer.bos_id, max_tokens)
    if not windows:
        raise UserError(f"text file {text} has no tokens to score: give a file with some text")
    refs = build_references(inp)
    with torch.no_grad():
        res = compare(refs.float_model, refs.quant_model, windows)
    res["bits_per_weight"] = bits_per_weight(refs.graph, refs.specs, inp.die)
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
            "tensors": {n: [s.bits, s.group] for n, s in refs.specs.items()}}
