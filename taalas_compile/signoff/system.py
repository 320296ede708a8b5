"""verify of a multi-die system (system/files.py): every die signed off as a chip of its own (files,
netlist, layers, DRC, LVS against its netlist: `verify.check_whole`), its findings named with the
die; the links checked against the dies' I/O tiles; then the dies as extracted from their masks
emulated against the quantized reference, teacher-forced at die boundaries as the block-by-block
sign-off is at block boundaries:

- die 0 takes the reference's greedy continuation of BOS; die k > 0 takes the reference's residual
  stream at its link, position by position (so each die is judged on its own: a die with layout
  or LVS errors is not emulated, the others still are);
- each die but the last must reproduce the reference's residual stream at its outgoing link bit
  for bit; the last die's logits are judged as a single chip's (`emulation.judge`);
- with every die signed off, the dies chained through their links (no teacher) run the same
  tokens too and must equal the reference's logits bit for bit.

Each die's own `signoff/` holds its findings and markers (open it in KLayout); the system's
`signoff/signoff.json` holds them all. `--die K` signs off die K alone (its emulation
teacher-forced on both sides)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from taalas_compile.backend.netlist import read_netlist
from taalas_compile.chip_dir import check_tokens, chip_die, inputs_of_chip
from taalas_compile.die import rom_format as rf
from taalas_compile.die.program import Io, decode
from taalas_compile.emulator.chip import from_extraction
from taalas_compile.emulator.run import Emulator
from taalas_compile.emulator.system import SystemEmulator
from taalas_compile.emulator.tiles import EmulationError
from taalas_compile.emulator.trace import reference_stages
from taalas_compile.errors import UserError
from taalas_compile.files import write_atomic
from taalas_compile.model.generate import greedy
from taalas_compile.reference import build_references
from taalas_compile.signoff.emulation import exact, judge, vs_float
from taalas_compile.signoff.findings import Findings, Violation
from taalas_compile.signoff.verify import (
    KLAYOUT_MAX_DIGITS,
    SignoffRun,
    check_whole,
    extracted_figures,
    finish,
    finite_json,
    top_cell,
    verify_streaming,
)
from taalas_compile.system.files import die_manifests, read_system
from taalas_compile.system.ir import System, reference_stage

CHECKS = ("outputs", "netlist", "layers", "drc", "lvs", "emulation")


def verify_system(d: Path, tokens: int = 8, step: Callable[[str], None] = lambda s: None, jobs: int | None = 1,
                  only: int | None = None) -> dict:
    t0 = time.perf_counter()
    s, doc = read_system(d)
    mans = die_manifests(d, s, doc, only)
    check_tokens(next(iter(mans.values())), tokens)
    runs: dict[int, SignoffRun] = {}
    images = {}
    extracted = {}
    streamed: dict[int, dict] = {}  # dies too large to read whole: signed off block by block, emulation included
    last = len(s.dies) - 1
    for k, man in mans.items():
        out = d / s.dies[k].dir
        pl, _, ndoc = read_netlist(out, roms=False)
        link = (reference_stage(s.links[k - 1].after) if k else None, k < last)
        run = SignoffRun(out, man, pl, ndoc, chip_die(out, man), tokens, _named(step, k), jobs, link=link)
        runs[k] = run
        if ndoc["masks"].endswith(".oas") and man["figures"]["fit"]["digits_total"] > KLAYOUT_MAX_DIGITS:
            check_links(s, k, io_of(pl), run.f)  # the netlist's I/O program: LVS proves the masks hold the same ROM
            streamed[k] = verify_streaming(run)
            continue
        lay, ex = check_whole(run)
        check_links(s, k, extracted_io(pl, ex), run.f)
        images[k] = from_extraction(pl, ex.roms, ex.nets, run.die)
        extracted[k] = (extracted_figures(lay, ex), top_cell(lay))
    broken = {k for k in images if runs[k].structural() or runs[k].f.count("system")}  # nothing to emulate on these
    emus: dict[int, dict] = {}
    system_emu: dict = {"ran": False, "skipped": "dies signed off block by block: each block teacher-forced, no chained run"}
    if images:
        step("emulate, teacher-forced at die boundaries")
        emus, chained = emulate_dies(d, s, mans, {k: v for k, v in images.items() if k not in broken}, runs, tokens)
        system_emu = chained if not streamed else system_emu
    emus |= {k: {"ran": False, "skipped": "output-hash, layout, LVS or link errors"} for k in broken}
    dies = {k: streamed[k] if k in streamed else finish(runs[k], emus[k], *extracted[k]) for k in sorted(runs)}
    return system_result(d, s, dies, system_emu, runs, time.perf_counter() - t0, only)


def _named(step: Callable[[str], None], k: int) -> Callable[[str], None]:
    def named(msg: str) -> None:
        step(f"die {k}: {msg}")

    if hasattr(step, "bar"):
        named.bar = step.bar  # type: ignore[attr-defined]
    return named


def io_of(pl) -> Io | None:
    """The I/O tile's program as the netlist holds it."""
    return next((t.program for t in pl.tiles if isinstance(t.program, Io)), None)


