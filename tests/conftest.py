"""Shared test fixtures: the real stories260K data in ../shared/models (tests skip without it) and
compiled chips, each compiled once per session."""

from pathlib import Path

import pytest
from shared_data import STORIES, TOK512, need


@pytest.fixture(scope="session")
def stories_path() -> Path:
    return need(STORIES)


@pytest.fixture(scope="session")
def tok512_path() -> Path:
    return need(TOK512)


@pytest.fixture(scope="session")
def tiny_chip(tmp_path_factory) -> Path:
    """tiny-llama compiled once (synthetic weights)."""
    from taalas_compile.inputs import resolve
    from taalas_compile.pipeline import compile_chip

    out = tmp_path_factory.mktemp("chips") / "tiny-llama"
    compile_chip(resolve("tiny-llama"), out)
    return out


@pytest.fixture(scope="session")
def stories_chip(tmp_path_factory, stories_path, tok512_path) -> Path:
    """stories260K compiled once with its tokenizer."""
    from taalas_compile.inputs import resolve
    from taalas_compile.pipeline import compile_chip

    out = tmp_path_factory.mktemp("chips") / "stories260k"
    compile_chip(resolve("stories260k", stories_path, tok512_path), out)
    return out


@pytest.fixture(scope="session")
def tiny_ir():
    """(inputs, design) of tiny-llama: the Compiled IRs plus `roms`, every tile's ROM image — what
    the compile `tiny_chip` writes to disk, in memory."""
    import types

    from taalas_compile.inputs import resolve
    from taalas_compile.pipeline import chip_roms, compile_ir

    inp = resolve("tiny-llama")
    c = compile_ir(inp)
    return inp, types.SimpleNamespace(**vars(c), roms=chip_roms(c, inp))


@pytest.fixture(scope="session")
def system_ckpt(tmp_path_factory) -> Path:
    """A 2.2 M-parameter Hugging Face Llama checkpoint (hf_checkpoints.SYSTEM_ARGS): three mini dies."""
    from hf_checkpoints import SYSTEM_ARGS, write_checkpoint

    return write_checkpoint(tmp_path_factory.mktemp("system") / "m3", SYSTEM_ARGS)


@pytest.fixture(scope="session")
def system_chip(tmp_path_factory, system_ckpt) -> Path:
    """`system_ckpt` compiled once on the mini die: a system directory of three dies."""
    from taalas_compile.inputs import resolve
    from taalas_compile.pipeline import compile_chip

    out = tmp_path_factory.mktemp("chips") / "m3"
    compile_chip(resolve(str(system_ckpt), None, None, "mini"), out)
    return out
