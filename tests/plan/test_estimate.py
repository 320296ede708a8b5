"""Planning analyses of recipes and chips: fit, performance near the public figure, placement."""

from taalas_compile.plan.report import build_plan
from taalas_compile.plan.subject import load_subject


def figures(doc: dict, section: str) -> dict:
    return {f["id"]: f["value"] for f in doc[section]["figures"]}


def test_plan_of_recipe_and_of_chip_agree_on_fit(tiny_chip):
    from_recipe = load_subject("tiny-llama")
    from_chip = load_subject(str(tiny_chip))
    assert from_recipe.fit(from_recipe.stages[0])["tiles"] == from_chip.fit(from_chip.stages[0])["tiles"]
    assert from_chip.run is not None and from_recipe.run is None


def test_llama_3_1_8b_on_hc1_near_the_public_figure():
    doc = build_plan(load_subject("llama-3.1-8b"))
    assert figures(doc, "model")["params"] == 8_030_261_248
    p = figures(doc, "performance")
    assert 12_000 < p["tokens_per_s_single"] < 24_000  # hc1 is calibrated to ~17k tokens/s
    assert p["tokens_per_s_single_full_context"] < p["tokens_per_s_single"]
    assert p["link_latency_us"] == 0 and doc["subject"]["dies"] == 1
    assert 0 < figures(doc, "fit")["rom_utilization"] < 1 and doc["fit"]["advice"] == []
    # 200-250 W card (DOMAIN.md): the die's [power] parameters are set to stay within it
    assert 20 < p["power_w_aggregate"] < 250


def test_plan_reports_placement_wirelength_and_worst_stage():
    doc = build_plan(load_subject("stories260k"))
    f = figures(doc, "fit")
    assert f["hpwl_change_0"] < 0 and f["hpwl_mm_0"] > 0 and f["worst_block_0"].startswith("L") and f["routed_mm_0"] > 0
