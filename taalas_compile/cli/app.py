"""The taalas-compile command line. Commands only parse options and delegate; `show.py` renders.

`taalas-compile RECIPE` is `taalas-compile compile RECIPE`. Errors a user can fix print one red
line and exit 2; `--debug` (anywhere on the line) shows the traceback instead.
"""

from __future__ import annotations

import errno
import json
import signal
import sys
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Annotated

import click
import typer

from taalas_compile.cli import show
from taalas_compile.errors import UserError
from taalas_compile.version import __version__

app = typer.Typer(
    name="taalas-compile",
    help="Hard-wire a Llama-family model into the two customisable masks of a fixed base die.\n\n"
    "Run `taalas-compile RECIPE` to compile (same as `taalas-compile compile RECIPE`).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)

class MaskFormat(str, Enum):
    gds = "gds"
    oasis = "oasis"


class ExecutorKind(str, Enum):
    local = "local"
    dask = "dask"


class Precision(str, Enum):
    float = "float"
    quant = "quant"


Weights = Annotated[Path | None, typer.Option("--weights", "-w", help="Checkpoint: llama2.c .bin or Hugging Face directory (the recipe says which).")]
Tokenizer = Annotated[Path | None, typer.Option("--tokenizer", "-t", help="Tokenizer: llama2.c tokenizer .bin or Hugging Face tokenizer.json.")]
DieOpt = Annotated[str | None, typer.Option("--die", help="Base die: a name from `taalas-compile dies` or a .toml path (default: the recipe's).")]
Recipe = Annotated[str, typer.Argument(help="Recipe name (`taalas-compile recipes`), a .toml path, or a Hugging Face checkpoint directory (config.json, *.safetensors, tokenizer.json): its recipe is derived (`taalas-compile recipe DIR` shows it).")]
ChipDir = Annotated[Path, typer.Argument(help="A compile output directory, e.g. out/tiny-llama.")]
Calib = Annotated[Path | None, typer.Option("--calib", help="Calibration data for GPTQ and measured bits: a text file (tokenized with the model's tokenizer) or a .ids file of token ids (default: the recipe's [quant.calib]).")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")]


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


DeviceOpt = Annotated[Device | None, typer.Option("--device", help="Where calibrated quantization runs its forward passes, Hessians and GPTQ: cuda, cpu, or auto (cuda if torch sees one). Default: the recipe's [quant] device.")]


@app.command("compile")
def compile_cmd(recipe: Recipe, weights: Weights = None, tokenizer: Tokenizer = None, die: DieOpt = None, calib: Calib = None,
                out: Annotated[Path | None, typer.Option("--out", "-o", help="Output directory (default out/RECIPE).")] = None,
                fmt: Annotated[MaskFormat | None, typer.Option("--format", help="Mask format: gds (GDSII) or oasis (default: the recipe's [output] format).")] = None,
                jobs: Annotated[int | None, typer.Option("--jobs", "-j", help="Local worker processes for the per-block work (default: one per core, as many as memory holds; one process for a small model).")] = None,
                executor: Annotated[ExecutorKind, typer.Option(help="Where the per-block work runs: local processes or a Dask cluster.")] = ExecutorKind.local,
                scheduler: Annotated[str | None, typer.Option(help="Dask scheduler address for --executor dask, e.g. tcp://10.0.0.5:8786.")] = None,
                device: DeviceOpt = None,
                only_die: Annotated[int | None, typer.Option("--only-die", help="Of a model split over several dies, compile die K alone into DIR/dieK (with the system files); dies built anywhere assemble into the same bytes as one whole compile.")] = None,
                recipe_out: Annotated[Path | None, typer.Option("--recipe-out", help="Only write the resolved recipe (TOML) here, a starting point for hand tuning; compile nothing.")] = None) -> None:
    """Compile RECIPE into masks (GDSII or OASIS), layer properties, netlist and manifest.

    RECIPE may be a Hugging Face checkpoint directory: the recipe is derived from its config.json
    (die: the smallest shipped one it fits) and written into the output as recipe.toml, which
    compiles to the same chip again with the same weights.

    Output is identical byte for byte for any --jobs or executor. An interrupted compile resumes:
    finished layer blocks are kept beside the output directory until the compile completes.

    Examples:

        taalas-compile ./my-llama

        taalas-compile tiny-llama

        taalas-compile stories260k --weights ../shared/models/stories260K/stories260K.bin --tokenizer ../shared/models/stories260K/tok512.bin

        taalas-compile llama-3.1-8b

        taalas-compile llama-3.1-8b --jobs 4 --out /scratch/llama-3.1-8b
    """
    from taalas_compile.executor import ExecutorCfg
    from taalas_compile.inputs import resolve
    from taalas_compile.pipeline import CompileOptions, compile_chip, with_quant_device

    inp = with_quant_device(resolve(recipe, weights, tokenizer, die, calib), device.value if device else None)
    if recipe_out is not None:
        from taalas_compile.config.recipe_toml import recipe_toml
        from taalas_compile.pipeline import with_output_format

        write_text(recipe_out, recipe_toml(with_output_format(inp, fmt.value if fmt else inp.recipe.output.format).recipe))
        show.wrote(recipe_out)
        return
    out = out or Path("out") / inp.recipe.name
    opts = CompileOptions(fmt=(fmt.value if fmt else inp.recipe.output.format),
                          executor=ExecutorCfg(jobs=jobs, kind=executor.value, scheduler=scheduler), only_die=only_die)
    with show.steps("compile") as step:
        doc = compile_chip(inp, out, step, opts, bar=step.bar)
    if "system" in doc:
        from taalas_compile.system.files import built_dies

        show.compiled_system(out, built_dies(out))
    else:
        show.compiled(out, doc)


@app.command()
def verify(chip: ChipDir, json_out: JsonFlag = False,
           tokens: Annotated[int, typer.Option(help="Tokens the emulator runs against the reference.")] = 8,
           jobs: Annotated[int | None, typer.Option("--jobs", "-j", help="Worker processes reading the ROM tiles of a chip signed off cell by cell (default: one per core, as many as half the memory holds).")] = None,
           die: Annotated[int | None, typer.Option("--die", help="Of a multi-die system: sign off die K alone.")] = None) -> None:
    """Sign off a compiled chip: DRC, LVS against the netlist, emulation of the extracted chip.

    A multi-die system is signed off die by die (findings named with the die) and emulated with
    its dies teacher-forced at the die boundaries.
    Exit code 0 only if every check passes; the findings do not depend on --jobs.
    Example: `taalas-compile verify out/tiny-llama`
    """
    from taalas_compile.signoff.system import verify_dir

    with show.steps("verify", quiet=json_out) as step:
        res = verify_dir(chip, tokens, step, jobs, die)
    if json_out:
        print(json.dumps(res, indent=1))
    else:
        show.signoff(res)
    raise typer.Exit(0 if res["passed"] else 1)


@app.command()
def view(chip: ChipDir,
         tile: Annotated[str | None, typer.Option(help="A tile, by its netlist name (e.g. L0.q_proj.r0c0).")] = None,
         block: Annotated[str | None, typer.Option(help="A layer block: io, head, L0, L1, ..., tail.")] = None,
         window: Annotated[str | None, typer.Option(help="A box on the die: X0,Y0,X1,Y1 in µm, origin lower left.")] = None,
         marker: Annotated[int | None, typer.Option(help="The Nth violation (from 1) of the sign-off's marker database.")] = None,
         open_it: Annotated[bool, typer.Option("--open", help="Start KLayout on the view (when installed).")] = False,
         max_vias: Annotated[int, typer.Option(help="Most vias in one view (KLayout needs about 21 bytes a via: the default opens in about 3 GiB); a larger tile or window is refused, a larger block split into tile views.")] = 150_000_000) -> None:
    """Cut a part of the masks out into a small layout (DIR/view/), with the overview as context.

    The view holds exactly the masks' vias in the region; a tile opens in seconds even for the 8B
    chip, whose masks no machine can open whole. A layer block above --max-vias (every 8B block:
    ~680 M vias) is written as its abstract (routing, tile outlines and names) plus one exact view
    per tile (DIR/view/block-L0/). Prints the KLayout command (or runs it: --open).

    Examples:

        taalas-compile view out/llama-3.1-8b --tile L0.q_proj.r0c0 --open

        taalas-compile view out/tiny-llama --block L0

        taalas-compile view out/tiny-llama --window 0,0,120,80

        taalas-compile view out/tiny-llama --marker 1
    """
    from taalas_compile.view.command import Selection, view_chip

    with show.steps("view") as step:  # a block above --max-vias is written tile by tile
        viewed = view_chip(chip, Selection(tile, block, window, marker), open_it, max_vias,
                           show.counted(step, f"{block}: over --max-vias, its abstract and one view per tile", "tile views"))
    show.viewed(viewed)


@app.command()
def emulate(chip: ChipDir,
            prompt: Annotated[list[str] | None, typer.Option(help="Prompt text (token ids separated by spaces when the chip has no tokenizer); repeat for several sequences in flight.")] = None,
            tokens: Annotated[int, typer.Option(help="Tokens to generate.")] = 32,
            lora: Annotated[Path | None, typer.Option(help="LoRA adapter directory (PEFT: adapter_config.json + adapter_model.safetensors), loaded into the chip's SRAM.")] = None,
            timing: Annotated[bool, typer.Option(help="Also print the cycle model's latency and tokens/s for this run.")] = False,
            trace: Annotated[bool, typer.Option(help="Compare per-layer activations with the quantized reference bit for bit; name the first stage that differs.")] = False,
            trace_out: Annotated[Path | None, typer.Option(help="Save the traced activations of both sides here (safetensors).")] = None) -> None:
    """Run the netlist emulator on a compiled chip and print what it generates.

    Examples: `taalas-compile emulate out/stories260k --prompt "Once upon a time" --tokens 40`,
    `taalas-compile emulate out/tiny-llama --prompt "1 5" --lora my-adapter --timing --trace`
    """
    from taalas_compile.run_chip import emulate_chip

    show.emulation(emulate_chip(chip, prompt or [""], tokens, lora, trace, trace_out), timing)


@app.command()
def generate(recipe: Recipe, weights: Weights = None, tokenizer: Tokenizer = None, die: DieOpt = None, calib: Calib = None,
             prompt: Annotated[str, typer.Option(help="Prompt text (token ids when there is no tokenizer).")] = "",
             tokens: Annotated[int, typer.Option(help="Tokens to generate.")] = 32,
             precision: Annotated[Precision, typer.Option(help="float: the checkpoint as is; quant: the etched codes and scales on the die's exact arithmetic (what emulate prints).")] = Precision.float,
             lora: Annotated[Path | None, typer.Option(help="LoRA adapter directory (PEFT), applied as the chip applies it.")] = None) -> None:
    """Greedy generation with the PyTorch reference model.

    Example: `taalas-compile generate stories260k -w ../shared/models/stories260K/stories260K.bin -t ../shared/models/stories260K/tok512.bin`
    """
    from taalas_compile.run_chip import generate_reference

    show.generated(*generate_reference(recipe, weights, tokenizer, die, prompt, tokens, precision.value, calib, lora))


@app.command("eval")
def eval_cmd(recipe: Recipe, text: Annotated[Path, typer.Option("--text", help="Text file to score.")],
             weights: Weights = None, tokenizer: Tokenizer = None, die: DieOpt = None, calib: Calib = None,
             context: Annotated[int, typer.Option(help="Window length including BOS.")] = 256,
             max_tokens: Annotated[int | None, typer.Option(help="Score only the first N tokens of the text.")] = None,
             json_out: JsonFlag = False) -> None:
    """Perplexity of the float and the quantized reference, KL divergence, top-1 agreement, bits/weight.

    Example: `taalas-compile eval stories260k -w ../shared/models/stories260K/stories260K.bin -t ../shared/models/stories260K/tok512.bin --text ../shared/models/tinystories_text/tinystories.txt --max-tokens 20000`
    """
    from taalas_compile.run_chip import evaluate

    res = evaluate(recipe, weights, tokenizer, die, text, context, max_tokens, calib)
    print(json.dumps(res, indent=1)) if json_out else show.evaluation(res)


@app.command()
def plan(target: Annotated[str, typer.Argument(help="A recipe, a compile output directory, or a Hugging Face checkpoint directory (its derived recipe).")], die: DieOpt = None,
         start: Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d"], help="First day of the schedule (YYYY-MM-DD); without it, weeks from the start.")] = None,
         change_week: Annotated[float, typer.Option(help="What-if: the model changes after this many weeks.")] = 4.0,
         out: Annotated[Path | None, typer.Option("--out", "-o", help="Where to write plan.json, plan.html, plan.md (default DIR/plan, or out/RECIPE/plan).")] = None,
         route_stages: Annotated[bool, typer.Option(help="Multi-die: also refine and route every die's stage (about 20 s per hc1 die).")] = False,
         what_if: Annotated[list[str] | None, typer.Option("--what-if", help="KEY=NUMBER, repeatable: clock_mhz, jobs, mask_slip_weeks, users, "
                                                           "a [fab] weeks key or a cost parameter (docs/planning.md).")] = None,
         cost: Annotated[Path | None, typer.Option("--cost", help="TOML file of cost parameters (key = number) replacing the defaults.")] = None,
         json_out: JsonFlag = False) -> None:
    """Planning report: fit, floorplan, performance, cost, mask data, schedule, multi-die partition.

    Writes plan.html (opens offline), plan.md and plan.json (docs/plan.schema.json) and prints a summary.

    Examples: `taalas-compile plan out/tiny-llama --start 2026-12-01`, `taalas-compile plan llama-3.1-70b`,
    `taalas-compile plan llama-3.1-8b --what-if clock_mhz=800 --what-if mask_slip_weeks=2`
    """
    from taalas_compile.plan.write import make_plan

    doc, paths = make_plan(target, die, start.date() if start else None, change_week, out, route_stages, tuple(what_if or ()),
                           str(cost) if cost else None)
    print(json.dumps(doc, indent=1, sort_keys=True)) if json_out else show.plan(doc, paths)


@app.command()
def graph(recipe: Recipe, json_path: Annotated[Path | None, typer.Option("--json", help="Also save the graph as JSON here.")] = None) -> None:
    """Show the layer dataflow graph of a recipe's model (no weights needed).

    Example: `taalas-compile graph llama-3.1-8b --json out/llama-3.1-8b.graph.json`
    """
    from taalas_compile.derive import recipe_of
    from taalas_compile.frontend.ir import graph_to_json
    from taalas_compile.frontend.lower import lower_args
    from taalas_compile.inputs import args_of

    r = recipe_of(recipe, several_dies=True)
    if r.model.architecture is None:
        raise UserError(f"recipe {r.name} has no [model.architecture]; its graph comes from a checkpoint")
    doc = graph_to_json(lower_args(args_of(r.model.architecture)))
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(doc, indent=1) + "\n")
    show.graph(r.name, doc, json_path)


@app.command("recipe")
def recipe_cmd(recipe: Recipe, die: Annotated[str | None, typer.Option("--die", help="Base die: a name from `taalas-compile dies` or a .toml path (default: the recipe's; for a checkpoint directory the smallest shipped die it fits).")] = None,
               out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the TOML here (default: print it).")] = None) -> None:
    """Print (or write) the recipe a compile of RECIPE would use, every setting stated: for a
    checkpoint directory the derived one, a starting point for hand tuning.

    Examples: `taalas-compile recipe ./my-llama -o my-llama.toml`, `taalas-compile recipe tiny-llama --die hc1`
    """
    from taalas_compile.config.recipe_toml import recipe_toml
    from taalas_compile.derive import recipe_of

    text = recipe_toml(recipe_of(recipe, die))
    if out is None:
        print(text, end="")
    else:
        write_text(out, text)
        show.wrote(out)


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@app.command()
def recipes() -> None:
    """List the recipes that ship in recipes/."""
    from taalas_compile.config.recipe import available_recipes, load_recipe

    show.recipes([load_recipe(n) for n in available_recipes()])


@app.command()
def dies() -> None:
    """List the base dies that ship in base_die/."""
    from taalas_compile.die.load import available_dies, load_die

    show.dies([load_die(n) for n in available_dies()])


@app.command()
def version() -> None:
    """Print the compiler version."""
    print(__version__)


_CLICKS = [click.exceptions]
try:  # newer typer releases carry their own copy of click, with their own exception classes
    from typer import _click as _typer_click

    _CLICKS.append(_typer_click.exceptions)
except ImportError:
    pass
_EXIT = (click.exceptions.Exit, typer.Exit)
_CLICK_ERROR = tuple(m.ClickException for m in _CLICKS)
_ABORT = (click.exceptions.Abort, typer.Abort)


def _with_default_command(argv: list[str]) -> list[str]:
    commands = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    if argv and not argv[0].startswith("-") and argv[0] not in commands:
        return ["compile", *argv]
    return argv


_STOPPED: list[int] = []  # the signal that stopped this run, if any


def _stop(signum, frame) -> None:
    """SIGINT (Ctrl-C) or SIGTERM (a farm scheduler or CI killing the job): stop like Ctrl-C —
    workers stopped, finished blocks kept, earlier outputs untouched — and exit 128 + the signal,
    as a shell reports a killed job. Recorded here because click turns a KeyboardInterrupt into a
    returned 130 when not in standalone mode, which hides which signal it was."""
    _STOPPED.append(signum)
    raise KeyboardInterrupt


def _install_signal_handlers() -> None:
    signal.signal(signal.SIGTERM, _stop)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # a background job of a shell ignores Ctrl-C: keep it so
        signal.signal(signal.SIGINT, _stop)


def _exit_stopped(default: int = 130) -> None:
    signum = _STOPPED[0] if _STOPPED else signal.SIGINT
    show.error("terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted")
    sys.exit(128 + signum if _STOPPED else default)


# Errors of the file system a user fixes (a read-only or full disk, a file where a directory must
# be): one line naming the path, exit 2. Any other OSError is a bug and keeps its traceback.
_USER_OS_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR,
                   errno.EISDIR, errno.EEXIST, errno.ENAMETOOLONG, errno.EFBIG, errno.ENOENT}


def _os_error(e: OSError) -> str:
    where = f"{e.filename}: " if e.filename else ""
    hint = "; free some space or choose another --out" if e.errno in (errno.ENOSPC, errno.EDQUOT) else ""
    return f"{where}{e.strerror or e}{hint}"


def main(argv: list[str] | None = None) -> None:
    """The console script. Exit codes: 0 success (verify: every check passed), 1 verify FAILED,
    2 a user error (one red line), 130 interrupted (SIGINT), 143 terminated (SIGTERM)."""
    _STOPPED.clear()
    _install_signal_handlers()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = _with_default_command([a for a in argv if a != "--debug"])
    try:
        # standalone_mode=False: click *returns* the code of typer.Exit instead of exiting with it
        code = app(args=argv, prog_name="taalas-compile", standalone_mode=False)
    except UserError as e:
        if debug:
            raise
        show.error(str(e))
        sys.exit(2)
    except _EXIT as e:
        sys.exit(e.exit_code)
    except _CLICK_ERROR as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # `taalas-compile` alone: the help is the answer
            e.show()
        else:  # a bad option or argument: one line, like every other user error
            ctx = getattr(e, "ctx", None)
            show.error(e.format_message() + (f" (see `{ctx.command_path} --help`)" if ctx is not None else ""))
        sys.exit(e.exit_code)
    except (*_ABORT, KeyboardInterrupt):
        _exit_stopped()
    except OSError as e:
        if debug or e.errno not in _USER_OS_ERRORS:
            raise
        show.error(_os_error(e))
        sys.exit(2)
    if _STOPPED:  # click caught the KeyboardInterrupt and returned 130
        _exit_stopped()
    sys.exit(code if isinstance(code, int) else 0)