def extracted_io(pl, ex) -> Io | str | None:
    """The I/O tile's program as extracted from the masks (a string saying why when unreadable)."""
    io = next((t for t in pl.tiles if t.kind == "io"), None)
    rom = ex.roms.get(io.site) if io is not None else None
    try:
        return decode(rf.parse_header(rom[0])) if rom is not None and rom.size else None
    except rf.RomFormatError as e:
        return f"unreadable ({e})"


def check_links(s: System, k: int, prog: Io | str | None, f: Findings) -> None:
    """Die k's I/O program must take what its incoming link carries (tokens on die 0) and send
    what its outgoing link carries (the sampled token on the last die)."""
    want_in = 0 if k == 0 else s.links[k - 1].values
    want_out = 0 if k == len(s.dies) - 1 else s.links[k].values
    if not isinstance(prog, Io):
        f.add(Violation("system.link", f"die {k}: the I/O tile holds no I/O program ({prog}); it cannot drive the links", 0, 0, "io"))
    elif (prog.link_in, prog.link_out) != (want_in, want_out):
        f.add(Violation("system.link", f"die {k}: its I/O tile takes {prog.link_in or 'tokens'} and sends {prog.link_out or 'tokens'}, "
                                       f"the system netlist links it with {want_in or 'tokens'} in and {want_out or 'tokens'} out", 0, 0, "io"))


def emulate_dies(d: Path, s: System, mans: dict[int, dict], images: dict, runs: dict[int, SignoffRun], tokens: int) -> tuple[dict, dict]:
    """Each die's emulation result (teacher-forced at its boundaries: each die is judged on its
    own, so a die with errors does not stop the others') and, with every die, the chained run's."""
    k0 = min(mans)
    inp = inputs_of_chip(d / s.dies[k0].dir, mans[k0])
    refs = build_references(inp)
    bos = mans[k0].get("bos_id", 1)
    seq = [bos] + greedy(refs.quant_model, [bos], tokens)[:-1]
    ref = reference_stages(refs.quant_model, seq)
    with torch.no_grad():
        f_logits = refs.float_model(torch.tensor([seq]))[0].numpy()
    emus: dict[int, dict] = {}
    out = {}
    if not images:
        return emus, {"ran": False, "skipped": "no die to emulate"}
    for k, img in images.items():
        f = runs[k].f
        try:
            emu = Emulator(img)
            x = np.asarray(seq, np.float32)[:, None] if k == 0 else ref[s.links[k - 1].after]
            rows = []
            for pos in range(len(seq)):
                y = emu.stage_step(x[pos : pos + 1], [pos], [0])
                rows.append(emu.logits[0].copy() if k == len(s.dies) - 1 else y[0].copy())
        except EmulationError as e:
            f.add(Violation("emulation.error", f"die {k}: {e}", 0, 0))
            emus[k] = {"ran": False, "error": str(e)}
            continue
        got = np.stack(rows)
        if k == len(s.dies) - 1:
            emus[k] = {**judge(got, ref["logits"], f_logits, f), "sequence": "greedy", "teacher_forced": f"die {k}'s input"}
        else:
            want = ref[s.links[k].after]
            d = exact(f"die {k} given the reference's input: the residual stream after {s.links[k].after} it sends [position, element]",
                      got, want, f, "io")
            emus[k] = {"ran": True, "tokens": len(seq), "sends": f"residual stream after {s.links[k].after}", "exact": d is None,
                       "difference": d, "teacher_forced": "its input" if k else "tokens"}
        out[k] = emu
    if len(out) == len(s.dies):
        chained = SystemEmulator([Emulator(images[k]) for k in sorted(images)]).teacher_forced(seq)
        d = exact("the dies chained through their links: logits [position, token]", chained, ref["logits"], runs[max(runs)].f)
        system = {"ran": True, "chained": {"exact": d is None, "difference": d, "vs_float": vs_float(chained, f_logits),
                                           "emulator_tokens": chained.argmax(-1).tolist()}}
    else:
        system = {"ran": False, "skipped": "not every die was emulated (--die, or a die with errors)"}
    return emus, system


