"""map_graph: model IR + bit allocation -> `Placement` (tiles on sites, nets between pins).

1. Each graph node becomes tiles: a weight matrix is cut into blocks that fit one MAC tile's ROM
   (row blocks of `rows - 1` output rows, column blocks of whole groups); every vector op gets one
   vector unit; each attention gets SRAM tiles for its KV cache; the recipe's LoRA reserve gets
   SRAM tiles too; the token interface is the I/O tile.
2. Resource needs are checked against the die before any site is taken.
3. Tiles take sites in pipeline order, each kind from its own serpentine site list, so layer i's
   tiles sit before layer i+1's and activations flow across the die in order.
4. Every driver pin becomes one net to all the pins its value feeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import networkx as nx

from taalas_compile.config.die import Die, TileKind
from taalas_compile.config.recipe import LORA_MODULES, TargetCfg
from taalas_compile.die.program import (
    Add,
    Argmax,
    Attention,
    Io,
    Kv,
    Lookup,
    Lora,
    MatVec,
    RmsNorm,
    Rope,
    SiluMul,
    TileProgram,
)
from taalas_compile.die.rom_format import (
    FP16_DIGITS,
    FP32_DIGITS,
    digits_per_code,
    f32_word,
    word_f32,
)
from taalas_compile.die.sram_layout import lora_slots, lora_tile_bytes
from taalas_compile.errors import UserError
from taalas_compile.frontend.ir import Op, OpNode, op_node, pipeline_order, short_name
from taalas_compile.mapper.ir import Net, Pin, Placement, Slice, Tile
from taalas_compile.mapper.legality import check_placement
from taalas_compile.quant.codes import QuantSpec

VECTOR_OPS = (Op.RMSNORM, Op.ROPE, Op.ATTENTION, Op.SILU_MUL, Op.ADD, Op.ARGMAX)
VU_PINS = ("a", "b", "c")


def block_of(layer: int, op: Op) -> str:
    if layer >= 0:
        return f"L{layer}"
    return {Op.INPUT: "io", Op.EMBED: "head"}.get(op, "tail")


def vector_program(node: OpNode, context: int) -> TileProgram:
    """The program of the vector unit that runs `node` (an op of VECTOR_OPS)."""
    n = node.out_shape[0] if node.out_shape else node.attrs.get("n", 0)
    attrs = node.attrs
    if node.op is Op.RMSNORM:  # eps as etched: fp32
        return RmsNorm(n, eps=word_f32(f32_word(attrs.get("eps", 0.0))))
    if node.op is Op.ROPE:
        return Rope(n, n_heads=attrs.get("n_heads", 0), head_dim=attrs.get("head_dim", 0))
    if node.op is Op.ATTENTION:
        return Attention(n, n_heads=attrs.get("n_heads", 0), n_kv_heads=attrs.get("n_kv_heads", 0),
                         head_dim=attrs.get("head_dim", 0), context=context)
    if node.op is Op.ARGMAX:
        return Argmax(attrs["n"])
    return SiluMul(n) if node.op is Op.SILU_MUL else Add(n)


def io_program(g: nx.DiGraph) -> Io:
    """The I/O tile of a chip, or of one die of a system (a stage graph, plan/partition.py): the
    link sides carry the residual stream, `dim` fp32 values per token."""
    args = g.graph["args"]
    link_in = args.dim if "link_in" in g else 0
    link_out = args.dim if "link_out" in g else 0
    return Io(vocab=args.vocab_size, link_in=link_in, link_out=link_out)


@dataclass(frozen=True)
class _Proto:
    """A tile before it has a site."""

    name: str
    kind: TileKind
    node: str
    block: str
    program: TileProgram
    slice: Slice | None = None


def mac_blocks(shape: tuple[int, int], spec: QuantSpec, die: Die) -> list[tuple[int, int, int, int]]:
    """(r0, r1, c0, c1) blocks of a [out, in] matrix that each fit one MAC tile's ROM."""
    out, n_in = shape
    dpw = digits_per_code(spec.bits)
    groups_per_row = die.tiles.mac.cols // (spec.group * dpw + FP16_DIGITS)
    if groups_per_row == 0:
        raise UserError(f"quant group of {spec.group} {spec.bits}-bit codes does not fit a {die.tiles.mac.cols}-cell MAC tile row of die {die.name}")
    cols = groups_per_row * spec.group
    rows = die.tiles.mac.rows - 1
    return [(r, min(r + rows, out), c, min(c + cols, n_in)) for r in range(0, out, rows) for c in range(0, n_in, cols)]


