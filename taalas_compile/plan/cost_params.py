"""The cost model's inputs, each with its public source or named an assumption; every one can be
replaced by `--cost FILE.toml` (flat `key = number` lines) or `--what-if key=number`.

The hard-wired chip and the GPU baseline are costed the same way: hardware bought once and
written off over `amortization_years`, plus its power at `usd_per_kwh`, both running at the
throughput the plan works out (docs/planning.md, "Cost").
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import tomllib

from taalas_compile.errors import UserError


@dataclass(frozen=True)
class CostParam:
    key: str
    label: str
    value: float
    unit: str
    kind: str  # "cited", "assumption", or "input" once a file or a what-if replaced it
    ref: str


DEFAULTS = (
    CostParam("base_mask_set_usd", "full mask set of the base die (one-off, shared by every model on it)", 12e6, "USD", "assumption",
              "assumption: the range public estimates give for a 7/6 nm-class mask set ($10-15 M)"),
    CostParam("masks_per_set", "masks in a full 6 nm-class set", 70, "masks", "cited",
              "HNLPU, arXiv 2508.16151: a 5 nm-class flow of 70 masks, 60 of them shared between models"),
    CostParam("wafer_usd", "300 mm wafer, 7/6 nm-class, processed", 9346, "USD", "cited",
              "Khan & Mann, 'AI Chips: What They Are and Why They Matter', CSET (April 2020): 7 nm foundry sale price per wafer $9,346"),
    CostParam("wafer_mm", "wafer diameter", 300, "mm", "cited", "SEMI M1 standard 300 mm wafer"),
    CostParam("defects_per_cm2", "defect density D0", 0.1, "/cm²", "assumption",
              "assumption: mature 7/6 nm-class logic, the order TSMC has shown publicly for N7/N5 (about 0.1 per cm²)"),
    CostParam("package_test_usd", "package and test, per die", 150, "USD", "assumption",
              "assumption: a large flip-chip package without HBM and its final test"),
    CostParam("card_usd", "card: board, power delivery, cooling, per die", 400, "USD", "assumption",
              "assumption: a PCIe card with one die, no external memory"),
    CostParam("volume", "dies made of this model (spreads the two custom masks)", 10_000, "dies", "assumption",
              "assumption: a production run of ten thousand dies"),
    CostParam("amortization_years", "hardware written off over", 3, "years", "assumption",
              "assumption: three years, both for the chip and for the GPUs"),
    CostParam("usd_per_kwh", "electricity", 0.08, "USD/kWh", "cited",
              "U.S. EIA, Electric Power Monthly: average retail price to industrial customers about 8 cents/kWh (2023)"),
    CostParam("gpu_usd", "one NVIDIA H100 SXM", 25_000, "USD", "assumption",
              "assumption: public reporting puts an H100 SXM at $25,000-40,000; the low end favours the GPU"),
    CostParam("gpu_memory_fraction", "GPU memory for weights and KV cache", 0.9, "fraction", "cited",
              "vLLM documentation: gpu_memory_utilization defaults to 0.9; the rest holds activations, CUDA context and workspace"),
)


def cost_params(path: str | None = None, whatifs: dict | None = None) -> tuple[CostParam, ...]:
    """The defaults, then a --cost file's values, then what-ifs (their sources say which)."""
    params = {p.key: p for p in DEFAULTS}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"--cost {path}: cannot read it ({e})") from None
        except tomllib.TOMLDecodeError as e:
            raise UserError(f"--cost {path}: not valid TOML ({e})") from None
        for k, v in data.items():
            if k not in params:
                raise UserError(f"--cost {path}: unknown key {k!r}; known: {', '.join(params)}")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0 or v == float("inf"):
                raise UserError(f"--cost {path}: {k} = {v!r}: give a finite number of at least 0")
            params[k] = replace(params[k], value=float(v), kind="input", ref=f"--cost {path}")
    for k, w in (whatifs or {}).items():
        if k in params:
            params[k] = replace(params[k], value=w.value, kind="input", ref=w.ref)
    return tuple(params.values())
