"""askgraph: an ask that would close a cycle of waiting sessions is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccc_statusd.askgraph import AskCycle, AskGraph, check_ask, find_path


def test_self_ask_is_a_cycle() -> None:
    with pytest.raises(AskCycle, match="cannot ask itself"):
        check_ask([], "aaaa", "aaaa")


def test_direct_and_transitive_cycles() -> None:
    g = AskGraph()
    g.begin("A", "B")
    with pytest.raises(AskCycle, match=r"would deadlock.*A → B|B → A") as info:
        g.begin("B", "A")
    assert info.value.path == ["A", "B"]
    g.begin("B", "C")
    with pytest.raises(AskCycle) as info:
        g.begin("C", "A")
    assert info.value.path == ["A", "B", "C"]
    g.begin("C", "D")  # not a cycle
    g.end("A", "B")
    g.begin("C", "A")  # A no longer waits on B


def test_edges_are_counted() -> None:
    g = AskGraph()
    g.begin("A", "B")
    g.begin("A", "B")
    g.end("A", "B")
    with pytest.raises(AskCycle):
        g.begin("B", "A")
    g.end("A", "B")
    g.end("A", "B")  # one too many: harmless
    g.begin("B", "A")
    assert g.edges == {("B", "A"): 1}


@given(st.lists(st.tuples(st.sampled_from("ABCDE"), st.sampled_from("ABCDE")), max_size=12))
def test_graph_stays_acyclic(asks: list[tuple[str, str]]) -> None:
    g = AskGraph()
    for a, b in asks:
        try:
            g.begin(a, b)
        except AskCycle:
            continue
    for a, b in g.edges:
        assert a != b and find_path(g.edges, b, a) is None
