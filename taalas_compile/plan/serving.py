"""Performance and cost of a plan: latency, tokens/s, power, energy per token, context per user,
LoRA capacity, and the GPU baseline (data only).

Per die the figures come from the analytical model (`plan/estimate.performance`, one token at a
time through the tile graph); a multi-die model adds its links: the residual stream (`dim` fp32
values) crosses each of the N-1 cuts, and the sampled token id goes back from the last die to the
first, each hop `latency_ns` plus bytes / `gbytes_per_s`. Power: every used tile draws its kind's
`[power]` watts times its duty (its cycles per token / the cycles between tokens), every die its
`static_watts`, every link its `watts`.
"""

from __future__ import annotations

import math

from taalas_compile.config.die import TOKEN_BYTES
from taalas_compile.mapper.ir import Role
from taalas_compile.plan.baseline import H100_SXM, TAALAS_CLAIM, gpu_serving
from taalas_compile.plan.estimate import performance, tile_cycles
from taalas_compile.plan.figures import die_ref, fig, table
from taalas_compile.plan.subject import Subject

MODEL = "analytical model, plan/estimate.py performance() ([clock], [tiles] of the die)"
USERS = (1, 2, 4, 8, 16, 32, 64)
LORA_RANKS = (8, 16, 64)


def link_hops(s: Subject) -> dict:
    """Seconds per token the links add, and the link's own token rate bound."""
    n = len(s.stages)
    lk = s.die.link
    act = s.dim * 4  # fp32 bus
    if n == 1 or lk is None:
        return {"hops": 0, "seconds": 0.0, "tokens_per_s": math.inf, "activation_bytes": act}
    hop_act, hop_tok = lk.seconds(act), lk.seconds(TOKEN_BYTES)
    return {"hops": n - 1, "seconds": (n - 1) * hop_act + hop_tok, "tokens_per_s": lk.gbytes_per_s * 1e9 / act, "activation_bytes": act}


def _power(s: Subject, perfs: list[dict], pipelined: bool) -> float:
    """Watts of all dies and links with one user (duty against the latency) or the pipeline full."""
    pw, die = s.die.power, s.die
    watts = {"mac": pw.watts_per_mac_tile, "vu": pw.watts_per_vu, "sram": pw.watts_per_sram, "io": 0.0}
    total = pw.static_watts * len(s.stages) + (die.link.watts if die.link else 0.0) * max(len(s.stages) - 1, 0)
    for st, p in zip(s.stages, perfs):
        kv_tiles = {n.drivers[0].tile: len(n.sinks) for n in st.placement.nets if n.name.endswith(".kv")}
        period = max(p["slowest_tile_cycles"], 1.0) if pipelined else max(p["latency_cycles"], 1.0)
        att = {t.node: tile_cycles(t, die, 1, kv_tiles.get(t.name, 1)) for t in st.placement.tiles if t.role is Role.ATTENTION}
        for t in st.placement.tiles:
            c = att.get(t.node, 0.0) if t.role is Role.KV else (0.0 if t.role is Role.LORA else tile_cycles(t, die, 1, kv_tiles.get(t.name, 1)))
            total += watts[t.kind] * min(c / period, 1.0)
    return total


