"""Rendering results in the terminal with rich. Functions take data, print, return nothing."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from taalas_compile.emulator.compare import describe
from taalas_compile.frontend.ir import short_name
from taalas_compile.view.session import MAX_OPEN_DIGITS, session_command, shell

# Markup only in our own format strings: everything from a user, a file or a model goes through
# escape() (or markup=False), so "[/]" in a prompt or a path prints as typed instead of crashing.
out = Console(highlight=False, emoji=False)
err = Console(stderr=True, highlight=False, emoji=False)


def error(msg: str) -> None:
    err.print(f"[bold red]error:[/] [red]{escape(msg)}[/]", soft_wrap=True)


class _Steps:
    """`step(name)` starts a named step (the previous one prints one line with its time);
    `step.bar(name, total, unit)` adds a progress bar and returns `advance(n)`."""

    def __init__(self, what: str, progress: Progress | None):
        self.what, self.progress = what, progress
        self.name: str | None = None
        self.t = time.perf_counter()
        self.task = progress.add_task(f"{what}…", total=None) if progress else None

    def __call__(self, name: str) -> None:
        self._finish()
        self.name, self.t = name, time.perf_counter()
        if self.progress:
            self.progress.update(self.task, description=f"{self.what}: {escape(name)}…")

    def _finish(self) -> None:
        if self.name and self.progress:
            self.progress.console.print(f"  [green]✓[/] {escape(self.name)} [dim]{time.perf_counter() - self.t:.2f} s[/]")

    def bar(self, name: str, total: float, unit: str):
        if not self.progress:
            return lambda n: None
        task = self.progress.add_task(f"  {escape(name)}", total=total, unit=unit)
        return lambda n: self.progress.update(task, advance=n)


class _Rate(ProgressColumn):
    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        unit = task.fields.get("unit", "")
        return Text("" if speed is None or not unit else f"{speed / 1e6:,.1f} M{unit}/s", style="progress.data.speed")


@contextmanager
def steps(what: str, quiet: bool = False):
    """Live progress of a long command: the running step with a spinner, finished steps one line
    each with their time, and bars (with rate and ETA) for the per-block work."""
    if quiet:
        yield _Steps(what, None)
        return
    cols = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _Rate(),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
    with Progress(*cols, console=err, transient=True) as progress:
        s = _Steps(what, progress)
        yield s
        s._finish()


def counted(step: _Steps, name: str, bar: str):
    """`on(done, total)` for work reported as done-of-total: starts step `name` with a bar on its
    first call (done 0), then advances it."""
    advance = None

    def on(done: int, total: int) -> None:
        nonlocal advance
        if advance is None:
            step(name)
            advance = step.bar(bar, total, "")
        advance(1 if done else 0)

    return on


def _num(x: float | None, spec: str) -> str:
    """A figure of a sign-off result; None is a value that was not finite (signoff.json writes null)."""
    return "not finite" if x is None else format(x, spec)


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"


def run_summary(run: dict, doc: dict) -> Table:
    """Time per stage, peak memory, bytes written, bytes per weight and weights per second."""
    t = Table(title=f"run ({run.get('executor', 'this process')})", show_header=False)
    total = sum(run["seconds"].values())
    for name, sec in run["seconds"].items():
        t.add_row(name, f"{sec:.2f} s")
    t.add_row("[bold]total[/]", f"[bold]{total:.2f} s[/]")
    peak = run.get("peak_rss", {})
    if peak:
        t.add_row("peak memory", f"{peak['main'] / 2**30:.2f} GiB main, {peak['workers'] / 2**30:.2f} GiB per block worker")
    written = sum(m["bytes"] for m in doc["outputs"].values())
    weights = doc["figures"]["weights_quantized"]
    masks = sum(m["bytes"] for k, m in doc["outputs"].items() if k.startswith("chip.") and k != "chip.lyp")
    reused = sum(b["reused"] for b in run.get("blocks", []))
    t.add_row("bytes written", f"{_size(written)} ({_size(masks)} masks, {masks / max(weights, 1):.3f} bytes/weight)")
    t.add_row("weights/s", f"{weights / max(total, 1e-9) / 1e6:,.1f} M ({weights:,} weights" + (f", {reused} blocks reused)" if reused else ")"))
    return t


def compiled(outdir: Path, doc: dict) -> None:
    fig = doc["figures"]
    t = Table(title=escape(f"compiled {doc['recipe']['name']} on die {doc['die']['name']}"), show_header=False)
    t.add_row("parameters", f"{fig['params']:,}")
    t.add_row("bits / weight (scales counted)", f"{fig['bits_per_weight']:.3f}")
    for k, v in fig["fit"]["tiles"].items():
        t.add_row(f"{k} tiles", f"{v['used']} / {v['available']} ({v['utilization']:.0%})")
    t.add_row("ROM digit cells", f"{fig['fit']['rom_digits']['used']:,} ({fig['fit']['rom_digits']['utilization']:.0%})")
    t.add_row("nets / wirelength", f"{fig['nets']} / {fig['wirelength_nm'] / 1e6:.2f} mm")
    t.add_row("est. tokens/s (one user)", f"{fig['performance']['tokens_per_s_single']:,.0f}")
    out.print(t)
    run = json.loads((outdir / "run.json").read_text()) if (outdir / "run.json").is_file() else {}
    if run.get("router"):
        r = Table(title="router (PathFinder)")
        for col in ("iteration", "overused", "wirelength", "pres_fac", "time"):
            r.add_column(col, justify="right")
        for it in run["router"]:
            r.add_row(str(it["iteration"]), str(it["overused"]), f"{it['wirelength'] / 1e6:.2f} mm", f"{it['pres_fac']:.2f}", f"{it['seconds']:.2f} s")
        out.print(r)
    if run.get("seconds"):
        out.print(run_summary(run, doc))
    files = Table(title=escape(f"outputs in {outdir}/"))
    files.add_column("file")
    files.add_column("bytes", justify="right")
    files.add_column("what")
    what = {"chip.gds": "the two custom masks (GDSII)", "chip.oas": "the two custom masks (OASIS)", "chip.lyp": "KLayout layer properties",
            "netlist.json": "functional netlist",
            "graph.json": "layer dataflow graph", "floorplan.png": "floorplan image",
            "chip.overview.oas": "overview: tiles, blocks, routing (opens in seconds)", "klayout_session.py": "opens it all in KLayout"}
    roms = {k: v for k, v in doc["outputs"].items() if k.startswith("roms/")}
    for name, meta in doc["outputs"].items():
        if name not in roms:
            files.add_row(name, _size(meta["bytes"]), what.get(name, ""))
    if roms:
        files.add_row(f"roms/ ({len(roms)} files)", _size(sum(m["bytes"] for m in roms.values())),
                      "expected ROM digits, one file per block of tiles")
    files.add_row("manifest.json", "", "inputs, hashes, versions, figures")
    files.add_row("recipe.toml", "", "the resolved recipe: compiles to this chip again")
    out.print(files)
    out.print(f"next: [bold]{escape(f'taalas-compile verify {outdir}')}[/]", soft_wrap=True)
    large = doc["figures"]["fit"]["digits_total"] > MAX_OPEN_DIGITS
    out.print(f"view: [bold]{escape(shell(session_command(outdir)))}[/]"
              + (" (the overview: the masks are too large to open)" if large else ""), soft_wrap=True)
    part, other = (("--tile L0.q_proj.r0c0", "--block L0: its outline view and one view per tile") if large  # a large chip's block: too many vias for one
                   else ("--block L0", "--tile NAME"))
    out.print(f"part: [bold]{escape(f'taalas-compile view {outdir} {part} --open')}[/] (or {other}, --window X0,Y0,X1,Y1)", soft_wrap=True)


def compiled_system(outdir: Path, dies: list[dict]) -> None:
    """A multi-die system's compile: one row per die (its manifest), the system files, next steps."""
    first = dies[0]
    t = Table(title=escape(f"compiled {first['recipe']['name']} as a system of {first['system']['dies']} {first['die']['name']} dies "
                           f"({first['figures']['params']:,} parameters)"))
    for col in ("die", "blocks", "MAC tiles", "ROM digit cells", "bits / weight", "masks"):
        t.add_column(col, justify="left" if col == "blocks" else "right")
    for m in dies:
        fig, place = m["figures"], m["system"]
        mac = fig["fit"]["tiles"]["mac"]
        t.add_row(str(place["die"]), f"{place['blocks'][0]}..{place['blocks'][-1]}", f"{mac['used']:,} / {mac['available']:,}",
                  f"{fig['fit']['rom_digits']['used']:,}", f"{fig['bits_per_weight']:.3f}", _size(fig["masks"].get("bytes", 0)))
    out.print(t)
    missing = first["system"]["dies"] - len(dies)
    out.print(f"outputs in {escape(str(outdir))}/: system.json (the system manifest), system-netlist.json (the die-to-die links), "
              + ", ".join(f"die{m['system']['die']}/" for m in dies) + " (each a chip directory)"
              + (f"; {missing} more die(s) to compile with --only-die K" if missing else ""), soft_wrap=True)
    out.print(f"next: [bold]{escape(f'taalas-compile verify {outdir}')}[/]", soft_wrap=True)
    view_dir = outdir / f"die{dies[0]['system']['die']}"
    out.print(f"view: [bold]{escape(shell(session_command(view_dir)))}[/] (each die's masks open as a chip's)", soft_wrap=True)


