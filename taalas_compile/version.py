"""The compiler's version (pyproject.toml's), in a module of its own so that the code recording it
(manifest, block keys, plan.json, `--version`) need not import the package's `__init__` and the
API it re-exports."""

__version__ = "0.1.0"
