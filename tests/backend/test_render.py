"""The floorplan PNG is rendered headless from the masks on disk (or, for a chip too large to
draw, from its overview) with a title, a legend and a scale bar."""

import struct
import zlib

from taalas_compile.backend.render import render_floorplan
from taalas_compile.die.geometry import Geometry
from taalas_compile.die.load import load_die


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


def test_compile_renders_a_floorplan_that_explains_itself(tiny_chip, tmp_path):
    from taalas_compile.backend.render import die_in_image, frame_box

    png = tiny_chip / "floorplan.png"
    width, height, pixels = png_size_and_pixels(png)
    x0, y0, x1, y1 = frame_box(Geometry(load_die("mini")).size)
    assert width == 1600 and abs(height - 1600 * (y1 - y0) / (x1 - x0)) <= 1  # die + title above + legend below
    assert len(set(pixels)) > 2  # not a blank canvas: tiles and wires are drawn
    left, top, w, h = die_in_image(Geometry(load_die("mini")).size)
    assert 0 < left < 0.05 and 0 < top < 0.15 and 0.9 < w < 1 and 0.7 < h < 0.9


def test_floorplan_is_reproducible_and_drawn_from_the_overview_alone_for_a_large_chip(tiny_chip, tmp_path):
    from taalas_compile.inputs import resolve
    from taalas_compile.pipeline import compile_ir, figure

    inp = resolve("tiny-llama")
    fig = figure(inp, compile_ir(inp))
    again = tmp_path / "again.png"
    render_floorplan(tiny_chip / "chip.gds", tiny_chip / "chip.overview.oas", tiny_chip / "chip.lyp", again, fig)
    assert again.read_bytes() == (tiny_chip / "floorplan.png").read_bytes()
    large = tmp_path / "large.png"
    render_floorplan(None, tiny_chip / "chip.overview.oas", tiny_chip / "chip.lyp", large, fig)  # no mask read
    w, h, pixels = png_size_and_pixels(large)
    assert (w, h) == png_size_and_pixels(again)[:2] and len(set(pixels)) > 2
