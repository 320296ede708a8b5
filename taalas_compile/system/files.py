"""A system directory: `system.json` (the system manifest), `system-netlist.json` (which die feeds
which over which link, carrying what per token) and one chip directory per die (`die0/`, `die1/`,
..., each exactly what a single-die compile writes, its manifest naming its place in the system).

Both system files are a function of the inputs and the partition alone (no die's outputs, no
times), so every `--only-die K` compile writes them byte for byte alike and dies built on
different machines assemble into the system one whole compile writes.
"""

from __future__ import annotations

import json
from pathlib import Path

from taalas_compile.chip_dir import read_manifest
from taalas_compile.errors import UserError
from taalas_compile.files import read_json
from taalas_compile.system.ir import DieStage, Link, System

SYSTEM_FILE, NETLIST_FILE = "system.json", "system-netlist.json"
FORMAT, NETLIST_FORMAT, VERSION = "taalas-system", "taalas-system-netlist", 1


def is_system(d: Path) -> bool:
    return (d / SYSTEM_FILE).is_file()


def system_doc(s: System, inp) -> dict:
    """system.json: the recipe, the one base die every die is a copy of, and the partition."""
    from taalas_compile.manifest import sha256
    from taalas_compile.version import __version__

    return {
        "format": FORMAT, "version": VERSION, "compiler": {"taalas_compile": __version__},
        "recipe": {"name": inp.recipe.name, "settings": inp.recipe.model_dump(mode="json")},
        "die": {"name": inp.die.name, "sha256": sha256(inp.die_path)},
        "dim": s.dim,
        "dies": [{"index": d.index, "dir": d.dir, "blocks": list(d.blocks)} for d in s.dies],
        "figures": {"params": inp.source.args.n_params, "dies": len(s.dies)},
    }


def netlist_doc(s: System) -> dict:
    """system-netlist.json: token in and out, and every die-to-die link."""
    last = len(s.dies) - 1
    return {
        "format": NETLIST_FORMAT, "version": VERSION,
        "token_in": {"die": 0, "pin": "io.tok_out", "bytes_per_token": s.token_bytes},
        "token_out": {"die": last, "pin": "io.tok_in", "bytes_per_token": s.token_bytes, "returns_to": {"die": 0, "pin": "io.tok_out"}},
        "links": [{"name": f"link{lk.index}", "from": {"die": lk.src, "pin": "io.tok_in"}, "to": {"die": lk.dst, "pin": "io.tok_out"},
                   "carries": f"residual stream after {lk.after}", "after": lk.after, "values": lk.values, "dtype": "fp32",
                   "bytes_per_token": lk.bytes_per_token} for lk in s.links],
    }


def write_system_files(d: Path, s: System, inp) -> None:
    d.mkdir(parents=True, exist_ok=True)
    for name, doc in ((SYSTEM_FILE, system_doc(s, inp)), (NETLIST_FILE, netlist_doc(s))):
        tmp = d / f".{name}.tmp"
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
        tmp.replace(d / name)


def read_system(d: Path) -> tuple[System, dict]:
    """The system in `d` (system.json + system-netlist.json), checked: one line naming what is wrong."""
    doc = read_json(d / SYSTEM_FILE, "is this a system compile output directory?")
    net = read_json(d / NETLIST_FILE, "the system netlist every system compile writes")
    for path, x, fmt in ((d / SYSTEM_FILE, doc, FORMAT), (d / NETLIST_FILE, net, NETLIST_FORMAT)):
        if not isinstance(x, dict) or x.get("format") != fmt or x.get("version") != VERSION:
            raise UserError(f"{path}: not a {fmt} file of version {VERSION} (compile the system again)")
    try:
        dies = tuple(DieStage(int(e["index"]), tuple(e["blocks"])) for e in doc["dies"])
        links = tuple(Link(int(e["name"].removeprefix("link")), int(e["from"]["die"]), int(e["to"]["die"]), e["after"], int(e["values"]))
                      for e in net["links"])
        return System(doc["recipe"]["name"], doc["die"]["name"], int(doc["dim"]), dies, links), doc
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{d}: system.json and system-netlist.json do not describe a system ({e}): compile the system again") from None


def die_manifests(d: Path, s: System, doc: dict, only: int | None = None) -> dict[int, dict]:
    """Each die's manifest (or die `only`'s), checked against the system: present, compiled from the
    same recipe on the same base die, for its own stage."""
    if only is not None and not 0 <= only < len(s.dies):
        raise UserError(f"--die {only}: the system in {d} has dies 0..{len(s.dies) - 1}")
    out = {}
    for st in s.dies if only is None else [s.dies[only]]:
        if not (d / st.dir / "manifest.json").is_file():
            raise UserError(f"{d}: die {st.index} is missing ({st.dir}/manifest.json): compile it with --only-die {st.index} "
                            "or copy its directory in")
        man = read_manifest(d / st.dir)
        die = man["die"]
        if die["name"] != doc["die"]["name"] or die.get("sha256") != doc["die"]["sha256"]:
            raise UserError(f"{d}: die {st.index} was compiled for base die {die['name']} (sha256 {str(die.get('sha256'))[:12]}), "
                            f"the system for {doc['die']['name']} (sha256 {doc['die']['sha256'][:12]}): every die of a system is "
                            "the same base die; compile it again")
        place = man.get("system") or {}
        if place.get("die") != st.index or tuple(place.get("blocks", ())) != st.blocks or man["recipe"]["settings"] != doc["recipe"]["settings"]:
            raise UserError(f"{d}: {st.dir} is not die {st.index} of this system (another recipe or partition): "
                            f"compile it again with --only-die {st.index}")
        out[st.index] = man
    return out


def system_of_die(die_dir: Path, man: dict) -> tuple[Path, int] | None:
    """(system directory, die index) when `die_dir` is one die of a system."""
    place = man.get("system")
    return None if not place else (die_dir.resolve().parent, int(place["die"]))


def built_dies(d: Path) -> list[dict]:
    """The manifests of the dies compiled into system directory `d` so far, in die order."""
    s, _ = read_system(d)
    return [read_manifest(d / st.dir) for st in s.dies if (d / st.dir / "manifest.json").is_file()]
