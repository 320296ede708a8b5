"""Recipes and dies: shipped ones load; bad ones give one-line errors that say where."""

import pytest

from taalas_compile.config.recipe import available_recipes, load_recipe
from taalas_compile.die.load import available_dies, load_die
from taalas_compile.errors import UserError
from taalas_compile.paths import DIES_DIR


def test_shipped_recipes_and_dies_load():
    assert {"tiny-llama", "stories260k", "llama-3.1-8b"} <= set(available_recipes())
    assert {"mini", "hc1"} <= set(available_dies())
    for name in available_recipes():
        load_recipe(name)
    for name in available_dies():
        die = load_die(name)
        assert len(die.sites("io")) == 1


def test_unknown_recipe_lists_the_shipped_ones():
    with pytest.raises(UserError, match="unknown recipe 'nope'.*tiny-llama"):
        load_recipe("nope")


@pytest.mark.parametrize("text, match", [
    ("name = 'x'\ndescription = 'x'\n[model]\nformat = 'gguf'\n", r"model\.format"),
    ("name = 'x'\ndescription = 'x'\n[model]\nformat = 'hf'\ncolour = 1\n", r"model\.colour: Extra inputs"),
    ("name = 'x'\ndescription = 'x'\n[model]\nformat = 'hf'\nsynthetic = true\n", "architecture is required"),
    ("name = 'x'\ndescription = 'x'\n[model\n", "not valid TOML"),
    ("name = 'x'\ndescription = 'x'\n[model]\nformat = 'hf'\n[quant]\ndefault_bits = 4\n", r"quant\.default_bits"),
])
def test_bad_recipe_is_one_clear_line(tmp_path, text, match):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(UserError, match=match) as e:
        load_recipe(p)
    assert "\n" not in str(e.value)


def test_die_with_rules_its_own_cells_break_is_rejected(tmp_path):
    text = (DIES_DIR / "mini.toml").read_text().replace("pitch = 192", "pitch = 160")
    p = tmp_path / "tight.toml"
    p.write_text(text)
    with pytest.raises(UserError, match="metal_space"):
        load_die(p)
