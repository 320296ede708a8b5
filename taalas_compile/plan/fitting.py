"""Fit of a plan: utilization per die and per layer block, the 3/6-bit allocation, and what to
change when the model does not fit one die (data only)."""

from __future__ import annotations

import math
import re

from taalas_compile.mapper.ir import Role
from taalas_compile.plan.estimate import tile_digits
from taalas_compile.plan.figures import fig, table
from taalas_compile.plan.placement_report import placement_report
from taalas_compile.plan.subject import Subject

FIT = "plan/estimate.py fit(): used tiles and digit cells of the placement against the die's sites"


def fit_section(s: Subject) -> dict:
    rows, figs = [], []
    for st in s.stages:
        f = s.fit(st)
        rt = f.get("routing") or s.manifest.get("figures", {}).get("fit", {}).get("routing")
        rows.append([st.index, f["tiles"]["mac"]["utilization"], f["rom_digits"]["utilization"], f["tiles"]["vu"]["utilization"],
                     f["sram_bytes"]["utilization"], rt["utilization"] if rt else None, f["rom_digits"]["used"], f["sram_bytes"]["kv"], f["sram_bytes"]["lora"]])
    if len(s.stages) == 1:
        f = s.fit(s.stages[0])
        figs += [fig("mac_tiles", "MAC tiles used", f["tiles"]["mac"]["used"], f"of {f['tiles']['mac']['available']:,}", "computed", FIT),
                 fig("rom_utilization", "ROM digit cells used", f["rom_digits"]["utilization"], "fraction", "computed", FIT),
                 fig("vu_utilization", "vector units used", f["tiles"]["vu"]["utilization"], "fraction", "computed", FIT),
                 fig("sram_utilization", "SRAM used (KV cache + LoRA reserve)", f["sram_bytes"]["utilization"], "fraction", "computed", FIT)]
        if "routing" in f:
            figs.append(fig("routing_utilization", "worst routing channel", f["routing"]["utilization"], "fraction of tracks", "computed",
                            "mapper/route.py PathFinder: most tracks used in one channel / [routing] channel_tracks"))
        elif "routing" in s.manifest.get("figures", {}).get("fit", {}):
            rt = s.manifest["figures"]["fit"]["routing"]
            figs.append(fig("routing_utilization", "worst routing channel", rt["utilization"], "fraction of tracks", "measured",
                            f"{s.chip_dir}/manifest.json figures.fit.routing (the compile's router)"))
    figs.append(fig("dies", "dies", len(s.stages), "dies", "computed", "plan/partition.py: fewest dies the layer blocks fit on"))
    figs += placement_figures(s)
    out = {"figures": figs,
           "tables": {"dies": table("utilization per die", ["die", "MAC tiles", "ROM cells", "vector units", "SRAM", "routing", "ROM digits used", "KV bytes", "LoRA bytes"],
                                    rows, "computed", FIT + "; routing from mapper/route.py"),
                      "blocks": block_table(s),
                      "bits_by_tensor": bits_by_tensor(s),
                      "bits_by_layer": bits_by_layer(s)},
           "fits_one_die": len(s.stages) == 1,
           "advice": advice(s)}
    return out


def placement_figures(s: Subject) -> list[dict]:
    """Wirelength and the worst pipeline stage of each die (plan/placement_report.py), routed wirelength."""
    out = []
    for st in s.stages:
        pr = placement_report(st.placement, s.die, before=st.mapped)
        d = f" (die {st.index})" if len(s.stages) > 1 else ""
        ref = "plan/placement_report.py: half-perimeter wirelength of every net"
        out.append(fig(f"hpwl_mm_{st.index}", f"placement wirelength (HPWL){d}", pr["hpwl_nm"] / 1e6, "mm", "computed", ref))
        if "hpwl_change" in pr:
            out.append(fig(f"hpwl_change_{st.index}", f"wirelength change by placement refinement{d}", pr["hpwl_change"], "fraction", "computed",
                           ref + ", refined (mapper/refine.py) vs as mapped"))
        ws = pr["worst_stage"]
        out.append(fig(f"worst_block_{st.index}", f"slowest layer block{d}", f"{ws['block']}: {ws['cycles_critical']:,.0f} cycles", "", "computed",
                       "plan/placement_report.py stage_cycles(): critical path through the block's tiles"))
        if st.wirelength_nm is not None:
            kind, ref = ("measured", f"{s.chip_dir}/manifest.json figures.wirelength_nm") if s.kind == "chip" else ("computed", "mapper/route.py PathFinder")
            out.append(fig(f"routed_mm_{st.index}", f"routed wirelength{d}", st.wirelength_nm / 1e6, "mm", kind, f"{ref}, {st.router_iterations} iteration(s)"))
    return out


