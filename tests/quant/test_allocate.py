"""The knapsack allocator and the measured policy: budget respected, most sensitive tensors
promoted, clear errors when a policy cannot fit."""

import itertools

import pytest

from taalas_compile.config.recipe import QuantCfg, load_recipe
from taalas_compile.die.load import load_die
from taalas_compile.errors import UserError
from taalas_compile.frontend.lower import lower_args
from taalas_compile.inputs import args_of
from taalas_compile.mapper.place import map_graph
from taalas_compile.quant.allocate import knapsack, stored_bits
from taalas_compile.quant.bits import allocate_bits, bits_per_weight, weight_params
from taalas_compile.quant.codes import QuantSpec


@pytest.fixture(scope="module")
def graph():
    return lower_args(args_of(load_recipe("stories260k").model.architecture))


def test_knapsack_matches_brute_force():
    import random

    rng = random.Random(0)
    for _ in range(20):
        costs = [[rng.randint(1, 9) for _ in range(3)] for _ in range(5)]
        sens = [[rng.random() for _ in range(3)] for _ in range(5)]
        budget = rng.randint(sum(min(c) for c in costs), sum(max(c) for c in costs))
        ch = knapsack(costs, sens, budget, steps=budget)  # integer costs: the DP is exact
        best = min(sum(s[k] for s, k in zip(sens, p)) for p in itertools.product(range(3), repeat=5)
                   if sum(c[k] for c, k in zip(costs, p)) <= budget)
        assert ch.cost <= budget and ch.sensitivity == pytest.approx(best)


def test_knapsack_promotes_the_most_sensitive_items_within_the_budget():
    # 6 equal items; 3 bits costs 3, 6 bits costs 6; room for exactly two promotions
    gain = [0.1, 0.9, 0.3, 0.8, 0.2, 0.05]
    costs = [[3, 6]] * 6
    sens = [[g, 0.0] for g in gain]
    ch = knapsack(costs, sens, 6 * 3 + 2 * 3 + 2)
    assert [i for i, k in enumerate(ch.picks) if k == 1] == [1, 3] and ch.cost == 24


def test_knapsack_over_budget_is_an_error():
    with pytest.raises(UserError, match="cannot hold the model"):
        knapsack([[10, 20], [10, 20]], [[1, 0], [1, 0]], 19)


SIZES = {n: s[0] * s[1] for n, s in weight_params(lower_args(args_of(load_recipe("stories260k").model.architecture))).items()}


def fake_sensitivity(names, options):
    """Per weight, the embedding hurts 30x and down projections 10x more at 3 bits than the rest;
    bigger groups hurt a little more."""
    def s(n, o):
        base = SIZES[n] * (3.0 if "embed" in n else 1.0 if "down" in n else 0.1)
        return (base if o.bits == 3 else base / 64) * (1 + o.group / 256)
    return {n: [s(n, o) for o in options] for n in names}


@pytest.mark.parametrize("budget", [3.5, 4.0, 4.5])
def test_measured_policy_stays_within_its_budget(graph, budget):
    die = load_die("mini")
    a = allocate_bits(graph, QuantCfg(policy="measured", budget_bits=budget), die, fake_sensitivity)
    assert a.policy == "measured" and bits_per_weight(graph, a.specs, die) <= budget
    if budget == 4.0:  # room for about 1/6 of the weights at 6 bits: the most sensitive go first
        six = [n for n, spec in a.specs.items() if spec.bits == 6]
        assert "model.embed_tokens.weight" in six and all("embed" in n or "down" in n for n in six)
    assert set(a.specs) == set(weight_params(graph))


def test_measured_policy_skips_groups_that_do_not_fit_a_mac_row(graph):
    die = load_die("mini")  # 256-cell rows: 128 6-bit codes (256 digits) + a 6-digit scale do not fit
    a = allocate_bits(graph, QuantCfg(policy="measured", budget_bits=6.5), die, fake_sensitivity)
    assert QuantSpec(6, 128) not in a.specs.values() and len(a.sensitivity["model.embed_tokens.weight"]) == 5
    map_graph(graph, a.specs, die, load_recipe("stories260k").target)  # every pick maps


def test_measured_policy_without_calibration_falls_back_to_rules_and_says_so(graph):
    die = load_die("mini")
    cfg = QuantCfg(policy="measured", method="gptq", budget_bits=5.0, bits={"*.v_proj.weight": 6})
    a = allocate_bits(graph, cfg, die, None)
    assert a.policy == "rules" and a.method == "rtn" and len(a.notes) == 2 and all("no calibration data" in n for n in a.notes)
    assert a.specs["model.layers.0.self_attn.v_proj.weight"] == QuantSpec(6, 32)


def test_a_rules_policy_over_its_budget_is_an_error(graph):
    with pytest.raises(UserError, match="over the recipe's budget_bits"):
        allocate_bits(graph, QuantCfg(default_bits=6, budget_bits=4.0), load_die("mini"), None)


def test_a_policy_the_die_cannot_hold_is_an_error(graph):
    mini = load_die("mini")
    small = mini.model_copy(update={"tiles": mini.tiles.model_copy(update={"mac": mini.tiles.mac.model_copy(update={"rows": 9})})})
    specs = allocate_bits(graph, QuantCfg(default_bits=3), small, None).specs
    with pytest.raises(UserError, match="model does not fit die mini: mac tiles"):  # rules: the mapper's exact check
        map_graph(graph, specs, small, load_recipe("stories260k").target)
    with pytest.raises(UserError, match="MAC ROM at most .* cannot hold the model"):  # measured: the knapsack's budget
        allocate_bits(graph, QuantCfg(policy="measured", budget_bits=4.0), small, fake_sensitivity)


def test_measured_policy_needs_a_budget():
    with pytest.raises(ValueError, match="budget_bits"):
        QuantCfg(policy="measured")


def test_stored_bits_count_codes_and_ragged_scales():
    assert stored_bits((64, 172), QuantSpec(3, 32), 16) == 64 * 172 * 3 + 64 * 6 * 16
    assert stored_bits((64, 172), QuantSpec(6, 128), 16) == 64 * 172 * 6 + 64 * 2 * 16
