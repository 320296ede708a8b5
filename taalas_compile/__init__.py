"""taalas-compile: hard-wire a Llama-family model into the two customisable masks of a base die.

The Python API (`taalas_compile/api.py`): `compile_model(model, tokenizer=None, die="auto", out=...,
calib=None)`, `verify(out)`, `emulate(out, prompt)`. They are imported on first use, so that
`import taalas_compile` (and the command line's start) does not import torch."""

from taalas_compile.version import __version__

__all__ = ["__version__", "compile_model", "emulate", "verify"]

_API = ("compile_model", "emulate", "verify")


def __getattr__(name: str):
    if name in _API:
        from taalas_compile import api

        return getattr(api, name)
    raise AttributeError(f"module 'taalas_compile' has no attribute {name!r}")
