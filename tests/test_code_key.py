"""code_key.py: cache keys from the source the code imports (module level and inside functions),
not from hand-kept lists of files."""

from taalas_compile.backend.blocks import CODE_ROOTS as BLOCK_ROOTS
from taalas_compile.code_key import ROOT, digest_of, source_closure
from taalas_compile.quant.cache import CODE_ROOTS as QUANT_ROOTS


def write(root, rel, text):
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def test_closure_follows_module_relative_and_function_level_imports(tmp_path):
    pkg = tmp_path / "pkg"
    write(pkg, "__init__.py", "")
    write(pkg, "a.py", "import os\nfrom pkg.sub import b\n")
    write(pkg, "sub/__init__.py", "")
    write(pkg, "sub/b.py", "def f():\n    from .c import g\n    return g()\n")
    c = write(pkg, "sub/c.py", "def g():\n    import pkg.d\n    return 1\n")
    write(pkg, "d.py", "X = 1\n")
    write(pkg, "unused.py", "Y = 2\n")
    got = {str(p.relative_to(pkg)) for p in source_closure(("pkg.a",), pkg, "pkg")}
    assert got == {"__init__.py", "a.py", "sub/__init__.py", "sub/b.py", "sub/c.py", "d.py"}
    before = digest_of(("pkg.a",), pkg, "pkg")
    write(pkg, "unused.py", "Y = 3\n")
    assert digest_of(("pkg.a",), pkg, "pkg") == before  # not imported: not in the key
    c.write_text(c.read_text() + "# changed\n")
    assert digest_of(("pkg.a",), pkg, "pkg") != before  # imported inside a function, two steps away


def test_the_caches_cover_what_their_hand_kept_lists_named():
    blocks = {str(p.relative_to(ROOT)) for p in source_closure(BLOCK_ROOTS)}
    quant = {str(p.relative_to(ROOT)) for p in source_closure(QUANT_ROOTS)}
    assert {"backend/roms.py", "backend/oasis_stream.py", "die/geometry.py", "quant/etched.py", "model/hf.py",
            "model/llama2c.py", "model/synthetic.py"} <= blocks
    assert {"quant/gptq.py", "quant/layer.py", "quant/head.py", "quant/arith.py", "model/llama.py", "model/rope.py",
            "model/weights.py"} <= quant  # model/weights.py was missing from the old list
