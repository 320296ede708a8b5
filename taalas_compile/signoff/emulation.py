"""The emulation check of sign-off: the emulator runs the chip as read back from the masks,
teacher-forced, and must compute bit for bit what the quantized reference (the golden model,
`quant/golden.py`) computes: both implement the die's arithmetic (`die/arithmetic.py`), so any
differing bit is a fault — a wrong tile-program word, scale or constant that LVS, which only
compares the masks with the compiler's own ROM images, cannot see.

- whole chip (`emulation_check`): the extracted chip in one emulator, on the quantized reference's
  greedy continuation of BOS;
- block by block (`StreamingEmulation`, chips too large to decode at once): each layer block's
  extracted digits go through the emulator as the masks are read (`emulator/stream.py`), while a
  worker process runs the float model and the quantized reference layer by layer
  (`quant/reference_stream.py`) on the same tokens: BOS then a fixed pseudo-random sequence. Each
  block is teacher-forced at its boundary with the reference's hidden state and must reproduce the
  reference's next one exactly; the chained run (the chip end to end) must too.

Logits are judged alike on both paths (`judge`): equal bit for bit, the first differing position
and logit named. The distance to the float model is reported (KL, top-1 agreement, largest
logit difference relative to the largest |logit|), not judged.
"""

from __future__ import annotations

import tempfile
import time
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from taalas_compile.backend.blocks import worker_init
from taalas_compile.chip_dir import inputs_of_chip
from taalas_compile.config.die import Die
from taalas_compile.die.program import Argmax, Io
from taalas_compile.emulator.chip import from_extraction
from taalas_compile.emulator.compare import describe, difference, nonfinite
from taalas_compile.emulator.run import Emulator
from taalas_compile.emulator.stream import BlockRun, StreamEmulator
from taalas_compile.emulator.tiles import EmulationError
from taalas_compile.errors import UserError
from taalas_compile.mapper.ir import Placement
from taalas_compile.model.generate import greedy
from taalas_compile.reference import build_references, streamed_reference
from taalas_compile.signoff.findings import Findings, Violation

SEQUENCE_SEED = 0  # the block-by-block check's token sequence


def _kl_top1(p_logits: np.ndarray, q_logits: np.ndarray) -> tuple[float, float]:
    p = torch.log_softmax(torch.from_numpy(p_logits).double(), -1)
    q = torch.log_softmax(torch.from_numpy(q_logits).double(), -1)
    kl = (p.exp() * (p - q)).sum(-1).mean().item()
    return kl, float((p.argmax(-1) == q.argmax(-1)).double().mean())


def vs_float(logits: np.ndarray, f_logits: np.ndarray) -> dict:
    """How far the chip's logits are from the float model's: reported, never judged."""
    kl, top1 = _kl_top1(f_logits, logits)
    diff = float(np.abs(logits.astype(np.float64) - f_logits).max())
    return {"kl": kl, "top1_agreement": top1, "max_logit_diff": diff, "relative": diff / max(float(np.abs(f_logits).max()), 1e-30)}


def exact(what: str, got: np.ndarray | None, want: np.ndarray | None, f: Findings, where: str = "") -> dict | None:
    """Judge `got` (the emulator's) against `want` (the reference's) bit for bit: a violation
    naming the first difference. -> the difference (None when equal)."""
    if got is None or want is None:
        return None
    d = difference(got, want)
    if d is not None:
        f.add(Violation("emulation.exact", f"{what} differs from the quantized reference: {describe(d)}", 0, 0, where))
    return d


def judge(emu_logits: np.ndarray, q_logits: np.ndarray, f_logits: np.ndarray, f: Findings) -> dict:
    """Emulator logits [T, V] against the quantized reference's, bit for bit (and the float model's,
    reported). A NaN or Inf on any side fails and is named."""
    for who, x in (("emulator", emu_logits), ("quantized reference", q_logits), ("float model", f_logits)):
        if (at := nonfinite(x)) is not None:
            f.add(Violation("emulation.nonfinite", f"{who} logit {at}: sign-off needs finite logits", 0, 0))
    d = exact("logits [position, token]", emu_logits, q_logits, f)
    emu_tokens, ref_tokens = emu_logits.argmax(-1).tolist(), q_logits.argmax(-1).tolist()
    return {
        "ran": True, "tokens": len(emu_tokens), "exact": d is None, "difference": d, "greedy_match": emu_tokens == ref_tokens,
        "vs_float": vs_float(emu_logits, f_logits), "emulator_tokens": emu_tokens, "reference_tokens": ref_tokens,
    }


def emulation_check(out: Path, man: dict, pl: Placement, ex, die: Die, tokens: int, f: Findings) -> dict:
    """The whole extracted chip (`ex`: signoff/extract.py) teacher-forced on the quantized
    reference's greedy continuation of BOS."""
    inp = inputs_of_chip(out, man)
    refs = build_references(inp)
    bos = man.get("bos_id", 1)
    ref_tokens = greedy(refs.quant_model, [bos], tokens)
    seq = [bos] + ref_tokens[:-1]
    try:
        emu_logits = Emulator(from_extraction(pl, ex.roms, ex.nets, die)).teacher_forced(seq)
    except EmulationError as e:
        f.add(Violation("emulation.error", str(e), 0, 0))
        return {"ran": False, "error": str(e)}
    with torch.no_grad():
        x = torch.tensor([seq])
        q_logits = refs.quant_model(x)[0].numpy()
        f_logits = refs.float_model(x)[0].numpy()
    return {**judge(emu_logits, q_logits, f_logits, f), "sequence": "greedy"}


