"""Tokens/s as curves (data only): against the context length up to the longest context the SRAM
holds for one user, and against concurrent sequences at the context each can have.

One token's latency at sequence length T is the sum of the dies' longest tile paths at T
(`plan/estimate.latency_curve`) plus the links; the pipeline's bound is one token per slowest
tile (or the link bandwidth). N sequences in the pipeline at once give min(N / latency, bound).
"""

from __future__ import annotations

from taalas_compile.plan.estimate import latency_curve
from taalas_compile.plan.figures import table
from taalas_compile.plan.serving import MODEL, context_per_users, link_hops
from taalas_compile.plan.subject import Subject

POINTS = 12  # context lengths on the curve, spaced evenly in log scale from 1 to the longest


def rates_at(s: Subject, positions: list[int]) -> list[tuple[float, float]]:
    """Per sequence length: (seconds per token for one sequence, tokens/s with the pipeline full)."""
    hz = s.die.clock.mhz * 1e6
    links = link_hops(s)
    per_die = [latency_curve(st.placement, s.die, positions) for st in s.stages]
    out = []
    for i in range(len(positions)):
        lat = sum(d[i]["latency_cycles"] for d in per_die) / hz + links["seconds"]
        bound = min(min(hz / max(d[i]["slowest_tile_cycles"], 1.0) for d in per_die), links["tokens_per_s"])
        out.append((lat, bound))
    return out


def context_points(longest: int) -> list[int]:
    if longest <= 1:
        return [1]
    pts = {max(1, round(longest ** (i / (POINTS - 1)))) for i in range(POINTS)}
    return sorted(pts | {longest})


def context_curve(s: Subject) -> dict:
    longest = context_per_users(s, (1,))[0][1]
    pts = context_points(longest)
    rows = [[p, 1 / lat, bound] for p, (lat, bound) in zip(pts, rates_at(s, pts))]
    return table(f"tokens/s against context, one user, up to the longest context the SRAM holds ({longest:,} tokens)",
                 ["context tokens", "tokens/s one user", "tokens/s pipeline bound"], rows, "computed", MODEL + "; plan/curves.py")


def users_curve(s: Subject) -> dict:
    """Per number of sequences the SRAM allows: the context each can have, tokens/s each and in all."""
    caps = [(u, c) for u, c in context_per_users(s) if c >= 1]
    rates = rates_at(s, [c for _, c in caps]) if caps else []
    rows = [[u, c, min(1 / lat, bound / u), min(u / lat, bound)] for (u, c), (lat, bound) in zip(caps, rates)]
    return table("tokens/s against concurrent sequences, each at the longest context the SRAM holds for that many",
                 ["sequences", "context tokens each", "tokens/s each", "tokens/s all"], rows, "computed",
                 MODEL + "; plan/curves.py: N sequences in the pipeline give min(N / latency, one token per slowest tile)")


def serving_at(s: Subject, context: int) -> dict:
    """The most sequences of `context` tokens the SRAM holds and their aggregate tokens/s (for the cost)."""
    users = max((u for u, c in context_per_users(s, tuple(range(1, 257))) if c >= context), default=0)
    lat, bound = rates_at(s, [context])[0]
    return {"users": users, "tokens_per_s": min(max(users, 1) / lat, bound), "latency_s": lat}