def performance_section(s: Subject) -> dict:
    die = s.die
    hz = die.clock.mhz * 1e6
    perfs = [performance(st.placement, die, s.context) for st in s.stages]
    links = link_hops(s)
    lat = sum(p["latency_cycles"] for p in perfs) / hz + links["seconds"]
    lat_full = sum(p["latency_cycles_full_context"] for p in perfs) / hz + links["seconds"]
    agg = min(min(p["tokens_per_s_pipelined"] for p in perfs), links["tokens_per_s"])
    p1, pn = _power(s, perfs, False), _power(s, perfs, True)
    link_ref = f"{die_ref(die, 'link', 'latency_ns')} and gbytes_per_s: {links['hops']} activation hop(s) of {links['activation_bytes']:,} B + the token back"
    figs = [
        fig("latency_us", "latency per token (short context)", lat * 1e6, "µs", "computed", MODEL + (f"; links: {link_ref}" if links["hops"] else "")),
        fig("latency_us_full_context", f"latency per token at {s.context:,} tokens", lat_full * 1e6, "µs", "computed", MODEL),
        fig("tokens_per_s_single", "tokens/s, one user (short context)", 1 / lat, "tokens/s", "computed", MODEL),
        fig("tokens_per_s_single_full_context", f"tokens/s, one user at {s.context:,} tokens", 1 / lat_full, "tokens/s", "computed", MODEL),
        fig("tokens_per_s_aggregate", "tokens/s, aggregate (pipeline full, one token per slowest tile)", agg, "tokens/s", "computed",
            MODEL + ("; capped by the link bandwidth" if agg == links["tokens_per_s"] else "")),
        fig("link_latency_us", "die-to-die links per token", links["seconds"] * 1e6, "µs", "die" if links["hops"] else "computed",
            link_ref if links["hops"] else "one die: no links"),
        fig("power_w_single", "power, one user", p1, "W", "computed", f"[power] of base_die/{die.name}.toml x tile duty at the one-user latency"),
        fig("power_w_aggregate", "power, pipeline full", pn, "W", "computed", f"[power] of base_die/{die.name}.toml x tile duty at the aggregate rate"),
        fig("energy_mj_per_token_single", "energy per token, one user", p1 * lat * 1e3, "mJ", "computed", "power, one user x latency"),
        fig("energy_mj_per_token_aggregate", "energy per token, pipeline full", pn / agg * 1e3, "mJ", "computed", "power, pipeline full / aggregate tokens/s"),
        fig("clock_mhz", "clock", die.clock.mhz, "MHz", "die", die_ref(die, "clock", "mhz")),
        fig("static_watts", "static power per die", die.power.static_watts, "W", "die", die_ref(die, "power", "static_watts")),
    ]
    stages = table("pipeline stages (one per die)", ["die", "first block", "last block", "blocks", "latency cycles", "latency µs", "slowest tile cycles", "tokens/s pipelined"],
                   [[st.index, st.blocks[0], st.blocks[-1], len(st.blocks), p["latency_cycles"], p["latency_cycles"] / hz * 1e6, p["slowest_tile_cycles"], p["tokens_per_s_pipelined"]]
                    for st, p in zip(s.stages, perfs)], "computed", MODEL)
    return {"figures": figs, "tables": {"stages": stages}, "assumptions": perfs[0]["assumptions"], "model": MODEL}


