"""How long a compile and a sign-off take: a time model calibrated on measured runs, the one home
of those measurements and the commands that produced them (docs/performance.md, docs/planning.md).

Wall seconds of the whole command on the development machine (2 cores, 24 GiB):

    compile  = start + digits / (emit_rate x workers) + quantize (calibrated compiles only)
    quantize = layers x (layer_s + weight_token_s x weights per layer x calibration tokens)
               + weight_token_s_ends x (embedding + head weights) x calibration tokens
               + sensitivity passes x pass_s_per_weight x weights + tune steps x step_s_per_weight x weights
    verify   = start + digits / rate, the rate of the path the chip takes: KLayout in one process up
               to signoff/verify.py KLAYOUT_MAX_DIGITS, cell by cell on `workers` readers above it

`start` (Python, torch, lowering, placement of a small die) is the geometric mean of the small
chips' measured walls, so it sits between a quiet and a loaded machine; the per-digit rates come
from the full llama-3.1-8b chip, the quantization terms from the calibrated runs. A chip that was
compiled (and verified) is planned from its own run.json and signoff.json instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from taalas_compile.signoff.verify import KLAYOUT_MAX_DIGITS


@dataclass(frozen=True)
class Measurement:
    what: str
    command: str
    wall_s: float
    where: str  # document and load at the time


# docs/performance.md (quiet machine unless it says otherwise) and this runs (load 4.4, a benchmark beside them)
TINY_COMPILE = (Measurement("tiny-llama compile, 214,485 digit cells", "taalas-compile tiny-llama", 3.0, "docs/performance.md"),
                Measurement("tiny-llama compile, 214,485 digit cells", "/usr/bin/time -v taalas-compile tiny-llama", 8.31, "docs/planning.md, load 4.4"))
STORIES_COMPILE_CACHED = Measurement("stories260k compile, quantization reused from the cache", "/usr/bin/time -v taalas-compile stories260k "
                                     "--weights $S/stories260K/stories260K.bin --tokenizer $S/stories260K/tok512.bin", 11.05, "docs/planning.md, load 4.4")
TINY_VERIFY = (Measurement("tiny-llama verify", "taalas-compile verify out/tiny-llama", 7.1, "docs/performance.md"),
               Measurement("tiny-llama verify", "/usr/bin/time -v taalas-compile verify out/tiny-llama", 22.97, "docs/planning.md, load 4.4"))
STORIES_VERIFY = (Measurement("stories260k verify, about 1 M vias", "taalas-compile verify out/stories260k", 14.0, "docs/performance.md, with the quantizer cache"),
                  Measurement("stories260k verify", "/usr/bin/time -v taalas-compile verify out/stories260k", 24.10, "docs/planning.md, load 4.4"))
BIG_COMPILE = Measurement("llama-3.1-8b full chip, synthetic weights, 2 workers", "/usr/bin/time -v taalas-compile llama-3.1-8b --jobs 2", 422.0,
                          "docs/performance.md")
BIG_VERIFY = (Measurement("llama-3.1-8b verify, 2 readers", "/usr/bin/time -v taalas-compile verify llama-3.1-8b", 568.8, "docs/performance.md, quiet"),
              Measurement("llama-3.1-8b verify, 2 readers", "python benchmarks/full_verify.py /work/big/llama-3.1-8b --all -j 2", 766.0,
                          "docs/performance.md, load up to 5"))
BIG_LAYER_QUANT = (Measurement("one calibrated 8B layer, 16,384 tokens", "python benchmarks/real_8b.py --layers 2 --skip-write", 261.0, "docs/quantization.md"),
                   Measurement("one calibrated 8B layer, 16,384 tokens", "python benchmarks/real_8b.py --layers 4 --skip-write", 139.0,
                               "docs/quantization.md, load 1-2"))
BIG_ENDS_QUANT = Measurement("8B embedding (RTN, 38 s) + head (GPTQ, 138 s), 16,384 tokens", "python benchmarks/real_8b.py --layers 2 --skip-write",
                             176.0, "docs/quantization.md")
STORIES_QUANT = {"layer": 0.55, "sensitivity": 10.7, "tune": 53.7}  # a cold stories260k compile's run.json: s per layer, the 216 ΔKL passes, 400 steps
STORIES_QUANT_REF = Measurement("stories260k compile, cold quantizer cache (run.json seconds)", "TAALAS_CACHE=off taalas-compile stories260k ...",
                                75.0, "docs/planning.md")

MEASUREMENTS = (*TINY_COMPILE, STORIES_COMPILE_CACHED, STORIES_QUANT_REF, BIG_COMPILE, *BIG_LAYER_QUANT, BIG_ENDS_QUANT,
                *TINY_VERIFY, *STORIES_VERIFY, *BIG_VERIFY)
BIG_DIGITS = 13_140_000_000  # digit cells of the full llama-3.1-8b chip (docs/performance.md)
BIG_LAYER_WEIGHTS, BIG_ENDS_WEIGHTS, BIG_TOKENS = 218_103_808, 1_050_673_152, 16_384
STORIES_PARAMS, STORIES_PASSES, STORIES_TUNE_STEPS = 260_000, 216, 400
SMALL_DIGITS = {"tiny": 214_485, "stories": 500_000}
MEASURED_WORKERS = 2


def _gmean(xs) -> float:
    return math.exp(math.fsum(math.log(x.wall_s) for x in xs) / len(xs))


@dataclass(frozen=True)
class TimeModel:
    compile_start_s: float  # s: Python start, lowering, mapping of a small die
    emit_digits_per_s: float  # digit cells one block worker emits per second (ROM images, mask cells, assembly)
    verify_start_s: float  # s: start-up of verify (KLayout path)
    klayout_digits_per_s: float  # digit cells the one-process KLayout sign-off checks per second
    check_digits_per_s: float  # digit cells one cell-by-cell reader checks per second (reference and emulation included)
    layer_s: float  # s per decoder layer of a calibrated quantization, whatever its size
    weight_token_s: float  # s per weight x calibration token of a decoder layer (GPTQ, Hessians)
    ends_weight_token_s: float  # the same for the embedding and the head
    pass_s_per_weight: float  # s per sensitivity forward pass per model weight (policy "measured")
    step_s_per_weight: float  # s per tuning step per model weight

    def compile_seconds(self, digits: int, workers: int) -> float:
        return self.compile_start_s + digits / (self.emit_digits_per_s * max(workers, 1))

    def verify_seconds(self, digits: int, workers: int) -> float:
        if digits <= KLAYOUT_MAX_DIGITS:
            return self.verify_start_s + digits / self.klayout_digits_per_s
        return self.verify_start_s + digits / (self.check_digits_per_s * max(workers, 1))

    def quantize_seconds(self, layers: int, layer_weights: int, end_weights: int, tokens: int, params: int,
                         passes: int, tune_steps: int) -> float:
        return (layers * (self.layer_s + self.weight_token_s * layer_weights * tokens) + self.ends_weight_token_s * end_weights * tokens
                + passes * self.pass_s_per_weight * params + tune_steps * self.step_s_per_weight * params)


def fitted() -> TimeModel:
    """The model's constants worked out from the measurements above (see the module docstring)."""
    start = _gmean((*TINY_COMPILE, STORIES_COMPILE_CACHED))
    emit = BIG_DIGITS / ((BIG_COMPILE.wall_s - start) * MEASURED_WORKERS)
    tiny_v, stories_v = _gmean(TINY_VERIFY), _gmean(STORIES_VERIFY)
    kl_rate = (SMALL_DIGITS["stories"] - SMALL_DIGITS["tiny"]) / (stories_v - tiny_v)
    v_start = tiny_v - SMALL_DIGITS["tiny"] / kl_rate
    check = BIG_DIGITS / ((_gmean(BIG_VERIFY) - v_start) * MEASURED_WORKERS)
    layer_s = STORIES_QUANT["layer"]
    wt = (_gmean(BIG_LAYER_QUANT) - layer_s) / (BIG_LAYER_WEIGHTS * BIG_TOKENS)
    return TimeModel(start, emit, v_start, kl_rate, check, layer_s, wt, BIG_ENDS_QUANT.wall_s / (BIG_ENDS_WEIGHTS * BIG_TOKENS),
                     STORIES_QUANT["sensitivity"] / (STORIES_PASSES * STORIES_PARAMS), STORIES_QUANT["tune"] / (STORIES_TUNE_STEPS * STORIES_PARAMS))


MODEL = fitted()
REF = ("plan/time_model.py, calibrated on measured runs (docs/performance.md, docs/quantization.md, docs/planning.md): "
       "start-up + digit cells / (per-worker rate x workers)")
QUANT_REF = ("plan/time_model.py: per decoder layer a fixed part (stories260k's run.json) + weights x calibration tokens at the rate "
             "measured on 8B-shaped layers (139-261 s each, benchmarks/real_8b.py), embedding and head likewise, ΔKL passes and tuning "
             "steps at stories260k's measured rates, scaled by weights")
