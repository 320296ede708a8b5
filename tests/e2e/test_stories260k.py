"""End to end on the real stories260K model: compile, sign off, emulate, and the reference figures."""

import json

import pytest
from golden_check import assert_golden
from shared_data import TINYSTORIES, need

from taalas_compile.cli.app import main

KNOWN = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park."


def run(capsys, *argv) -> str:
    try:
        main([str(a) for a in argv])
    except SystemExit as e:
        assert e.code in (0, None), capsys.readouterr().err
    return capsys.readouterr().out


def test_compiled_chip_signs_off(stories_chip, capsys):
    res = json.loads(run(capsys, "verify", stories_chip, "--json"))
    assert res["passed"], res["violations"][:5]
    assert res["emulation"]["greedy_match"] and res["emulation"]["tokens"] == 8


def test_emulator_prints_what_the_quantized_reference_generates(stories_chip, stories_path, tok512_path, tmp_path):
    """Through the console script: 64 tokens of the same text, and the trace equal bit for bit at
    every stage (tests/e2e/test_golden_model.py)."""
    assert_golden(stories_chip, ["stories260k", "-w", stories_path, "-t", tok512_path], "Once upon a time", tmp_path / "t.safetensors")


def test_float_reference_reproduces_the_known_greedy_text(stories_path, tok512_path, capsys):
    text = run(capsys, "generate", "stories260k", "-w", stories_path, "-t", tok512_path, "--tokens", "40")
    assert text.startswith(KNOWN)


@pytest.mark.parametrize("extra, ppl", [
    (["--max-tokens", "20000", "--context", "256"], 4.917),  # first 20,000 tokens, windows of BOS + 255
    (["--context", "512"], 6.677),  # the whole file, windows of BOS + 511
])
def test_eval_reproduces_the_float_perplexity(stories_path, tok512_path, capsys, extra, ppl):
    res = json.loads(run(capsys, "eval", "stories260k", "-w", stories_path, "-t", tok512_path, "--text", need(TINYSTORIES),
                         *extra, "--json"))
    assert round(res["ppl_float"], 3) == ppl
    assert res["ppl_quant"] > res["ppl_float"] and 0 < res["kl"] and 0 < res["top1_agreement"] < 1
    assert 3.5 < res["bits_per_weight"] <= 4.0  # the default recipe's measured budget
    assert res["quant"]["policy"] == "measured" and res["quant"]["method"] == "gptq"
    assert res["quant"]["calibration"]["start_token"] == 40000  # disjoint from the scored span
