"""The dies of a system chained through their links compute what the one-die chip computes: tiny-llama
compiled as two dies (`[target] dies = 2`) against tiny-llama on one die, step for step, with a LoRA
adapter too; the cycle model adds the links."""

from dataclasses import replace

import numpy as np
import pytest
from test_lora_sram import SEQ, adapter

from taalas_compile.backend.netlist import read_netlist
from taalas_compile.die.load import load_die
from taalas_compile.emulator.chip import from_netlist
from taalas_compile.emulator.cycles import CycleModel
from taalas_compile.emulator.lora import load_lora, load_lora_dies
from taalas_compile.emulator.run import Emulator
from taalas_compile.emulator.system import SystemCycles, SystemEmulator
from taalas_compile.emulator.tiles import EmulationError
from taalas_compile.errors import UserError


@pytest.fixture(scope="module")
def tiny2_chip(tmp_path_factory):
    """tiny-llama compiled as a system of two mini dies."""
    from taalas_compile.inputs import resolve
    from taalas_compile.pipeline import compile_chip

    inp = resolve("tiny-llama")
    inp = replace(inp, recipe=inp.recipe.model_copy(update={"target": inp.recipe.target.model_copy(update={"dies": 2})}))
    out = tmp_path_factory.mktemp("chips") / "tiny2"
    compile_chip(inp, out)
    return out


def dies_of(d) -> list[Emulator]:
    die = load_die("mini")
    return [Emulator(from_netlist(*read_netlist(d / f"die{k}")[:2], die)) for k in range(2)]


def test_two_dies_compute_what_one_die_computes(tiny2_chip, tiny_emu):
    system = SystemEmulator(dies_of(tiny2_chip))
    assert [d.link.link_in for d in system.dies] == [0, 64] and [d.link.link_out for d in system.dies] == [64, 0]
    assert np.array_equal(system.teacher_forced(SEQ), tiny_emu.teacher_forced(SEQ))
    assert system.generate([1, 17], 10) == tiny_emu.generate([1, 17], 10)


def test_a_lora_adapter_goes_to_the_dies_holding_its_layers(tiny2_chip, tiny_emu, tmp_path):
    system = SystemEmulator(dies_of(tiny2_chip))
    ad = adapter(tmp_path)
    load_lora_dies(system.dies, ad)
    load_lora(tiny_emu, ad)
    assert np.array_equal(system.teacher_forced(SEQ), tiny_emu.teacher_forced(SEQ))
    with pytest.raises(UserError, match="layer 2 q_proj, which no die of this system has"):
        load_lora_dies(system.dies, adapter(tmp_path / "x", layers=(0, 2)))


def test_the_cycle_model_adds_the_links(tiny2_chip):
    die = load_die("mini")
    dies = dies_of(tiny2_chip)
    system = SystemEmulator(dies)
    system.generate([1], 3)
    cycles = SystemCycles(system, die)
    hz = die.clock.mhz * 1e6
    link = die.link.seconds(64 * 4) + die.link.seconds(4)
    one = [CycleModel(d, die).latency(1)[0] for d in dies]
    assert cycles.latency(1)[0] == pytest.approx(sum(one) + link * hz)
    rep = cycles.report(system.positions)
    assert rep["dies"] == 2 and rep["tokens"] == 3 and rep["link_us_per_token"] == pytest.approx(link * 1e6)


def test_dies_whose_links_do_not_match_are_refused(tiny2_chip, tiny_emu):
    a, b = dies_of(tiny2_chip)
    with pytest.raises(EmulationError, match="die 0 sends 64 values per token, die 1 receives 0"):
        SystemEmulator([a, tiny_emu])
    with pytest.raises(EmulationError, match="first die must take tokens"):
        SystemEmulator([b])
