"""Sign-off step 0: the files on disk are the ones the compile wrote.

`manifest.json` records the bytes and sha256 of every output (masks, layer properties, netlist,
graph, floorplan, ROM images). A file that is missing, or whose size or hash differs, is a finding
naming the file — checked before anything is read, so nothing is signed off that the compile did
not write (or that was edited after it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from taalas_compile.files import sha256_file
from taalas_compile.signoff.findings import Findings, Violation


def check_outputs(out: Path, man: dict, f: Findings, advance: Callable[[int], None] = lambda n: None) -> int:
    """Check every output the manifest records; returns the bytes hashed. `advance(bytes)` reports progress."""
    outputs = man.get("outputs")
    if not isinstance(outputs, dict) or not outputs:
        f.add(Violation("manifest.outputs", "manifest.json records no output files to check", 0, 0))
        return 0
    hashed = 0
    for rel, rec in sorted(outputs.items()):
        path = out / rel
        if not path.is_file():
            f.add(Violation("manifest.missing", f"{rel}: recorded in manifest.json, not on disk", 0, 0, rel))
            continue
        size = path.stat().st_size
        if size != rec.get("bytes"):
            f.add(Violation("manifest.bytes", f"{rel}: {size:,} bytes, manifest.json records {rec.get('bytes')}", 0, 0, rel))
            continue
        digest = sha256_file(path)
        hashed += size
        advance(size)
        if digest != rec.get("sha256"):
            f.add(Violation("manifest.sha256", f"{rel}: sha256 {digest[:16]}…, manifest.json records {str(rec.get('sha256'))[:16]}…", 0, 0, rel))
    return hashed