def signoff(res: dict) -> None:
    t = Table(title=escape(f"sign-off of {res['dir']}"))
    t.add_column("check")
    t.add_column("result")
    t.add_column("violations", justify="right")
    for c in res["checks"]:
        t.add_row(c["name"], "[green]pass[/]" if c["passed"] else "[red]FAIL[/]", str(c["violations"]))
    out.print(t)
    emu = res["emulation"]
    if res.get("system"):
        system_emulation(emu)
    elif emu.get("ran"):
        out.print(f"emulator vs quantized reference: {emu['tokens']} tokens, logits {_exactness(emu)}; " + _vs_float(emu["vs_float"]), soft_wrap=True)
        if emu.get("streamed"):
            out.print(f"block by block, teacher-forced at every block boundary: {_blocks(emu['blocks'])}; chained end to end: "
                      f"{_exactness(emu['end_to_end'])}", soft_wrap=True)
    elif emu.get("skipped"):
        out.print(f"emulation skipped: {escape(emu['skipped'])}")
    for v in res["violations"][:20]:
        at = "" if v["category"].startswith("manifest") else f" at ({v['x_nm'] / 1000:.3f}, {v['y_nm'] / 1000:.3f}) µm"
        where = f" in {v['where']}" if v["where"] and not v["category"].startswith("manifest") else ""
        out.print(f"  [red]{escape(v['category'])}[/]{at}{escape(where)}: {escape(v['message'])}", soft_wrap=True)
    if len(res["violations"]) > 20:
        out.print(f"  … {sum(res['counts'].values()) - 20} more (use --json for all)")
    ex = res["extracted"]
    out.print(f"extracted {ex['vias']:,} vias, {ex['metal_shapes']:,} metal shapes, {ex['nets']} nets in {res['seconds']['total']:.1f} s")
    if not res["passed"]:
        where = res.get("markers_dir") or res["dir"]
        out.print("markers: [bold]" + escape(shell(session_command(Path(where)))) + "[/] (masks + markers); the first: [bold]"
                  + escape(f"taalas-compile view {where} --marker 1 --open") + "[/]", soft_wrap=True)
    out.print("[bold green]PASSED[/]" if res["passed"] else "[bold red]FAILED[/]")


