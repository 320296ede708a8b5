"""A recipe: which model, how to quantize it, which die to target. Recipes are data
(`recipes/NAME.toml`); this module types and checks them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from taalas_compile.config.loading import (
    Strict,
    find_config,
    read_toml,
    shipped,
    validate,
)
from taalas_compile.paths import RECIPES_DIR


class RopeScalingCfg(Strict):
    factor: float = 8.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_position_embeddings: int = 8192


class Architecture(Strict):
    """Llama architecture; required for synthetic weights, checked against a checkpoint's own."""

    dim: int = Field(gt=0)
    n_layers: int = Field(gt=0)
    n_heads: int = Field(gt=0)
    n_kv_heads: int = Field(gt=0)
    hidden_dim: int = Field(gt=0)
    vocab_size: int = Field(gt=0)
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    rope_scaling: RopeScalingCfg | None = None
    tie_embeddings: bool = False
    max_seq_len: int = 2048
    head_dim: int = Field(default=0, ge=0)  # per-head width when config.json gives one; 0: dim // n_heads


class ModelCfg(Strict):
    format: Literal["llama2c", "hf"]  # checkpoint format read by --weights
    synthetic: bool = False  # without --weights, use seeded synthetic weights (else --weights is required)
    seed: int = 0  # seed of the synthetic weights
    weights_hint: str = ""  # shown when --weights is required but missing
    architecture: Architecture | None = None


class TokenizerCfg(Strict):
    format: Literal["none", "llama2c", "hf"] = "none"
    hint: str = ""  # shown when a tokenizer is needed but missing


class CalibCfg(Strict):
    """Calibration data a recipe names: a text file, tokenized whole with the model's tokenizer
    (so token positions match `eval`'s), windows of BOS + context - 1 tokens."""

    text: str  # path: absolute, or relative to the repository root; `--calib FILE` replaces it
    start_token: int = Field(default=0, ge=0)  # first token used (keep it clear of the text you score)
    tokens: int = Field(default=20000, gt=0)  # tokens used from start_token on
    context: int = Field(default=256, ge=2)  # window length, BOS included


class QuantCfg(Strict):
    """Group-wise symmetric integer codes with one fp16 scale per group of inputs (docs/quantization.md).

    `policy` decides bits (and group size) per tensor: "rules" from `default_bits`, `group_size` and
    the `bits` patterns; "measured" by a knapsack over `options` on measured sensitivity within
    `budget_bits`. `method` decides the codes: "rtn" (round-to-nearest) or "gptq". Both "measured"
    and "gptq" need calibration data; without it the compiler falls back to "rules" and "rtn" and
    says so (on the terminal and in the manifest)."""

    method: Literal["rtn", "gptq"] = "rtn"
    policy: Literal["rules", "measured"] = "rules"
    budget_bits: float | None = Field(default=None, gt=0)  # average stored bits/weight, scales counted
    # (bits, group) a measured policy may give a tensor
    options: list[tuple[Literal[3, 6], int]] = [(3, 32), (3, 64), (3, 128), (6, 32), (6, 64), (6, 128)]
    default_bits: Literal[3, 6] = 3
    group_size: int = Field(default=32, ge=4, le=1024)
    clip_search: bool = True  # per-group search of the clipping ratio (else absmax); Hessian-weighted in GPTQ
    damp: float = Field(default=0.01, ge=0)  # GPTQ: fraction of mean(diag H) added to the diagonal
    act_order: bool = True  # GPTQ: columns by descending diag H (groups stay static)
    correct: bool = True  # GPTQ: target the float model's outputs from the quantized inputs
    sensitivity_windows: int = Field(default=16, gt=0)  # calibration windows the sensitivity pass uses
    tune_steps: int = Field(default=0, ge=0)  # Adam steps fitting scales (and codes) to the float model's outputs (0: off)
    tune_lr: float = Field(default=3e-3, gt=0)  # peak learning rate of the log-scales (cosine decay)
    tune_codes_lr: float = Field(default=0.0, ge=0)  # peak learning rate of the latent codes, in code units (0: codes fixed)
    tune_batch: int = Field(default=8, gt=0)  # calibration windows per tuning step
    calib: CalibCfg | None = None  # default calibration data (for "gptq" / "measured")
    # where the streamed quantizer runs its forward passes and Hessians ("auto": cuda if torch sees one);
    # results are deterministic on a given device kind, which is part of their cache key
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # policy "measured": what is measured per tensor and option. "kl": the model's ΔKL with only that tensor
    # quantized (a forward pass each); "hessian": the streamed proxy (quant/proxy.py: output error of each
    # tensor on the float stream, in KL units, one pass); "auto": kl below `kl_max_weights` weights, else hessian
    sensitivity: Literal["auto", "kl", "hessian"] = "auto"
    kl_max_weights: int = Field(default=50_000_000, ge=0)  # "auto": largest model measured by ΔKL forward passes
    # fnmatch patterns over Hugging Face parameter names -> bits; the last matching pattern wins
    bits: dict[str, Literal[3, 6]] = {}

    @model_validator(mode="after")
    def _check(self) -> QuantCfg:
        if self.policy == "measured" and self.budget_bits is None:
            raise ValueError("quant.policy = 'measured' needs quant.budget_bits (average bits per weight)")
        if any(not 4 <= g <= 1024 for _, g in self.options):
            raise ValueError("quant.options: group sizes must be within 4..1024")
        return self

    @property
    def needs_calibration(self) -> bool:
        return self.method == "gptq" or self.policy == "measured"


