"""PEFT LoRA adapters: read what we write, refuse malformed ones, and apply W x + scale B A x."""

import json

import pytest
import torch

from taalas_compile.errors import UserError
from taalas_compile.model.args import ModelArgs
from taalas_compile.model.llama import Llama
from taalas_compile.model.lora import apply_adapter, load_adapter, write_adapter


def small_adapter(rank=4):
    g = torch.Generator().manual_seed(0)
    return {(0, "q_proj"): (torch.randn(rank, 32, generator=g), torch.randn(32, rank, generator=g)),
            (1, "v_proj"): (torch.randn(rank, 32, generator=g), torch.randn(16, rank, generator=g))}


def test_written_adapter_reads_back_rounded_to_fp16(tmp_path):
    w = small_adapter()
    ad = load_adapter(write_adapter(tmp_path, w, 4, 8.0))
    assert ad.rank == 4 and ad.scale == 2.0 and ad.targets == ("q_proj", "v_proj") and set(ad.weights) == set(w)
    a, b = ad.weights[(0, "q_proj")]
    assert torch.equal(a, w[(0, "q_proj")][0].half().float()) and torch.equal(b, w[(0, "q_proj")][1].half().float())
    cfg = json.loads((tmp_path / "adapter_config.json").read_text())
    cfg["use_rslora"] = True
    (tmp_path / "adapter_config.json").write_text(json.dumps(cfg))
    assert load_adapter(tmp_path).scale == 8.0 / 2


def test_applied_adapter_adds_scaled_low_rank_product(tmp_path):
    torch.manual_seed(0)
    model = Llama(ModelArgs(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=64, vocab_size=50)).eval()
    x = torch.randn(1, 3, 32)
    attn = model.model.layers[0].self_attn
    before = attn.q_proj(x)
    ad = load_adapter(write_adapter(tmp_path, small_adapter(), 4, 8.0))
    apply_adapter(model, ad)
    a, b = ad.weights[(0, "q_proj")]
    assert torch.allclose(attn.q_proj(x), before + 2.0 * x @ a.T @ b.T, atol=1e-5)


@pytest.mark.parametrize("edit, message", [
    (lambda d: (d / "adapter_config.json").unlink(), "needs adapter_config.json and adapter_model.safetensors"),
    (lambda d: (d / "adapter_config.json").write_text('{"r": 4}'), "not a PEFT adapter config"),
    (lambda d: (d / "adapter_config.json").write_text('{"r": 4, "target_modules": ["q_proj", "lm_head"]}'), r"target_modules \['lm_head'\] are not Llama linears"),
    (lambda d: (d / "adapter_config.json").write_text('{"r": 4, "target_modules": ["q_proj"]}'), "is for v_proj, not in target_modules"),
    (lambda d: (d / "adapter_config.json").write_text('{"r": 2, "target_modules": ["q_proj", "v_proj"]}'), "do not have rank r = 2"),
    (lambda d: (d / "adapter_model.safetensors").write_bytes(b"junk"), "unreadable"),
])
def test_malformed_adapters_are_clear_errors(tmp_path, edit, message):
    write_adapter(tmp_path, small_adapter(), 4, 8.0)
    edit(tmp_path)
    with pytest.raises(UserError, match=message):
        load_adapter(tmp_path)
