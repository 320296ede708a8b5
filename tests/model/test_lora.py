"""PEFT LoRA adapters: read what we write, refuse malformed ones, and apply W x + scale B A x."""

import json

import pytest
import torch

from taalas_compile.errors import UserError
from taalas_compile.model.args import ModelArgs
from taalas_compile.model.llama import Llama
from taalas_compile.model.lora import (
    apply_adapter,
    load_adapter,
    pattern_key,
    write_adapter,
)


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


def lora_out(model, layer, module, x):
    parent = model.model.layers[layer].mlp if module.endswith(("gate_proj", "up_proj", "down_proj")) else model.model.layers[layer].self_attn
    return getattr(parent, module)(x)


def effective(tmp_path, weights, rank, alpha, **config):
    """{(layer, module): what the applied adapter adds to the linear's output} for a random x."""
    torch.manual_seed(0)
    model = Llama(ModelArgs(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=64, vocab_size=50)).eval()
    x = torch.randn(1, 3, 32)
    before = {k: lora_out(model, *k, x) for k in weights}
    ad = load_adapter(write_adapter(tmp_path, weights, rank, alpha, **config))
    apply_adapter(model, ad)
    return ad, x, {k: lora_out(model, *k, x) - before[k] for k in weights}


def assert_delta(delta, x, a, b, scale):
    """`delta` is scale * B A x up to the fp16 rounding of A and (scaled) B."""
    want = scale * x @ a.half().float().T @ b.half().float().T
    err = float((delta.detach() - want).abs().max())
    assert err <= 2e-3 * float(want.abs().max()), err


def test_alpha_pattern_gives_a_module_its_own_scale(tmp_path):
    w = small_adapter()
    ad, x, d = effective(tmp_path, w, 4, 8.0, alpha_pattern={"v_proj": 32})
    assert_delta(d[(0, "q_proj")], x, *w[(0, "q_proj")], 8 / 4)
    assert_delta(d[(1, "v_proj")], x, *w[(1, "v_proj")], 32 / 4)
    assert ad.scale == 1.0  # the modules' scales differ: each B carries its own


def test_missing_lora_alpha_is_peft_default_8(tmp_path):
    write_adapter(tmp_path, small_adapter(), 4, 8.0)
    cfg = json.loads((tmp_path / "adapter_config.json").read_text())
    del cfg["lora_alpha"]
    (tmp_path / "adapter_config.json").write_text(json.dumps(cfg | {"alpha_pattern": {}, "rank_pattern": {}}))
    assert load_adapter(tmp_path).scale == 8 / 4
    (tmp_path / "adapter_config.json").write_text(json.dumps(cfg | {"use_rslora": True}))
    assert load_adapter(tmp_path).scale == 8 / 2


def test_rank_pattern_pads_smaller_modules_to_the_largest_rank(tmp_path):
    g = torch.Generator().manual_seed(1)
    w = {(0, "q_proj"): (torch.randn(4, 32, generator=g), torch.randn(32, 4, generator=g)),
         (1, "q_proj"): (torch.randn(8, 32, generator=g), torch.randn(32, 8, generator=g))}
    ad, x, d = effective(tmp_path, w, 4, 8.0, rank_pattern={"layers.1.self_attn.q_proj": 8}, use_rslora=True)
    assert ad.rank == 8 and all(a.shape[0] == 8 and b.shape[1] == 8 for a, b in ad.weights.values())
    assert_delta(d[(0, "q_proj")], x, *w[(0, "q_proj")], 8 / 4**0.5)
    assert_delta(d[(1, "q_proj")], x, *w[(1, "q_proj")], 8 / 8**0.5)


def test_pattern_keys_match_the_end_of_the_module_name_as_peft_does():
    assert pattern_key({"q_proj": 1}, "model.layers.0.self_attn.q_proj", "rank_pattern") == "q_proj"
    assert pattern_key({"proj": 1}, "model.layers.0.self_attn.q_proj", "rank_pattern") is None  # after a dot only
    assert pattern_key({"layers.1.self_attn.q_proj": 1}, "model.layers.11.self_attn.q_proj", "rank_pattern") is None
    keys = {"model.layers.0.self_attn.q_proj": 1, "q_proj": 2}  # whole name; the first in order wins
    assert pattern_key(keys, "model.layers.0.self_attn.q_proj", "rank_pattern") == "model.layers.0.self_attn.q_proj"
    assert pattern_key({r"layers\.[01]\.mlp\.up_proj": 1}, "model.layers.1.mlp.up_proj", "alpha_pattern") is not None
    with pytest.raises(UserError, match=r"alpha_pattern key '\(' is not a regular expression"):
        pattern_key({"(": 1}, "model.layers.1.mlp.up_proj", "alpha_pattern")


@pytest.mark.parametrize("config, message", [
    ({"rank_pattern": {"v_proj": 8}}, r"model.layers.1.self_attn.v_proj: A \(4, 32\), B \(16, 4\) do not have rank rank_pattern\['v_proj'\] = 8"),
    ({"r": 2, "rank_pattern": {"k_proj": 4}}, r"do not have rank r = 2 \(no rank_pattern key matches it\)"),
    ({"rank_pattern": {"v_proj": 0}}, r"rank_pattern\['v_proj'\] = 0 must be positive"),
    ({"use_dora": True}, "use_dora = True is not supported"),
    ({"peft_type": "ADALORA"}, "peft_type = 'ADALORA' is not supported"),
])
def test_unusable_patterns_and_variants_are_named(tmp_path, config, message):
    with pytest.raises(UserError, match=message):
        load_adapter(write_adapter(tmp_path, small_adapter(), 4, 8.0, **config))


def test_nan_in_an_adapter_is_refused(tmp_path):
    w = small_adapter()
    w[(1, "v_proj")][1][2, 3] = float("nan")
    with pytest.raises(UserError, match=r"model.layers.1.self_attn.v_proj.lora_B\[2, 3\] = nan"):
        load_adapter(write_adapter(tmp_path, w, 4, 8.0))


def test_same_output_as_peft(tmp_path):
    """A PEFT adapter with rank_pattern and alpha_pattern, as PEFT itself runs it (peft and
    transformers: the test extras)."""
    import peft
    import transformers

    from taalas_compile.model import build_model, open_weights

    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                   num_key_value_heads=2, vocab_size=50, max_position_embeddings=64)
    base = transformers.LlamaForCausalLM(cfg).eval()
    base.save_pretrained(tmp_path / "base")
    lc = peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False,
                         rank_pattern={"layers.1.self_attn.q_proj": 8}, alpha_pattern={"v_proj": 32, "down_proj": 2})
    tuned = peft.get_peft_model(base, lc).eval()
    tuned.save_pretrained(tmp_path / "adapter")
    x = torch.randint(0, 50, (1, 7))
    ours = build_model(open_weights("hf", tmp_path / "base"))
    with torch.no_grad():
        plain = ours(x)
        want = tuned(x).logits
        got = apply_adapter(ours, load_adapter(tmp_path / "adapter"))(x)
    assert float((want - plain).abs().max()) > 0.05  # the adapter matters
    assert float((want - got).abs().max()) < 1e-3  # fp16 A and B
