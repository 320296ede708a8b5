"""Where the real data lives: ../shared/models next to the repository (never copied into it)."""

from pathlib import Path

import pytest

MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"
STORIES = MODELS / "stories260K" / "stories260K.bin"
TOK512 = MODELS / "stories260K" / "tok512.bin"
TINYSTORIES = MODELS / "tinystories_text" / "tinystories.txt"
SAMPLE = MODELS / "tinystories_text" / "tinystories_sample.txt"


def need(path: Path) -> Path:
    """The path, or skip the test when the shared data is absent."""
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path