def block_table(s: Subject) -> dict:
    """Per layer block: MAC tiles, their ROM fill, vector units and SRAM tiles."""
    cells = s.die.tiles.mac.rows * s.die.tiles.mac.cols
    rows = []
    for st in s.stages:
        for b in st.blocks:
            ts = [t for t in st.placement.tiles if t.block == b]
            mac = [t for t in ts if t.kind == "mac"]
            digits = sum(tile_digits(t) for t in mac)
            rows.append([b, st.index, len(mac), digits / (len(mac) * cells) if mac else 0.0,
                         sum(t.kind == "vu" for t in ts), sum(t.kind == "sram" for t in ts), digits])
    return table("utilization per layer block", ["block", "die", "MAC tiles", "ROM fill", "vector units", "SRAM tiles", "ROM digits"], rows, "computed",
                 "plan/estimate.py tile_digits(): digits used / digit cells of the block's MAC tiles ([tiles] mac rows x cols)")


def _kind_of(name: str) -> str:
    m = re.match(r"model\.layers\.\d+\.(?:self_attn|mlp)\.(\w+)\.weight", name)
    return m.group(1) if m else {"model.embed_tokens.weight": "embed_tokens"}.get(name, name.removesuffix(".weight"))


def _layer_of(name: str) -> str:
    m = re.match(r"model\.layers\.(\d+)\.", name)
    return f"L{m.group(1)}" if m else ("head" if "embed" in name else "tail")


def _hist(s: Subject, key) -> list[list]:
    acc: dict[str, list[int]] = {}
    for name, bits in s.bits.items():
        row = acc.setdefault(key(name), [0, 0])
        row[0 if bits == 3 else 1] += s.numel.get(name, 0)
    return [[k, a, b, b / (a + b) if a + b else 0.0] for k, (a, b) in acc.items()]


def _bits_ref(s: Subject) -> tuple[str, str]:
    if s.kind == "chip":
        return "measured", f"{s.chip_dir}/manifest.json bits (the allocation the chip was compiled with)"
    return "recipe", f"recipe {s.name} [quant] rules (quant/bits.py assign_bits)"


def bits_by_tensor(s: Subject) -> dict:
    kind, ref = _bits_ref(s)
    return table("weights at 3 and 6 bits per tensor kind", ["tensor", "3-bit weights", "6-bit weights", "6-bit share"], _hist(s, _kind_of), kind, ref)


def bits_by_layer(s: Subject) -> dict:
    kind, ref = _bits_ref(s)
    rows = _hist(s, _layer_of)
    order = {"head": -1, "tail": 10**9}
    rows.sort(key=lambda r: order.get(r[0], int(r[0][1:]) if r[0][1:].isdigit() else 0))
    return table("weights at 3 and 6 bits per layer", ["layer", "3-bit weights", "6-bit weights", "6-bit share"], rows, kind, ref)


def advice(s: Subject) -> list[dict]:
    """What would have to change for the model to fit one die (empty when it fits)."""
    if s.needs_one_die is None or len(s.stages) == 1:
        return []
    need, have = s.needs_one_die["need"], s.needs_one_die["have"]
    out = []
    for k in ("mac", "vu", "sram"):
        if need[k] > have[k]:
            out.append({"text": f"{k} tiles: {need[k]:,} needed, {have[k]:,} on die {s.die.name} ({need[k] / have[k]:.2f}x)",
                        "source": {"kind": "computed", "ref": "mapper/place.py tile_needs() against the die's sites"}})
    six = sum(n for t, n in s.numel.items() if s.bits.get(t) == 6)
    total = sum(s.numel.values())
    if six:
        out.append({"text": f"all weights at 3 bits: {six / total:.0%} of the weights are at 6 bits now; 3 bits halves their digit cells "
                            f"(quality cost: llama.cpp measured Q3_K_S at +26% perplexity on Llama-3-8B)",
                    "source": {"kind": "cited", "ref": "llama.cpp perplexity table for Llama-3-8B, wikitext-2 (github.com/ggml-org/llama.cpp, tools/perplexity/README.md)"}})
    if need["sram"] > have["sram"]:
        out.append({"text": f"KV cache: a shorter context (now {s.context:,}) or fewer sequences shrinks the SRAM need", "source": {"kind": "recipe", "ref": "[target] context, sequences"}})
    out.append({"text": f"split over {len(s.stages)} {s.die.name} dies as balanced pipeline stages (the partition below)",
                "source": {"kind": "computed", "ref": "plan/partition.py partition_model()"}})
    factor = math.ceil(need["mac"] / have["mac"])
    out.append({"text": f"or a die with at least {factor}x the MAC sites of {s.die.name}", "source": {"kind": "computed", "ref": "MAC tiles needed / available"}})
    return out


def role_count(s: Subject, role: Role) -> int:
    return sum(t.role is role for st in s.stages for t in st.placement.tiles)
