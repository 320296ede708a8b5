"""A Recipe written back as TOML: the resolved recipe a compile leaves in its output (`recipe.toml`).

Every field is written, defaults included, so the file states everything the chip was made with
and reads back (`load_recipe`) as the same Recipe; fields that are None (no calibration text, no
rope scaling, no bit budget) are left out, which reads back as None. The text is a function of
the Recipe alone (no paths of the run, no time), so two compiles of the same recipe write the same
bytes."""

from __future__ import annotations

import tomli_w

from taalas_compile.config.recipe import Recipe


def _drop_none(doc: object) -> object:
    """`doc` without None values (TOML has no null; a missing field reads back as None)."""
    if isinstance(doc, dict):
        return {k: _drop_none(v) for k, v in doc.items() if v is not None}
    if isinstance(doc, list):
        return [_drop_none(v) for v in doc]
    return doc


def recipe_toml(r: Recipe) -> str:
    """The TOML text of `r` (see the module doc)."""
    how = f"taalas-compile THIS_FILE --weights {r.model.weights_hint or 'CHECKPOINT'}" if not r.model.synthetic else "taalas-compile THIS_FILE"
    if r.tokenizer.format != "none":
        how += f" --tokenizer {r.tokenizer.hint or 'TOKENIZER'}"
    lines = [f"# Recipe {r.name}, resolved by taalas-compile: every setting the chip was compiled with.",
             f"# The same chip again: {how}"]
    return "\n".join(lines) + "\n" + tomli_w.dumps(_drop_none(r.model_dump(mode="json")))
