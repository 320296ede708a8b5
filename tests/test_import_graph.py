"""The package's import graph has no cycle.

Edges come from `code_key.imported_modules` (the parser the cache keys use): imports at module
level and inside functions alike, relative and absolute; `from pkg import module` is an edge to
the module, `from pkg import name` one to the package (its `__init__`, re-exports and all). An
edge goes to the module named, not to the packages above it: `import taalas_compile.x` runs
`taalas_compile/__init__.py` first, but a package's `__init__` runs before any of its modules
whatever the graph, so counting it would make every re-export a cycle.
"""

from pathlib import Path

import networkx as nx

from taalas_compile.code_key import import_graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One shortest cycle per strongly connected component of more than one module, as a path."""
    g = nx.DiGraph((a, b) for a, bs in graph.items() for b in bs)
    out = []
    for comp in sorted(sorted(c) for c in nx.strongly_connected_components(g) if len(c) > 1):
        sub = g.subgraph(comp)
        out.append(min((nx.shortest_path(sub, b, a) + [b] for a, b in sub.edges), key=lambda c: (len(c), c)))
    return out


def write(root: Path, rel: str, text: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def test_the_package_has_no_import_cycle():
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_cycles_through_function_level_relative_and_submodule_imports_are_found(tmp_path):
    pkg = tmp_path / "pkg"
    write(pkg, "__init__.py", "from pkg.api import run\n")  # a re-export: no cycle by itself
    write(pkg, "api.py", "def run():\n    from pkg.sub import b\n    return b\n")
    write(pkg, "sub/__init__.py", "")
    write(pkg, "sub/b.py", "from . import c\n")  # names the submodule pkg.sub.c
    write(pkg, "sub/c.py", "def f():\n    from ..api import run\n    return run\n")  # back to pkg.api
    write(pkg, "d.py", "import pkg.sub.b\n")
    graph = import_graph(pkg, "pkg")
    assert graph["pkg"] == {"pkg.api"} and graph["pkg.sub.b"] == {"pkg.sub.c"} and graph["pkg.d"] == {"pkg.sub.b"}
    assert cycles(graph) == [["pkg.api", "pkg.sub.b", "pkg.sub.c", "pkg.api"]]
    write(pkg, "sub/c.py", "X = 1\n")
    assert cycles(import_graph(pkg, "pkg")) == []
