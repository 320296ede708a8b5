"""Bit allocation from the recipe and the bits/weight figure."""

import pytest

from taalas_compile.config.recipe import QuantCfg, load_recipe
from taalas_compile.die.load import load_die
from taalas_compile.errors import UserError
from taalas_compile.frontend.lower import lower_args
from taalas_compile.inputs import args_of
from taalas_compile.quant.bits import assign_bits, bits_per_weight


@pytest.fixture(scope="module")
def graph():
    return lower_args(args_of(load_recipe("stories260k").model.architecture))


def test_patterns_last_match_wins(graph):
    cfg = QuantCfg(default_bits=3, bits={"*.mlp.*": 6, "*.up_proj.weight": 3})
    specs = assign_bits(graph, cfg, load_die("mini"))
    assert specs["model.layers.0.mlp.gate_proj.weight"].bits == 6
    assert specs["model.layers.0.mlp.up_proj.weight"].bits == 3
    assert specs["model.layers.0.self_attn.q_proj.weight"].bits == 3


def test_bits_per_weight_counts_fp16_scales(graph):
    die = load_die("mini")
    assert bits_per_weight(graph, assign_bits(graph, QuantCfg(default_bits=3, group_size=32), die), die) == pytest.approx(
        3 + 16 / 32, abs=0.02)  # ragged 172-wide groups add a little
    assert bits_per_weight(graph, assign_bits(graph, QuantCfg(default_bits=6, group_size=32), die), die) == pytest.approx(6.5, abs=0.02)


def test_bits_the_die_cannot_etch_are_an_error(graph):
    die = load_die("mini").model_copy(update={"arith": load_die("mini").arith.model_copy(update={"weight_bits": [3]})})
    with pytest.raises(UserError, match="etches only"):
        assign_bits(graph, QuantCfg(default_bits=6), die)
