"""Reference layers: what the overview, views and floorplan draw besides the two masks.

They sit at layer numbers from `REF_BASE` up, far from any die's mask layers (mini and hc1 use
66 and 67), and every name starts with "ref:", so nobody mistakes them for mask data. The colours
are the floorplan legend's.
"""

from __future__ import annotations

from dataclasses import dataclass

from taalas_compile.config.die import Die

REF_BASE = 1000  # reference layers are REF_BASE and above; a die's mask layers must be below


@dataclass(frozen=True)
class RefLayer:
    name: str  # as the layer panel and the legend show it
    layer: int
    datatype: int
    color: str  # "#rrggbb", frame and fill
    pattern: int  # KLayout dither pattern index (0 solid, 1 hollow, 5 sparse dots ...)
    width: int = 1  # frame line width, pixels


DIE = RefLayer("ref: die outline", 1000, 0, "#000000", 1, 2)
SITES = RefLayer("ref: base-die sites", 1001, 0, "#b0b0b0", 1)
TILES = {  # tile outlines by kind, their ROM extent filled
    "mac": RefLayer("ref: MAC tiles", 1010, 0, "#2a9d8f", 5),
    "vu": RefLayer("ref: vector units", 1010, 1, "#e9a23b", 5),
    "sram": RefLayer("ref: SRAM", 1010, 2, "#9b5de5", 5),
    "io": RefLayer("ref: I/O", 1010, 3, "#8d5524", 5),
}
BLOCKS = RefLayer("ref: layer blocks", 1020, 0, "#404040", 1, 2)
TILE_LABELS = RefLayer("ref: tile names", 1030, 0, "#505050", 0)
BLOCK_LABELS = RefLayer("ref: block names", 1031, 0, "#202020", 1, 2)  # outlined: tiles show through
FIGURE = RefLayer("ref: title, legend, scale", 1032, 0, "#000000", 0)
REGION = RefLayer("ref: view region", 1040, 0, "#ff00ff", 1, 2)
MARKER = RefLayer("ref: sign-off marker", 1041, 0, "#ff0000", 9, 3)

REF_LAYERS = (DIE, SITES, *TILES.values(), BLOCKS, TILE_LABELS, BLOCK_LABELS, FIGURE, REGION, MARKER)


def check_die_layers(die: Die) -> None:
    """A die whose mask layers reach REF_BASE would mix masks and references."""
    for ly in (die.layers.via, die.layers.metal):
        assert ly.layer < REF_BASE, f"die layer {ly.layer} collides with the reference layers ({REF_BASE}+)"


def lyp_entries(die: Die) -> list[tuple[str, int, int, str, str, bool, int]]:
    """(name, layer, datatype, colour, dither, visible, frame width) of every layer a chip's files use: the two
    masks, the masks' own text labels (hidden: the overview's drawn names stay readable), then the
    reference layers."""
    via, metal = die.layers.via, die.layers.metal
    return [
        (f"{via.name} (mask)", via.layer, via.datatype, via.color, "I9", True, 1),
        (f"{metal.name} (mask)", metal.layer, metal.datatype, metal.color, "I5", True, 1),
        (f"{metal.name.split()[0]} text labels (mask)", metal.layer, die.layers.label_datatype, "#000000", "I1", False, 1),
        *((r.name, r.layer, r.datatype, r.color, f"I{r.pattern}", True, r.width) for r in REF_LAYERS),
    ]
