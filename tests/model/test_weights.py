"""Checkpoint values the die cannot hold (NaN, Inf, beyond fp16) are refused as they are read,
naming the tensor and the first bad index; synthetic weights are not wrapped."""

import subprocess

import pytest
import torch
from safetensors.torch import load_file, save_file

from taalas_compile.errors import UserError
from taalas_compile.inputs import resolve
from taalas_compile.model import ModelArgs, open_weights
from taalas_compile.model.hf import save_hf_checkpoint
from taalas_compile.model.llama2c import write_llama2c_v1
from taalas_compile.model.synthetic import SyntheticWeights
from taalas_compile.model.weights import FP16_MAX, CheckedWeights, check_values

ARGS = ModelArgs(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=40, vocab_size=100, max_seq_len=64)
UP = "model.layers.0.mlp.up_proj.weight"
GAIN = "model.layers.1.input_layernorm.weight"


def hf_with(tmp_path, name, index, value, source=None):
    """An HF checkpoint of `source` (ARGS' synthetic weights) with one value replaced."""
    save_hf_checkpoint(tmp_path, source or open_weights("synthetic", None, ARGS, seed=3))
    f = tmp_path / "model.safetensors"
    tensors = load_file(f)
    tensors[name][index] = value
    save_file(tensors, f)
    return tmp_path


@pytest.mark.parametrize("value, message", [
    (float("nan"), r"\[3, 17\] = nan: checkpoint weights must be finite"),
    (float("inf"), r"\[3, 17\] = inf: checkpoint weights must be finite"),
    (float("-inf"), r"\[3, 17\] = -inf: checkpoint weights must be finite"),
    (1e38, r"\[3, 17\] = 1e\+38: larger than 65504, the fp16 maximum"),
])
def test_a_bad_weight_is_named_with_its_index(tmp_path, value, message):
    src = open_weights("hf", hf_with(tmp_path, UP, (3, 17), value))
    with pytest.raises(UserError, match=f"^model.layers.0.mlp.up_proj.weight{message}"):
        src.get(UP)
    with pytest.raises(UserError, match=message):  # a row band names the row in the whole tensor
        src.rows(UP, 2, 6)
    assert torch.equal(src.rows(UP, 4, 9), src.inner.rows(UP, 4, 9))  # bands without it read as before
    src.get("model.layers.0.mlp.gate_proj.weight")  # other tensors read as before


def test_a_norm_gain_beyond_fp16_is_refused(tmp_path):
    src = open_weights("hf", hf_with(tmp_path, GAIN, 5, 1e6))
    with pytest.raises(UserError, match=rf"^{GAIN}\[5\] = 1e\+06: larger than 65504"):
        src.get(GAIN)


def test_bf16_nan_is_refused(tmp_path):
    d = hf_with(tmp_path, UP, (0, 1), float("nan"))
    f = d / "model.safetensors"
    save_file({n: t.to(torch.bfloat16) for n, t in load_file(f).items()}, f)
    with pytest.raises(UserError, match=r"up_proj.weight\[0, 1\] = nan"):
        open_weights("hf", d).get(UP)


def test_llama2c_nan_is_refused(tmp_path):
    class Bad(SyntheticWeights):
        def get(self, name):
            t = super().get(name)
            if name == GAIN:
                t[7] = float("nan")
            return t

    write_llama2c_v1(tmp_path / "m.bin", Bad(ARGS, 0))
    src = open_weights("llama2c", tmp_path / "m.bin")
    src.get(UP)
    with pytest.raises(UserError, match=rf"{GAIN}\[7\] = nan"):
        src.get(GAIN)


def test_fp16_max_itself_is_accepted():
    t = torch.tensor([[0.0, FP16_MAX], [-FP16_MAX, 1.0]])
    assert check_values("x", t) is t
    assert check_values("x", torch.empty(0, 4)).numel() == 0
    with pytest.raises(UserError, match=r"^x\[12, 0\] = -70000"):
        check_values("x", torch.tensor([[1.0, 2.0], [-7e4, 3.0]]), row0=11)


def test_checkpoints_are_checked_and_synthetic_weights_are_not(tmp_path):
    save_hf_checkpoint(tmp_path, open_weights("synthetic", None, ARGS, seed=3))
    assert isinstance(open_weights("hf", tmp_path), CheckedWeights)
    assert isinstance(open_weights("synthetic", None, ARGS), SyntheticWeights)


def test_compile_of_a_nan_checkpoint_exits_2_naming_the_tensor(tmp_path):
    """End to end through the console script: refused, one line, exit 2 (no traceback)."""
    ckpt = hf_with(tmp_path / "ckpt", UP, (3, 17), float("nan"), resolve("tiny-llama").source)
    r = subprocess.run(check=False, args=["taalas-compile", "compile", "tiny-llama", "--weights", str(ckpt), "--out", str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "model.layers.0.mlp.up_proj.weight[3, 17] = nan" in r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
