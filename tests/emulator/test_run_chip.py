"""`emulate` end to end: LoRA, timing and trace on the tiny chip; on the compiled stories260K chip it
prints what `generate --precision quant` prints."""

import torch

from taalas_compile.cli.app import main
from taalas_compile.model.lora import write_adapter
from taalas_compile.run_chip import emulate_chip, generate_reference


def run(capsys, *argv) -> tuple[int, str, str]:
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as e:
        code = e.code or 0
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_emulate_with_adapter_timing_and_trace(tiny_chip, tmp_path, capsys):
    g = torch.Generator().manual_seed(1)
    ad = write_adapter(tmp_path / "ad", {(0, "q_proj"): (torch.randn(4, 64, generator=g), torch.randn(64, 4, generator=g))}, 4, 4.0)
    code, out, err = run(capsys, "emulate", tiny_chip, "--prompt", "5 6 7", "--tokens", "5", "--lora", ad, "--timing", "--trace",
                         "--trace-out", tmp_path / "trace.safetensors")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines[0].split()) == 5 and lines[1].startswith("cycle model: 8 tokens, 1 sequence(s) in flight at 500 MHz")
    assert "every stage equal bit for bit" in out and (tmp_path / "trace.safetensors").is_file()
    (ad / "adapter_config.json").write_text('{"r": 4, "lora_alpha": 4, "target_modules": ["q_proj", "k_proj"]}')
    code, _, err = run(capsys, "emulate", tiny_chip, "--lora", ad)
    assert code == 2 and "the adapter targets k_proj, which has no LoRA SRAM on this chip" in err


def test_emulate_prints_what_the_quantized_reference_generates(stories_chip, stories_path, tok512_path):
    res = emulate_chip(stories_chip, ["Once upon a time"], 40)
    ids, new, tok = generate_reference("stories260k", stories_path, tok512_path, None, "Once upon a time", 40, "quant")
    assert res.prompts[0] == ids and res.generated[0] == new
    assert tok.decode(ids + new).startswith("Once upon a time") and len(new) == 40
