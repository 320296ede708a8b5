"""A recipe for a Hugging Face checkpoint directory nobody wrote one for.

`derive_recipe(DIR)` reads DIR/config.json (unsupported features refused by name,
`ModelArgs.from_hf_config`) and states, as an ordinary Recipe:

- the architecture of config.json, the checkpoint in DIR (HF safetensors) and DIR/tokenizer.json
  when there is one (BOS and EOS come from generation_config.json / config.json as for any HF
  checkpoint: `model/tokenizer.py`);
- quantization by model size: the measured 3/6-bit allocation with GPTQ (calibration from
  `--calib`; without it round-to-nearest and the rules below, with the usual note), measured by
  ΔKL forward passes up to `kl_max_weights` weights and by the streamed proxy above
  (`sensitivity = "auto"`, docs/quantization.md); the rules are the Q3_K_M-like mix of the shipped recipes, and the bit
  budget is what that mix stores;
- the smallest shipped die the model fits at that budget (the planner's fit estimate,
  `plan/estimate.py model_fit`), its KV cache for min(the model's context, `CONTEXT`) positions.

The Recipe is checked like a TOML one, and `recipe_toml` writes it out (`recipe.toml`)."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import networkx as nx

from taalas_compile.config.die import Die
from taalas_compile.config.loading import validate
from taalas_compile.config.recipe import (
    Architecture,
    QuantCfg,
    Recipe,
    RopeScalingCfg,
    TargetCfg,
    load_recipe,
)
from taalas_compile.die.load import available_dies, load_die
from taalas_compile.errors import UserError
from taalas_compile.frontend.lower import lower_args
from taalas_compile.model.args import ModelArgs
from taalas_compile.model.hf import read_config
from taalas_compile.plan.estimate import fits_one_die, model_fit
from taalas_compile.quant.bits import (
    assign_bits,
    bits_per_weight,
    die_capacity_bits,
    weight_params,
)

CONTEXT = 2048  # KV-cache positions a derived recipe reserves (the model's own context when shorter)
OASIS_WEIGHTS = 50_000_000  # above: OASIS masks (GDSII would be ~28 bytes per via; docs/file-formats.md)
SIX_BIT = ("*.v_proj.weight", "*.o_proj.weight", "*.down_proj.weight", "model.embed_tokens.weight", "lm_head.weight")


def checkpoint_dir(ref: str | Path) -> Path | None:
    """The Hugging Face checkpoint directory `ref` names, or None when it names a recipe (a shipped
    name or a .toml path). A directory without config.json is an error saying what it lacks."""
    p = Path(ref)
    if not p.is_dir():
        return None
    if not (p / "config.json").is_file():
        raise UserError(f"{p}: a directory without config.json; give a recipe name, a .toml recipe or a "
                        "Hugging Face checkpoint directory (config.json, *.safetensors, tokenizer.json)")
    return p


def architecture_of(args: ModelArgs) -> Architecture:
    """A recipe's [model.architecture] stating `args` field by field (the inverse of inputs.args_of)."""
    s = args.rope_scaling
    return Architecture(dim=args.dim, n_layers=args.n_layers, n_heads=args.n_heads, n_kv_heads=args.n_kv_heads,
                        hidden_dim=args.hidden_dim, vocab_size=args.vocab_size, norm_eps=args.norm_eps, rope_theta=args.rope_theta,
                        rope_scaling=None if s is None else RopeScalingCfg(**asdict(s)), tie_embeddings=args.tie_embeddings,
                        max_seq_len=args.max_seq_len, head_dim=args.head_dim)


def checkpoint_args(ckpt: Path) -> ModelArgs:
    """The architecture config.json states; an unsupported feature is a UserError naming it."""
    try:
        return ModelArgs.from_hf_config(read_config(ckpt / "config.json"))
    except UserError as e:
        msg = str(e)
        raise UserError(msg if msg.startswith(str(ckpt)) else f"{ckpt / 'config.json'}: {msg}") from None


def plain_name(directory: Path) -> str:
    """out/NAME for a checkpoint directory: its name in letters, digits and . _ + - (Recipe.name)."""
    name = re.sub(r"[^A-Za-z0-9._+-]+", "-", directory.resolve().name).lstrip(".-_+")[:100]
    return name or "model"


def default_quant(budget_bits: float) -> QuantCfg:
    """Quantization by model size (module doc); `budget_bits`: what the rules store per weight."""
    return QuantCfg(method="gptq", policy="measured", budget_bits=budget_bits, default_bits=3, group_size=32,
                    bits=dict.fromkeys(SIX_BIT, 6))  # sensitivity "auto": ΔKL passes or the proxy by size (quant/reference.py)


@dataclass(frozen=True)
class DieFit:
    """One die's fit of a model: tiles of each kind needed and on the die, bits per weight."""

    ref: str  # die name or .toml path as the recipe states it
    die: Die
    need: dict[str, int]
    have: dict[str, int]
    bits_per_weight: float

    @property
    def fits(self) -> bool:
        return fits_one_die(self.need, self.have)


