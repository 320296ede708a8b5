"""The emulation check of sign-off: the emulator runs the chip as read back from the masks,
teacher-forced, and must compute what the PyTorch quantized reference computes.

- whole chip (`emulation_check`): the extracted chip in one emulator, on the quantized reference's
  greedy continuation of BOS;
- block by block (`StreamingEmulation`, chips too large to decode at once): each layer block's
  extracted digits go through the emulator as the masks are read (`emulator/stream.py`), while a
  worker process runs the float model and the quantized reference layer by layer
  (`quant/reference_stream.py`) on the same tokens: BOS then a fixed pseudo-random sequence. Each
  block is teacher-forced at its boundary with the reference's hidden state and must reproduce the
  reference's next one within `LOGIT_TOLERANCE` of its range; the last block's logits are judged as
  below. (Chained through 32 layers, int8 rounding flips compound to several percent on a random
  model; the chained run's agreement is reported, not judged.)

Logits are judged alike on both paths (`judge`): at every position the emulator's greedy token must
be the reference's or tie with it within the tolerance, and no logit may differ by more than
`LOGIT_TOLERANCE` of the largest |logit|. Accuracy against the float model is reported.
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
from taalas_compile.emulator.run import Emulator
from taalas_compile.emulator.stream import BlockRun, StreamEmulator, nonfinite
from taalas_compile.emulator.tiles import EmulationError
from taalas_compile.errors import UserError
from taalas_compile.mapper.ir import Placement
from taalas_compile.model.generate import greedy
from taalas_compile.reference import build_references, streamed_reference
from taalas_compile.signoff.findings import Findings, Violation

# int8 activations make the arithmetic discontinuous: emulator and reference agree bit for bit
# until a float-ordering difference flips one rounding, after which logits differ by about one
# activation step (~1% of their range on stories260K). 5% leaves margin and still catches any
# functional error (a wrong weight, a swapped net).
LOGIT_TOLERANCE = 0.05
SEQUENCE_SEED = 0  # the block-by-block check's token sequence


def _kl_top1(p_logits: np.ndarray, q_logits: np.ndarray) -> tuple[float, float]:
    p = torch.log_softmax(torch.from_numpy(p_logits).double(), -1)
    q = torch.log_softmax(torch.from_numpy(q_logits).double(), -1)
    kl = (p.exp() * (p - q)).sum(-1).mean().item()
    return kl, float((p.argmax(-1) == q.argmax(-1)).double().mean())


def judge(emu_logits: np.ndarray, q_logits: np.ndarray, f_logits: np.ndarray, f: Findings) -> dict:
    """Emulator logits [T, V] against the quantized reference's (and the float model's). A NaN or
    Inf on any side fails: it is named, and each comparison below is written so that NaN fails it."""
    for who, x in (("emulator", emu_logits), ("quantized reference", q_logits), ("float model", f_logits)):
        if (at := nonfinite(x)) is not None:
            f.add(Violation("emulation.nonfinite", f"{who} logit {at}: sign-off needs finite logits", 0, 0))
    emu_tokens, ref_tokens = emu_logits.argmax(-1).tolist(), q_logits.argmax(-1).tolist()
    diff = float(np.abs(emu_logits - q_logits).max())
    scale = float(np.abs(q_logits).max())
    ties = 0
    for k, (a, b) in enumerate(zip(emu_tokens, ref_tokens)):
        if a == b:
            continue
        margin = float(q_logits[k, b] - q_logits[k, a])  # how much the reference prefers its token
        if margin <= LOGIT_TOLERANCE * scale:  # NaN: not a tie
            ties += 1
        else:
            f.add(Violation("emulation.tokens", f"greedy token {k}: emulator {a}, quantized reference {b} "
                                                f"(reference margin {margin:.4g} > {LOGIT_TOLERANCE:.0%} of {scale:.4g})", 0, 0))
    if not (diff <= LOGIT_TOLERANCE * scale):
        f.add(Violation("emulation.logits", f"max |logit difference| {diff:.4g} > {LOGIT_TOLERANCE:.0%} of {scale:.4g}", 0, 0))
    kl_f, top1_f = _kl_top1(f_logits, emu_logits)
    return {
        "ran": True, "tokens": len(emu_tokens), "greedy_match": emu_tokens == ref_tokens, "near_ties": ties,
        "max_logit_diff": diff, "logit_scale": scale, "tolerance": LOGIT_TOLERANCE,
        "vs_float": {"kl": kl_f, "top1_agreement": top1_f},
        "emulator_tokens": emu_tokens, "reference_tokens": ref_tokens,
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
            d = None
            for who, x in (("emulator", r.forced), ("reference", want)):
                if x is not None and (at := nonfinite(x)) is not None:
                    f.add(Violation("emulation.nonfinite", f"block {r.block}: {who} output {at} is not finite", 0, 0, r.block))
            if want is not None and r.forced is not None and r.forced.shape == want.shape:
                d = float(np.abs(r.forced - want).max() / max(float(np.abs(want).max()), 1e-30))
                if not (d <= LOGIT_TOLERANCE):  # NaN fails
                    f.add(Violation("emulation.block", f"block {r.block} given the reference's input deviates from its output "
                                                       f"by {d:.2%} of its range (> {LOGIT_TOLERANCE:.0%})", 0, 0, r.block))
            blocks.append({"block": r.block, "stage": r.stage, "max_rel_diff": d, "seconds": r.seconds})
        if self.sends_link:  # a die of a system whose last block sends the link: judged block by block above
            return {"ran": True, "tokens": len(self.seq), "sequence": f"bos + seeded random (seed {SEQUENCE_SEED})", "streamed": True,
                    "teacher_forced": "at every block boundary", "blocks": blocks}
        res = judge(self.emu.forced_logits, ref.quant_logits, ref.float_logits, f)
        chained = self.emu.logits
        kl_q, top1_q = _kl_top1(ref.quant_logits, chained)
        kl_f, top1_f = _kl_top1(ref.float_logits, chained)
        end_to_end = {"max_logit_diff": float(np.abs(chained - ref.quant_logits).max()), "vs_quant": {"kl": kl_q, "top1_agreement": top1_q},
                      "vs_float": {"kl": kl_f, "top1_agreement": top1_f}, "emulator_tokens": chained.argmax(-1).tolist()}
        return {**res, "sequence": f"bos + seeded random (seed {SEQUENCE_SEED})", "streamed": True,
                "teacher_forced": "at every block boundary", "blocks": blocks, "end_to_end": end_to_end}
