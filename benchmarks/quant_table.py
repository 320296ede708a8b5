"""Quantizer comparison on the real stories260K model (issue 3's table and bits/weight curve).

Protocol: tinystories.txt tokenized whole with tok512.bin; the first 20,000 tokens scored in
windows of BOS + 255; calibration on tokens 40,000 onward of the same file (the recipe's
[quant.calib]: tokens 40,000-100,000; the anchors use tokens 40,000-60,000, as when the issue's
anchors were measured). Every scheme runs the quantized reference (etched codes, fp16 scales, int8
activations), bits/weight count the fp16 scales.

    python benchmarks/quant_table.py                  # ~30 min on 2 cores; results are cached
    python benchmarks/quant_table.py --part curve     # only the bits/weight curve
    python benchmarks/quant_table.py --json out/quant_table.json
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from taalas_compile.config.recipe import CalibCfg
from taalas_compile.inputs import calib_source, resolve
from taalas_compile.model.perplexity import compare, make_windows
from taalas_compile.paths import ROOT
from taalas_compile.quant.bits import bits_per_weight
from taalas_compile.reference import build_references

MODELS = ROOT.parent / "shared" / "models"
ANCHOR_CALIB = {"text": "../shared/models/tinystories_text/tinystories.txt", "start_token": 40000, "tokens": 20000, "context": 256}
RULES = {"policy": "rules", "method": "rtn", "tune_steps": 0, "tune_codes_lr": 0.0, "correct": False, "calib": ANCHOR_CALIB}
Q3KM = {"*.v_proj.weight": 6, "*.o_proj.weight": 6, "*.down_proj.weight": 6, "model.embed_tokens.weight": 6}

# (label, changes to the default stories260k [quant] settings)
SCHEMES = [
    ("Q3_K_M-like 3/6 mix, RTN + clip search (anchor)", {**RULES, "bits": Q3KM, "budget_bits": None}),
    ("same mix, plain GPTQ (anchor)", {**RULES, "method": "gptq", "bits": Q3KM, "budget_bits": None}),
    ("all 3-bit, plain GPTQ, group 32 (anchor)", {**RULES, "method": "gptq", "bits": {}, "budget_bits": None}),
    ("same mix, our GPTQ + scale and code tuning", {"policy": "rules", "bits": Q3KM, "budget_bits": None}),
    ("**ours, default stories260k recipe**", {}),
]
CURVE = (4.0, 3.5, 4.5, 5.0)  # the default first: it is cached by `eval`


def measure(base, changes: dict, windows) -> dict:
    if isinstance(changes.get("calib"), dict):
        changes = {**changes, "calib": CalibCfg(**changes["calib"])}
    q = base.recipe.quant.model_copy(update=changes)
    r = base.recipe.model_copy(update={"quant": q})
    inp = replace(base, recipe=r, calib=calib_source(r, None))
    t0 = time.perf_counter()
    refs = build_references(inp)
    with torch.no_grad():
        res = compare(refs.float_model, refs.quant_model, windows)
    return {"bits_per_weight": bits_per_weight(refs.graph, refs.specs, inp.die), "ppl_float": res["ppl_float"],
            "ppl_quant": res["ppl_quant"], "ppl_increase": res["ppl_quant"] / res["ppl_float"] - 1, "kl": res["kl"],
            "top1_agreement": res["top1_agreement"], "seconds": time.perf_counter() - t0,
            "six_bit_tensors": sum(s.bits == 6 for s in refs.specs.values())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=MODELS / "stories260K" / "stories260K.bin")
    ap.add_argument("--tokenizer", type=Path, default=MODELS / "stories260K" / "tok512.bin")
    ap.add_argument("--text", type=Path, default=MODELS / "tinystories_text" / "tinystories.txt")
    ap.add_argument("--max-tokens", type=int, default=20000)
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--part", choices=("all", "table", "curve"), default="all", help="which part to measure")
    a = ap.parse_args()
    base = resolve("stories260k", a.weights, a.tokenizer)
    stream = base.tokenizer.encode(a.text.read_text(encoding="utf-8", errors="replace"), bos=True)
    windows = make_windows(stream, a.context, base.tokenizer.bos_id, a.max_tokens)
    rows, curve = [], []
    if a.part == "curve":
        return print_curve(base, windows, curve, a.json)
    print("| scheme on stories260K | bits/weight | PPL vs float | KL | top-1 agreement |")
    print("| --- | --- | --- | --- | --- |")
    for label, changes in SCHEMES:
        m = measure(base, changes, windows)
        rows.append({"scheme": label, **m})
        print(f"| {label} | {m['bits_per_weight']:.2f} | {m['ppl_increase']:+.1%} | {m['kl']:.3f} | {m['top1_agreement']:.1%} |", flush=True)
    print(f"\nfloat perplexity {rows[0]['ppl_float']:.3f} ({len(windows)} windows, {sum(len(w) - 1 for w in windows):,} tokens scored)\n")
    if a.part == "all":
        print_curve(base, windows, curve, None)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"table": rows, "curve": curve}, indent=1) + "\n")


def print_curve(base, windows, curve: list, out: Path | None) -> None:
    print("| budget (bits/weight) | bits/weight | PPL vs float | KL | 6-bit tensors |")
    print("| --- | --- | --- | --- | --- |")
    for b in CURVE:
        m = measure(base, {"budget_bits": b}, windows)
        curve.append({"budget_bits": b, **m})
        print(f"| {b} | {m['bits_per_weight']:.2f} | {m['ppl_increase']:+.1%} | {m['kl']:.3f} | {m['six_bit_tensors']} |", flush=True)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"curve": curve}, indent=1) + "\n")


if __name__ == "__main__":
    main()
