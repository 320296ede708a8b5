"""The floorplan PNG is rendered headless from the masks on disk (or, for a chip too large to
draw, from its placement)."""

import struct
import zlib

from taalas_compile.backend.render import render_floorplan
from taalas_compile.config.die import load_die
from taalas_compile.die.geometry import Geometry


def png_size_and_pixels(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    idat, i = b"", 8
    while i < len(data):
        n, kind = struct.unpack(">I4s", data[i : i + 8])
        if kind == b"IDAT":
            idat += data[i + 8 : i + 8 + n]
        i += 12 + n
    return width, height, zlib.decompress(idat)


def test_compile_renders_a_floorplan_with_the_die_aspect(tiny_chip, tmp_path):
    png = tiny_chip / "floorplan.png"
    width, height, pixels = png_size_and_pixels(png)
    assert width == 1600 and 700 < height < 1000  # the mini die is 0.61 x 0.32 mm
    assert len(set(pixels)) > 2  # not a blank canvas: tiles and wires are drawn
    again = tmp_path / "again.png"
    render_floorplan(tiny_chip / "chip.gds", tiny_chip / "chip.lyp", again, Geometry(load_die("mini")).size)
    assert again.read_bytes() == png.read_bytes()


def test_a_chip_too_large_to_draw_is_rendered_from_its_placement(tiny_chip, tmp_path):
    from taalas_compile.backend.blocks import TileMeta
    from taalas_compile.backend.netlist import read_netlist
    from taalas_compile.backend.render import render_placement
    from taalas_compile.inputs import resolve
    from taalas_compile.pipeline import compile_ir

    c = compile_ir(resolve("tiny-llama"))
    _, _, doc = read_netlist(tiny_chip, roms=False)
    metas = {t["name"]: TileMeta(t["rom_region"]["rows"], t["rom_region"]["cols"], t["rom_region"]["sha256"], 0) for t in doc["tiles"]}
    png = tmp_path / "floorplan.png"
    render_placement(c.placement, c.routing, metas, load_die("mini"), tiny_chip / "chip.lyp", png)
    width, height, pixels = png_size_and_pixels(png)
    masks_w, masks_h, _ = png_size_and_pixels(tiny_chip / "floorplan.png")
    assert (width, height) == (masks_w, masks_h) and len(set(pixels)) > 2
    assert list(tmp_path.iterdir()) == [png]  # its scratch layout is gone
