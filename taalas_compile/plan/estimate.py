"""Analyses of a placement: fit and utilization, cycles and tokens/s, mask volume.

All figures are derived from the die description (docs/die-model.md) and the placement; the
performance model is analytical: a MAC tile takes n_rows * n_cols / macs_per_cycle cycles, a
vector unit n / lanes (attention: its mean KV length over the context), every tile-to-tile hop
`hop_cycles`; a token's latency is the longest path through the tile graph.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import networkx as nx

from taalas_compile.config.die import Die
from taalas_compile.die.rom_format import HEADER_WORDS, WORD_DIGITS, group_layout
from taalas_compile.errors import UserError
from taalas_compile.mapper.ir import Placement, Role, Tile

GDS_BYTES_PER_VIA = 28  # one SREF of the select-via cell (header, name, XY, end)
RAM_BYTES_PER_DIGIT = 3  # codes + ROM image + layout objects while compiling in memory


def tile_digits(t: Tile) -> int:
    """Used digit cells of a tile (header included)."""
    n = HEADER_WORDS * WORD_DIGITS
    if t.role in (Role.MATVEC, Role.LOOKUP):
        n += t.words[3] * group_layout(t.words[4], t.group, t.bits)[2]
    elif t.role is Role.RMSNORM:
        n += t.words[3] * 6
    elif t.role is Role.ROPE:
        n += t.words[8] // 2 * 11
    return n


def fit(pl: Placement, die: Die, tracks_used: dict | None = None) -> dict:
    kinds = ("mac", "vu", "sram", "io")
    used = {k: sum(t.kind == k for t in pl.tiles) for k in kinds}
    have = {k: len(die.sites(k)) for k in kinds}
    mac_cells = have["mac"] * die.tiles.mac.rows * die.tiles.mac.cols
    mac_digits = sum(tile_digits(t) for t in pl.tiles if t.kind == "mac")
    kv = sum(t.words[3] for t in pl.tiles if t.role is Role.KV)
    lora = sum(t.words[3] for t in pl.tiles if t.role is Role.LORA)
    out = {
        "tiles": {k: {"used": used[k], "available": have[k], "utilization": used[k] / max(have[k], 1)} for k in kinds},
        "rom_digits": {"used": mac_digits, "available": mac_cells, "utilization": mac_digits / max(mac_cells, 1)},
        "sram_bytes": {"kv": kv, "lora": lora, "available": have["sram"] * die.tiles.sram.bytes,
                       "utilization": (kv + lora) / max(have["sram"] * die.tiles.sram.bytes, 1)},
        "digits_total": sum(tile_digits(t) for t in pl.tiles),
    }
    if tracks_used is not None:
        worst = max(tracks_used.values(), default=0)
        out["routing"] = {"worst_channel_tracks": worst, "available": die.routing.channel_tracks,
                          "utilization": worst / die.routing.channel_tracks}
    return out


def tile_cycles(t: Tile, die: Die) -> float:
    w = t.words
    if t.role is Role.MATVEC:
        return w[3] * w[4] / die.tiles.mac.macs_per_cycle
    if t.role is Role.LOOKUP:
        return w[4] / die.tiles.mac.macs_per_cycle
    if t.role is Role.ATTENTION:
        n_heads, n_kv, hd, ctx = w[7], w[8], w[9], w[10]
        return (ctx / 2) * (n_heads * hd * 2) / die.tiles.vu.lanes
    if t.kind == "vu":
        return w[3] / die.tiles.vu.lanes
    return 0.0


def performance(pl: Placement, die: Die) -> dict:
    g = nx.DiGraph()
    for t in pl.tiles:
        g.add_node(t.name, cycles=tile_cycles(t, die))
    for n in pl.nets:
        for d in n.drivers:
            for s in n.sinks:
                if pl.tile(s.tile).kind != "sram" and not (d.tile == "io" and s.tile == "io"):
                    if s.tile != "io":
                        g.add_edge(d.tile, s.tile)
    hop = die.clock.hop_cycles
    longest: dict[str, float] = {}
    for n in nx.topological_sort(g):
        longest[n] = g.nodes[n]["cycles"] + max((longest[p] + hop for p in g.predecessors(n)), default=0.0)
    latency = max(longest.values(), default=0.0)
    stage = max((g.nodes[n]["cycles"] for n in g.nodes), default=0.0)
    hz = die.clock.mhz * 1e6
    return {
        "latency_cycles": latency,
        "latency_us": latency / hz * 1e6,
        "tokens_per_s_single": hz / latency if latency else 0.0,
        "slowest_tile_cycles": stage,
        "tokens_per_s_pipelined": hz / max(stage, 1.0),
        "clock_mhz": die.clock.mhz,
        "assumptions": "analytical: MAC tile rows*cols/macs_per_cycle, VU n/lanes, attention at half context, "
                       f"{hop} cycles per hop; die parameters from base_die/{die.name}.toml",
    }


def mask_bytes_estimate(digits: int) -> int:
    return digits * GDS_BYTES_PER_VIA


def check_disk(inp, out: Path) -> None:
    """Refuse before writing when the masks would not fit on disk or the compile in memory."""
    from taalas_compile.frontend.lower import lower_args
    from taalas_compile.mapper.place import map_graph
    from taalas_compile.quant.plan import assign_bits

    g = lower_args(inp.source.args)
    pl = map_graph(g, assign_bits(g, inp.recipe.quant, inp.die), inp.die, inp.recipe.target)
    digits = fit(pl, inp.die)["digits_total"]
    need = mask_bytes_estimate(digits)
    probe = out if out.exists() else next((p for p in out.resolve().parents if p.exists()), Path("."))
    free = shutil.disk_usage(probe).free
    if need > free:
        raise UserError(f"the GDSII masks would take ~{need / 1e9:.1f} GB ({digits:,} digit cells), {probe} has {free / 1e9:.1f} GB free")
    ram = digits * RAM_BYTES_PER_DIGIT
    avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if ram > avail:
        raise UserError(f"compiling {digits:,} digit cells in memory needs ~{ram / 2**30:.0f} GiB, {avail / 2**30:.0f} GiB available")
