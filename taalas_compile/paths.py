"""Where the shipped data lives: recipes/ and base_die/ at the repository root."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECIPES_DIR = ROOT / "recipes"
DIES_DIR = ROOT / "base_die"
OUT_DIR = Path("out")
