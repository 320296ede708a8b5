"""Analyses of a placement: fit and utilization, cycles and tokens/s (mask volume: backend/volume.py).

All figures are derived from the die description (docs/die-model.md) and the placement; the
performance model is analytical: a MAC tile takes n_rows * n_cols / macs_per_cycle cycles, a
vector unit n / lanes (attention: its mean KV length over the context), every tile-to-tile hop
`hop_cycles`; a token's latency is the longest path through the tile graph.
"""

from __future__ import annotations

import functools

import networkx as nx

from taalas_compile.config.die import Die
from taalas_compile.config.recipe import TargetCfg
from taalas_compile.die.program import (
    MAC_PROGRAMS,
    VECTOR_PROGRAMS,
    Attention,
    Kv,
    Lookup,
    Lora,
    MatVec,
    RmsNorm,
    Rope,
)
from taalas_compile.die.rom_format import (
    FP16_DIGITS,
    FP32_DIGITS,
    HEADER_WORDS,
    WORD_DIGITS,
    group_layout,
)
from taalas_compile.mapper.ir import Placement, Tile
from taalas_compile.mapper.place import tile_needs
from taalas_compile.quant.codes import QuantSpec

_layout = functools.cache(group_layout)  # a die has a handful of distinct (n_cols, group, bits)


def tile_digits(t: Tile) -> int:
    """Used digit cells of a tile (header included)."""
    n, p = HEADER_WORDS * WORD_DIGITS, t.program
    if isinstance(p, MAC_PROGRAMS):
        n += p.n_rows * _layout(p.n_cols, p.group, p.bits)[2]
    elif isinstance(p, RmsNorm):
        n += p.n * FP16_DIGITS
    elif isinstance(p, Rope):
        n += p.head_dim // 2 * FP32_DIGITS
    return n


KINDS = ("mac", "vu", "sram", "io")


def model_fit(g: nx.DiGraph, specs: dict[str, QuantSpec], die: Die, target: TargetCfg) -> tuple[dict, dict, dict]:
    """Whether a model fits one die, before anything is placed: (tiles of each kind per layer block
    (mapper/place.py tile_needs), their totals, the die's sites of each kind). It fits when no
    total exceeds its sites (`fits_one_die`)."""
    needs = tile_needs(g, specs, die, target)
    total = {k: sum(n[k] for n in needs.values()) for k in KINDS}
    have = {k: len(die.sites(k)) for k in KINDS}
    return needs, total, have


def fits_one_die(total: dict, have: dict) -> bool:
    return all(total[k] <= have[k] for k in total)


def fit(pl: Placement, die: Die, tracks_used: dict | None = None) -> dict:
    kinds = ("mac", "vu", "sram", "io")
    used = {k: sum(t.kind == k for t in pl.tiles) for k in kinds}
    have = {k: len(die.sites(k)) for k in kinds}
    mac_cells = have["mac"] * die.tiles.mac.rows * die.tiles.mac.cols
    mac_digits = sum(tile_digits(t) for t in pl.tiles if t.kind == "mac")
    kv = sum(t.program.n_bytes for t in pl.tiles if isinstance(t.program, Kv))
    lora = sum(t.program.n_bytes for t in pl.tiles if isinstance(t.program, Lora))
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


def tile_cycles(t: Tile, die: Die, position: int, kv_tiles: int = 1) -> float:
    """Cycles a tile needs for one token when the sequence is `position` tokens long."""
    p = t.program
    if isinstance(p, MatVec):
        return p.n_rows * p.n_cols / die.tiles.mac.macs_per_cycle
    if isinstance(p, Lookup):
        return p.n_cols / die.tiles.mac.macs_per_cycle
    if isinstance(p, Attention):
        n_heads, n_kv, hd = p.n_heads, p.n_kv_heads, p.head_dim
        compute = 2 * n_heads * hd * position / die.tiles.vu.lanes  # scores + weighted sum
        kv_bytes = 2 * position * n_kv * hd * die.arith.kv_bits / 8  # read K and V once
        return max(compute, kv_bytes / (die.tiles.sram.bytes_per_cycle * max(kv_tiles, 1)))
    if isinstance(p, VECTOR_PROGRAMS):
        return p.n / die.tiles.vu.lanes
    return 0.0


def _latencies(pl: Placement, die: Die, positions: list[int]) -> list[tuple[float, float]]:
    """Per sequence length: (cycles through the longest tile path, cycles of the slowest tile). The
    tile graph is built once; only the attention tiles' cycles depend on the position."""
    kv_tiles: dict[str, int] = {}
    for n in pl.nets:
        if n.name.endswith(".kv"):
            kv_tiles[n.drivers[0].tile] = len(n.sinks)
    g = nx.DiGraph()
    tiles = {t.name: t for t in pl.tiles if t.kind in ("mac", "vu")}
    g.add_nodes_from(tiles)
    for n in pl.nets:
        for d in n.drivers:
            for s in n.sinks:
                if d.tile in tiles and s.tile in tiles:
                    g.add_edge(d.tile, s.tile)
    order = [(n, list(g.predecessors(n))) for n in nx.topological_sort(g)]
    hop = die.clock.hop_cycles
    out = []
    for position in positions:
        cycles = {n: tile_cycles(t, die, position, kv_tiles.get(n, 1)) for n, t in tiles.items()}
        longest: dict[str, float] = {}
        for n, preds in order:
            longest[n] = cycles[n] + max((longest[p] + hop for p in preds), default=0.0)
        out.append((max(longest.values(), default=0.0), max(cycles.values(), default=0.0)))
    return out


def latency_curve(pl: Placement, die: Die, positions: list[int]) -> list[dict]:
    """Per sequence length T: latency cycles of one token and the slowest tile's cycles (its pipeline bound)."""
    return [{"position": p, "latency_cycles": a, "slowest_tile_cycles": b} for p, (a, b) in zip(positions, _latencies(pl, die, positions))]


def performance(pl: Placement, die: Die, context: int | None = None) -> dict:
    """Tokens/s for one user at a short (1 token) and the full context, and with the pipeline full."""
    ctx = context or max((t.program.context for t in pl.tiles if isinstance(t.program, Attention)), default=1)
    hz = die.clock.mhz * 1e6
    (short, _), (full, slowest) = _latencies(pl, die, [1, ctx])
    return {
        "clock_mhz": die.clock.mhz,
        "context": ctx,
        "latency_cycles": short,
        "latency_us": short / hz * 1e6,
        "tokens_per_s_single": hz / short if short else 0.0,
        "latency_cycles_full_context": full,
        "tokens_per_s_single_full_context": hz / full if full else 0.0,
        "slowest_tile_cycles": slowest,
        "tokens_per_s_pipelined": hz / max(slowest, 1.0),
        "assumptions": "analytical model: a MAC tile takes rows*cols/macs_per_cycle cycles, a vector unit n/lanes, attention "
                       "max(2*heads*head_dim*T/lanes, KV bytes/SRAM bandwidth) at sequence length T, "
                       f"{die.clock.hop_cycles} cycles per tile hop; parameters from base_die/{die.name}.toml",
    }