def system_result(d: Path, s: System, dies: dict[int, dict], system_emu: dict, runs: dict[int, SignoffRun], seconds: float,
                  only: int | None) -> dict:
    """The system's signoff.json: each check passed on every die; every die's violations, named."""
    checks = []
    for name in CHECKS:
        per = [next(c for c in r["checks"] if c["name"] == name) for r in dies.values()]
        checks.append({"name": name, "passed": all(c["passed"] for c in per), "violations": sum(c["violations"] for c in per)})
    link = sum(r.f.count("system") for r in runs.values())
    checks.insert(5, {"name": "links", "passed": link == 0, "violations": link})
    violations = [{**v, "die": k, "message": v["message"] if v["message"].startswith(f"die {k}:") else f"die {k}: {v['message']}"}
                  for k, r in dies.items() for v in r["violations"]]
    counts: dict[str, int] = {}
    for r in dies.values():
        for c, n in r["counts"].items():
            counts[c] = counts.get(c, 0) + n
    failing = [k for k, r in dies.items() if not r["passed"]]
    res = {
        "format": "taalas-signoff", "version": 1, "dir": str(d), "system": True, "dies_checked": sorted(dies),
        "dies_total": len(s.dies), "passed": all(c["passed"] for c in checks),
        "checks": checks, "counts": dict(sorted(counts.items())), "violations": violations,
        "emulation": {"ran": all(r["emulation"].get("ran", False) for r in dies.values()),
                      "dies": {k: r["emulation"] for k, r in dies.items()}, "system": system_emu},
        "extracted": {key: sum(r["extracted"][key] for r in dies.values()) for key in ("sites_with_cells", "nets", "vias", "metal_shapes")},
        "dies": [{"die": k, "dir": str(d / s.dies[k].dir), "passed": r["passed"], "counts": r["counts"]} for k, r in dies.items()],
        "markers_dir": str(d / s.dies[failing[0]].dir) if failing else None,
        "seconds": {"total": seconds},
    }
    res = finite_json(res)
    if only is None:
        res["reports"] = {"signoff.json": str(d / "signoff" / "signoff.json")}
        (d / "signoff").mkdir(exist_ok=True)
        write_atomic(d / "signoff" / "signoff.json", lambda path: path.write_text(json.dumps(res, indent=1) + "\n"))
    return res


def verify_dir(out: Path, tokens: int = 8, step: Callable[[str], None] = lambda s: None, jobs: int | None = 1,
               die: int | None = None) -> dict:
    """`verify` of a compile output directory: one chip, or a multi-die system (`die`: that die alone)."""
    from taalas_compile.chip_dir import read_manifest
    from taalas_compile.signoff.verify import verify
    from taalas_compile.system.files import is_system, system_of_die

    if is_system(out):
        return verify_system(out, tokens, step, jobs, die)
    if (out / "manifest.json").is_file() and (place := system_of_die(out, read_manifest(out))) is not None:
        raise UserError(f"{out} is die {place[1]} of the system in {place[0]}: taalas-compile verify {place[0]} --die {place[1]}")
    if die is not None:
        raise UserError(f"--die {die}: {out} is a single-die chip, not a system")
    return verify(out, tokens, step, jobs)
