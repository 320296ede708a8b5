"""Calibration: the token windows GPTQ and the sensitivity measurement see, and sequential GPTQ
over a whole model (layer by layer in pipeline order, each layer fed by the already-quantized ones).

Memory is bounded by one decoder layer: the hidden states of the calibration windows [N, S, D],
plus the Hessians of one stage of a layer's linears ([in, in] each), freed before the next stage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from taalas_compile.errors import UserError
from taalas_compile.model.llama import Llama, build_model
from taalas_compile.model.tokenizer import Tokenizer
from taalas_compile.model.weights import WeightSource
from taalas_compile.quant.codes import QTensor, QuantSpec, quantize_tensor, round_fp16
from taalas_compile.quant.gptq import gptq_quantize, hessian_add

# Linears of one decoder layer that share an input, in the order they are quantized ("true sequential").
STAGES = (("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), ("self_attn.o_proj",),
          ("mlp.gate_proj", "mlp.up_proj"), ("mlp.down_proj",))
BATCH = 8  # windows per forward pass


@dataclass(frozen=True)
class Calibration:
    """Calibration token windows: tokens [N, S] long, each row BOS + S-1 tokens of the source."""

    tokens: torch.Tensor
    source: str  # "text" or "ids"
    path: Path
    start_token: int
    n_tokens: int

    def describe(self) -> str:
        n, s = self.tokens.shape
        return f"{n} windows of {s} tokens from {self.path.name} (tokens {self.start_token}..{self.start_token + self.n_tokens})"


def calibration_windows(stream: list[int], bos: int, start: int, n_tokens: int, context: int) -> torch.Tensor:
    """[N, context] long: BOS + (context - 1) consecutive tokens of stream[start : start + n_tokens];
    a last partial window is dropped so every window has the same length."""
    body = stream[start : start + n_tokens]
    step = context - 1
    rows = [[bos] + body[i : i + step] for i in range(0, len(body) - step + 1, step)]
    if not rows:
        raise UserError(f"calibration needs at least {step} tokens from token {start}; the source has {len(stream)}")
    return torch.tensor(rows, dtype=torch.long)


def load_calibration(path: Path, tok: Tokenizer | None, start: int, n_tokens: int, context: int, bos: int) -> Calibration:
    """Calibration windows from a text file (tokenized whole with the model's tokenizer, so its token
    positions match `eval`'s) or from token ids (a .txt of integers is read as text; use `.ids`:
    whitespace-separated integers)."""
    if not path.is_file():
        raise UserError(f"calibration file not found: {path} (pass --calib FILE, or set [quant.calib] text in the recipe)")
    raw = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".ids":
        try:
            stream, kind = [int(t) for t in raw.split()], "ids"
        except ValueError:
            raise UserError(f"{path}: a .ids calibration file holds token ids separated by whitespace") from None
    else:
        if tok is None:
            raise UserError(f"calibration text {path} needs --tokenizer (or give token ids in a .ids file)")
        stream, kind = tok.encode(raw, bos=True), "text"
    return Calibration(calibration_windows(stream, bos, start, n_tokens, context), kind, path, start, n_tokens)


def calib_model(source: WeightSource) -> Llama:
    """The float model with fp16 norm gains, as etched; linears get replaced as they are quantized."""
    model = build_model(source)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(round_fp16(p))
    return model


def _batched(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    return torch.cat([fn(x[i : i + BATCH]) for i in range(0, x.shape[0], BATCH)])


def gptq_dtype(n_in: int) -> torch.dtype:
    """float64 for layers up to 4096 inputs (exact enough to be stable run to run); float32 above,
    where H⁻¹'s factor alone is 822 MB at 14336 inputs."""
    return torch.float64 if n_in <= 4096 else torch.float32


def _running(acc: torch.Tensor | None, add: torch.Tensor, n_old: int, n_new: int) -> torch.Tensor:
    """Running mean of per-sample sums: acc over n_old samples updated with `add` summed over the rest."""
    return add / n_new if acc is None else acc * (n_old / n_new) + add / n_new


def _stage_inputs(layer: nn.Module, stage: tuple[str, ...], h: torch.Tensor) -> dict[str, torch.Tensor]:
    """Inputs [B, S, in] of the stage's linears when `layer` runs on h [B, S, D]."""
    seen: dict[str, torch.Tensor] = {}
    hooks = [layer.get_submodule(m).register_forward_pre_hook(lambda _m, inp, m=m: seen.__setitem__(m, inp[0])) for m in stage]
    try:
        layer(h)
    finally:
        for hk in hooks:
            hk.remove()
    return seen