def die_fit(g: nx.DiGraph, quant: QuantCfg, context: int, ref: str) -> DieFit:
    """The planner's fit estimate of model graph `g` on die `ref` with the rules allocation of `quant`."""
    die = load_die(ref)
    specs = assign_bits(g, quant, die)
    _, need, have = model_fit(g, specs, die, TargetCfg(die=ref, context=context))
    return DieFit(ref, die, need, have, bits_per_weight(g, specs, die))


def _rom_bits_fit(g: nx.DiGraph, quant: QuantCfg, ref: str) -> bool:
    """False when the rules allocation stores more bits than every MAC ROM cell of die `ref` holds: a
    quick no (a digit holds 3 bits, an fp16 scale takes 18), before counting the tiles of a large
    model on a small die takes a minute."""
    die = load_die(ref)
    specs = assign_bits(g, quant, die)
    n = sum(math.prod(s) for s in weight_params(g).values())
    return bits_per_weight(g, specs, die) * n <= die_capacity_bits(die)


def _by_size(refs: list[str]) -> list[str]:
    """Shipped dies, smallest MAC ROM first."""
    return sorted(refs, key=lambda ref: die_capacity_bits(load_die(ref)))


NAMES = {"mac": "MAC tiles", "vu": "vector units", "sram": "SRAM tiles", "io": "I/O tiles"}


def choose_die(g: nx.DiGraph, quant: QuantCfg, context: int, what: str, several_dies: bool = False) -> DieFit:
    """The smallest shipped die the model fits; none: a UserError with the numbers and the way out
    (or, `several_dies`, the largest die, which the planner splits the model over)."""
    refs = _by_size(available_dies())
    for ref in refs[:-1]:
        if _rom_bits_fit(g, quant, ref) and (f := die_fit(g, quant, context, ref)).fits:
            return f
    big = die_fit(g, quant, context, refs[-1])
    if big.fits or several_dies:
        return big
    short = [k for k in NAMES if big.need[k] > big.have[k]]
    need = ", ".join(f"{big.need[k]:,} {NAMES[k]}" for k in short)
    have = ", ".join(f"{big.have[k]:,} {NAMES[k]}" for k in short)
    args = g.graph["args"]
    raise UserError(f"{what} ({args.n_params / 1e9:.2f} B parameters at {big.bits_per_weight:.2f} bits/weight, "
                    f"{context:,}-token KV cache) needs {need}; the largest shipped die, {big.die.name}, has {have}: "
                    f"pass --die {big.die.name} to compile it as a system of several {big.die.name} dies (`taalas-compile plan` "
                    f"shows the split), or --die FILE with a larger die")


def derive_recipe(ckpt: Path, die: str | None = None, several_dies: bool = False, name: str | None = None) -> Recipe:
    """The recipe for checkpoint directory `ckpt` (module doc) on `die`, or on the smallest shipped
    die it fits when `die` is None ("auto"); named `name` (default: after the directory)."""
    args = checkpoint_args(ckpt)
    name = name or plain_name(ckpt)
    context = min(args.max_seq_len, CONTEXT)
    rules = default_quant(budget_bits=16.0)
    g = lower_args(args)  # on the meta device: shapes only
    if die is None or die == "auto":
        chosen = choose_die(g, rules, context, f"{ckpt}", several_dies)
    else:
        chosen = die_fit(g, rules, context, die)
    budget = math.ceil(chosen.bits_per_weight * 100) / 100  # what the rules store, so the fallback is within it
    n_weights = sum(math.prod(s) for s in weight_params(g).values())
    tok = ckpt / "tokenizer.json"
    doc = {
        "name": name,
        "description": f"{name}: Hugging Face Llama checkpoint, {args.n_params / 1e6:,.1f} M parameters (recipe derived from its config.json)",
        "model": {"format": "hf", "synthetic": False, "weights_hint": str(ckpt.resolve()), "architecture": architecture_of(args).model_dump(exclude_none=True)},
        "tokenizer": {"format": "hf", "hint": str(tok.resolve())} if tok.is_file() else {"format": "none"},
        "quant": default_quant(budget).model_dump(exclude_none=True),
        "target": {"die": chosen.ref, "context": context, "sequences": 1},
        "output": {"format": "oasis" if n_weights > OASIS_WEIGHTS else "gds"},
    }
    return validate(Recipe, doc, f"recipe derived from {ckpt / 'config.json'}")


def recipe_of(ref: str, die: str | None = None, several_dies: bool = False) -> Recipe:
    """The recipe `ref` names: a shipped name, a .toml path, or a checkpoint directory (derived);
    `die` (a name or .toml path) replaces the recipe's die."""
    ckpt = checkpoint_dir(ref)
    if ckpt is not None:
        return derive_recipe(ckpt, die, several_dies)
    r = load_recipe(ref)
    return r if die is None else r.model_copy(update={"target": r.target.model_copy(update={"die": die})})
