"""Calibrated quantization as a stream through the decoder, one layer in memory at a time.

Two residual streams run over the calibration windows [N, S, D]: the float model's (the teacher)
and the quantized chip's (each layer fed by the already-quantized layers before it). A unit —
"embed", "layers.I", "head" (an untied head) — is read from the checkpoint when it is reached:

    embed      RTN + clip search of the table in row bands; both streams enter layer 0
    layers.I   Hessians from the quantized stream, GPTQ stage by stage (quant/layer.py);
               the float stream goes through the float layer
    head       GPTQ of an untied head on the quantized stream's final hidden states, in row bands
    quality    perplexity float vs quantized, KL, top-1 from the two final streams (quant/head.py)

Each unit's codes go to a result file named by a content key (quant/etched.py) that chains the key
of the unit before it (its input depends on it), and the two streams after each unit are saved
(`state-KEY.safetensors`, the previous one removed), so a killed compile restarts at the first
unfinished unit and writes the same bytes as an uninterrupted one. With `tune_steps` and a model
small enough to hold, today's end-to-end tuning (quant/tune.py) refits the streamed codes and its
results are again unit files (keyed by the last unit's key and the tuning settings).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from taalas_compile.config.recipe import QuantCfg
from taalas_compile.errors import UserError
from taalas_compile.model.llama import RMSNorm
from taalas_compile.model.weights import WeightSource, release_pages
from taalas_compile.quant.cache import cache_key, weights_id
from taalas_compile.quant.calibrate import Calibration, gptq_dtype
from taalas_compile.quant.codes import QTensor, QuantSpec, round_fp16
from taalas_compile.quant.etched import (
    Etched,
    read_rows,
    read_unit,
    unit_meta,
    unit_path,
    write_unit,
)
from taalas_compile.quant.gptq import gptq_quantize
from taalas_compile.quant.head import (
    BAND,
    embed_streams,
    head_hessian,
    quantize_embedding,
    stream_quality,
)
from taalas_compile.quant.layer import LINEARS, Layer, quantize_layer

EMBED, HEAD = "model.embed_tokens.weight", "lm_head.weight"
TUNE_FIELDS = {"tune_steps", "tune_lr", "tune_codes_lr", "tune_batch"}


@dataclass
class StreamResult:
    """The unit files of a calibrated quantization and what the stream measured."""

    etched: Etched  # every planned tensor -> its unit file
    units: list[dict]  # per unit, in order: unit, key, sha256, report (deterministic)
    quality: dict  # float vs quantized on the calibration windows
    seconds: dict[str, float] = field(default_factory=dict)  # per unit computed in this run (run.json)


def resolve_device(device: str) -> torch.device:
    """"auto": cuda when torch sees one, else cpu."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device cuda: torch {torch.__version__} sees no CUDA device here (use --device cpu or auto)")
    return torch.device(device)


def unit_params(source: WeightSource, specs: dict[str, QuantSpec]) -> list[tuple[str, list[str]]]:
    """The stream's units in order, each with the planned tensors it quantizes."""
    a = source.args
    units = [("embed", [EMBED])]
    units += [(f"layers.{i}", [f"model.layers.{i}.{m}.weight" for m in LINEARS]) for i in range(a.n_layers)]
    if not a.tie_embeddings and HEAD in specs:
        units.append(("head", [HEAD]))
    return units


def unit_keys(source: WeightSource, specs: dict[str, QuantSpec], cfg: QuantCfg, calib: Calibration, act_bits: int,
              device: torch.device) -> list[str]:
    """Content keys of the units: the weights, calibration tokens, quant settings, compiler code and
    device, then per unit its name and bit specs chained to the key before it."""
    prev = cache_key("stream", {"weights": weights_id(source), "calib": calib.tokens, "act_bits": act_bits, "device": device.type,
                                "cfg": cfg.model_dump(mode="json", exclude={"calib", "device", *TUNE_FIELDS})})
    keys = []
    for unit, names in unit_params(source, specs):
        prev = _h(prev, unit, {n: [specs[n].bits, specs[n].group] for n in names})
        keys.append(prev)
    return keys


