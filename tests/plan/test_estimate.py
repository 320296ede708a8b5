"""Planning analyses: fit and performance."""

from taalas_compile.plan.summary import plan_summary


def test_plan_of_recipe_and_of_chip_agree_on_fit(tiny_chip):
    from_recipe = plan_summary("tiny-llama")
    from_chip = plan_summary(str(tiny_chip))
    assert from_recipe["fit"]["tiles"] == from_chip["fit"]["tiles"]
    assert from_chip["mask_bytes_measured"] and not from_recipe["mask_bytes_measured"]


def test_llama_3_1_8b_on_hc1_near_the_public_figure():
    p = plan_summary("llama-3.1-8b")
    assert p["params"] == 8_030_261_248
    assert 12_000 < p["performance"]["tokens_per_s_single"] < 24_000  # hc1 is calibrated to ~17k tokens/s
    assert p["performance"]["tokens_per_s_single_full_context"] < p["performance"]["tokens_per_s_single"]
    assert p["fit"]["rom_digits"]["utilization"] < 1


def test_plan_reports_placement_wirelength_and_worst_stage():
    p = plan_summary("stories260k")
    pr = p["placement"]
    assert pr["hpwl_change"] < 0 and pr["hpwl_nm"] > 0 and pr["worst_stage"]["block"].startswith("L")
    assert p["router_iterations"] >= 1 and p["routed_wirelength_nm"] > 0
