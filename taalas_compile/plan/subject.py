"""What a plan is about: a recipe (mapped here, on one die or split over several) or a compiled chip
(read from its directory). Both become a `Subject`: the model graph, the bits per tensor and one
`Stage` per die, each with its placement and routing demand — the IR every plan analysis reads."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import networkx as nx

from taalas_compile.backend.netlist import read_placement
from taalas_compile.chip_dir import chip_die, read_manifest
from taalas_compile.config.die import Die
from taalas_compile.config.recipe import LoraCfg, Recipe, load_recipe
from taalas_compile.die.load import load_die
from taalas_compile.errors import UserError
from taalas_compile.files import read_json
from taalas_compile.frontend.lower import lower_args
from taalas_compile.inputs import args_of
from taalas_compile.mapper.ir import Placement
from taalas_compile.mapper.legality import block_order
from taalas_compile.mapper.place import map_graph
from taalas_compile.mapper.refine import refine_placement
from taalas_compile.mapper.route import route_nets
from taalas_compile.plan.estimate import fit, fits_one_die, model_fit
from taalas_compile.plan.partition import (
    Cut,
    lora_reserve_bytes,
    partition_model,
    stage_graph,
)
from taalas_compile.quant.bits import assign_bits, bits_per_weight


@dataclass(frozen=True)
class Stage:
    index: int  # die number in pipeline order
    blocks: tuple[str, ...]
    placement: Placement
    tracks_used: dict | None  # worst tracks per channel from the router (None: not routed)
    wirelength_nm: int | None = None
    router_iterations: int | None = None
    mapped: Placement | None = None  # the mapper's placement before refinement (when refined here)


@dataclass
class Subject:
    kind: str  # "recipe" or "chip"
    name: str  # recipe name
    die: Die
    recipe: Recipe | None
    params: int
    bits_per_weight: float
    bits: dict[str, int]  # tensor -> 3 or 6
    numel: dict[str, int]  # tensor -> weights
    n_layers: int
    dim: int
    kv_bytes_per_token: int  # K and V of every layer for one position, die.arith.kv_bits
    context: int
    lora_reserve_bytes: int
    stages: list[Stage]
    chip_dir: Path | None = None
    manifest: dict = field(default_factory=dict)
    run: dict | None = None  # run.json of a compiled chip
    signoff: dict | None = None  # signoff/signoff.json once verified
    needs_one_die: dict | None = None  # tiles the whole model needs (recipes), and the die has
    _fits: dict = field(default_factory=dict, repr=False)

    def fit(self, st: Stage) -> dict:
        """plan/estimate.fit of a stage, computed once."""
        if st.index not in self._fits:
            self._fits[st.index] = fit(st.placement, self.die, st.tracks_used)
        return self._fits[st.index]


def _kv_per_token(args, die: Die) -> int:
    return 2 * args.n_layers * args.n_kv_heads * (args.dim // args.n_heads) * die.arith.kv_bits // 8


def from_recipe(r: Recipe, die: Die, route_stages: bool = False) -> Subject:
    """Map a recipe: placed, refined and routed when it fits one die; else partitioned over several
    dies and each stage mapped (placement refinement and routing per stage only with
    `route_stages`: they take ~20 s per hc1 stage, the mapping alone well under a second)."""
    args = args_of(r.model.architecture)
    g = lower_args(args)
    plan = assign_bits(g, r.quant, die)
    needs, total, have = model_fit(g, plan, die, r.target)
    if fits_one_die(total, have):
        start = map_graph(g, plan, die, r.target)
        pl = refine_placement(start, die)
        routing = route_nets(pl, die)
        stages = [Stage(0, tuple(b for b in needs if b != "io"), pl, routing.tracks_used, routing.wirelength(), len(routing.iterations), start)]
    else:
        stages = [_map_stage(g, plan, die, r, cut, args.n_layers, route_stages) for cut in partition_model(g, plan, die, r.target)]
    numel = numel_of(g)
    return Subject("recipe", r.name, die, r, args.n_params, bits_per_weight(g, plan, die), {k: s.bits for k, s in plan.items()},
                   numel, args.n_layers, args.dim, _kv_per_token(args, die), r.target.context,
                   lora_reserve_bytes(r.target.lora, numel, args.dim),
                   stages, needs_one_die={"need": total, "have": have})


def _map_stage(g: nx.DiGraph, plan, die: Die, r: Recipe, cut: Cut, n_layers: int, route: bool) -> Stage:
    """One die of a multi-die model: its stage graph through the ordinary mapper (and router)."""
    pl = map_graph(stage_graph(g, cut.blocks), plan, die, r.target)  # LoRA slots for this stage's layers only
    if not route:
        return Stage(cut.die_index, cut.blocks, pl, None)
    mapped, pl = pl, refine_placement(pl, die)
    routing = route_nets(pl, die)
    return Stage(cut.die_index, cut.blocks, pl, routing.tracks_used, routing.wirelength(), len(routing.iterations), mapped)


def numel_of(g: nx.DiGraph) -> dict[str, int]:
    return {p.name: p.numel for n in g.nodes for p in g.nodes[n]["op"].params if p.kind == "weight"}


def from_chip(d: Path, die_ref: str | None) -> Subject:
    man = read_manifest(d)
    die = load_die(die_ref) if die_ref else chip_die(d, man)
    pl, _ = read_placement(d)
    graph = read_json(d / "graph.json", "is this a compile output directory?")
    numel = {p["name"]: _prod(p["shape"]) for n in graph["nodes"] for p in n["params"] if p["kind"] == "weight"}
    arch = man["recipe"]["settings"]
    layers = [n for n in graph["nodes"] if n["op"] == "attention"]
    att = layers[0]["attrs"] if layers else {"n_kv_heads": 0, "head_dim": 0}
    dim = next((n["out_shape"][0] for n in graph["nodes"] if n["op"] == "embed"), 0)
    kv = 2 * len(layers) * att["n_kv_heads"] * att["head_dim"] * die.arith.kv_bits // 8
    fig = man["figures"]
    blocks = tuple(b for b in block_order(pl) if b != "io")
    stage = Stage(0, blocks, pl, None, fig.get("wirelength_nm"), fig.get("router_iterations"))
    run = _json(d / "run.json")
    signoff = _json(d / "signoff" / "signoff.json")
    return Subject("chip", man["recipe"]["name"], die, None, fig["params"], fig["bits_per_weight"], dict(man["bits"]), numel,
                   len(layers), dim, kv, arch["target"]["context"],
                   lora_reserve_bytes(LoraCfg(**arch["target"].get("lora", {})), numel, dim), [stage],
                   chip_dir=d, manifest=man, run=run, signoff=signoff)


def from_system(d: Path, die_ref: str | None) -> Subject:
    """A compiled multi-die system: one stage per die, each read back as a chip (`from_chip`)."""
    from taalas_compile.system.files import die_manifests, read_system

    s, doc = read_system(d)
    die_manifests(d, s, doc)
    dies = [from_chip(d / st.dir, die_ref) for st in s.dies]
    weights = [m.manifest["figures"]["weights_quantized"] for m in dies]
    stages = [replace(sub.stages[0], index=st.index, blocks=st.blocks) for st, sub in zip(s.dies, dies)]
    first = dies[0]
    return Subject("chip", first.name, first.die, None, first.params,
                   sum(sub.bits_per_weight * w for sub, w in zip(dies, weights)) / max(sum(weights), 1),
                   {k: v for sub in dies for k, v in sub.bits.items()}, {k: v for sub in dies for k, v in sub.numel.items()},
                   sum(sub.n_layers for sub in dies), s.dim, sum(sub.kv_bytes_per_token for sub in dies), first.context,
                   sum(sub.lora_reserve_bytes for sub in dies), stages, chip_dir=d, manifest=first.manifest,
                   signoff=_json(d / "signoff" / "signoff.json"))


def _prod(shape: list[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _json(p: Path) -> dict | None:
    try:
        return json.loads(p.read_text()) if p.is_file() else None
    except json.JSONDecodeError as e:
        raise UserError(f"{p}: not valid JSON ({e.msg})") from None


def load_subject(target: str, die_ref: str | None = None, route_stages: bool = False) -> Subject:
    """A compiled chip directory, a Hugging Face checkpoint directory (its derived recipe; a model no
    shipped die holds is split over the largest), or a recipe with a [model.architecture] to map."""
    p = Path(target)
    if p.is_dir() and (p / "config.json").is_file() and not (p / "manifest.json").is_file():
        from taalas_compile.derive import derive_recipe

        r = derive_recipe(p, die_ref, several_dies=True)
        return from_recipe(r, load_die(r.target.die), route_stages)
    if p.is_dir() and (p / "system.json").is_file():
        return from_system(p, die_ref)
    if p.is_dir():
        return from_chip(p, die_ref)
    r = load_recipe(target)
    if r.model.architecture is None:
        raise UserError(f"recipe {r.name} has no [model.architecture] to plan from; compile it and plan the output directory")
    return from_recipe(r, load_die(die_ref or r.target.die), route_stages)
