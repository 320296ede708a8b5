"""derive.py: the recipe of a Hugging Face checkpoint directory, the die it lands on, and the
resolved recipe.toml a compile writes (compiled again, the same chip)."""

import pytest
import tomllib
from hf_checkpoints import SHAPES, write_checkpoint, write_config

from taalas_compile.cli.app import main
from taalas_compile.config.recipe import Recipe, load_recipe
from taalas_compile.config.recipe_toml import recipe_toml
from taalas_compile.derive import derive_recipe, recipe_of
from taalas_compile.die.load import load_die
from taalas_compile.errors import UserError
from taalas_compile.files import sha256_file
from taalas_compile.frontend.lower import lower_args
from taalas_compile.inputs import args_of, resolve
from taalas_compile.mapper.place import map_graph
from taalas_compile.pipeline import compile_chip
from taalas_compile.quant.bits import assign_bits


@pytest.mark.parametrize("shape", SHAPES)
def test_derived_recipe_states_the_checkpoint(tmp_path, shape):
    args, dtype, shards = SHAPES[shape]
    ckpt = write_checkpoint(tmp_path / shape, args, dtype, shards)
    r = derive_recipe(ckpt)
    assert args_of(r.model.architecture) == args  # head_dim and rope scaling included
    assert (r.name, r.target.die, r.target.context, r.output.format) == (shape, "mini", min(args.max_seq_len, 2048), "gds")
    assert r.tokenizer.format == "hf" and r.model.weights_hint == str(ckpt.resolve())
    q = r.quant
    assert (q.policy, q.method, q.sensitivity, q.calib) == ("measured", "gptq", "auto", None)
    inp = resolve(str(ckpt))  # the checkpoint agrees with the recipe derived from it, weights and tokenizer
    assert inp.recipe_path is None and inp.source.args == args and inp.tokenizer.vocab_size == args.vocab_size
    assert Recipe.model_validate(tomllib.loads(recipe_toml(inp.recipe))) == inp.recipe  # the TOML reads back as itself


def test_shipped_recipes_read_back_from_their_toml():
    for name in ("tiny-llama", "stories260k", "llama-3.1-8b", "llama-3.1-70b"):
        r = load_recipe(name)
        assert Recipe.model_validate(tomllib.loads(recipe_toml(r))) == r


def test_too_big_for_mini_lands_on_hc1(tmp_path):
    """12 layers of a tiny width: the mini die's vector units run out (config.json alone decides)."""
    cfg = SHAPES["gqa-untied-fp32"][0].to_hf_config() | {"num_hidden_layers": 12}
    assert derive_recipe(write_config(tmp_path / "deep", cfg)).target.die == "hc1"
    r, mini = recipe_of(str(tmp_path / "deep"), "mini"), load_die("mini")  # the mapper agrees: not on mini
    g = lower_args(args_of(r.model.architecture))
    with pytest.raises(UserError, match="model does not fit die mini: .*vu tiles"):
        map_graph(g, assign_bits(g, r.quant, mini), mini, r.target)


@pytest.mark.parametrize("field, value, named", [
    ("attention_bias", True, "attention_bias = True is not supported"),
    ("mlp_bias", True, "mlp_bias = True is not supported"),
    ("sliding_window", 4096, "sliding_window = 4096 is not supported"),
    ("hidden_act", "gelu", "hidden_act = 'gelu' is not supported"),
    ("model_type", "mistral", "model_type = 'mistral' is not supported"),
    ("rope_scaling", {"rope_type": "yarn", "factor": 4.0}, "rope_type = 'yarn' is not supported"),
])
def test_unsupported_config_features_are_refused_by_name(tmp_path, capsys, field, value, named):
    cfg = SHAPES["gqa-untied-fp32"][0].to_hf_config() | {field: value}
    ckpt = write_config(tmp_path / "m", cfg)
    for argv in (["m"], ["plan", "m"], ["recipe", "m"], ["graph", "m"]):
        argv = [str(tmp_path / a) if a == "m" else a for a in argv]
        with pytest.raises(SystemExit) as e:
            main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert e.value.code == 2 and err[-1].startswith(f"error: {ckpt / 'config.json'}: ") and named in err[-1], (argv, err)


def test_recipe_toml_compiles_to_the_same_chip(tmp_path):
    """Untied fp32 single file end to end in-process: the derived compile, then its recipe.toml with
    the same weights, into another directory: the same bytes, recipe.toml included."""
    args, dtype, shards = SHAPES["gqa-untied-fp32"]
    ckpt = write_checkpoint(tmp_path / "m", args, dtype, shards)
    a, b = tmp_path / "a" / "m", tmp_path / "b" / "m"
    compile_chip(resolve(str(ckpt)), a)
    compile_chip(resolve(str(a / "recipe.toml"), ckpt, ckpt / "tokenizer.json"), b)
    files = ["chip.gds", "netlist.json", "graph.json", "recipe.toml", *(p.relative_to(a).as_posix() for p in (a / "roms").iterdir())]
    assert {f: sha256_file(a / f) for f in files} == {f: sha256_file(b / f) for f in files}


def test_a_recipe_contradicting_the_checkpoint_is_refused(tmp_path):
    args, dtype, shards = SHAPES["gqa-untied-fp32"]
    ckpt = write_checkpoint(tmp_path / "m", args, dtype, shards, tokenizer=False)
    text = recipe_toml(derive_recipe(ckpt)).replace("n_layers = 2", "n_layers = 3")
    (tmp_path / "r.toml").write_text(text)
    with pytest.raises(UserError, match=r"model.architecture.n_layers = 3, but .*config.json has 2"):
        resolve(str(tmp_path / "r.toml"), ckpt)
    with pytest.raises(UserError, match="is a checkpoint directory and its own weights"):
        resolve(str(ckpt), tmp_path / "elsewhere")