def vu_rom_rows(node_op: Op, n_consts: int, die: Die) -> int:
    nd = {Op.RMSNORM: FP16_DIGITS, Op.ROPE: FP32_DIGITS}.get(node_op, 0)
    return 1 + math.ceil(n_consts * nd / die.tiles.vu.cols)


def _protos(g: nx.DiGraph, specs: dict[str, QuantSpec], die: Die, target: TargetCfg) -> tuple[list[_Proto], dict[str, list[str]]]:
    protos: list[_Proto] = []
    tiles_of: dict[str, list[str]] = {}
    for name in pipeline_order(g):
        node = op_node(g, name)
        short, block = short_name(name), block_of(node.layer, node.op)
        new: list[_Proto] = []
        if node.op is Op.INPUT:
            new.append(_Proto("io", "io", name, "io", io_program(g)))
        elif node.op in (Op.LINEAR, Op.EMBED):
            (w,) = node.params
            spec = specs[w.name]
            blocks = mac_blocks(w.shape, spec, die)
            n_cb = len({(c0, c1) for _, _, c0, c1 in blocks})
            for i, (r0, r1, c0, c1) in enumerate(blocks):
                prog: TileProgram
                if node.op is Op.LINEAR:  # output rows land at r0 of the consumer's input
                    prog = MatVec(spec.bits, spec.group, n_rows=r1 - r0, n_cols=c1 - c0, in_off=c0, out_off=r0)
                else:  # embedding: rows are token ids, columns are output dims
                    prog = Lookup(spec.bits, spec.group, n_rows=r1 - r0, n_cols=c1 - c0, out_off=c0, first=r0)
                new.append(_Proto(f"{short}.r{i // n_cb}c{i % n_cb}", "mac", name, block, prog, Slice(w.name, r0, r1, c0, c1)))
        elif node.op in VECTOR_OPS:
            new.append(_Proto(short, "vu", name, block, vector_program(node, target.context)))
            if node.op is Op.ATTENTION:  # K and V codes + fp16 scales per token (die.arith.kv_format)
                kv_bytes = target.context * target.sequences * die.arith.kv_bytes(node.attrs["n_kv_heads"], node.attrs["head_dim"])
                n_sram = math.ceil(kv_bytes / die.tiles.sram.bytes)
                for k in range(n_sram):
                    chunk = min(die.tiles.sram.bytes, kv_bytes - k * die.tiles.sram.bytes)
                    new.append(_Proto(f"{short}.kv{k}", "sram", name, block,
                                      Kv(chunk, layer=node.layer, index=k, context=target.context, sequences=target.sequences)))
        elif node.op is Op.OUTPUT:
            pass
        else:  # pragma: no cover - the frontend admits only the ops above
            raise UserError(f"the mapper has no tile for op {node.op} ({name})")
        tiles_of[name] = [p.name for p in new]
        protos += new
    return protos, tiles_of


