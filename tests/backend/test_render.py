"""The floorplan PNG is rendered headless from the masks on disk."""

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
