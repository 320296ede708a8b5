"""build_roms: Placement + quantized weights + constants -> the ROM image of every tile."""

from __future__ import annotations

import networkx as nx
import numpy as np

from taalas_compile.config.die import Die
from taalas_compile.die import rom_format as rf
from taalas_compile.errors import UserError
from taalas_compile.frontend.ir import op_node
from taalas_compile.mapper.ir import Placement, Role, Tile
from taalas_compile.model.rope import inv_freq
from taalas_compile.model.weights import WeightSource
from taalas_compile.quant.codes import QTensor


def tile_consts(g: nx.DiGraph, t: Tile, source: WeightSource) -> np.ndarray | None:
    """The constants a vector unit etches: fp16 norm gains or fp32 RoPE inverse frequencies."""
    if t.role is Role.RMSNORM:
        (p,) = op_node(g, t.node).params
        return source.get(p.name).detach().numpy().astype(np.float16)
    if t.role is Role.ROPE:
        return inv_freq(source.args).numpy().astype(np.float32)
    return None


def tile_image(t: Tile, die: Die, q: QTensor | None, consts: np.ndarray | None) -> np.ndarray:
    rom = die.rom(t.kind)
    header = rf.header_digits(t.words)
    body = None
    if t.role in (Role.MATVEC, Role.LOOKUP):
        s = t.slice
        g0, g1 = s.c0 // q.group, -(-s.c1 // q.group)
        body = rf.block_digits(q.codes[s.r0:s.r1, s.c0:s.c1], q.scales[s.r0:s.r1, g0:g1], q.bits, q.group)
    elif consts is not None:
        body = rf.const_digits(consts)
    try:
        img = rf.image(header, body, rom.cols)
    except rf.RomFormatError as e:
        raise UserError(f"tile {t.name} does not fit a {t.kind} tile of die {die.name}: {e}") from None
    if img.shape[0] > rom.rows:
        raise UserError(f"tile {t.name} needs {img.shape[0]} ROM rows, a {t.kind} tile of die {die.name} has {rom.rows}")
    return img


def build_roms(g: nx.DiGraph, pl: Placement, die: Die, qweights: dict[str, QTensor], source: WeightSource) -> dict[str, np.ndarray]:
    return {
        t.name: tile_image(t, die, qweights[t.slice.param] if t.slice else None, tile_consts(g, t, source))
        for t in pl.tiles
    }