def sequence(bos: int, vocab: int, tokens: int) -> list[int]:
    """BOS then `tokens - 1` pseudo-random token ids (seeded: the same on every run)."""
    rng = np.random.default_rng(SEQUENCE_SEED)
    return [bos] + [int(t) for t in rng.integers(0, vocab, max(tokens - 1, 0))]


class StreamingEmulation:
    """`add(block, digits)` for every layer block as the masks are read (dataflow order), then
    `result(f, structural)`. The emulator's digits are the extracted ones; its connectivity is the
    netlist's, which LVS proves equal to the extracted one (with LVS errors the result is not used).
    A block waits for the reference's hidden state that enters it."""

    def __init__(self, out: Path, man: dict, pl: Placement, die: Die, tokens: int, link_stage: str | None = None,
                 sends_link: bool = False):
        """`link_stage`, `sends_link`: on a die of a system, the stage its incoming link carries (its
        input is the reference's there) and whether it sends a link instead of logits."""
        io = next((t.program for t in pl.tiles if isinstance(t.program, Io)), None)
        argmax = next((t.program for t in pl.tiles if isinstance(t.program, Argmax)), None)
        vocab = io.vocab if io is not None and io.vocab else argmax.n if argmax else 1  # the same tokens on every die of a system
        self.seq = sequence(man.get("bos_id", 1), vocab, tokens)
        self.emu = StreamEmulator(pl, die, self.seq, link_stage)
        self.sends_link = sends_link
        self.runs: list[BlockRun] = []
        self.error: str | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="taalas-reference-")
        self._pool = ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=worker_init)
        last = None
        if sends_link:  # the reference up to this die's last layer is all it is compared with
            layers = [int(t.block[1:]) for t in pl.tiles if t.block.startswith("L")]
            last = max(layers, default=-1)
        self._ref: Future = self._pool.submit(streamed_reference, out, self.seq, Path(self._dir.name), last)

    def _teacher(self, stage: str) -> np.ndarray | None:
        """The reference's hidden state `stage`, once its worker has written it (None if it failed)."""
        path = Path(self._dir.name) / f"{stage}.npy"
        while not path.exists():
            if self._ref.done():
                if path.exists():
                    break
                return None  # the worker stopped: result() says why
            time.sleep(0.05)
        return np.load(path)

    def add(self, block: str, digits: dict[str, np.ndarray]) -> None:
        if self.error is not None:
            return
        if self.emu.needs_link:
            link = self._teacher(self.emu.link_stage)
            if link is None:
                return  # the reference worker stopped: result() says why
            self.emu.give_link(link)
        stage = self.emu.teacher_stage(block)
        teacher = self._teacher(stage) if stage else None
        try:
            self.runs.append(self.emu.run_block(block, digits, teacher))
        except EmulationError as e:
            self.error = str(e)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._dir.cleanup()

    def result(self, f: Findings, structural: bool) -> dict:
        try:
            ref = self._ref.result()
        except UserError as e:
            return {"ran": False, "skipped": f"no layer-by-layer reference: {e}"}
        finally:
            self.close()
        if structural:
            return {"ran": False, "skipped": "layout/LVS errors"}
        if self.error is not None or (self.emu.forced_logits is None and not self.sends_link):
            msg = self.error or "no block computed the logits (no argmax tile was run)"
            f.add(Violation("emulation.error", msg, 0, 0))
            return {"ran": False, "error": msg}
        blocks = []
        for r in self.runs:
            want = ref.hidden.get(r.stage or "")
            for who, x in (("emulator", r.forced), ("reference", want)):
                if x is not None and (at := nonfinite(x)) is not None:
                    f.add(Violation("emulation.nonfinite", f"block {r.block}: {who} output {at} is not finite", 0, 0, r.block))
            d = exact(f"block {r.block} given the reference's input: its output [position, element]", r.forced, want, f, r.block)
            blocks.append({"block": r.block, "stage": r.stage, "compared": want is not None and r.forced is not None,
                           "exact": d is None, "difference": d, "seconds": r.seconds})
        if self.sends_link:  # a die of a system whose last block sends the link: judged block by block above
            return {"ran": True, "tokens": len(self.seq), "sequence": f"bos + seeded random (seed {SEQUENCE_SEED})", "streamed": True,
                    "teacher_forced": "at every block boundary", "blocks": blocks}
        res = judge(self.emu.forced_logits, ref.quant_logits, ref.float_logits, f)
        chained = self.emu.logits
        d = exact("the chip end to end (blocks chained): logits [position, token]", chained, ref.quant_logits, f)
        end_to_end = {"exact": d is None, "difference": d, "vs_float": vs_float(chained, ref.float_logits),
                      "emulator_tokens": chained.argmax(-1).tolist()}
        return {**res, "sequence": f"bos + seeded random (seed {SEQUENCE_SEED})", "streamed": True,
                "teacher_forced": "at every block boundary", "blocks": blocks, "end_to_end": end_to_end}
