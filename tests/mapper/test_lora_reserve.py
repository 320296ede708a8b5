"""LoRA SRAM reservation: slots per target module and layer, packed into SRAM tiles; too much is a
clear error."""

import pytest
from mapped_models import placed

from taalas_compile.config.recipe import LoraCfg, TargetCfg, load_recipe
from taalas_compile.die.program import Lora
from taalas_compile.die.sram_layout import lora_slots
from taalas_compile.errors import UserError
from taalas_compile.mapper.place import map_graph
from taalas_compile.quant.bits import assign_bits


def lora_tiles(pl):
    return [t for t in pl.tiles if t.role.name == "LORA"]


def test_reserve_follows_targets_and_rank():
    g, pl, die = placed()  # stories260k: [target.lora] q_proj, v_proj at rank 8
    (t,) = lora_tiles(pl)
    assert t.program == Lora(n_bytes=5 * 8 * ((64 + 64) + (64 + 32)) * 2, index=0, max_rank=8, targets=0b101, count=1)
    specs = assign_bits(g, load_recipe("stories260k").quant, die)
    none = map_graph(g, specs, die, TargetCfg(context=512))
    assert lora_tiles(none) == []
    big = map_graph(g, specs, die, TargetCfg(context=512, lora=LoraCfg(targets=["o_proj", "q_proj", "k_proj", "v_proj"], max_rank=32)))
    per_layer = 32 * ((64 + 64) + (64 + 32) + (64 + 32) + (64 + 64)) * 2  # 28 KiB, packed slot by slot
    used = [65536, 63488, 14336]
    assert sum(used) == 5 * per_layer
    assert [t.program for t in lora_tiles(big)] == [Lora(b, index=k, max_rank=32, targets=0b1111, count=3) for k, b in enumerate(used)]


def test_slots_never_straddle_tiles_and_oversized_slots_are_errors():
    assert [(s.tile, s.offset) for s in lora_slots([(0, "q_proj", 10, 10), (0, "v_proj", 10, 10)], 1, 100)] == [(0, 0), (0, 40)]
    assert [(s.tile, s.offset) for s in lora_slots([(0, "q_proj", 10, 10), (0, "v_proj", 10, 10)], 2, 100)] == [(0, 0), (1, 0)]
    with pytest.raises(UserError, match=r"LoRA slot for L0.q_proj at rank 3 needs 120 bytes, more than one 100-byte SRAM tile"):
        lora_slots([(0, "q_proj", 10, 10)], 3, 100)


def test_reserve_that_does_not_fit_the_die_is_an_error():
    g, _, die = placed()
    specs = assign_bits(g, load_recipe("stories260k").quant, die)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    with pytest.raises(UserError, match=r"model does not fit die mini: .*sram tiles \d+ needed / 11 available"):
        map_graph(g, specs, die, TargetCfg(context=512, lora=LoraCfg(targets=targets, max_rank=128)))


def test_targets_are_checked_and_put_in_canonical_order():
    assert LoraCfg(targets=["v_proj", "q_proj"]).targets == ["q_proj", "v_proj"]
    with pytest.raises(ValueError, match="lists a module twice"):
        LoraCfg(targets=["q_proj", "q_proj"])
    with pytest.raises(ValueError):
        LoraCfg(targets=["lm_head"])
