"""One path to the etched codes: the compile, the references and a chip's read-back decide bits
and codes through `etch.choose_bits` and `etch.etch`, and nothing else in the package calls the
functions underneath them."""

import ast
from pathlib import Path

import numpy as np

from taalas_compile import pipeline
from taalas_compile.inputs import resolve
from taalas_compile.reference import build_references

PACKAGE = Path(__file__).resolve().parents[1] / "taalas_compile"
# what decides a chip's bits and codes, and the one module that may use it
DECIDERS = {"lower_args", "calibration_of", "sensitivity_of", "allocate_bits", "etched_codes"}
ALLOWED = {"etch.py", "frontend/lower.py", "inputs.py", "quant/reference.py", "quant/bits.py"}
# lower_args alone (the graph, no bits) is also what graph, plan and derive show
GRAPH_ONLY = {"lower_args"}


def uses(path: Path) -> set[str]:
    """Names of DECIDERS a module calls or passes as a value (timed("...", allocate_bits, ...))."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Name) and node.id in DECIDERS and isinstance(node.ctx, ast.Load):
            found.add(node.id)
        elif isinstance(node, ast.Attribute) and node.attr in DECIDERS:
            found.add(node.attr)
    return found


def test_only_etch_decides_bits_and_codes():
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in ALLOWED:
            continue
        if bad := uses(path) - GRAPH_ONLY:
            offenders[rel] = sorted(bad)
    assert not offenders, f"decide bits or codes outside etch.py: {offenders}"


def test_uses_sees_a_call_and_a_value(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("from x import allocate_bits, etched_codes\ntimed('a', allocate_bits, 1)\nq.etched_codes(1)\n")
    assert uses(f) == {"allocate_bits", "etched_codes"}


def test_the_reference_runs_the_codes_the_compile_etches():
    inp = resolve("tiny-llama")
    c = pipeline.compile_ir(inp)
    refs = build_references(resolve("tiny-llama"))
    assert refs.specs == c.specs
    for name in c.specs:
        got, want = refs.qweights[name], c.etched.tensor(name)
        assert np.array_equal(got.codes, want.codes) and np.array_equal(got.scales, want.scales), name
