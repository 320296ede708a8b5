"""The identity of the code a cached result came from, for the caches' keys (quant/cache.py,
backend/blocks.py): the sha256 of the source of some root modules and of every module of this
package they import, transitively — imports at module level and inside functions alike, found by
reading the source (`ast`), not by importing it. A module the code uses cannot be left out of a
key by mistake, as it could from a hand-kept list of files; a change to any of them is a miss.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

PACKAGE = "taalas_compile"
ROOT = Path(__file__).resolve().parent  # the package directory


def module_file(name: str, root: Path = ROOT, package: str = PACKAGE) -> Path | None:
    """The source file of module `name` (dotted, inside `package`), or None when it is not one of ours."""
    if name != package and not name.startswith(package + "."):
        return None
    parts = name.split(".")[1:]
    if not parts:
        return root / "__init__.py"
    rel = Path(*parts)
    for p in (root / rel.with_suffix(".py"), root / rel / "__init__.py"):
        if p.is_file():
            return p
    return None


def _module_name(path: Path, root: Path, package: str) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join((package, *parts))


def imported_modules(path: Path, root: Path = ROOT, package: str = PACKAGE) -> set[str]:
    """Dotted names of our modules that `path` names in an import (anywhere in it): `import a.b`
    names a.b; `from a import b` names a.b when b is a module, else a; relative imports resolved.
    The packages above a name (whose `__init__` runs first) are not added: see `imports_of`."""
    here = _module_name(path, root, package)
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if module_file(a.name, root, package))
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's package, one level up per extra dot
                base = here.split(".")[: len(here.split(".")) - node.level + (1 if is_pkg else 0)]
                mod = ".".join([*base, *([node.module] if node.module else [])])
            else:
                mod = node.module or ""
            for a in node.names:  # `from pkg import module` names the module, `from pkg import x` the package
                sub = f"{mod}.{a.name}"
                if module_file(sub, root, package) not in (None, module_file(mod, root, package)):
                    out.add(sub)
                elif module_file(mod, root, package):
                    out.add(mod)
    return out


def imports_of(path: Path, root: Path = ROOT, package: str = PACKAGE) -> set[Path]:
    """Source files of our modules that `path` imports (anywhere in it), and the packages above them."""
    out = set()
    for n in imported_modules(path, root, package):
        parts = n.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ too
            f = module_file(".".join(parts[:i]), root, package)
            if f is not None:
                out.add(f)
    return out


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> dict[str, set[str]]:
    """Every module of the package -> the modules it names in its imports (`imported_modules`)."""
    return {_module_name(p, root, package): imported_modules(p, root, package) - {_module_name(p, root, package)}
            for p in sorted(root.rglob("*.py")) if module_file(_module_name(p, root, package), root, package) == p}


def source_closure(roots: tuple[str, ...], root: Path = ROOT, package: str = PACKAGE) -> list[Path]:
    """The files of `roots` (dotted module names) and of everything of ours they import, sorted."""
    todo = [f for f in (module_file(r, root, package) for r in roots) if f is not None]
    missing = [r for r in roots if module_file(r, root, package) is None]
    if missing:
        raise ValueError(f"no module {missing[0]} in {root}")
    seen: set[Path] = set()
    while todo:
        f = todo.pop()
        if f not in seen:
            seen.add(f)
            todo.extend(imports_of(f, root, package) - seen)
    return sorted(seen)


def digest_of(roots: tuple[str, ...], root: Path = ROOT, package: str = PACKAGE) -> str:
    """sha256 over the closure of `roots`: each file's path (relative to the package) and bytes."""
    h = hashlib.sha256()
    for f in source_closure(roots, root, package):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


@cache
def code_digest(roots: tuple[str, ...]) -> str:
    """digest_of(roots) for this package, once per process."""
    return digest_of(roots)
