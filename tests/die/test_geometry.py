"""Die geometry: cells, stubs and tracks obey the die's own rules."""

from taalas_compile.config.die import KIND_OF_LETTER
from taalas_compile.die.geometry import (
    DIGIT_OF_SITE,
    OUTPUT_SITE,
    PINS,
    SITE_OF_DIGIT,
    Geometry,
    check_rules,
)
from taalas_compile.die.load import load_die


def test_shipped_dies_are_rule_clean():
    for name in ("mini", "hc1"):
        assert check_rules(load_die(name)) == []


def test_digit_sites_are_the_eight_non_centre_sites():
    assert sorted(SITE_OF_DIGIT + (OUTPUT_SITE,)) == list(range(9))
    assert all(SITE_OF_DIGIT[d] == s for s, d in DIGIT_OF_SITE.items())


def test_via_sites_sit_inside_the_pad_with_enclosure():
    die = load_die("mini")
    g = Geometry(die)
    x0, y0, x1, y1 = g.pad
    h = die.rules.via_size // 2
    for s in range(9):
        cx, cy = g.site_center(s)
        assert x0 + die.rules.via_enclosure <= cx - h and cx + h <= x1 - die.rules.via_enclosure
        assert y0 + die.rules.via_enclosure <= cy - h and cy + h <= y1 - die.rules.via_enclosure


def test_every_stub_in_a_channel_has_its_own_x():
    die = load_die("mini")
    g = Geometry(die)
    for r in range(die.grid.n_rows):
        xs = [g.pin_x(KIND_OF_LETTER[letter], pin, c) for c, letter in enumerate(die.grid.rows[r]) for pin in PINS[KIND_OF_LETTER[letter]]]
        xs += [g.feedthrough_x(c, rr, k) for c in range(die.grid.n_cols) for rr in (r - 1, r) if 0 <= rr < die.grid.n_rows - 1
               for k in range(die.routing.feedthroughs)]
        assert len(xs) == len(set(xs))
