"""The system IR: built from a partition, checked where it is built."""

import pytest

from taalas_compile.plan.partition import Cut
from taalas_compile.system.ir import DieStage, Link, System, boundary_stage, system_of


def cuts(*stages):
    return [Cut(i, tuple(s), {}) for i, s in enumerate(stages)]


def test_system_of_a_partition_links_each_die_to_the_next():
    s = system_of("m", "mini", 64, cuts(["head", "L0"], ["L1"], ["L2", "tail"]))
    assert [d.dir for d in s.dies] == ["die0", "die1", "die2"]
    assert s.links == (Link(0, 0, 1, "L0", 64), Link(1, 1, 2, "L1", 64))
    assert s.links[0].bytes_per_token == 256 and s.token_bytes == 4


def test_the_residual_after_the_head_is_the_embedding():
    assert boundary_stage("head") == "embed" and boundary_stage("L7") == "L7"
    assert system_of("m", "mini", 8, cuts(["head"], ["L0", "tail"])).links[0].after == "embed"


@pytest.mark.parametrize("dies, links", [
    ((DieStage(0, ("head", "L0", "tail")),), ()),  # one die is not a system
    ((DieStage(0, ("head",)), DieStage(2, ("L0", "tail"))), (Link(0, 0, 1, "embed", 8),)),  # numbering
    ((DieStage(0, ("L0", "head")), DieStage(1, ("tail",))), (Link(0, 0, 1, "head", 8),)),  # pipeline order
    ((DieStage(0, ("head", "L0")), DieStage(1, ("L0", "tail"))), (Link(0, 0, 1, "L0", 8),)),  # a block on two dies
    ((DieStage(0, ("head",)), DieStage(1, ("L0", "tail"))), (Link(0, 0, 1, "embed", 4),)),  # link width
    ((DieStage(0, ("head",)), DieStage(1, ("L0", "tail"))), ()),  # a missing link
])
def test_a_malformed_system_is_refused(dies, links):
    with pytest.raises(ValueError):
        System("m", "mini", 8, dies, links)