def _lora_protos(g: nx.DiGraph, die: Die, target: TargetCfg) -> list[_Proto]:
    """SRAM tiles for the LoRA slots of every target module of every layer (die/sram_layout.py),
    each with its `Lora` program: bytes used, tile index, max_rank, target-module bitmask, tile count."""
    lora = target.lora
    if not lora.targets:
        return []
    modules = []
    for name in pipeline_order(g):
        node = op_node(g, name)
        module = name.rpartition(".")[2]
        if node.op is Op.LINEAR and node.layer >= 0 and module in lora.targets:
            out, n_in = node.params[0].shape
            modules.append((node.layer, module, n_in, out))
    modules.sort(key=lambda m: (m[0], LORA_MODULES.index(m[1])))  # slot order: layer, then module
    slots = lora_slots(modules, lora.max_rank, die.tiles.sram.bytes)
    mask = sum(1 << LORA_MODULES.index(m) for m in lora.targets)
    used = lora_tile_bytes(slots, lora.max_rank)
    return [_Proto(f"lora{k}", "sram", "", "tail", Lora(b, index=k, max_rank=lora.max_rank, targets=mask, count=len(used)))
            for k, b in enumerate(used)]


def check_fit(protos: list[_Proto], die: Die) -> None:
    need = {k: sum(p.kind == k for p in protos) for k in ("mac", "vu", "sram", "io")}
    have = {k: len(die.sites(k)) for k in need}
    short = [k for k in need if need[k] > have[k]]
    if short:
        detail = ", ".join(f"{k} tiles {need[k]} needed / {have[k]} available" for k in need)
        raise UserError(f"model does not fit die {die.name}: {detail}")


def tile_needs(g: nx.DiGraph, specs: dict[str, QuantSpec], die: Die, target: TargetCfg) -> dict[str, dict[str, int]]:
    """Tiles of each kind every layer block needs, blocks in pipeline order (no site is taken)."""
    protos, _ = _protos(g, specs, die, target)
    out: dict[str, dict[str, int]] = {}
    for p in protos:
        out.setdefault(p.block, dict.fromkeys(("mac", "vu", "sram", "io"), 0))[p.kind] += 1
    return out


def map_graph(g: nx.DiGraph, specs: dict[str, QuantSpec], die: Die, target: TargetCfg) -> Placement:
    protos, tiles_of = _protos(g, specs, die, target)
    check_fit(protos, die)  # the model itself first: its shortfall is the more useful error
    protos += _lora_protos(g, die, target)
    check_fit(protos, die)
    free = {k: iter(die.sites(k)) for k in ("mac", "vu", "sram", "io")}
    tiles = tuple(Tile(p.name, p.kind, next(free[p.kind]), p.node, p.block, p.program, p.slice) for p in protos)
    return check_placement(Placement(die.name, tiles, _nets(g, tiles_of, {t.name: t for t in tiles})), die)  # mapper/legality.py


def _nets(g: nx.DiGraph, tiles_of: dict[str, list[str]], tiles: dict[str, Tile]) -> tuple[Net, ...]:
    """One net per produced value: its tiles' output pins and every pin that consumes it."""
    nets: list[Net] = []
    for name in pipeline_order(g):
        node = op_node(g, name)
        if node.op is Op.OUTPUT:
            continue
        drivers = [Pin("io", "tok_out")] if node.op is Op.INPUT else [Pin(t, "out") for t in tiles_of[name] if tiles[t].kind != "sram"]
        sinks: list[Pin] = []
        for user in g.successors(name):
            port = g.edges[name, user]["port"]
            user_op = op_node(g, user).op
            if user_op is Op.OUTPUT:
                sinks.append(Pin("io", "tok_in"))
            elif user_op in (Op.LINEAR, Op.EMBED):
                sinks += [Pin(t, "in") for t in tiles_of[user]]
            else:
                sinks.append(Pin(tiles_of[user][0], VU_PINS[port]))
        nets.append(Net(short_name(name), tuple(drivers), tuple(sinks)))
        if node.op is Op.ATTENTION:
            vu, *kv = tiles_of[name]
            nets.append(Net(f"{short_name(name)}.kv", (Pin(vu, "d"),), tuple(Pin(t, "port") for t in kv)))
    return tuple(n for n in nets if n.sinks)
