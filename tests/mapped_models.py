"""Shipped recipes lowered and mapped (no weights), for the mapper tests."""

from taalas_compile.config.recipe import load_recipe
from taalas_compile.die.load import load_die
from taalas_compile.frontend.lower import lower_args
from taalas_compile.inputs import args_of
from taalas_compile.mapper.place import map_graph
from taalas_compile.quant.bits import assign_bits


def placed(recipe="stories260k", die="mini"):
    """(model graph, placement from map_graph, die) of a shipped recipe on a shipped die."""
    r, d = load_recipe(recipe), load_die(die)
    g = lower_args(args_of(r.model.architecture))
    return g, map_graph(g, assign_bits(g, r.quant, d), d, r.target), d


def placement(recipe="stories260k", die="mini"):
    """(placement, die) of a shipped recipe on a shipped die."""
    _, pl, d = placed(recipe, die)
    return pl, d
