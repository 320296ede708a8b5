"""Seconds and peak memory of one streamed decoder layer (quant/layer.py) at Llama-3.1-8B shape.

    python benchmarks/stream_layer_8b.py [--tokens 2048] [--context 2048] [--method gptq|rtn] [--no-correct]

One decoder layer of synthetic weights with the architecture of recipes/llama-3.1-8b.toml (dim 4096,
FFN 14336, 32/8 heads), the recipe's bits (3-bit, v/o/down 6-bit, groups of 32), int8 activations.
Both residual streams entering it are random [N, context, 4096] (the quantized one a perturbed copy).
`quantize_layer` runs as the compile runs it; the seconds are split (exclusive: a part's own time,
its callees' taken out) by wrapping the functions of quant/layer.py:

    read weights       Layer(...): the layer's float weights from the checkpoint
    float forward      the teacher's pass (matmuls, attention, norms)
    quantized forward  the quantized pass, less the parts below
    activation fq      quantize_activation (the MAC tiles' int8 inputs)
    Hessian            H = 2·X̃ᵀX̃/N and the cross term of the error-correcting target
    target             the error-correcting target W C H⁻¹ (a solve per stage, independent of N)
    GPTQ               gptq_quantize (or round-to-nearest with --method rtn), independent of N
    dequantize codes   Layer.set_codes: the etched weights for the rest of the quantized pass

The extrapolation to 16,384 tokens scales the forward, fake-quant and Hessian parts linearly in the
tokens and keeps the others: it is an estimate, stated as such. Wall seconds depend on the machine's
load (printed); CPU seconds (the process's, both threads) depend on it much less.
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import time

import torch

import taalas_compile.quant.layer as layer_mod
from taalas_compile.config.recipe import load_recipe
from taalas_compile.inputs import args_of
from taalas_compile.model.sources import open_weights
from taalas_compile.quant.codes import QuantSpec, quantize_tensor

TARGET_TOKENS = 16384
SCALES = ("float forward", "quantized forward", "activation fq", "Hessian")  # linear in tokens


class Clock:
    """Exclusive wall and CPU seconds per label: a wrapped call's time minus its wrapped callees'."""

    def __init__(self):
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.stack: list[list[float]] = []  # per open call: [wall in children, cpu in children]

    def wrap(self, fn, label):
        @functools.wraps(fn)
        def timed(*a, **k):
            lab = label(*a, **k) if callable(label) else label
            self.stack.append([0.0, 0.0])
            w0, c0 = time.perf_counter(), time.process_time()
            try:
                return fn(*a, **k)
            finally:
                dw, dc = time.perf_counter() - w0, time.process_time() - c0
                cw, cc = self.stack.pop()
                self.wall[lab] = self.wall.get(lab, 0.0) + dw - cw
                self.cpu[lab] = self.cpu.get(lab, 0.0) + dc - cc
                if self.stack:
                    self.stack[-1][0] += dw
                    self.stack[-1][1] += dc
        return timed


def load() -> str:
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", type=int, default=2048, help="calibration tokens (whole windows)")
    ap.add_argument("--context", type=int, default=2048, help="tokens per window")
    ap.add_argument("--method", choices=("gptq", "rtn"), default="gptq")
    ap.add_argument("--no-correct", action="store_true", help="no error-correcting target (no teacher cross terms)")
    ap.add_argument("--seed", type=int, default=0)
    opt = ap.parse_args()

    recipe = load_recipe("llama-3.1-8b")
    args = args_of(recipe.model.architecture.model_copy(update={"n_layers": 1}))
    source = open_weights("synthetic", None, args, recipe.model.seed)
    q = recipe.quant
    specs = {f"model.layers.0.{m}.weight": QuantSpec(6 if m.split(".")[1] in ("v_proj", "o_proj", "down_proj") else q.default_bits,
                                                     q.group_size) for m in layer_mod.LINEARS}
    n = max(1, opt.tokens // opt.context)
    g = torch.Generator().manual_seed(opt.seed)
    hf = torch.randn(n, opt.context, args.dim, generator=g)  # [N, S, D] float stream
    hq = hf + 0.05 * torch.randn(n, opt.context, args.dim, generator=g)  # the quantized stream, off by ~5%

    clock = Clock()
    patches = {"quantize_activation": "activation fq", "_target": "target", "gptq_quantize": "GPTQ"}
    for fn in ("_hessian", "hessian_of", "cross_of", "output_cross_of"):  # the Hessian helpers, whatever layer.py calls them
        patches[fn] = "Hessian"
    saved = {}
    for name, lab in patches.items():
        if hasattr(layer_mod, name):
            saved[name] = getattr(layer_mod, name)
            setattr(layer_mod, name, clock.wrap(saved[name], lab))
    if opt.method == "rtn":
        layer_mod.gptq_quantize = clock.wrap(lambda w, h, spec, **k: quantize_tensor(w, spec, k.get("clip_search", True)), "GPTQ")
    layer_mod.Layer.set_codes = clock.wrap(layer_mod.Layer.set_codes, "dequantize codes")
    fwd = layer_mod.Layer.forward
    layer_mod.Layer.forward = clock.wrap(fwd, lambda self, h, quant, *a, **k: "quantized forward" if quant else "float forward")

    print(f"{n} window(s) of {opt.context} tokens, {opt.method}, correct={not opt.no_correct}, threads {torch.get_num_threads()}, "
          f"{load()}", flush=True)
    t0, c0 = time.perf_counter(), time.process_time()
    layer = layer_mod.Layer(source, 0, torch.device("cpu"))
    clock.wall["read weights"], clock.cpu["read weights"] = time.perf_counter() - t0, time.process_time() - c0
    t1 = time.perf_counter()
    layer_mod.quantize_layer(layer, hq, hf, specs, 8, damp=q.damp, act_order=q.act_order, clip_search=q.clip_search,
                             correct=not opt.no_correct)
    total = time.perf_counter() - t1
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    tokens = n * opt.context
    f = TARGET_TOKENS / tokens
    order = ("read weights", "float forward", "quantized forward", "activation fq", "Hessian", "target", "GPTQ",
             "dequantize codes")
    print(f"{'part':18s} {'wall s':>8s} {'cpu s':>8s} {'s @16k':>8s}")
    est = 0.0
    for lab in order:
        w, c = clock.wall.get(lab, 0.0), clock.cpu.get(lab, 0.0)
        e = w * (f if lab in SCALES else 1.0)
        est += e
        print(f"{lab:18s} {w:8.1f} {c:8.1f} {e:8.1f}")
    print(f"{'layer pass':18s} {total:8.1f} {'':8s} {est - clock.wall['read weights']:8.1f}")
    print(f"total with reading {clock.wall['read weights'] + total:.1f} s at {tokens} tokens; extrapolated to {TARGET_TOKENS} "
          f"tokens (forward, fake-quant, Hessian x{f:g}): {est:.0f} s = {est / 60:.1f} min; peak RSS {peak:.2f} GiB; {load()}")


if __name__ == "__main__":
    main()
