"""LoRA adapters in the chip's SRAM: the slot layout read back from the LoRA tiles' headers and
the matrices' tile groups (die/sram_layout.py), loading an adapter's fp16 A and B into the SRAM
bytes, and handing each tile group its slot. No mask changes: SRAM is written at run time."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np

from taalas_compile.config.recipe import LORA_MODULES
from taalas_compile.die.sram_layout import LoraSlot, lora_slots
from taalas_compile.emulator.groups import MatGroup
from taalas_compile.emulator.tiles import EmulationError
from taalas_compile.errors import UserError
from taalas_compile.mapper.ir import Role
from taalas_compile.model.lora import Adapter

GROUP_NAME = re.compile(r"^L(\d+)\.(\w+)\.r\d+c\d+$")


def lora_reserve(emu) -> tuple[int, list[str], list[LoraSlot], list[str]]:
    """(max rank, target modules, slots, LoRA SRAM tiles in index order) of the chip; rank 0 when none."""
    tiles = sorted((n for n, p in emu.programs.items() if p.role is Role.LORA), key=lambda n: emu.programs[n].header.index)
    if not tiles:
        return 0, [], [], []
    first = emu.programs[tiles[0]].header  # every LoRA tile's header repeats the rank and targets
    max_rank, mask = first.max_rank, first.targets
    targets = [m for i, m in enumerate(LORA_MODULES) if mask >> i & 1]
    modules = []
    for u in emu.units:
        m = GROUP_NAME.match(u.name)
        if u.role is Role.MATVEC and m and m[2] in targets:
            if not isinstance(u.impl, MatGroup):
                raise EmulationError(f"{u.name}: a LoRA target whose tiles cannot be fused")
            modules.append((int(m[1]), m[2], u.impl.n_in, u.impl.n_out))
    modules.sort(key=lambda m: (m[0], LORA_MODULES.index(m[1])))
    slots = lora_slots(modules, max_rank, emu.chip.sram_bytes)
    if max((s.tile for s in slots), default=-1) + 1 != len(tiles):
        raise EmulationError(f"the LoRA layout needs {max(s.tile for s in slots) + 1} SRAM tiles, the chip reserves {len(tiles)}")
    return max_rank, targets, slots, tiles


def load_lora(emu, adapter: Adapter | None) -> None:
    """Write `adapter` into the LoRA SRAM (None clears it) and attach every slot to its tile group."""
    max_rank, targets, slots, tiles = lora_reserve(emu)
    if adapter is not None:
        if not slots:
            raise UserError("this chip reserves no SRAM for LoRA adapters (recipe [target.lora])")
        extra = [m for m in adapter.targets if m not in targets]
        if extra:
            raise UserError(f"the adapter targets {', '.join(extra)}, which has no LoRA SRAM on this chip (reserved: {', '.join(targets)})")
        if adapter.rank > max_rank:
            raise UserError(f"the adapter has rank {adapter.rank}, the chip's LoRA SRAM holds rank {max_rank} at most (recipe target.lora.max_rank)")
        known = {(s.layer, s.module): s for s in slots}
        for key in adapter.weights:
            if key not in known:
                raise UserError(f"the adapter has layer {key[0]} {key[1]}, which this chip does not have")
    sram = {t: np.zeros(emu.chip.sram_bytes, np.uint8) for t in tiles}
    groups = {(int(m[1]), m[2]): u.impl for u in emu.units if (m := GROUP_NAME.match(u.name)) and u.role is Role.MATVEC}
    for s in slots:
        group = groups[(s.layer, s.module)]
        group.lora = None
        if adapter is None or (s.layer, s.module) not in adapter.weights:
            continue
        a, b = adapter.weights[(s.layer, s.module)]
        if tuple(a.shape) != (adapter.rank, s.n_in) or tuple(b.shape) != (s.n_out, adapter.rank):
            raise UserError(f"the adapter's layer {s.layer} {s.module} is {b.shape[0]} x {a.shape[1]}, the chip's is {s.n_out} x {s.n_in}")
        pa = np.zeros((max_rank, s.n_in), np.float16)
        pb = np.zeros((s.n_out, max_rank), np.float16)
        pa[: adapter.rank], pb[:, : adapter.rank] = a.numpy(), b.numpy()
        blob = np.concatenate([pa.reshape(-1), pb.reshape(-1)]).view(np.uint8)
        sram[tiles[s.tile]][s.offset : s.offset + blob.size] = blob
        # the tile group reads its slot back from the SRAM bytes
        raw = sram[tiles[s.tile]][s.offset : s.offset + blob.size].view(np.float16).astype(np.float32)
        a32, b32 = raw[: max_rank * s.n_in].reshape(max_rank, s.n_in), raw[max_rank * s.n_in :].reshape(s.n_out, max_rank)
        group.lora = (a32, b32, np.float32(adapter.scale))
    emu.sram = sram


def load_lora_dies(dies: list, adapter: Adapter | None) -> None:
    """`load_lora` on every die of a system: each die's LoRA SRAM holds the slots of its own layers,
    so each gets the adapter's matrices of those layers."""
    reserved = [{(s.layer, s.module) for s in lora_reserve(d)[2]} for d in dies]
    if adapter is not None:
        have = set().union(*reserved)
        if not have:
            raise UserError("this system reserves no SRAM for LoRA adapters (recipe [target.lora])")
        missing = sorted(k for k in adapter.weights if k not in have)
        if missing:
            raise UserError(f"the adapter has layer {missing[0][0]} {missing[0][1]}, which no die of this system has")
    for d, keys in zip(dies, reserved):
        mine = None if adapter is None or not keys else replace(adapter, weights={k: v for k, v in adapter.weights.items() if k in keys})
        load_lora(d, mine)
