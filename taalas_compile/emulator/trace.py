"""Per-layer trace: the residual stream after every stage of the emulator and of the PyTorch
reference on the same tokens, side by side, and the first stage where they part.

Stages: `embed`, `L0` .. `Ln-1` (the residual after each decoder layer), `norm`, `logits`. The
two must be equal bit for bit at every stage (`emulator/compare.py`). On the
emulator these are the outputs of the embedding's tile group, the last add of each layer, the
final norm and the argmax unit's input; on the reference, forward hooks on the same modules.
"""

from __future__ import annotations

import re

import numpy as np
import torch

from taalas_compile.emulator.compare import difference


def emulator_stages(emu, tokens: list[int]) -> dict[str, np.ndarray]:
    """Run `tokens` teacher-forced on the emulator, recording every stage: name -> [T, n]."""
    emu.trace = {}
    try:
        logits = emu.teacher_forced(tokens)
        rec = {k: np.concatenate(v) for k, v in emu.trace.items()}
    finally:
        emu.trace = None
    adds: dict[int, str] = {}
    for u in emu.units:  # units are in dataflow order: the last add of a layer closes it
        m = re.match(r"^L(\d+)\.add", u.name)
        if m:
            adds[int(m[1])] = u.name
    lookup = next(u.name for u in emu.units if u.role.name == "LOOKUP")
    out = {"embed": rec[lookup]}
    out.update({f"L{i}": rec[adds[i]] for i in sorted(adds)})
    if "norm" in rec:
        out["norm"] = rec["norm"]
    out["logits"] = logits
    return out


def reference_stages(model, tokens: list[int]) -> dict[str, np.ndarray]:
    """The same stages from a reference Llama (one forward over all tokens)."""
    got: dict[str, np.ndarray] = {}
    hooks = [model.model.embed_tokens.register_forward_hook(lambda m, i, o: got.__setitem__("embed", o[0].numpy()))]
    for k, layer in enumerate(model.model.layers):
        hooks.append(layer.register_forward_hook(lambda m, i, o, k=k: got.__setitem__(f"L{k}", o[0].numpy())))
    hooks.append(model.model.norm.register_forward_hook(lambda m, i, o: got.__setitem__("norm", o[0].numpy())))
    try:
        with torch.no_grad():
            got["logits"] = model(torch.tensor([tokens]))[0].numpy()
    finally:
        for h in hooks:
            h.remove()
    return got


def compare_stages(emu: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> dict:
    """Rows per stage (RMS of each side, max |difference|, relative to max |reference|, and
    whether the two are equal bit for bit) and the first stage that is not (None when all are)."""
    rows, first = [], None
    for name, e in emu.items():
        r = ref[name][:, : e.shape[1]]
        e = e[:, : r.shape[1]]
        d = difference(e, r)
        diff = float(np.abs(e.astype(np.float64) - r).max()) if e.shape == r.shape else float("nan")
        scale = float(np.abs(r).max()) or 1.0
        row = {"stage": name, "emulator_rms": float(np.sqrt(np.mean(e.astype(np.float64) ** 2))),
               "reference_rms": float(np.sqrt(np.mean(r.astype(np.float64) ** 2))), "max_abs_diff": diff,
               "relative": diff / scale, "exact": d is None, "difference": d}
        if d is not None and first is None:
            first = name
        rows.append(row)
    return {"stages": rows, "first_difference": first}
