"""docs/architecture.md's code layout names every module of the package, in its package's entry."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def layout() -> str:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    part = doc[doc.index("## Code layout"):]
    start = part.index("```") + 3
    return part[start:part.index("```", start)]


def test_every_module_is_in_the_code_layout():
    text = layout()
    missing = []
    for p in sorted((ROOT / "taalas_compile").rglob("*.py")):
        rel = p.relative_to(ROOT / "taalas_compile")
        if p.name == "__init__.py":
            continue
        block = text
        if len(rel.parts) > 1:  # the package's own entry: from "  pkg/" to the next entry
            m = re.search(rf"^  {rel.parts[0]}/\s.*?(?=^  \S|^\S|\Z)", text, re.MULTILINE | re.DOTALL)
            block = m.group(0) if m else ""
        if not re.search(rf"(?<![\w]){re.escape(p.stem)}\.py", block):
            missing.append(str(rel))
    assert not missing, f"docs/architecture.md, Code layout: add {missing}"
