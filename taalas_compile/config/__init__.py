"""Typed configuration: the base die (`die.py`) and the compile recipe (`recipe.py`)."""
