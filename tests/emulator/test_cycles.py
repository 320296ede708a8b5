"""Cycle model: per-tile cycles from the die's parameters, and agreement with the analytical
estimate of `plan` (plan/estimate.py) within a stated margin."""

import pytest

from taalas_compile.backend.netlist import read_netlist
from taalas_compile.die.load import load_die
from taalas_compile.die.program import Attention, MatVec
from taalas_compile.emulator.cycles import CycleModel, tile_cycles
from taalas_compile.plan.estimate import performance

# The estimate leaves out what the cycle model counts: each tile's pipeline latency (mac_latency,
# vu_latency, sram_latency), whole cycles (ceil) and the KV scales' SRAM bytes. On the mini die's
# small tiles that adds up to at most this much over the estimate, which the model must not undercut.
MARGIN = 0.25


def test_tile_cycles_follow_the_die_parameters():
    die = load_die("mini")
    mv = MatVec(bits=3, group=32, n_rows=128, n_cols=224, in_off=0, out_off=0)  # 128 rows x 224 3-bit columns
    assert tile_cycles(mv, die, 1) == 128 * 224 // 512 + die.timing.mac_latency
    mv6 = MatVec(bits=6, group=32, n_rows=128, n_cols=96, in_off=0, out_off=0)  # 6-bit: ROM digits, not MACs, may bound it
    assert tile_cycles(mv6, die, 1) == max(24, -(-128 * (3 * (32 * 2 + 6)) // die.timing.rom_read_digits)) + 2
    attn = Attention(n=0, n_heads=8, n_kv_heads=4, head_dim=8, context=512)
    long = tile_cycles(attn, die, 512)
    assert long == max(2 * 8 * 8 * 512 // 16, 2 + -(-512 * die.arith.kv_bytes(4, 8) // 64)) + die.timing.vu_latency
    assert tile_cycles(attn, die, 1) < long


@pytest.mark.parametrize("chip", ["tiny_chip", "tiny3_chip"])
def test_cycle_count_agrees_with_the_plan_estimate(request, chip):
    from taalas_compile.emulator.chip import from_netlist
    from taalas_compile.emulator.run import Emulator

    pl, roms, _ = read_netlist(request.getfixturevalue(chip))
    die = load_die("mini")
    cm = CycleModel(Emulator(from_netlist(pl, roms, die)), die)
    est = performance(pl, die)
    ctx = est["context"]
    for ours, theirs in ((cm.latency(1)[0], est["latency_cycles"]), (cm.latency(ctx)[0], est["latency_cycles_full_context"]),
                         (cm.latency(ctx)[1], est["slowest_tile_cycles"])):
        assert theirs <= ours <= (1 + MARGIN) * theirs


def test_report_of_a_batched_run(tiny3_chip):
    from taalas_compile.emulator.chip import from_netlist
    from taalas_compile.emulator.run import Emulator

    pl, roms, _ = read_netlist(tiny3_chip)
    die = load_die("mini")
    emu = Emulator(from_netlist(pl, roms, die))
    cm = CycleModel(emu, die)
    emu.generate_batch([[1, 2], [1, 3], [1, 4]], 3)
    three = cm.report(emu.positions)
    emu.generate([1, 2], 3)
    one = cm.report(emu.positions)
    assert three["tokens"] == 12 and three["sequences_in_flight"] == 3 and one["tokens"] == 4
    assert three["latency_cycles_per_token"] == one["latency_cycles_per_token"]
    assert one["tokens_per_s_aggregate"] == one["tokens_per_s_single"] < three["tokens_per_s_aggregate"]
    assert three["run_cycles"] == sum(cm.latency(p + 1)[0] + 2 * cm.latency(p + 1)[1] for p in range(4))
    assert one["tokens_per_s_single"] == pytest.approx(die.clock.mhz * 1e6 / (sum(cm.latency(p + 1)[0] for p in range(4)) / 4))
