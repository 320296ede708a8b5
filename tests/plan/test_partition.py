"""Multi-die partition: fewest dies, then the smallest largest stage; stage graphs the mapper maps."""

import pytest

from taalas_compile.config.recipe import load_recipe
from taalas_compile.die.load import load_die
from taalas_compile.errors import UserError
from taalas_compile.frontend.ir import Op, check_graph, op_node
from taalas_compile.frontend.lower import lower_args
from taalas_compile.inputs import args_of
from taalas_compile.mapper.place import map_graph, tile_needs
from taalas_compile.plan.partition import partition_blocks, stage_graph
from taalas_compile.quant.bits import assign_bits


def blocks(*macs, vu=1, sram=0):
    return {f"L{i}": {"mac": m, "vu": vu, "sram": sram} for i, m in enumerate(macs)}


def test_fewest_dies_then_balanced():
    die = load_die("mini")  # 76 MAC, 44 VU, 11 SRAM sites
    cuts = partition_blocks(blocks(40, 20, 10, 10, 40, 30), die)
    # packing: 70 | 50 | 30 (80 > 76), so three dies; 60 | 60 | 30 is the only way to a largest stage of 60
    assert [c.blocks for c in cuts] == [("L0", "L1"), ("L2", "L3", "L4"), ("L5",)]
    assert [c.needs["mac"] for c in cuts] == [60, 60, 30]
    cuts = partition_blocks(blocks(30, 30, 30, 30, 30, 30, 20), die)
    # packing alone gives 60 | 60 | 60 | 20; the same four dies hold 60, 60, 50, 30 (smaller squares)
    assert len(cuts) == 4 and sorted(c.needs["mac"] for c in cuts) == [30, 50, 60, 60]
    assert [b for c in cuts for b in c.blocks] == [f"L{i}" for i in range(7)]


def test_vector_units_and_fractional_sram_bound_a_stage():
    die = load_die("mini")
    cuts = partition_blocks(blocks(1, 1, 1, vu=30), die)  # 44 vector units: one block per die
    assert len(cuts) == 3
    cuts = partition_blocks({f"L{i}": {"mac": 1, "vu": 1, "sram": 0.4} for i in range(5)}, die)  # 5 x 0.4 = 2 tiles
    assert len(cuts) == 1 and cuts[0].needs["sram"] == 2


def test_a_block_larger_than_the_die_is_a_user_error():
    with pytest.raises(UserError, match="not even split over several: block L1 alone"):
        partition_blocks(blocks(10, 100), load_die("mini"))


def test_stage_graph_has_the_link_as_input_and_output_and_maps():
    r = load_recipe("stories260k")
    die = load_die("mini")
    g = lower_args(args_of(r.model.architecture))
    plan = assign_bits(g, r.quant, die)
    mid = stage_graph(g, ("L2", "L3"))
    check_graph(mid)
    ops = {n: op_node(mid, n).op for n in mid.nodes}
    assert ops["link_in"] is Op.INPUT and ops["link_out"] is Op.OUTPUT
    assert {op_node(mid, n).layer for n in mid.nodes} == {-1, 2, 3}
    # the residual stream enters the norm and the residual add of L2, and leaves from L3's last add
    assert sorted(mid.successors("link_in")) == ["model.layers.2.add", "model.layers.2.input_layernorm"]
    assert list(mid.predecessors("link_out")) == ["model.layers.3.add1"]
    pl = map_graph(mid, plan, die, r.target)
    need = tile_needs(g, plan, die, r.target)
    assert sum(t.kind == "mac" for t in pl.tiles) == need["L2"]["mac"] + need["L3"]["mac"]
    assert [t.name for t in pl.tiles if t.kind == "io"] == ["io"]
    first = stage_graph(g, ("head", "L0"))
    assert "tokens" in first and "link_in" not in first and "link_out" in first
    last = stage_graph(g, ("L5", "tail"))
    assert "output" in last and "link_in" in last and "link_out" not in last
    io = next(t.program for t in pl.tiles if t.kind == "io")
    assert (io.link_in, io.link_out) == (r.model.architecture.dim, r.model.architecture.dim)  # the I/O tile drives the links


def test_dies_asked_for():
    die = load_die("mini")
    cuts = partition_blocks(blocks(40, 20, 10, 10, 40, 30), die, dies=4)
    assert len(cuts) == 4 and max(c.needs["mac"] for c in cuts) == 40
    assert len(partition_blocks(blocks(1, 1, 1), die, dies=3)) == 3  # fits one; three asked for
    with pytest.raises(UserError, match="dies = 2: the model needs at least 3 mini dies"):
        partition_blocks(blocks(40, 20, 10, 10, 40, 30), die, dies=2)
    with pytest.raises(UserError, match="dies = 4: the model has 3 layer blocks"):
        partition_blocks(blocks(1, 1, 1), die, dies=4)


def test_stage_graph_keeps_the_model_order():
    """Node and edge order come from the model graph, never from a set: the masks of a die must not
    depend on PYTHONHASHSEED (networkx's subgraph view iterates a set of nodes)."""
    r = load_recipe("stories260k")
    g = lower_args(args_of(r.model.architecture))
    h = stage_graph(g, ("L2", "L3"))
    inner = [n for n in h.nodes if n in g]
    assert inner == [n for n in g.nodes if n in set(inner)]
    assert [(u, v) for u, v in h.edges if u in g and v in g] == [(u, v) for u, v in g.edges if u in set(inner) and v in set(inner)]