def corrected_target(w: torch.Tensor, cross: torch.Tensor, h: torch.Tensor, damp: float) -> torch.Tensor:
    """The float weight that best maps the quantized inputs to the float model's outputs:
    argmin_V ‖X Wᵀ − X̃ Vᵀ‖² = W C H⁻¹ with C = XᵀX̃, H = X̃ᵀX̃ (damped). w: [out, in]; C, H: [in, in].
    GPTQ of this target against H minimises the error against the float model's own outputs."""
    hd = h.clone()
    hd.diagonal().add_(damp * hd.diagonal().mean() + 1e-12)
    return (w.double() @ torch.linalg.solve(hd, cross.T).T).float()  # W C H⁻¹ (H symmetric)


@torch.no_grad()
def gptq_model(source: WeightSource, specs: dict[str, QuantSpec], calib: Calibration, act_bits: int, *,
               damp: float, act_order: bool, clip_search: bool, make_qlinear: Callable[[QTensor], nn.Module],
               act_quant: Callable[[torch.Tensor, int], torch.Tensor], correct: bool = True) -> dict[str, QTensor]:
    """Every planned tensor quantized with GPTQ, layer by layer; the embedding (a lookup, and the
    head too when tied) by round-to-nearest with clip search.

    `act_quant(x, group)` is the MAC tile's input quantization, so each Hessian is built from the
    inputs the etched tile really sees; `make_qlinear(q)` is the module that replaces a quantized linear."""
    model = calib_model(source)
    ref = calib_model(source) if correct else None  # the float model, for the error-correcting target
    qw: dict[str, QTensor] = {}
    emb_name = "model.embed_tokens.weight"
    qw[emb_name] = quantize_tensor(source.get(emb_name), specs[emb_name], clip_search)
    h = qw[emb_name].dequantize()[calib.tokens]  # [N, S, D] hidden states entering layer 0 (quantized path)
    hf = ref.model.embed_tokens(calib.tokens) if ref is not None else None  # [N, S, D] float path
    for i, layer in enumerate(model.model.layers):
        flayer = ref.model.layers[i] if ref is not None else None
        for stage in STAGES:
            names = [f"model.layers.{i}.{m}.weight" for m in stage]
            groups = [specs[n].group for n in names]
            hq: dict[str, torch.Tensor] = {}
            cross: dict[str, torch.Tensor] = {}
            n_seen = 0
            for b in range(0, h.shape[0], BATCH):
                xq = _stage_inputs(layer, stage, h[b : b + BATCH])  # module -> [B, S, in]
                xf = _stage_inputs(flayer, stage, hf[b : b + BATCH]) if flayer is not None else None
                n_new = n_seen + xq[stage[0]].shape[0] * xq[stage[0]].shape[1]
                for m, n, gr in zip(stage, names, groups):
                    xt = act_quant(xq[m], gr).reshape(-1, xq[m].shape[-1]).double()  # [n, in] as the tile sees it
                    hq[n] = _running(hq.get(n), 2 * xt.T @ xt, n_seen, n_new)
                    if xf is not None:
                        xs = xf[m].reshape(-1, xf[m].shape[-1]).double()  # [n, in] float model's input
                        cross[n] = _running(cross.get(n), 2 * xs.T @ xt, n_seen, n_new)
                n_seen = n_new
            for m, n in zip(stage, names):
                w = source.get(n)
                if n in cross:
                    w = corrected_target(w, cross.pop(n), hq[n], damp)
                qw[n] = gptq_quantize(w, hq.pop(n), specs[n], damp=damp, act_order=act_order, clip_search=clip_search,
                                      dtype=gptq_dtype(w.shape[1]))
                parent, _, attr = m.rpartition(".")
                setattr(layer.get_submodule(parent), attr, make_qlinear(qw[n]))
        h = _batched(layer, h)  # through the quantized layer
        if flayer is not None:
            hf = _batched(flayer, hf)
    if "lm_head.weight" in specs and not source.args.tie_embeddings:
        hh, n = None, 0
        x = _batched(model.model.norm, h)
        hh, n = hessian_add(hh, act_quant(x, specs["lm_head.weight"].group), n)
        qw["lm_head.weight"] = gptq_quantize(source.get("lm_head.weight"), hh, specs["lm_head.weight"], damp=damp,
                                             act_order=act_order, clip_search=clip_search, dtype=gptq_dtype(hh.shape[0]))
    return {name: qw[name] for name in specs}
