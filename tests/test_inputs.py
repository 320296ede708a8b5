"""A recipe's [model.architecture] against the checkpoint it is given (inputs.py): any field the
recipe sets that contradicts the checkpoint is refused, naming the field, both values and both
files; a shorter max_seq_len is the one thing a recipe may choose."""

import json
import re

import pytest

from taalas_compile.config.recipe import load_recipe
from taalas_compile.errors import UserError
from taalas_compile.inputs import open_source, resolve
from taalas_compile.model.hf import save_hf_checkpoint
from taalas_compile.model.llama2c import write_llama2c_v1
from taalas_compile.paths import RECIPES_DIR


def recipe_with(tmp_path, name: str, **arch) -> str:
    """A copy of shipped recipe `name` whose architecture table has `arch` set or replaced."""
    text = (RECIPES_DIR / f"{name}.toml").read_text()
    for k, v in arch.items():
        text, n = re.subn(rf"\b{k} = [^,}}\n]+", f"{k} = {v}", text, count=1)
        if n == 0:
            text = text.replace("architecture = { ", f"architecture = {{ {k} = {v}, ", 1)
    path = tmp_path / f"{name}-edited.toml"
    path.write_text(text)
    return str(path)


@pytest.fixture
def tiny_ckpt(tmp_path):
    """tiny-llama's synthetic weights as an HF checkpoint; edit(**config) changes its config.json."""
    d = tmp_path / "ckpt"
    save_hf_checkpoint(d, open_source(load_recipe("tiny-llama"), None))

    def edit(**changes):
        cfg = json.loads((d / "config.json").read_text())
        (d / "config.json").write_text(json.dumps(cfg | changes))
        return d

    return edit


@pytest.mark.parametrize("config, message", [
    ({"rope_theta": 500000.0}, r"rope_theta = 10000.0, but .*ckpt/config.json has 500000.0$"),
    ({"max_position_embeddings": 128}, r"max_seq_len = 256, but .*config.json has 128 \(a recipe may only shorten the context\)"),
    ({"tie_word_embeddings": True}, r"tie_embeddings = False, but .*config.json has True"),
])
def test_a_recipe_contradicting_the_checkpoint_is_refused(tiny_ckpt, config, message):
    with pytest.raises(UserError, match=rf"^recipe .*recipes/tiny-llama.toml: model.architecture.{message}"):
        resolve("tiny-llama", tiny_ckpt(**config))


def test_explicit_recipe_fields_are_checked_and_defaults_are_not(tiny_ckpt, tmp_path):
    ckpt = tiny_ckpt(rms_norm_eps=1e-6)
    assert resolve("tiny-llama", ckpt).source.args.norm_eps == 1e-6  # the recipe says nothing of norm_eps
    edited = recipe_with(tmp_path, "tiny-llama", norm_eps="1e-5")
    with pytest.raises(UserError, match=rf"^recipe {re.escape(edited)}: model.architecture.norm_eps = 1e-05, but .*config.json has 1e-06"):
        resolve(edited, ckpt)


def test_rope_scaling_set_by_the_recipe_must_be_the_checkpoints(tiny_ckpt, tmp_path):
    scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 64}
    ckpt = tiny_ckpt(rope_scaling=scaling)
    assert resolve("tiny-llama", ckpt).source.args.rope_scaling.original_max_position_embeddings == 64
    edited = recipe_with(tmp_path, "tiny-llama", rope_scaling="{ factor = 8.0 }")  # original_max_position_embeddings 8192
    with pytest.raises(UserError, match=r"rope_scaling = RopeScaling\(.*8192\), but .*config.json has RopeScaling\(.*=64\)$"):
        resolve(edited, ckpt)


def test_a_recipe_may_shorten_the_context(tiny_ckpt):
    args = resolve("tiny-llama", tiny_ckpt(max_position_embeddings=4096)).source.args
    assert args.max_seq_len == 256  # the recipe's: it bounds calibration, eval and generate contexts


def test_a_llama2c_checkpoint_fixes_rope_theta_and_norm_eps(tmp_path):
    """llama2.c's header carries no rope_theta or norm_eps: its run.c computes 10000 and 1e-5."""
    bin_path = tmp_path / "m.bin"
    write_llama2c_v1(bin_path, open_source(load_recipe(recipe_with(tmp_path, "stories260k", synthetic="true")), None))
    assert open_source(load_recipe("stories260k"), bin_path).args.rope_theta == 10000.0
    edited = recipe_with(tmp_path, "stories260k", rope_theta="500000.0")
    with pytest.raises(UserError, match=rf"rope_theta = 500000.0, but {re.escape(str(bin_path))} has 10000.0$"):
        open_source(load_recipe(edited), bin_path)
