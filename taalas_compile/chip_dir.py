"""A compiled chip directory read back: its manifest checked, the inputs it was compiled from
re-opened and re-hashed, the die it was compiled for (verify, emulate, plan and view read chips
through here)."""

from __future__ import annotations

from pathlib import Path

from taalas_compile.config.die import Die
from taalas_compile.config.loading import validate
from taalas_compile.config.recipe import Recipe
from taalas_compile.die.load import load_die
from taalas_compile.errors import UserError
from taalas_compile.files import read_json
from taalas_compile.inputs import CalibSource, Inputs, open_source
from taalas_compile.manifest import FORMAT as MANIFEST_FORMAT
from taalas_compile.manifest import VERSION as MANIFEST_VERSION
from taalas_compile.manifest import sha256
from taalas_compile.model.tokenizer import load_tokenizer

# Keys every reader of a chip relies on (paths through nested objects): checked once, here, so
# a damaged or foreign manifest.json is one line naming the key instead of a KeyError deep inside.
MANIFEST_KEYS: dict[str, type | tuple[type, ...]] = {
    "recipe.name": str, "recipe.path": str, "recipe.settings": dict, "recipe.settings.target.context": int,
    "die.name": str, "die.path": str, "weights": dict, "outputs": dict,
    "figures.params": int, "figures.bits_per_weight": (int, float), "figures.fit": dict, "bits": dict,
}


def read_manifest(out: Path) -> dict:
    """`out`/manifest.json, checked: a taalas-manifest of this compiler's version holding every key
    the chip's readers use (verify, emulate, plan)."""
    path = out / "manifest.json"
    if not path.is_file() and (out / "system.json").is_file():  # verify, emulate and plan read systems; the rest read one die
        raise UserError(f"{out} is a multi-die system: give one of its dies ({out}/die0, ...) or use verify, emulate or plan on it")
    man = read_json(path, "is this a compile output directory?")
    if not isinstance(man, dict) or man.get("format") != MANIFEST_FORMAT:
        raise UserError(f"{path}: not a {MANIFEST_FORMAT} file (is this a compile output directory?)")
    if man.get("version") != MANIFEST_VERSION:
        raise UserError(f"{path}: manifest version {man.get('version')!r}, this compiler reads version "
                        f"{MANIFEST_VERSION}: compile the chip again")
    for key, kind in MANIFEST_KEYS.items():
        value = _lookup(man, key)
        if value is _MISSING:
            raise UserError(f"{path}: no '{key}' (damaged or hand-edited?): compile the chip again")
        if not isinstance(value, kind):
            raise UserError(f"{path}: '{key}' is {value!r}, not a {_kind_name(kind)} (damaged or hand-edited?): "
                            "compile the chip again")
    return man


_MISSING = object()


def _lookup(doc: dict, dotted: str) -> object:
    """doc["a"]["b"] for "a.b", or _MISSING."""
    for part in dotted.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return _MISSING
        doc = doc[part]
    return doc


def _kind_name(kind: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))


def chip_context(man: dict) -> int:
    """Token positions per sequence the chip's KV SRAM holds (recipe target.context)."""
    return int(man["recipe"]["settings"]["target"]["context"])


def check_tokens(man: dict, tokens: int, prompt: int = 1, what: str = "--tokens") -> None:
    """Refuse a run of `tokens` generated (or verified) tokens after a `prompt` of that many tokens
    (1: BOS alone, as verify runs) unless it is at least one token and fits the chip's context: the
    emulator feeds prompt + tokens - 1 positions, and a run past the KV cache would fail only after
    minutes of emulation (or, with --tokens 0, print nothing and succeed)."""
    if tokens < 1:
        raise UserError(f"{what} {tokens}: nothing to run; give 1 or more")
    ctx = chip_context(man)
    if prompt + tokens - 1 > ctx:
        lead = f"{prompt}-token prompt + " if prompt > 1 else ""
        raise UserError(f"{what} {tokens}: {lead}{tokens} tokens exceed the chip's {ctx}-token context "
                        f"(recipe target.context); give {what} {max(ctx - prompt + 1, 0)} or fewer")


def chip_die(out: Path, man: dict) -> Die:
    """The die a chip was compiled for: the recorded file if it is still there, else by name."""
    path = (out / man["die"]["path"]).resolve()
    return load_die(path if path.is_file() else man["die"]["name"])


def inputs_of_chip(out: Path, man: dict) -> Inputs:
    """The inputs a chip was compiled from, as recorded in its manifest; weights re-hashed."""
    recipe = validate(Recipe, man["recipe"]["settings"], f"{out}/manifest.json recipe")
    die = chip_die(out, man)
    w = man["weights"]
    wpath = None if w.get("path") is None else (out / w["path"]).resolve()
    if wpath is not None and not wpath.exists():
        raise UserError(f"weights {wpath} recorded in {out}/manifest.json are missing")
    source = open_source(recipe, wpath)
    now = source.fingerprint()
    if [f["sha256"] for f in now.get("files", [])] != [f["sha256"] for f in w.get("files", [])] or now.get("seed") != w.get("seed"):
        raise UserError(f"weights {wpath} changed since {out} was compiled (sha256 differs)")
    tok, tpath = None, None
    if man.get("tokenizer"):
        tpath = (out / man["tokenizer"]["path"]).resolve()
        tok = load_tokenizer(tpath) if tpath.is_file() else None
    return Inputs(recipe, (out / man["recipe"]["path"]).resolve(), die, (out / man["die"]["path"]).resolve(), source, wpath, tok,
                  tpath if tok else None, calib_of_chip(out, man))


def calib_of_chip(out: Path, man: dict) -> CalibSource | None:
    """The calibration source recorded in a manifest, re-hashed: the codes depend on it."""
    c = man.get("calibration")
    if not c:
        return None
    path = (out / c["path"]).resolve()
    if not path.is_file():
        raise UserError(f"calibration data {path} recorded in {out}/manifest.json is missing")
    if sha256(path) != c["sha256"]:
        raise UserError(f"calibration data {path} changed since {out} was compiled (sha256 differs)")
    return CalibSource(path, c["start_token"], c["tokens"], c["context"])
