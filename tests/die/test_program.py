"""Tile programs: every role encodes to header words and back, the docstrings spell the encoding
`encode` writes, a header no compile writes is refused, and no other module reads header words by
position."""

import ast
import dataclasses
import math
import re
from pathlib import Path

import pytest
from mapped_models import placed

from taalas_compile.die import program as P
from taalas_compile.die import rom_format as rf

PACKAGE = Path(P.__file__).resolve().parents[1]

EXAMPLES = [
    P.MatVec(bits=6, group=32, n_rows=127, n_cols=224, in_off=448, out_off=254),
    P.Lookup(bits=3, group=16, n_rows=128, n_cols=64, out_off=192, first=256),
    P.RmsNorm(n=288, eps=1e-5),  # not an fp32 value: compared as etched below
    P.Rope(n=288, n_heads=6, head_dim=48),
    P.Attention(n=288, n_heads=6, n_kv_heads=2, head_dim=48, context=512),
    P.SiluMul(n=768),
    P.Add(n=288),
    P.Argmax(n=32000),
    P.Kv(n_bytes=65536, layer=3, index=1, context=512, sequences=4),
    P.Lora(n_bytes=63488, index=1, max_rank=32, targets=0b1111, count=3),
    P.Io(vocab=128256),
    P.Io(vocab=128256, link_in=8192, link_out=8192),
]


def as_etched(p):
    """`p` with its fp32 fields rounded to fp32, as a header holds them."""
    return dataclasses.replace(p, eps=rf.word_f32(rf.f32_word(p.eps))) if isinstance(p, P.RmsNorm) else p


def test_every_role_has_one_program_class():
    assert sorted(c.role for c in P.PROGRAMS) == list(P.Role)
    assert {type(p) for p in EXAMPLES} == set(P.PROGRAMS)


@pytest.mark.parametrize("prog", EXAMPLES, ids=lambda p: type(p).__name__)
def test_encode_decode_round_trip(prog):
    words = P.encode(prog)
    assert len(words) == rf.HEADER_WORDS and words[0] == int(prog.role)
    assert P.decode(words) == as_etched(prog)
    assert P.encode(P.decode(words)) == words
    assert P.decode(rf.parse_header(rf.header_digits(words))) == as_etched(prog)  # through the ROM digits


def test_every_program_the_mapper_writes_round_trips():
    _, pl, _ = placed()  # stories260k with a LoRA reserve: every role
    assert {t.role for t in pl.tiles} == set(P.Role)
    for t in pl.tiles:
        assert P.decode(P.encode(t.program)) == t.program, t.name


def docstring_header(cls) -> list[str]:
    m = re.search(r"^\s*Header: \[([^\]]*)\]", cls.__doc__, re.MULTILINE)
    assert m, f"{cls.__name__}: the docstring has no 'Header: [...]' line"
    return [w.strip() for w in m.group(1).split(",")]


@pytest.mark.parametrize("cls", P.PROGRAMS, ids=lambda c: c.__name__)
def test_the_docstring_spells_the_encoding(cls):
    doc = docstring_header(cls)
    assert len(doc) == rf.HEADER_WORDS and doc[0] == cls.role.name
    # distinct values per field, so each word shows which field it came from
    values = {f.name: (0.25 * (i + 1) if f.type == "float" else 100 + i) for i, f in enumerate(dataclasses.fields(cls))}
    words = P.encode(cls(**values))
    assert sorted(n for n in doc[1:] if n != "0") == sorted(values), f"{cls.__name__}: the docstring names other fields"
    for i, name in enumerate(doc[1:], start=1):
        want = 0 if name == "0" else rf.f32_word(values[name]) if isinstance(values[name], float) else values[name]
        assert words[i] == want, f"{cls.__name__}: word {i} is {words[i]}, the docstring says {name}"


BAD = {
    "too short": (1, 3, 32, 1, 32, 0, 0, 0, 0, 0),
    "word past 32 bits": (1, 3, 32, 1 << 32, 32, 0, 0, 0, 0, 0, 0),
    "role 0": (0,) * 11,
    "role 12": (12, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0),
    "matvec word 7 set": (1, 3, 32, 1, 32, 0, 0, 5, 0, 0, 0),
    "io word 1 set": (11, 3, 0, 512, 0, 0, 0, 0, 0, 0, 0),
    "4-bit codes": (1, 4, 32, 1, 32, 0, 0, 0, 0, 0, 0),
    "group 0": (2, 3, 0, 1, 32, 0, 0, 0, 0, 0, 0),
    "eps NaN": (3, 0, 0, 64, 0, 0, 0, rf.f32_word(math.nan), 0, 0, 0),
}


@pytest.mark.parametrize("words", BAD.values(), ids=BAD.keys())
def test_a_header_no_compile_writes_is_refused(words):
    with pytest.raises(rf.RomFormatError):
        P.decode(words)


# --- nothing else reads header words by position ---------------------------------------------
def header_indexing(source: str) -> list[int]:
    """Lines of `source` that index header words: `words[...]` text, a subscript of anything named
    `words` or of `parse_header(...)`, or a `.words` attribute (what Tile and the emulator's
    Program carried before they carried a typed program)."""
    lines = {i for i, line in enumerate(source.splitlines(), start=1) if "words[" in line}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Subscript):
            v = node.value
            name = v.id if isinstance(v, ast.Name) else v.attr if isinstance(v, ast.Attribute) else None
            call = v.func if isinstance(v, ast.Call) else None
            called = call.id if isinstance(call, ast.Name) else call.attr if isinstance(call, ast.Attribute) else None
            if name == "words" or called == "parse_header":
                lines.add(node.lineno)
        elif isinstance(node, ast.Attribute) and node.attr == "words":
            lines.add(node.lineno)
    return sorted(lines)


def test_the_scan_finds_what_the_modules_did_before():
    before = (
        "n = t.words[3] * 2\n"  # plan/estimate.py
        "w = t.words\n"
        "n_heads, n_kv, hd = impl.words[7:10]\n"  # emulator/run.py
        "bits, group = words[1:3]\n"  # emulator/cycles.py
        "vocab = rf.parse_header(img[0])[3]\n"  # run_chip.py
        "ok = decode(rf.parse_header(img[0])).vocab\n"
    )
    assert header_indexing(before) == [1, 2, 3, 4, 5]


def test_only_the_program_module_reads_header_words():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path != Path(P.__file__).resolve():
            found += [f"{path.relative_to(PACKAGE.parent)}:{n}" for n in header_indexing(path.read_text())]
    assert not found, f"header words indexed outside die/program.py (use the typed program's fields): {found}"
