"""How run-time data is laid out in the die's SRAM tiles, shared by the mapper (which reserves the
tiles) and the emulator (which loads and reads them).

LoRA: one slot per (layer, target module), in layer order then `LORA_MODULES` order. A slot holds
A [max_rank, in] then B [out, max_rank], fp16, row-major; an adapter of smaller rank fills the
first rows of A and the first columns of B and leaves the rest zero. Slots are packed into SRAM
tiles in order; a slot never straddles two tiles.
"""

from __future__ import annotations

from dataclasses import dataclass

from taalas_compile.errors import UserError

FP16_BYTES = 2


@dataclass(frozen=True)
class LoraSlot:
    layer: int
    module: str  # e.g. "q_proj"
    n_in: int
    n_out: int
    tile: int  # index among the chip's LoRA SRAM tiles
    offset: int  # byte offset inside that tile

    def nbytes(self, max_rank: int) -> int:
        return max_rank * (self.n_in + self.n_out) * FP16_BYTES


def lora_slots(modules: list[tuple[int, str, int, int]], max_rank: int, tile_bytes: int) -> list[LoraSlot]:
    """modules: (layer, module, in, out) in slot order -> their slots packed into SRAM tiles."""
    slots: list[LoraSlot] = []
    tile, used = 0, 0
    for layer, module, n_in, n_out in modules:
        need = max_rank * (n_in + n_out) * FP16_BYTES
        if need > tile_bytes:
            raise UserError(f"LoRA slot for L{layer}.{module} at rank {max_rank} needs {need:,} bytes, "
                            f"more than one {tile_bytes:,}-byte SRAM tile: lower target.lora.max_rank")
        if used + need > tile_bytes:
            tile, used = tile + 1, 0
        slots.append(LoraSlot(layer, module, n_in, n_out, tile, used))
        used += need
    return slots


def lora_tile_bytes(slots: list[LoraSlot], max_rank: int) -> list[int]:
    """Bytes used in each LoRA tile."""
    n = max((s.tile for s in slots), default=-1) + 1
    used = [0] * n
    for s in slots:
        used[s.tile] = max(used[s.tile], s.offset + s.nbytes(max_rank))
    return used
