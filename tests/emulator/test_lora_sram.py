"""LoRA on the chip: a rank-4 q/v adapter loaded into the LoRA SRAM gives the reference's output
with the same adapter; adapters the reserve cannot hold are clear errors."""

import numpy as np
import pytest
import torch

from taalas_compile.emulator.lora import load_lora, lora_reserve
from taalas_compile.errors import UserError
from taalas_compile.inputs import resolve
from taalas_compile.model.lora import apply_adapter, load_adapter, write_adapter
from taalas_compile.reference import build_references

SEQ = [1, 17, 200, 3, 99, 42, 7, 8]


def adapter(tmp_path, rank=4, modules=("q_proj", "v_proj"), layers=(0, 1)):
    """tiny-llama: q_proj 64 -> 64, k/v_proj 64 -> 32."""
    g = torch.Generator().manual_seed(0)
    out = {"q_proj": 64, "k_proj": 32, "v_proj": 32}
    w = {(layer, m): (torch.randn(rank, 64, generator=g) * 0.3, torch.randn(out[m], rank, generator=g) * 0.3)
         for layer in layers for m in modules}
    return load_adapter(write_adapter(tmp_path / f"r{rank}-{'-'.join(modules)}", w, rank, 2.0 * rank))


def test_reserve_is_read_back_from_the_chip(tiny_emu):
    max_rank, targets, slots, tiles = lora_reserve(tiny_emu)
    assert (max_rank, targets, tiles) == (8, ["q_proj", "v_proj"], ["lora0"])
    assert [(s.layer, s.module, s.n_in, s.n_out, s.offset) for s in slots] == [
        (0, "q_proj", 64, 64, 0), (0, "v_proj", 64, 32, 2048), (1, "q_proj", 64, 64, 3584), (1, "v_proj", 64, 32, 5632)]


def test_adapter_in_sram_matches_the_reference_with_the_adapter(tiny_emu, tmp_path):
    ad = adapter(tmp_path)
    base = tiny_emu.teacher_forced(SEQ)
    load_lora(tiny_emu, ad)
    got = tiny_emu.teacher_forced(SEQ)
    model = apply_adapter(build_references(resolve("tiny-llama")).quant_model, ad)
    with torch.no_grad():
        want = model(torch.tensor([SEQ]))[0].numpy()
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))  # bit for bit
    assert np.abs(got - base).max() > 0.2 * np.abs(base).max()  # the adapter really changes the output
    assert tiny_emu.sram["lora0"][:8].view(np.float16).tolist() == ad.weights[(0, "q_proj")][0][0, :4].tolist()
    load_lora(tiny_emu, None)
    assert np.array_equal(tiny_emu.teacher_forced(SEQ), base)


@pytest.mark.parametrize("kw, message", [
    ({"modules": ("q_proj", "k_proj")}, "the adapter targets k_proj, which has no LoRA SRAM on this chip \\(reserved: q_proj, v_proj\\)"),
    ({"rank": 16}, "the adapter has rank 16, the chip's LoRA SRAM holds rank 8 at most \\(recipe target.lora.max_rank\\)"),
    ({"layers": (0, 2)}, "the adapter has layer 2 q_proj, which this chip does not have"),
])
def test_adapters_the_reserve_cannot_hold_are_errors(tiny_emu, tmp_path, kw, message):
    with pytest.raises(UserError, match=message):
        load_lora(tiny_emu, adapter(tmp_path, **kw))
