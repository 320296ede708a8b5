"""Tile programs: what each tile of the die is set to do, one small frozen class per role.

A tile's program is etched in row 0 of its ROM as `HEADER_WORDS` uint32 header words
(die/rom_format.py writes them as octal digits; docs/file-formats.md, "ROM image"). Word 0 is the
role; the other ten are the role's parameters. Each class's docstring spells out its header as
the list of its eleven words: the role's name, then field names, 0 for a word the role leaves
zero (an fp32 field is etched as its bit pattern). `encode` and `decode` are the only code that
knows where a parameter sits in the header: the mapper builds programs, the ROM writer and
netlist.json encode them, and sign-off, the emulator and the planner read named fields.

`decode` is strict: a header no compile writes (an unknown role, a nonzero word the role leaves
zero, a MAC tile without a valid code width or group) is a `RomFormatError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

from taalas_compile.die.rom_format import (
    HEADER_WORDS,
    RomFormatError,
    f32_word,
    word_f32,
)


class Role(IntEnum):
    """Header word 0 of every tile."""

    MATVEC = 1
    LOOKUP = 2
    RMSNORM = 3
    ROPE = 4
    ATTENTION = 5
    SILU_MUL = 6
    ADD = 7
    ARGMAX = 8
    KV = 9
    LORA = 10
    IO = 11


# --- MAC tiles -------------------------------------------------------------------------------
@dataclass(frozen=True)
class MatVec:
    """A block of a weight matrix [out, in] on a MAC tile: rows out_off.. and columns in_off.. of it.
    It reads input elements in_off..in_off + n_cols and drives its n_rows outputs at out_off of
    its consumers' input (row blocks concatenate, column blocks add up as partial sums).

    Header: [MATVEC, bits, group, n_rows, n_cols, in_off, out_off, 0, 0, 0, 0]
    """

    role: ClassVar[Role] = Role.MATVEC
    layout: ClassVar[tuple[str, ...]] = ("bits", "group", "n_rows", "n_cols", "in_off", "out_off", "", "", "", "")
    bits: int  # code width: 3 or 6
    group: int  # codes per fp16 scale (the last group of a row may be ragged)
    n_rows: int  # output rows of the block
    n_cols: int  # input columns of the block
    in_off: int  # first input element it reads
    out_off: int  # where its outputs land in the net


@dataclass(frozen=True)
class Lookup:
    """A block of the embedding table [vocab, dim] on a MAC tile: token ids first..first + n_rows,
    output dims out_off..out_off + n_cols. A token id selects one row of codes x scales.

    Header: [LOOKUP, bits, group, n_rows, n_cols, 0, out_off, first, 0, 0, 0]
    """

    role: ClassVar[Role] = Role.LOOKUP
    layout: ClassVar[tuple[str, ...]] = ("bits", "group", "n_rows", "n_cols", "", "out_off", "first", "", "", "")
    bits: int  # code width: 3 or 6
    group: int  # codes per fp16 scale
    n_rows: int  # token ids it holds
    n_cols: int  # output dims it holds
    out_off: int  # first output dim
    first: int  # first token id


# --- vector units ----------------------------------------------------------------------------
@dataclass(frozen=True)
class RmsNorm:
    """x / sqrt(mean(x^2) + eps) x gain over the first n elements; the n fp16 gains are its ROM rows 1...

    Header: [RMSNORM, 0, 0, n, 0, 0, 0, eps, 0, 0, 0]   (eps: fp32 bits)
    """

    role: ClassVar[Role] = Role.RMSNORM
    layout: ClassVar[tuple[str, ...]] = ("", "", "n", "", "", "", "eps", "", "", "")
    n: int  # vector length
    eps: float  # etched as fp32: give a value fp32 holds exactly to compare programs


@dataclass(frozen=True)
class Rope:
    """Rotary position embedding of n_heads heads of head_dim (rotate-half pairs); the head_dim / 2
    fp32 inverse frequencies are its ROM rows 1...

    Header: [ROPE, 0, 0, n, 0, 0, 0, n_heads, head_dim, 0, 0]
    """

    role: ClassVar[Role] = Role.ROPE
    layout: ClassVar[tuple[str, ...]] = ("", "", "n", "", "", "", "n_heads", "head_dim", "", "")
    n: int  # vector length
    n_heads: int
    head_dim: int


@dataclass(frozen=True)
class Attention:
    """Causal attention of n_heads query heads over n_kv_heads K/V heads of head_dim, its KV cache
    in the SRAM tiles wired to its d pin, `context` positions per sequence.

    Header: [ATTENTION, 0, 0, n, 0, 0, 0, n_heads, n_kv_heads, head_dim, context]
    """

    role: ClassVar[Role] = Role.ATTENTION
    layout: ClassVar[tuple[str, ...]] = ("", "", "n", "", "", "", "n_heads", "n_kv_heads", "head_dim", "context")
    n: int  # output length: n_heads x head_dim
    n_heads: int
    n_kv_heads: int
    head_dim: int
    context: int  # positions per sequence the KV cache holds


@dataclass(frozen=True)
class SiluMul:
    """silu(a) x b, elementwise over n elements.

    Header: [SILU_MUL, 0, 0, n, 0, 0, 0, 0, 0, 0, 0]
    """

    role: ClassVar[Role] = Role.SILU_MUL
    layout: ClassVar[tuple[str, ...]] = ("", "", "n", "", "", "", "", "", "", "")
    n: int  # vector length


@dataclass(frozen=True)
class Add:
    """a + b, elementwise over n elements (the residual stream).

    Header: [ADD, 0, 0, n, 0, 0, 0, 0, 0, 0, 0]
    """

    role: ClassVar[Role] = Role.ADD
    layout: ClassVar[tuple[str, ...]] = ("", "", "n", "", "", "", "", "", "", "")
    n: int  # vector length


@dataclass(frozen=True)
class Argmax:
    """The index of the largest of the first n logits: the next token.

    Header: [ARGMAX, 0, 0, n, 0, 0, 0, 0, 0, 0, 0]
    """

    role: ClassVar[Role] = Role.ARGMAX
    layout: ClassVar[tuple[str, ...]] = ("", "", "n", "", "", "", "", "", "", "")
    n: int  # logits it reads: the vocabulary


# --- SRAM and I/O tiles ----------------------------------------------------------------------
@dataclass(frozen=True)
class Kv:
    """Part `index` of layer `layer`'s KV cache: n_bytes of one SRAM tile, for `context` positions
    of `sequences` sequences (emulator/kv.py).

    Header: [KV, 0, 0, n_bytes, 0, 0, 0, layer, index, context, sequences]
    """

    role: ClassVar[Role] = Role.KV
    layout: ClassVar[tuple[str, ...]] = ("", "", "n_bytes", "", "", "", "layer", "index", "context", "sequences")
    n_bytes: int  # bytes of the tile it reserves
    layer: int
    index: int  # this tile's place among the layer's KV tiles
    context: int  # positions per sequence
    sequences: int  # sequences in flight


@dataclass(frozen=True)
class Lora:
    """SRAM tile `index` of `count` holding LoRA slots (die/sram_layout.py): n_bytes used, rank up
    to max_rank, for the modules whose bit is set in `targets` (bit i: `LORA_MODULES[i]`).

    Header: [LORA, 0, 0, n_bytes, 0, 0, 0, index, max_rank, targets, count]
    """

    role: ClassVar[Role] = Role.LORA
    layout: ClassVar[tuple[str, ...]] = ("", "", "n_bytes", "", "", "", "index", "max_rank", "targets", "count")
    n_bytes: int  # bytes of the tile its slots use
    index: int
    max_rank: int
    targets: int  # bitmask over LORA_MODULES
    count: int  # LoRA tiles of the chip


@dataclass(frozen=True)
class Io:
    """The die's interface: token ids in and out (`vocab` of them) on a single die; on a die of a
    multi-die system, one or both sides are the die-to-die link instead: `link_in` fp32 values
    per token received from the previous die (driven on `tok_out`), `link_out` fp32 values per
    token sent to the next die (read from `tok_in`). 0: token ids on that side.

    Header: [IO, 0, 0, vocab, link_in, link_out, 0, 0, 0, 0, 0]
    """

    role: ClassVar[Role] = Role.IO
    layout: ClassVar[tuple[str, ...]] = ("", "", "vocab", "link_in", "link_out", "", "", "", "", "")
    vocab: int
    link_in: int = 0  # values per token from the previous die (0: token ids from the host)
    link_out: int = 0  # values per token to the next die (0: the sampled token back to the host)


TileProgram = MatVec | Lookup | RmsNorm | Rope | Attention | SiluMul | Add | Argmax | Kv | Lora | Io
PROGRAMS: tuple[type, ...] = (MatVec, Lookup, RmsNorm, Rope, Attention, SiluMul, Add, Argmax, Kv, Lora, Io)
MAC_PROGRAMS = (MatVec, Lookup)  # programs of MAC tiles: a weight block in ROM rows 1..
VECTOR_PROGRAMS = (RmsNorm, Rope, Attention, SiluMul, Add, Argmax)  # programs of vector units: n elements
_OF_ROLE: dict[Role, type] = {cls.role: cls for cls in PROGRAMS}
_FLOATS = frozenset({"eps"})  # fields etched as fp32 bits


def _word(program: TileProgram, name: str) -> int:
    if not name:
        return 0
    value = getattr(program, name)
    return f32_word(value) if name in _FLOATS else int(value)


def encode(program: TileProgram) -> tuple[int, ...]:
    """A tile program -> its `HEADER_WORDS` uint32 header words (word 0: the role)."""
    words = (int(program.role), *(_word(program, name) for name in program.layout))
    if not all(0 <= w < 1 << 32 for w in words):  # a compiler bug: never etch a truncated word (not an assert: -O drops those)
        raise ValueError(f"{program}: a header word outside uint32: {words}")
    return words


def decode(words: tuple[int, ...] | list[int]) -> TileProgram:
    """Header words -> the tile program they encode; `RomFormatError` for a header no compile writes."""
    if len(words) != HEADER_WORDS or not all(isinstance(w, int) and 0 <= w < 1 << 32 for w in words):
        raise RomFormatError(f"a header is {HEADER_WORDS} uint32 words, not {list(words)}")
    if words[0] not in _OF_ROLE:
        raise RomFormatError(f"role {words[0]} is not a tile role ({min(Role)}..{max(Role)})")
    cls = _OF_ROLE[Role(words[0])]
    what = f"{cls.role.name.lower()} header"
    args: dict[str, int | float] = {}
    for i, name in enumerate(cls.layout, start=1):
        if name:
            args[name] = word_f32(words[i]) if name in _FLOATS else words[i]
        elif words[i]:
            raise RomFormatError(f"word {i} of a {what} is {words[i]}, a compile writes 0")
    if any(math.isnan(args[name]) for name in _FLOATS & args.keys()):
        raise RomFormatError(f"{what}: eps is not a number")
    if cls in MAC_PROGRAMS and (args["bits"] not in (3, 6) or args["group"] < 1):
        raise RomFormatError(f"{what}: {args['bits']}-bit codes in groups of {args['group']}; "
                             "a MAC tile holds 3- or 6-bit codes in groups of 1 or more")
    return cls(**args)