def context_per_users(s: Subject, users_list: tuple[int, ...] = USERS) -> list[tuple[int, int]]:
    """(users, longest context per user): per die its SRAM minus its LoRA share over the KV bytes per
    token of its layers and users; the tightest die bounds it."""
    sram = len(s.die.sites("sram")) * s.die.tiles.sram.bytes
    out = []
    for users in users_list:
        per_die = []
        for st in s.stages:
            layers = sum(b.startswith("L") for b in st.blocks)
            if not layers:
                continue
            kv = s.kv_bytes_per_token * layers / max(s.n_layers, 1)
            lora = s.lora_reserve_bytes * layers / max(s.n_layers, 1)
            per_die.append(int((sram - lora) // (users * kv)))
        out.append((users, min(per_die) if per_die else 0))
    return out


def capacity_section(s: Subject) -> dict:
    """Context per user for N concurrent users from the SRAM, and LoRA adapters in the reserve."""
    die = s.die
    sram = len(die.sites("sram")) * die.tiles.sram.bytes
    n = len(s.stages)
    ctx = [[users, c] for users, c in context_per_users(s)]
    figs = [fig("kv_bytes_per_token", "KV cache per token (all layers, K and V)", s.kv_bytes_per_token, "B", "computed",
                f"2 x layers x kv_heads x head_dim x {die_ref(die, 'arith', 'kv_bits')} / 8"),
            fig("sram_bytes_per_die", "SRAM per die", sram, "B", "die", f"{die_ref(die, 'tiles', 'sram.bytes')} x S sites of [grid]"),
            fig("lora_reserve_bytes", "LoRA reserve (whole model)", s.lora_reserve_bytes, "B", "recipe",
                "[target.lora] max_rank x (in + out) x 2 B per target module per layer"),
            fig("context_configured", "context the KV cache is sized for", s.context, "tokens", "recipe", "[target] context")]
    free = n * sram - s.kv_bytes_per_token * s.context
    lora = []
    for targets, which in (("q_proj, v_proj", ("q_proj", "v_proj")), ("all linears", None)):
        for r in LORA_RANKS:
            b = _lora_bytes(s, r, which)
            lora.append([r, targets, b, s.lora_reserve_bytes // b if b else 0, max(free, 0) // b if b else 0])
    figs.append(fig("lora_qv_rank8_in_reserve", "LoRA adapters of rank 8 on q_proj, v_proj in the reserve", lora[0][3], "adapters", "computed",
                    f"reserve / {lora[0][2]:,} B per adapter (rank x (in + out) x 2 B fp16)"))
    figs.append(fig("context_1_user", "longest context for one user", ctx[0][1], "tokens", "computed", "SRAM per die minus its LoRA share / KV bytes per token"))
    return {"figures": figs, "tables": {
        "context": table(f"context per user for N concurrent users ({n} die(s))", ["users", "context tokens"], ctx, "computed",
                         "(SRAM per die - its LoRA share) / (users x KV bytes per token of its layers), tightest die; ignores tile granularity"),
        "lora": table("LoRA adapters that fit", ["rank", "on", "bytes per adapter", "in the reserve", "in SRAM free of the KV cache"], lora, "computed",
                      "fp16 A and B per adapted linear: rank x (in + out) x 2 B; reserve from [target.lora]; "
                      "free SRAM = all dies' SRAM - KV bytes per token x [target] context")}}


def _lora_bytes(s: Subject, rank: int, which: tuple[str, ...] | None) -> int:
    """fp16 A and B of a rank-`rank` adapter on the decoder linears named in `which` (None: all):
    rank x (in + out) x 2 B; one of in and out is `dim` for every Llama linear, so in + out = dim + weights / dim."""
    return rank * 2 * sum(s.dim + n // s.dim for t, n in s.numel.items()
                          if "layers." in t and (which is None or t.split(".")[-2] in which))


def baseline_section(s: Subject, perf: dict, memory_fraction: float, users: int) -> dict:
    """One H100 replica serving `users` sequences of the plan's context, next to this plan's figures."""
    gpu = H100_SXM
    kv_values = s.kv_bytes_per_token * 8 // s.die.arith.kv_bits
    g = gpu_serving(s.params, kv_values, s.context, users, memory_fraction, gpu)
    f = {x["id"]: x["value"] for x in perf["figures"]}
    cite = gpu.citation
    mem = f"{memory_fraction:.0%} of {gpu.hbm_bytes / 1e9:.0f} GB per GPU for weights and KV (vLLM's default; the rest: activations, workspace)"
    figs = [fig("gpu_count", f"GPUs per replica: FP8 weights + fp16 KV cache of {users} x {s.context:,} tokens", g.gpus, "GPUs", "computed",
                f"weights {g.weight_bytes / 1e9:,.1f} GB + KV {g.kv_bytes / 1e9:,.2f} GB over {mem}; {cite}"),
            fig("gpu_tokens_per_s_single", f"{gpu.name}: tokens/s, one user (roofline ceiling)", g.tokens_per_s_single, "tokens/s", "computed",
                f"HBM bandwidth x GPUs / FP8 weight bytes; {cite}"),
            fig("gpu_tokens_per_s_aggregate", f"tokens/s, one replica, batch of {g.batch:,} at {s.context:,} tokens", g.tokens_per_s_aggregate,
                "tokens/s", "computed", f"min(dense FP8 FLOPS / 2 FLOPs per weight, HBM roofline at the batch its memory holds); {cite}"),
            fig("gpu_watts", f"{gpu.name}: power", gpu.watts, "W", "cited", cite),
            fig("gpu_energy_mj_per_token_single", "GPU energy per token, one user", gpu.watts * g.gpus / g.tokens_per_s_single * 1e3, "mJ",
                "computed", "GPUs x power / roofline tokens/s"),
            fig("speedup_single", "this plan vs the GPU ceiling, one user", f["tokens_per_s_single"] / g.tokens_per_s_single, "x", "computed", "tokens/s ratio"),
            fig("published_claim", "published comparison", "~10x faster, ~10x cheaper, ~10x less power than GPU serving", "", "cited", TAALAS_CLAIM)]
    return {"figures": figs}
