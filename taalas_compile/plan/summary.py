"""The first planning summary: fit, utilization, estimated tokens/s (data; the CLI renders it)."""

from __future__ import annotations

from pathlib import Path

from taalas_compile.backend.netlist import read_netlist
from taalas_compile.backend.volume import mask_bytes_estimate
from taalas_compile.config.die import load_die
from taalas_compile.config.recipe import load_recipe
from taalas_compile.errors import UserError
from taalas_compile.frontend.lower import lower_args
from taalas_compile.inputs import args_of
from taalas_compile.mapper.place import map_graph
from taalas_compile.mapper.refine import refine_placement
from taalas_compile.mapper.route import route_nets
from taalas_compile.plan.estimate import fit, performance
from taalas_compile.plan.placement_report import placement_report
from taalas_compile.quant.plan import assign_bits, bits_per_weight
from taalas_compile.reference import read_manifest


def plan_summary(target: str, die_ref: str | None = None) -> dict:
    p = Path(target)
    if p.is_dir():
        man = read_manifest(p)
        pl, _, _ = read_netlist(p)
        die = load_die(die_ref or man["die"]["name"])
        f = fit(pl, die)
        return {"placement": placement_report(pl, die), "source": f"compiled chip {p}", "recipe": man["recipe"]["name"], "die": die.name,
                "params": man["figures"]["params"], "bits_per_weight": man["figures"]["bits_per_weight"],
                "fit": man["figures"]["fit"], "performance": performance(pl, die),
                "mask_bytes": sum(v["bytes"] for k, v in man["outputs"].items() if k == "chip.gds"), "mask_bytes_measured": True,
                "digits": f["digits_total"]}
    r = load_recipe(target)
    if r.model.architecture is None:
        raise UserError(f"recipe {r.name} has no [model.architecture] to plan from; compile it and plan the output directory")
    die = load_die(die_ref or r.target.die)
    args = args_of(r.model.architecture)
    g = lower_args(args)
    bits = assign_bits(g, r.quant, die)
    start = map_graph(g, bits, die, r.target)
    pl = refine_placement(start, die)
    routing = route_nets(pl, die)
    f = fit(pl, die, routing.tracks_used)
    return {"placement": placement_report(pl, die, before=start), "routed_wirelength_nm": routing.wirelength(),
            "router_iterations": len(routing.iterations), "source": f"recipe {r.name} (estimate, no weights needed)", "recipe": r.name, "die": die.name,
            "params": args.n_params, "bits_per_weight": bits_per_weight(g, bits, die), "fit": f,
            "performance": performance(pl, die), "mask_bytes": mask_bytes_estimate(f["digits_total"]),
            "mask_bytes_measured": False, "digits": f["digits_total"]}
