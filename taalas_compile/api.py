"""The Python API, for people who hold a model object rather than a checkpoint directory:

    import taalas_compile as tc
    chip = tc.compile_model(model, tokenizer="path/to/tokenizer.json", out="out/my-llama")
    assert tc.verify(chip)["passed"]
    print(tc.emulate(chip, "Once upon a time"))

`model` is a transformers `LlamaForCausalLM` (read through its `config` and `state_dict()`; this
package never imports transformers) or the project's own `Llama`. Its tensors are written, in
their own dtype, as a Hugging Face checkpoint in `OUT.checkpoint/` beside the output (the chip's
manifest records it, and `verify` re-reads it), and that directory is compiled exactly as
`taalas-compile OUT.checkpoint -o OUT` would, recipe derived (`derive.py`) and named after OUT:
the same weights give the same bytes through either door."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from safetensors.torch import save_file

from taalas_compile.errors import UserError
from taalas_compile.model.args import ModelArgs
from taalas_compile.model.hf import SINGLE


def _config_of(model) -> dict:
    """config.json of `model`: a transformers config (`to_dict()`), or our Llama's ModelArgs."""
    args = getattr(model, "args", None)
    if isinstance(args, ModelArgs):
        return args.to_hf_config()
    cfg = getattr(model, "config", None)
    if cfg is None or not hasattr(cfg, "to_dict"):
        raise UserError(f"compile_model: {type(model).__name__} is neither a transformers LlamaForCausalLM nor a taalas_compile Llama")
    return json.loads(json.dumps(cfg.to_dict(), default=str))  # what save_pretrained writes, as plain JSON


MARKER = ".taalas-checkpoint"  # marks a checkpoint directory compile_model wrote (and may replace)


def _replaceable(directory: Path) -> None:
    """Refuse to replace `directory` unless it is absent, empty, or one compile_model wrote: it may hold user data."""
    if directory.is_symlink() or (directory.exists() and not directory.is_dir()):
        raise UserError(f"compile_model: {directory} exists and is not a checkpoint directory compile_model wrote; move it or choose another out")
    if directory.is_dir() and any(directory.iterdir()) and not (directory / MARKER).is_file():
        raise UserError(f"compile_model: {directory} holds files compile_model did not write; move them or choose another out")


def save_checkpoint(model, directory: Path, tokenizer=None) -> Path:
    """`model` (and `tokenizer`) as a Hugging Face checkpoint directory: config.json, model.safetensors
    (the parameters config.json implies, tensors in their own dtype), tokenizer.json."""
    cfg = _config_of(model)
    args = ModelArgs.from_hf_config(cfg)  # unsupported features are refused here, by name
    state = model.state_dict()
    missing = [n for n in args.param_shapes() if n not in state]
    if missing:
        raise UserError(f"compile_model: the model has no {missing[0]} ({len(missing)} Llama tensors missing)")
    _replaceable(directory)
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    (directory / MARKER).write_text("written by taalas_compile.compile_model; replaced by the next compile_model to this output\n")
    (directory / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True))
    tensors = {n: state[n].detach().to("cpu").contiguous() for n in args.param_shapes()}  # a tied lm_head is not written
    save_file(tensors, str(directory / SINGLE), metadata={"format": "pt"})
    if tokenizer is not None:
        _save_tokenizer(tokenizer, directory / "tokenizer.json")
    return directory


def _save_tokenizer(tokenizer, path: Path) -> None:
    """A tokenizer.json path (or a directory holding one), a transformers fast tokenizer, or a
    `tokenizers.Tokenizer`, written to `path`."""
    if isinstance(tokenizer, str | Path):
        src = Path(tokenizer)
        src = src / "tokenizer.json" if src.is_dir() else src
        if not src.is_file():
            raise UserError(f"compile_model: tokenizer {tokenizer}: no such tokenizer.json")
        shutil.copyfile(src, path)
    elif hasattr(tokenizer, "backend_tokenizer"):  # transformers PreTrainedTokenizerFast
        tokenizer.backend_tokenizer.save(str(path))
    elif hasattr(tokenizer, "to_str"):  # tokenizers.Tokenizer
        path.write_text(tokenizer.to_str())
    else:
        raise UserError(f"compile_model: tokenizer of type {type(tokenizer).__name__}: give a tokenizer.json path, "
                        "a transformers fast tokenizer or a tokenizers.Tokenizer")


def compile_model(model, tokenizer=None, die: str = "auto", out: str | Path = "out/model", calib: str | Path | None = None) -> Path:
    """Compile `model` into the chip directory `out` (returned): on the smallest shipped die it fits
    (`die="auto"`) or on `die` (a name or a .toml path), calibrated GPTQ with `calib` (a text file or a
    .ids file of token ids), else round-to-nearest. See the module doc."""
    from taalas_compile.derive import derive_recipe
    from taalas_compile.inputs import checkpoint_tokenizer, inputs_of
    from taalas_compile.pipeline import CompileOptions, compile_chip

    out = Path(out)
    ckpt = save_checkpoint(model, out.with_name(out.name + ".checkpoint"), tokenizer)
    recipe = derive_recipe(ckpt, None if die == "auto" else die, name=out.name)
    inp = inputs_of(recipe, None, ckpt, checkpoint_tokenizer(ckpt), recipe.target.die, None if calib is None else Path(calib))
    compile_chip(inp, out, opts=CompileOptions(fmt=inp.recipe.output.format))
    return out


def verify(out: str | Path, tokens: int = 8) -> dict:
    """Sign off the chip in `out` (DRC, LVS, emulation of the extracted chip): the result `verify
    --json` prints; `["passed"]` is True only when every check passed."""
    from taalas_compile.signoff.system import verify_dir

    return verify_dir(Path(out), tokens, lambda s: None, None)


def emulate(out: str | Path, prompt: str, tokens: int = 32) -> str:
    """Greedy generation on the emulated chip: the text `taalas-compile emulate` prints (token ids
    separated by spaces when the chip has no tokenizer)."""
    from taalas_compile.run_chip import emulate_chip

    res = emulate_chip(Path(out), [prompt], tokens)
    ids, new = res.prompts[0], res.generated[0]
    return " ".join(map(str, new)) if res.tokenizer is None else res.tokenizer.decode(ids + new)
