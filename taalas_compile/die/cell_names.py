"""Names of the cells in a mask file: the contract between the mask writer (`backend/`) and every
reader (sign-off, views, the overview), kept with the die model so a reader never takes it from
the writer.

- `T_<tile>`: one tile's ROM array; `B_<block>`: one layer block (io, head, L0.., tail);
  `CHIP_<recipe>`: the top cell; `OVERVIEW_<recipe>`: the overview's top cell. Characters other
  than letters and digits become `_` (GDSII and OASIS cell names stay portable).
- `ROMCELL` (a digit cell's pad and output via), `SEL` (one select via) and `ROUTING` are fixed.
"""

from __future__ import annotations

import re

ROMCELL = "ROMCELL"
SEL = "SEL"
ROUTING = "ROUTING"


def cell_name(prefix: str, name: str) -> str:
    """`prefix`_`name`, with every character of `name` but letters and digits replaced by `_`."""
    return f"{prefix}_{re.sub(r'[^A-Za-z0-9]', '_', name)}"