def _exactness(r: dict) -> str:
    """"equal bit for bit" or where the first difference is."""
    return "equal bit for bit" if r.get("exact") else f"[bold red]differ[/]: {escape(describe(r['difference']))}"


def _vs_float(v: dict) -> str:
    return (f"vs float (reported): KL {_num(v['kl'], '.4f')}, top-1 agreement {_num(v['top1_agreement'], '.0%')}, "
            f"max |Δlogit| {_num(v['relative'], '.2%')} of the largest")


def _blocks(blocks: list[dict]) -> str:
    compared = [b for b in blocks if b.get("compared")]
    bad = [b for b in compared if not b["exact"]]
    if not bad:
        return f"{len(compared)} block outputs equal bit for bit"
    return (f"[bold red]{len(bad)} of {len(compared)} block outputs differ[/], the first {escape(bad[0]['block'])}: "
            f"{escape(describe(bad[0]['difference']))}")


def system_emulation(emu: dict) -> None:
    """The emulation lines of a multi-die system's sign-off: each die teacher-forced, then chained."""
    for k, e in emu["dies"].items():
        if "greedy_match" in e:
            out.print(f"die {k} (last, given the reference's input) vs quantized reference: {e['tokens']} tokens, logits {_exactness(e)}",
                      soft_wrap=True)
        elif e.get("streamed") and e.get("ran"):
            out.print(f"die {k}, block by block, teacher-forced at every block boundary: {_blocks(e['blocks'])} "
                      "(the link it sends: its last block's output)", soft_wrap=True)
        elif e.get("ran"):
            out.print(f"die {k} (given {escape(e['teacher_forced'])}): {escape(e['sends'])} {_exactness(e)}", soft_wrap=True)
        else:
            out.print(f"die {k}: emulation {escape(e.get('skipped') or e.get('error') or 'not run')}")
    chained = emu["system"].get("chained")
    if chained:
        out.print(f"dies chained through the links: logits {_exactness(chained)}; " + _vs_float(chained["vs_float"]), soft_wrap=True)