def _h(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _state_path(store: Path, key: str) -> Path:
    return store / f"state-{key}.safetensors"


def _save_state(store: Path, key: str, prev: str | None, hf: torch.Tensor, hq: torch.Tensor) -> None:
    p = _state_path(store, key)
    tmp = p.with_name(f"{p.name}.tmp{os.getpid()}")
    save_file({"hf": hf.contiguous().cpu(), "hq": hq.contiguous().cpu()}, str(tmp))
    os.replace(tmp, p)
    if prev is not None:
        _state_path(store, prev).unlink(missing_ok=True)


def _quality_path(store: Path, key: str) -> Path:
    return store / f"quality-{key}.json"


@torch.no_grad()
def quantize_stream(source: WeightSource, specs: dict[str, QuantSpec], cfg: QuantCfg, calib: Calibration, act_bits: int, store: Path, *,
                    device: str = "auto", bar: Callable | None = None, on_unit: Callable[[str], None] = lambda unit: None) -> StreamResult:
    """Every planned tensor quantized with calibration data, streamed unit by unit into `store`
    (unit files reused when present). `bar(name, total, unit)` gives a progress callback (one step
    per unit); `on_unit(unit)` runs after each unit's file is written (tests interrupt there)."""
    dev = resolve_device(device)
    store.mkdir(parents=True, exist_ok=True)
    units = unit_params(source, specs)
    keys = unit_keys(source, specs, cfg, calib, act_bits, dev)
    files = {n: str(unit_path(store, k)) for (_, names), k in zip(units, keys) for n in names}
    advance = bar("quantize (streamed)", len(units), "units") if bar else (lambda n: None)
    seconds: dict[str, float] = {}
    qpath = _quality_path(store, keys[-1])
    if all(unit_path(store, k).is_file() for k in keys) and qpath.is_file():
        advance(len(units))
        quality = json.loads(qpath.read_text())
    else:
        quality = _run(source, specs, cfg, calib, act_bits, store, dev, units, keys, advance, seconds, on_unit)
        qpath.write_text(json.dumps(quality, sort_keys=True))
    etched = Etched(source, dict(specs), cfg.clip_search, files)
    if cfg.tune_steps > 0:
        etched, quality = _tuned(source, specs, cfg, calib, act_bits, store, dev, etched, keys[-1], seconds)
    records = [{"unit": u, "key": k, "sha256": _sha256(unit_path(store, k)), "report": unit_meta(unit_path(store, k))["report"]}
               for (u, _), k in zip(units, keys)]
    return StreamResult(etched, records, {"on": "calibration windows", **quality,
                                          "ppl_increase": quality["ppl_quant"] / quality["ppl_float"] - 1}, seconds)


def _sha256(path: Path) -> str:
    from taalas_compile.files import sha256_file

    return sha256_file(path)


def _run(source, specs, cfg, calib, act_bits, store, dev, units, keys, advance, seconds, on_unit) -> dict:
    """The stream from the last saved state on: units with a file are replayed (forward only),
    the others computed and written."""
    start = 0
    hf = hq = None
    for k in range(len(keys) - 1, -1, -1):  # the latest state whose units are all written
        if _state_path(store, keys[k]).is_file() and all(unit_path(store, kk).is_file() for kk in keys[: k + 1]):
            st = load_file(str(_state_path(store, keys[k])))
            hf, hq, start = st["hf"].to(dev), st["hq"].to(dev), k + 1
            break
    advance(start)
    for i in range(start, len(units)):
        unit, names = units[i]
        key, path = keys[i], unit_path(store, keys[i])
        t0 = time.perf_counter()
        have = path.is_file()
        if unit == "embed":
            emb = None if have else quantize_embedding(source, EMBED, specs[EMBED], cfg.clip_search)
            rows = (lambda r0, r1, path=path: read_rows(path, EMBED, r0, r1)) if have else (lambda r0, r1, emb=emb: _band(emb, r0, r1))
            hf, hq = embed_streams(source, EMBED, rows, calib.tokens, dev)
            if not have:
                write_unit(store, unit, key, {EMBED: emb}, {"stream_rel_err": _rel_err(hq, hf)})
            del emb
        elif unit == "head":
            if not have:
                x = _final_norm(source, hq)
                h = head_hessian(x, specs[HEAD].group, act_bits)
                qh = _gptq_head(source, h, specs[HEAD], cfg)
                write_unit(store, unit, key, {HEAD: qh}, {})
        else:
            layer = Layer(source, int(unit.split(".")[1]), dev)
            if have:
                codes = read_unit(path)
                for m, n in zip(LINEARS, names):
                    layer.set_codes(m, codes[n], act_bits)
                hf, hq = layer.forward(hf, quant=False), layer.forward(hq, quant=True)
            else:
                qw, hq, hf = quantize_layer(layer, hq, hf, specs, act_bits, damp=cfg.damp, act_order=cfg.act_order,
                                            clip_search=cfg.clip_search, correct=cfg.correct)
                write_unit(store, unit, key, {n: qw[n] for n in names}, {"stream_rel_err": _rel_err(hq, hf)})
            del layer
        if not have:
            seconds[unit] = time.perf_counter() - t0
        _save_state(store, key, keys[i - 1] if i else None, hf, hq)
        release_pages(source)  # the unit's weights read from the memory map leave resident memory
        advance(1)
        on_unit(unit)
    return _quality(source, specs, act_bits, store, keys, units, hf, hq, calib)


def _band(q: QTensor, r0: int, r1: int) -> QTensor:
    return QTensor(q.codes[r0:r1], q.scales[r0:r1], q.bits, q.group)


def _rel_err(hq: torch.Tensor, hf: torch.Tensor) -> float:
    """Mean over tokens of ‖h_quant − h_float‖² / ‖h_float‖²: how far the chip's residual stream has
    drifted from the float model's after this unit."""
    return float(((hq - hf).pow(2).sum(-1) / hf.pow(2).sum(-1).clamp(min=1e-30)).mean())


def _final_norm(source: WeightSource, h: torch.Tensor) -> torch.Tensor:
    """The final RMSNorm with its fp16 gain, as etched (the teacher uses the etched gains too)."""
    a = source.args
    norm = RMSNorm(a.dim, a.norm_eps)
    norm.weight = torch.nn.Parameter(round_fp16(source.get("model.norm.weight")).to(h.device), requires_grad=False)
    return norm(h)


def _gptq_head(source: WeightSource, h: torch.Tensor, spec: QuantSpec, cfg: QuantCfg) -> QTensor:
    """GPTQ of the output head one band of rows at a time (rows are independent given H)."""
    import numpy as np

    v, d = source.args.param_shapes()[HEAD]
    parts = [gptq_quantize(source.rows(HEAD, r0, min(r0 + BAND, v)), h, spec, damp=cfg.damp, act_order=cfg.act_order,
                           clip_search=cfg.clip_search, dtype=gptq_dtype(d)) for r0 in range(0, v, BAND)]
    return QTensor(np.concatenate([p.codes for p in parts]), np.concatenate([p.scales for p in parts]), spec.bits, spec.group)


def _quality(source, specs, act_bits, store, keys, units, hf, hq, calib) -> dict:
    head = EMBED if source.args.tie_embeddings else HEAD
    path = unit_path(store, keys[_unit_of(units, head)])
    xf, xq = _final_norm(source, hf), _final_norm(source, hq)
    return stream_quality(xf, xq, calib.tokens, lambda r0, r1: source.rows(head, r0, r1),
                          lambda r0, r1: read_rows(path, head, r0, r1), source.args.vocab_size, act_bits)


def _unit_of(units, name: str) -> int:
    return next(i for i, (_, names) in enumerate(units) if name in names)


def _tuned(source, specs, cfg, calib, act_bits, store, dev, etched: Etched, last_key: str, seconds) -> tuple[Etched, dict]:
    """End-to-end tuning of the streamed codes (the whole model in memory: small models only);
    its results are unit files too, keyed by the last unit's key and the tuning settings."""
    from taalas_compile.quant.tune import tune_end_to_end

    units = unit_params(source, specs)
    tcfg = cfg.model_dump(mode="json", include=TUNE_FIELDS)
    keys = [_h("tuned", last_key, tcfg, u) for u, _ in units]
    qpath = _quality_path(store, keys[-1])
    if not (all(unit_path(store, k).is_file() for k in keys) and qpath.is_file()):
        t0 = time.perf_counter()
        qw = {n: etched.tensor(n) for n in specs}
        with torch.enable_grad():  # quantize_stream runs under no_grad; the tuning needs gradients
            tuned = tune_end_to_end(source, qw, calib.tokens, act_bits, steps=cfg.tune_steps, lr=cfg.tune_lr,
                                    batch=cfg.tune_batch, codes_lr=cfg.tune_codes_lr)
        for (u, names), k in zip(units, keys):
            write_unit(store, u, k, {n: tuned[n] for n in names}, {"tuned": True})
        seconds["tune end to end"] = time.perf_counter() - t0
        files = {n: str(unit_path(store, k)) for (_, names), k in zip(units, keys) for n in names}
        quality = replay_quality(source, Etched(source, dict(specs), cfg.clip_search, files), calib, act_bits, dev)
        qpath.write_text(json.dumps(quality, sort_keys=True))
    files = {n: str(unit_path(store, k)) for (_, names), k in zip(units, keys) for n in names}
    return Etched(source, dict(specs), cfg.clip_search, files), json.loads(qpath.read_text())


@torch.no_grad()
def replay_quality(source: WeightSource, etched: Etched, calib: Calibration, act_bits: int, dev: torch.device) -> dict:
    """The quality of given codes: both streams forward only, layer by layer."""
    hf, hq = embed_streams(source, EMBED, lambda r0, r1: etched.rows(EMBED, r0, r1), calib.tokens, dev)
    for i in range(source.args.n_layers):
        layer = Layer(source, i, dev)
        for m in LINEARS:
            layer.set_codes(m, etched.tensor(f"model.layers.{i}.{m}.weight"), act_bits)
        hf, hq = layer.forward(hf, quant=False), layer.forward(hq, quant=True)
    head = EMBED if source.args.tie_embeddings else HEAD
    return stream_quality(_final_norm(source, hf), _final_norm(source, hq), calib.tokens,
                          lambda r0, r1: source.rows(head, r0, r1), lambda r0, r1: etched.rows(head, r0, r1),
                          source.args.vocab_size, act_bits)
