"""Mask emission rate and volume on hc1-sized ROM tiles (issue 5's per-core targets), and the
OASIS reader's decode rate.

Tiles are full hc1 MAC tiles (1025 x 4864 cells): Gaussian weights quantized like a compile does
(round-to-nearest with a clip search per group of 32, quant/codes.py), encoded by die/rom_format.py
with their fp16 scales; `--six` of the tiles hold 6-bit codes. One core, one process:

    python benchmarks/mask_emission.py                      # 4 tiles (3 x 3-bit, 1 x 6-bit)
    python benchmarks/mask_emission.py --tiles 8 --json out/mask_emission.json

Figures: digits/s and weights/s of `rom_tile_bytes` (cell bytes in memory, CBLOCK deflate
included), bytes per weight of the cells, and the OASIS reader's vias/s over a file of the tiles.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from taalas_compile.backend import gds_stream, oasis_stream
from taalas_compile.backend.mask_file import MaskFile
from taalas_compile.die.load import load_die
from taalas_compile.die.rom_format import (
    HEADER_WORDS,
    NO_CELL,
    block_digits,
    header_digits,
    image,
)
from taalas_compile.quant.codes import QuantSpec, quantize_tensor
from taalas_compile.signoff.oasis_read import read_cells

GROUP = 32


def build_tile_image(bits: int, die, seed: int) -> tuple[np.ndarray, int]:
    """A full MAC tile of `bits`-bit codes from Gaussian weights -> (ROM image, weights in it)."""
    mac = die.tiles.mac
    span = GROUP * (1 if bits == 3 else 2) + 6  # digits per group: codes + fp16 scale
    rows, n_in = mac.rows - 1, (mac.cols // span) * GROUP
    w = torch.randn(rows, n_in, generator=torch.Generator().manual_seed(seed)) * 0.02
    q = quantize_tensor(w, QuantSpec(bits, GROUP))
    body = block_digits(q.codes, q.scales, bits, GROUP)
    return image(header_digits((1,) + (0,) * (HEADER_WORDS - 1)), body, mac.cols), rows * n_in


def entropy_bounds(imgs: list[np.ndarray], weights: int) -> tuple[float, float]:
    """Bytes per weight of the tiles' digits at their entropy (digits independent), and at the sum
    of each digit's binary entropy (the cost of coding each digit's positions as spacings)."""
    d = np.concatenate([img[img != NO_CELL] for img in imgs])
    p = np.bincount(d, minlength=8) / d.size
    p = p[p > 0]
    h = -(p * np.log2(p)).sum()
    h_spaced = (-(p * np.log2(p)) - (1 - p) * np.log2(np.where(p < 1, 1 - p, 1))).sum()
    return h * d.size / 8 / weights, h_spaced * d.size / 8 / weights


def timed(fn, *args, repeat: int = 2):
    """Best of `repeat` runs in CPU seconds of this process (the per-core rate; on a shared machine
    wall time also counts other processes)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.process_time()
        out = fn(*args)
        best = min(best, time.process_time() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiles", type=int, default=4)
    ap.add_argument("--six", type=float, default=0.25, help="share of tiles with 6-bit codes")
    ap.add_argument("--levels", type=int, nargs="+", default=[oasis_stream.LEVEL], help="OASIS zlib levels to measure")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    torch.set_num_threads(1)
    die = load_die("hc1")
    n6 = round(a.tiles * a.six)
    tiles = [build_tile_image(6 if i < n6 else 3, die, i) for i in range(a.tiles)]
    kinds = [(6 if i < n6 else 3, n) for i, (_, n) in enumerate(tiles)]  # (bits, weights) per tile
    imgs = [img for img, _ in tiles]
    weights = sum(n for _, n in tiles)
    digits = int(sum((img != NO_CELL).sum() for img in imgs))
    print(f"{a.tiles} hc1 tiles ({n6} 6-bit): {weights:,} weights, {digits:,} digits (select vias)")

    res: dict = {"tiles": a.tiles, "six_bit_tiles": n6, "weights": weights, "digits": digits, "formats": {},
                 "entropy_bytes_per_weight": {}}
    for b in sorted({bb for bb, _ in kinds}):
        sel = [img for img, (bb, _) in zip(imgs, kinds) if bb == b]
        h, hs = entropy_bounds(sel, sum(n for bb, n in kinds if bb == b))
        res["entropy_bytes_per_weight"][b] = {"digits": h, "spacings": hs}
        print(f"{b}-bit tiles: digit entropy {h:.3f} bytes/weight, spacing-coding bound {hs:.3f} bytes/weight")
    runs = [("gds", None)] + [("oasis", lv) for lv in a.levels]
    for fmt, level in runs:
        def emit(fmt=fmt, level=level):
            if fmt == "gds":
                return [gds_stream.rom_tile_bytes(f"T_{i}", img, die) for i, img in enumerate(imgs)]
            return [oasis_stream.rom_tile_bytes(f"T_{i}", img, die, level) for i, img in enumerate(imgs)]

        s, parts = timed(emit)
        size = sum(len(p) for p in parts)
        key = fmt if level is None else f"oasis (zlib {level})"
        per_bits = {b: sum(len(p) for p, (bb, _) in zip(parts, kinds) if bb == b) / sum(n for bb, n in kinds if bb == b)
                    for b in sorted({bb for bb, _ in kinds})}
        res["formats"][key] = r = {"seconds": s, "digits_per_s": digits / s, "weights_per_s": weights / s,
                                   "bytes": size, "bytes_per_weight": size / weights,
                                   "bytes_per_weight_by_bits": per_bits}
        print(f"{key:16s} {r['digits_per_s'] / 1e6:7.1f} M digits/s {r['weights_per_s'] / 1e6:7.1f} M weights/s "
              f"{r['bytes_per_weight']:7.3f} bytes/weight ("
              + ", ".join(f"{b}-bit {v:.3f}" for b, v in per_bits.items()) + ")")
        if fmt == "oasis":
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "tiles.oas"
                with MaskFile(path, "oasis") as f:
                    for p in parts:
                        f.add(p)
                s_read, cells = timed(lambda p=path: [len(c.placements.get("SEL", ())) for c in read_cells(p)])
            vias = sum(cells)
            assert vias == digits, (vias, digits)
            r["read_vias_per_s"] = vias / s_read
            print(f"{'':16s} reader: {vias / s_read / 1e6:7.1f} M select vias/s (pads and vias expanded, CRC checked)")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