def generated(prompt: list[int], new: list[int], tok) -> None:
    if tok is None:
        out.print(" ".join(map(str, new)), markup=False)
    else:
        out.print(tok.decode(prompt + new), soft_wrap=True, markup=False)  # model text, printed as it is


def emulation(res, timing: bool) -> None:
    """What `emulate` ran (run_chip.Emulation): the text of each sequence, then timing and trace if asked."""
    for ids, new in zip(res.prompts, res.generated):
        generated(ids, new, res.tokenizer)
    if timing:
        t = res.timing
        out.print(f"cycle model: {t['tokens']} tokens, {t['sequences_in_flight']} sequence(s) in flight at {t['clock_mhz']:g} MHz: "
                  f"{t['latency_cycles_per_token']:,.0f} cycles ({t['latency_us_per_token']:.3f} us) per token"
                  + (f" over {t['dies']} dies, {t['link_us_per_token']:.3f} us of it on the links" if "dies" in t else "") + ", "
                  f"{t['tokens_per_s_single']:,.0f} tokens/s one user, {t['tokens_per_s_aggregate']:,.0f} tokens/s aggregate", soft_wrap=True)
    if res.trace is not None:
        tr = res.trace
        tab = Table(title=f"emulator vs quantized reference, {tr['tokens']} tokens teacher-forced")
        for col in ("stage", "emulator rms", "reference rms", "max |diff|", "relative", ""):
            tab.add_column(col, justify="left" if col == "stage" else "right")
        for r in tr["stages"]:
            tab.add_row(r["stage"], f"{r['emulator_rms']:.4g}", f"{r['reference_rms']:.4g}", f"{r['max_abs_diff']:.3g}",
                        f"{r['relative']:.2%}", "equal" if r["exact"] else "[bold red]differs[/]")
        out.print(tab)
        first = tr["first_difference"]
        if first:
            row = next(r for r in tr["stages"] if r["stage"] == first)
            out.print(f"first difference: [bold red]{escape(first)}[/], {escape(describe(row['difference']))}", soft_wrap=True)
        else:
            out.print("every stage equal bit for bit")
        if tr["saved"]:
            out.print(f"activations saved to {escape(str(tr['saved']))}")


def evaluation(res: dict) -> None:
    t = Table(title=escape(f"{res['recipe']} on {res['text']}") + f" ({res['tokens_scored']:,} tokens, context {res['context']})", show_header=False)
    t.add_row("perplexity, float", f"{res['ppl_float']:.4f}")
    t.add_row("perplexity, quantized", f"{res['ppl_quant']:.4f} ({res['ppl_increase']:+.1%})")
    t.add_row("KL(float ‖ quantized)", f"{res['kl']:.4f}")
    t.add_row("top-1 agreement", f"{res['top1_agreement']:.1%}")
    t.add_row("bits / weight (scales counted)", f"{res['bits_per_weight']:.3f}")
    out.print(t)


PLAN_SECTIONS = ("model", "fit", "performance", "capacity", "baseline", "cost", "masks", "schedule")
VALUE_WIDTH = 24  # a value column this wide holds every number with its unit; longer text values fold
SOURCE_MIN_WIDTH = 120  # narrower terminals (and pipes, 80 columns) get figure and value only; plan.md has every source


