"""manifest.json: what a compile was made from (inputs and their hashes, versions) and its figures.
Reproducible: no timestamps, paths relative to the output directory."""

from __future__ import annotations

import os
from importlib.metadata import version
from pathlib import Path

import numpy as np

from taalas_compile.files import sha256_file as sha256
from taalas_compile.model.tokenizer import bos_id_of
from taalas_compile.plan.estimate import fit, performance
from taalas_compile.quant.bits import bits_per_weight
from taalas_compile.version import __version__

FORMAT, VERSION = "taalas-manifest", 1
RECIPE_FILE = "recipe.toml"  # the resolved recipe every compile writes (config/recipe_toml.py)


def rel(path: Path, out: Path) -> str:
    return os.path.relpath(Path(path).resolve(), out.resolve())


OUTPUTS = ("chip.gds", "chip.oas", "chip.lyp", "chip.overview.oas", "klayout_session.py", "netlist.json", "graph.json", "floorplan.png")


def outputs_record(out: Path, known: dict[str, str] | None = None) -> dict:
    """Bytes and sha256 of every output file (paths relative to `out`); `known`: hashes the
    writers already computed, so no large file is read twice."""
    known = known or {}
    files = [p for p in sorted(out.iterdir()) if p.name in OUTPUTS]
    files += sorted((out / "roms").glob("*.safetensors")) if (out / "roms").is_dir() else []
    return {rel(p, out): {"bytes": p.stat().st_size, "sha256": known.get(rel(p, out)) or sha256(p)} for p in files}


def manifest(inp, c, out: Path, known: dict[str, str] | None = None, system: dict | None = None) -> dict:
    """manifest.json of a chip; `system`: its place in a multi-die system (die index, dies, blocks)."""
    weights = dict(inp.source.fingerprint())
    weights["path"] = None if inp.weights_path is None else rel(inp.weights_path, out)
    weights["files"] = [{**f, "path": rel(Path(f["path"]), out)} for f in weights.get("files", [])]
    outputs = outputs_record(out, known)
    shapes = inp.source.args.param_shapes()
    n_weights = sum(int(np.prod(shapes[name])) for name in c.specs)
    return {
        "format": FORMAT, "version": VERSION,
        "compiler": {"taalas_compile": __version__, **{m: version(m) for m in ("torch", "gdstk", "numpy")}},
        # a recipe derived from a checkpoint directory (no recipe_path) is stated by the output's recipe.toml
        "recipe": {"name": inp.recipe.name, "path": rel(inp.recipe_path or out / RECIPE_FILE, out),
                   "sha256": sha256(inp.recipe_path or out / RECIPE_FILE), "settings": inp.recipe.model_dump(mode="json")},
        "die": {"name": inp.die.name, "path": rel(inp.die_path, out), "sha256": sha256(inp.die_path)},
        "weights": weights,
        "tokenizer": None if inp.tokenizer_path is None else {"path": rel(inp.tokenizer_path, out), "sha256": sha256(inp.tokenizer_path)},
        "bos_id": bos_id_of(inp.tokenizer, inp.source),
        "outputs": outputs,
        "figures": {
            "params": inp.source.args.n_params,
            "weights_quantized": n_weights,
            "bits_per_weight": bits_per_weight(c.graph, c.specs, inp.die),
            "fit": fit(c.placement, inp.die, c.routing.tracks_used),
            "performance": performance(c.placement, inp.die),
            "wirelength_nm": c.routing.wirelength(),
            "router_iterations": len(c.routing.iterations),
            "nets": len(c.placement.nets),
            "masks": mask_figures(outputs, n_weights),
        },
        "bits": {name: spec.bits for name, spec in c.specs.items()},
        "quant": quant_record(inp, c),
        "calibration": calibration_record(inp, c, out),
    } | ({} if system is None else {"system": system})


def mask_figures(outputs: dict, n_weights: int) -> dict:
    """Mask volume: format, bytes and bytes per weight (the compile's times are in run.json)."""
    name = next((k for k in ("chip.oas", "chip.gds") if k in outputs), None)
    if name is None:
        return {}
    n = outputs[name]["bytes"]
    return {"file": name, "format": "oasis" if name.endswith(".oas") else "gds", "bytes": n, "bytes_per_weight": n / max(n_weights, 1)}


def quant_record(inp, c) -> dict:
    """How the bits and codes were decided, per tensor, and the quality measured at compile time."""
    a = c.allocation
    cfg = inp.recipe.quant
    opts = [list(o) for o in cfg.options]
    return {
        "policy": a.policy if a else cfg.policy, "method": a.method if a else cfg.method,
        "budget_bits": cfg.budget_bits, "notes": list(a.notes) if a else [],
        "tensors": {name: {"bits": spec.bits, "group": spec.group,
                           **({"sensitivity_kl": a.sensitivity[name][opts.index([spec.bits, spec.group])]}
                              if a and a.sensitivity and [spec.bits, spec.group] in opts else {})}
                    for name, spec in c.specs.items()},
        "quality": c.quality,
        # calibrated codes: the streamed quantizer's unit files (content key, sha256) and per-unit error
        # (stream_rel_err: ‖h_quant − h_float‖² / ‖h_float‖² of the residual stream after the unit)
        "stream": None if getattr(c, "stream", None) is None else {"units": c.stream.units},
    }


def calibration_record(inp, c, out: Path) -> dict | None:
    """The calibration data the codes depend on: `verify` re-reads and re-hashes it."""
    if c.calib is None or inp.calib is None:
        return None
    n, s = c.calib.tokens.shape
    return {"source": c.calib.source, "path": rel(inp.calib.path, out), "sha256": sha256(inp.calib.path),
            "bytes": inp.calib.path.stat().st_size, "start_token": inp.calib.start_token, "tokens": inp.calib.tokens,
            "context": inp.calib.context, "windows": n, "window_tokens": s}
