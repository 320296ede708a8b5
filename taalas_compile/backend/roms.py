"""ROM images: a tile's header + weight block (codes and scales) or constants -> its digits."""

from __future__ import annotations

import networkx as nx
import numpy as np

from taalas_compile.config.die import Die
from taalas_compile.die import rom_format as rf
from taalas_compile.die.program import encode
from taalas_compile.errors import UserError
from taalas_compile.frontend.ir import op_node
from taalas_compile.mapper.ir import Role, Tile
from taalas_compile.model.rope import inv_freq
from taalas_compile.model.weights import WeightSource
from taalas_compile.quant.codes import QTensor


def const_param(g: nx.DiGraph, t: Tile) -> str | None:
    """The weight-source tensor a vector unit etches (a norm gain), if any."""
    if t.role is Role.RMSNORM:
        (p,) = op_node(g, t.node).params
        return p.name
    return None


def tile_consts(t: Tile, source: WeightSource, param: str | None) -> np.ndarray | None:
    """The constants a vector unit etches: fp16 norm gains or fp32 RoPE inverse frequencies."""
    if t.role is Role.RMSNORM:
        return source.get(param).detach().numpy().astype(np.float16)
    if t.role is Role.ROPE:
        return inv_freq(source.args).numpy().astype(np.float32)
    return None


def tile_block(t: Tile, q: QTensor, row0: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The codes and scales of tile `t`'s slice, from `q` holding the tensor's rows from `row0` on
    (a row band of it, or all of it). Column slices start on a group boundary (mapper)."""
    s = t.slice
    assert s.c0 % q.group == 0, f"{t.name}: column slice does not start on a group"
    g0, g1 = s.c0 // q.group, -(-s.c1 // q.group)
    return q.codes[s.r0 - row0 : s.r1 - row0, s.c0 : s.c1], q.scales[s.r0 - row0 : s.r1 - row0, g0:g1]


def build_tile_image(t: Tile, die: Die, block: tuple[np.ndarray, np.ndarray] | None, consts: np.ndarray | None) -> np.ndarray:
    """A tile's ROM image: its header row, then its weight block (codes, scales) or constants."""
    rom = die.rom(t.kind)
    header = rf.header_digits(encode(t.program))
    body = None
    if t.role in (Role.MATVEC, Role.LOOKUP):
        body = rf.block_digits(*block, t.bits, t.group)
    elif consts is not None:
        body = rf.const_digits(consts)
    try:
        img = rf.image(header, body, rom.cols)
    except rf.RomFormatError as e:
        raise UserError(f"tile {t.name} does not fit a {t.kind} tile of die {die.name}: {e}") from None
    if img.shape[0] > rom.rows:
        raise UserError(f"tile {t.name} needs {img.shape[0]} ROM rows, a {t.kind} tile of die {die.name} has {rom.rows}")
    return img