LORA_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class LoraCfg(Strict):
    """SRAM the compile reserves for LoRA adapters loaded at run time (docs/emulator.md): one slot
    of `max_rank` x (in + out) fp16 values per target module per layer."""

    targets: list[Literal["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]] = []
    max_rank: int = Field(default=8, gt=0)  # largest adapter rank a slot holds

    @field_validator("targets")
    @classmethod
    def _canonical(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("lists a module twice")
        return [m for m in LORA_MODULES if m in v]  # canonical order: the SRAM slot layout follows it


class TargetCfg(Strict):
    die: str = "mini"  # base die name (base_die/NAME.toml) or a path to a die TOML
    context: int = Field(default=512, gt=0)  # KV-cache positions per sequence held in SRAM
    sequences: int = Field(default=1, gt=0)  # concurrent sequences the KV cache is sized for
    lora: LoraCfg = LoraCfg()  # SRAM reserved for LoRA adapters
    dies: int | None = Field(default=None, gt=0)  # pipeline stages over this many dies (None: one die, or the fewest the model fits)


class OutputCfg(Strict):
    """How the masks are written."""

    format: Literal["gds", "oasis"] = "gds"  # OASIS for full-chip volume (docs/file-formats.md)


class Recipe(Strict):
    name: str  # the default output directory is out/NAME: a plain file name, never a path
    description: str
    model: ModelCfg
    tokenizer: TokenizerCfg = TokenizerCfg()
    quant: QuantCfg = QuantCfg()
    target: TargetCfg = TargetCfg()
    output: OutputCfg = OutputCfg()

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}", v):
            raise ValueError(f"{v!r} is not a plain file name (letters, digits and . _ + -, not starting with . or -): it names out/NAME")
        return v

    @model_validator(mode="after")
    def _check(self) -> Recipe:
        if self.model.synthetic and self.model.architecture is None:
            raise ValueError("model.architecture is required when model.synthetic = true")
        return self


def available_recipes() -> list[str]:
    return shipped(RECIPES_DIR)


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A recipe by name (`recipes/NAME.toml`) or by path to a TOML file."""
    p = find_config(name_or_path, RECIPES_DIR, "recipe", also="a Hugging Face checkpoint directory")
    return validate(Recipe, read_toml(p, "recipe"), f"recipe {p}")
