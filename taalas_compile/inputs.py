"""Resolve what a command works on: recipe, die, weights, tokenizer and calibration data, with
clear errors."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from taalas_compile.config.die import Die
from taalas_compile.config.recipe import Architecture, CalibCfg, Recipe, load_recipe
from taalas_compile.derive import architecture_of, checkpoint_dir, derive_recipe
from taalas_compile.die.load import load_die
from taalas_compile.errors import UserError
from taalas_compile.model.args import ModelArgs, RopeScaling
from taalas_compile.model.sources import open_weights
from taalas_compile.model.tokenizer import Tokenizer, bos_id_of, load_tokenizer
from taalas_compile.model.weights import WeightSource
from taalas_compile.paths import DIES_DIR, RECIPES_DIR, ROOT
from taalas_compile.quant.calibrate import Calibration, load_calibration

# Architecture fields a checkpoint must match even when the recipe leaves them at their default;
# any other field is checked when the recipe sets it (a default is no claim about the checkpoint).
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
    recipe: Recipe  # as resolved: the die used, the checkpoint's architecture, --calib (`resolved_recipe`)
    recipe_path: Path | None  # None: derived from a checkpoint directory (the output's recipe.toml states it)
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


def open_source(recipe: Recipe, weights: Path | None, recipe_path: Path | None = None) -> WeightSource:
    if weights is None:
        if not recipe.model.synthetic:
            hint = f", e.g. --weights {recipe.model.weights_hint}" if recipe.model.weights_hint else ""
            raise UserError(f"recipe {recipe.name} needs --weights (a {recipe.model.format} checkpoint){hint}")
        return open_weights("synthetic", None, args_of(recipe.model.architecture), recipe.model.seed)
    source = open_weights(recipe.model.format, weights)
    if recipe.model.architecture is not None:
        source.args = checked_args(recipe, recipe_path, source.args, weights)
    return source


def _config_file(fmt: str, weights: Path) -> Path:
    """The file that states a checkpoint's architecture: config.json, or the llama2.c .bin header
    (which fixes rope_theta 10000 and norm_eps 1e-5, as llama2.c's run.c computes)."""
    if fmt == "llama2c":
        return weights
    return (weights if weights.is_dir() else weights.parent) / "config.json"


def checked_args(recipe: Recipe, recipe_path: Path | None, have: ModelArgs, weights: Path) -> ModelArgs:
    """The checkpoint's args, after refusing any [model.architecture] field of the recipe that
    contradicts them. The one exception: a recipe may give a smaller max_seq_len than the checkpoint
    was trained for. It changes no arithmetic (RoPE is computed per position, nothing is sized by
    it); it only bounds the contexts the reference is run at (calibration, eval, generate) — the
    die's KV cache is [target] context. A larger one would run positions the model never saw."""
    a = recipe.model.architecture
    want = args_of(a)
    where = f"recipe {recipe_path or recipe.name}: model.architecture."
    for field in dict.fromkeys((*CHECKED, *sorted(a.model_fields_set))):
        mine, theirs = getattr(want, field), getattr(have, field)
        if mine == theirs or (field == "max_seq_len" and mine < theirs):
            continue
        why = " (a recipe may only shorten the context)" if field == "max_seq_len" else ""
        raise UserError(f"{where}{field} = {mine}, but {_config_file(recipe.model.format, weights)} has {theirs}{why}")
    if "max_seq_len" in a.model_fields_set:
        return replace(have, max_seq_len=want.max_seq_len)
    return have


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
    bos = bos_id_of(inp.tokenizer, inp.source)
    return load_calibration(c.path, inp.tokenizer, c.start_token, c.tokens, c.context, bos)


def resolved_recipe(r: Recipe, die_ref: str, args: ModelArgs | None, calib: Path | None) -> Recipe:
    """`r` as a compile uses it, so that compiling the written recipe.toml with the same weights
    makes the same chip: the die used, the checkpoint's architecture field by field (`args`; None:
    synthetic weights, the recipe's own), and `--calib` as its calibration text."""
    update: dict = {"target": r.target.model_copy(update={"die": die_ref})}
    if args is not None:
        update["model"] = r.model.model_copy(update={"architecture": architecture_of(args)})
    if calib is not None and r.quant.needs_calibration:
        cfg = r.quant.calib or CalibCfg(text="")
        text = CalibCfg(text=str(calib.resolve()), start_token=0, tokens=cfg.tokens, context=cfg.context)
        update["quant"] = r.quant.model_copy(update={"calib": text})
    return r.model_copy(update=update)


def resolve(recipe: str, weights: Path | None = None, tokenizer: Path | None = None, die: str | None = None,
            calib: Path | None = None) -> Inputs:
    """The inputs of a command: `recipe` is a shipped name, a .toml path, or a Hugging Face checkpoint
    directory, whose recipe is derived (`derive.py`; its weights and tokenizer.json are the inputs)."""
    ckpt = checkpoint_dir(recipe)
    if ckpt is None:
        recipe_path = Path(recipe) if recipe.endswith(".toml") else RECIPES_DIR / f"{recipe}.toml"
        return inputs_of(load_recipe(recipe), recipe_path, weights, tokenizer, die, calib)
    if weights is not None and weights.resolve() != ckpt.resolve():
        raise UserError(f"--weights {weights}: {recipe} is a checkpoint directory and its own weights; "
                        "give --weights with a recipe instead")
    r = derive_recipe(ckpt, die)
    return inputs_of(r, None, ckpt, tokenizer or checkpoint_tokenizer(ckpt), die, calib)


def checkpoint_tokenizer(ckpt: Path) -> Path | None:
    """The tokenizer.json of a checkpoint directory, if it has one."""
    return ckpt / "tokenizer.json" if (ckpt / "tokenizer.json").is_file() else None


def inputs_of(r: Recipe, recipe_path: Path | None, weights: Path | None, tokenizer: Path | None, die: str | None,
              calib: Path | None) -> Inputs:
    """The inputs of recipe `r` (read from `recipe_path`; None: derived) with these files."""
    die_ref = die or r.target.die
    d = load_die(die_ref)
    die_path = Path(die_ref) if die_ref.endswith(".toml") else DIES_DIR / f"{die_ref}.toml"
    source = open_source(r, weights, recipe_path)
    r = resolved_recipe(r, die_ref, None if weights is None else source.args, calib)
    if r.target.context > source.args.max_seq_len:  # the KV cache holds target.context positions
        raise UserError(f"recipe {r.name}: target.context = {r.target.context} exceeds the model's {source.args.max_seq_len}-token context")
    tok = None
    if tokenizer is not None:
        tok = load_tokenizer(tokenizer)
        if tok.vocab_size != source.args.vocab_size:
            raise UserError(f"{tokenizer}: {tok.vocab_size} tokens, the model has {source.args.vocab_size}")
    return Inputs(r, recipe_path.resolve() if recipe_path else None, d, die_path.resolve(), source, weights, tok, tokenizer,
                  calib_source(r, calib))
