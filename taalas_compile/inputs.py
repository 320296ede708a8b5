"""Resolve what a command works on: recipe, die, weights, tokenizer and calibration data, with
clear errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from taalas_compile.config.die import Die, load_die
from taalas_compile.config.recipe import Architecture, CalibCfg, Recipe, load_recipe
from taalas_compile.errors import UserError
from taalas_compile.model.args import ModelArgs, RopeScaling
from taalas_compile.model.tokenizer import Tokenizer, load_tokenizer
from taalas_compile.model.weights import WeightSource, open_weights
from taalas_compile.paths import DIES_DIR, RECIPES_DIR, ROOT
from taalas_compile.quant.calibrate import Calibration, load_calibration

CHECKED = ("dim", "n_layers", "n_heads", "n_kv_heads", "hidden_dim", "vocab_size", "tie_embeddings")


@dataclass(frozen=True)
class CalibSource:
    """Where calibration tokens come from: `tokens` tokens from `start_token` of a text file
    (tokenized whole) or of a `.ids` file of token ids, cut into windows of `context`."""

    path: Path
    start_token: int
    tokens: int
    context: int


@dataclass(frozen=True)
class Inputs:
    recipe: Recipe
    recipe_path: Path
    die: Die
    die_path: Path
    source: WeightSource
    weights_path: Path | None
    tokenizer: Tokenizer | None
    tokenizer_path: Path | None
    calib: CalibSource | None = None  # None: the recipe needs none, or there is none (RTN fallback)


def args_of(a: Architecture) -> ModelArgs:
    d = a.model_dump()
    rs = d.pop("rope_scaling")
    return ModelArgs(**d, rope_scaling=RopeScaling(**rs) if rs else None)


def open_source(recipe: Recipe, weights: Path | None) -> WeightSource:
    if weights is None:
        if not recipe.model.synthetic:
            hint = f", e.g. --weights {recipe.model.weights_hint}" if recipe.model.weights_hint else ""
            raise UserError(f"recipe {recipe.name} needs --weights (a {recipe.model.format} checkpoint){hint}")
        return open_weights("synthetic", None, args_of(recipe.model.architecture), recipe.model.seed)
    source = open_weights(recipe.model.format, weights)
    if recipe.model.architecture is not None:
        want = args_of(recipe.model.architecture)
        for f in CHECKED:
            if getattr(source.args, f) != getattr(want, f):
                raise UserError(f"{weights}: {f} = {getattr(source.args, f)} but recipe {recipe.name} expects {getattr(want, f)}")
    return source


def calib_source(recipe: Recipe, calib: Path | None) -> CalibSource | None:
    """`--calib FILE` (used from its first token), else the recipe's [quant.calib] text (a path
    relative to the repository root), else None. Only recipes that need calibration get one."""
    q = recipe.quant
    if not q.needs_calibration:
        return None
    cfg = q.calib or CalibCfg(text="")
    if calib is not None:
        if not calib.is_file():
            raise UserError(f"--calib {calib}: no such file")
        return CalibSource(calib, 0, cfg.tokens, cfg.context)
    if q.calib is None:
        return None
    path = Path(q.calib.text)
    path = path if path.is_absolute() else ROOT / path
    if not path.is_file():
        raise UserError(f"calibration text {path} (recipe {recipe.name}, [quant.calib] text) is missing; pass --calib FILE")
    return CalibSource(path.resolve(), cfg.start_token, cfg.tokens, cfg.context)


def calibration_of(inp: Inputs) -> Calibration | None:
    """The calibration windows of `inp` (None when it has no calibration source)."""
    c = inp.calib
    if c is None:
        return None
    if c.context > inp.source.args.max_seq_len:
        raise UserError(f"calibration context {c.context} exceeds the model's {inp.source.args.max_seq_len}-token context")
    bos = inp.tokenizer.bos_id if inp.tokenizer is not None else 1
    return load_calibration(c.path, inp.tokenizer, c.start_token, c.tokens, c.context, bos)


def resolve(recipe: str, weights: Path | None = None, tokenizer: Path | None = None, die: str | None = None,
            calib: Path | None = None) -> Inputs:
    r = load_recipe(recipe)
    recipe_path = Path(recipe) if recipe.endswith(".toml") else RECIPES_DIR / f"{recipe}.toml"
    die_ref = die or r.target.die
    d = load_die(die_ref)
    die_path = Path(die_ref) if die_ref.endswith(".toml") else DIES_DIR / f"{die_ref}.toml"
    source = open_source(r, weights)
    tok = None
    if tokenizer is not None:
        tok = load_tokenizer(tokenizer)
        if tok.vocab_size != source.args.vocab_size:
            raise UserError(f"{tokenizer}: {tok.vocab_size} tokens, the model has {source.args.vocab_size}")
    return Inputs(r, recipe_path.resolve(), d, die_path.resolve(), source, weights, tok, tokenizer, calib_source(r, calib))
