"""Fixtures for the model tests: the real stories260K data in ../shared/models (skipped if absent)."""

import pytest
import torch
from shared_data import SAMPLE, TINYSTORIES, TOK512, need


@pytest.fixture(scope="session")
def stories_source(stories_path):
    from taalas_compile.model import open_weights

    return open_weights("llama2c", stories_path)


@pytest.fixture(scope="session")
def stories_model(stories_source):
    from taalas_compile.model import build_model

    return build_model(stories_source)


@pytest.fixture(scope="session")
def tok512():
    from taalas_compile.model import load_tokenizer

    return load_tokenizer(need(TOK512))


@pytest.fixture(scope="session")
def tinystories_text() -> str:
    return need(TINYSTORIES).read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def sample_text() -> str:
    return need(SAMPLE).read_text(encoding="utf-8")


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