def plan(doc: dict, paths: dict) -> None:
    from taalas_compile.plan.render import fmt, value_text

    sub = doc["subject"]
    dies = f"{sub['dies']} x {sub['die']}"
    t = Table(title=escape(f"plan: {sub['name']}") + f" on {dies} ({'compiled chip' if sub['kind'] == 'chip' else 'recipe'})")
    rows = []
    for key in PLAN_SECTIONS:
        for f in doc[key]["figures"]:
            rows.append((escape(f["label"]), escape(value_text(f)), f"[dim]{f['source']['kind']}: {escape(f['source']['ref'])}[/]"))
        rows.append(None)
    wide = out.width >= SOURCE_MIN_WIDTH
    t.add_column("figure", overflow="fold", ratio=3 if wide else 2)
    t.add_column("value", justify="right", overflow="fold", ratio=1, min_width=min(max(len(r[1]) for r in rows if r), VALUE_WIDTH))
    if wide:
        t.add_column("source (plan.md has it in full)", no_wrap=True, overflow="ellipsis", ratio=2)
    for r in rows:
        if r is None:
            t.add_section()
        else:
            t.add_row(*(r if wide else r[:2]))
    out.print(t)
    if not wide:
        out.print("[dim](sources: plan.md and plan.json, or a terminal of 120 columns or more)[/]")
    if doc["fit"]["advice"]:
        out.print("[bold yellow]does not fit one die[/]; what would have to change:")
        for a in doc["fit"]["advice"]:
            out.print(f"  • {escape(a['text'])}")
    if doc["partition"]["dies"] > 1:
        st = doc["partition"]["tables"]["stages"]
        p = Table(title=st["title"])
        for col in st["columns"]:
            p.add_column(col, justify="right")
        for r in st["rows"]:
            p.add_row(*(fmt(v) for v in r))
        out.print(p)
    sch = doc["schedule"]
    labels = {x["id"]: x["label"] for x in sch["tasks"]}
    out.print("critical path: " + escape(" → ".join(labels[i] for i in sch["critical_path"])))
    for w in sch["whatif"]:
        out.print(f"what if {escape(w['label'])}: +{w['delay_weeks']:.1f} weeks{' (' + w['finish_date'] + ')' if w['finish_date'] else ''}")
    out.print(f"[dim]{escape(doc['performance']['assumptions'])}[/]")
    out.print("wrote " + ", ".join(p.name for p in paths.values()) + " in")
    out.print(escape(str(next(iter(paths.values())).parent)), soft_wrap=True)  # whole, to copy


def graph(name: str, doc: dict, saved: Path | None) -> None:
    t = Table(title=escape(name) + f": {len(doc['nodes'])} ops, {doc['params']:,} parameters")
    for col in ("node", "op", "out", "inputs", "params"):
        t.add_column(col, overflow="fold")
    for n in doc["nodes"]:
        params = ", ".join(f"{'x'.join(map(str, p['shape']))}" for p in n["params"])
        t.add_row(short_name(n["name"]), n["op"], "x".join(map(str, n["out_shape"])) or "-",
                  ", ".join(short_name(i) for i in n["inputs"]), params)
    out.print(t)
    if saved:
        out.print(f"saved {escape(str(saved))}")


def wrote(path: Path) -> None:
    out.print(f"wrote {escape(str(path))}", soft_wrap=True)


def recipes(rs) -> None:
    t = Table(title="recipes")
    for col in ("name", "die", "weights", "description"):
        t.add_column(col)
    for r in rs:
        src = "synthetic (or --weights)" if r.model.synthetic else f"--weights ({r.model.format})"
        t.add_row(escape(r.name), escape(r.target.die), escape(src), escape(r.description))
    out.print(t)


def dies(ds) -> None:
    t = Table(title="base dies")
    for col in ("name", "grid", "MAC / VU / SRAM tiles", "ROM digits", "SRAM", "clock", "description"):
        t.add_column(col)
    for d in ds:
        mac = len(d.sites("mac"))
        t.add_row(escape(d.name), f"{d.grid.n_cols} x {d.grid.n_rows}", f"{mac} / {len(d.sites('vu'))} / {len(d.sites('sram'))}",
                  f"{mac * d.tiles.mac.rows * d.tiles.mac.cols:,}", _size(len(d.sites("sram")) * d.tiles.sram.bytes),
                  f"{d.clock.mhz:.0f} MHz", escape(d.description))
    out.print(t)


def viewed(v) -> None:
    """A view written by `taalas-compile view` (`view/command.Viewed`)."""
    w = v.view
    out.print(f"view of {escape(w.region.label)}: {w.path} ({_size(w.bytes)}, {w.vias:,} vias; {w.copied} tile cell(s) copied whole, "
              f"{w.clipped} clipped) in {w.seconds:.1f} s", soft_wrap=True)
    if w.region.marker is not None:
        out.print(f"marker: {escape(w.region.marker.message)}", soft_wrap=True)
    if v.tiles:
        folder, vias = v.tiles[0].path.parent, [t.vias for t in v.tiles]
        out.print(f"tiles: {len(v.tiles)} exact views in {folder}/ ({_size(sum(t.bytes for t in v.tiles))}, {sum(vias):,} vias, "
                  f"at most {max(vias):,} in one): the block's vias exceed --max-vias, so its view above holds the routing, "
                  "tile outlines and names", soft_wrap=True)
    out.print(("opened: " if v.opened else "open: ") + f"[bold]{escape(shell(v.command))}[/]", soft_wrap=True)
    if v.tile_command:
        out.print(f"a tile: [bold]{escape(shell(v.tile_command))}[/]", soft_wrap=True)
