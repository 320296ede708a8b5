"""Resolve what a command works on: recipe, die, weights and tokenizer, with clear errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from taalas_compile.config.die import Die, load_die
from taalas_compile.config.recipe import Architecture, Recipe, load_recipe
from taalas_compile.errors import UserError
from taalas_compile.model.args import ModelArgs, RopeScaling
from taalas_compile.model.tokenizer import Tokenizer, load_tokenizer
from taalas_compile.model.weights import WeightSource, open_weights
from taalas_compile.paths import DIES_DIR, RECIPES_DIR

CHECKED = ("dim", "n_layers", "n_heads", "n_kv_heads", "hidden_dim", "vocab_size", "tie_embeddings")


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


def resolve(recipe: str, weights: Path | None = None, tokenizer: Path | None = None, die: str | None = None) -> Inputs:
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
    return Inputs(r, recipe_path.resolve(), d, die_path.resolve(), source, weights, tok, tokenizer)
