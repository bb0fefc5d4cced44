"""The generic task graph: validation, topological order, scheduling queries."""

import pytest

from tf_lottery.tasks.graph import Graph, GraphError, Task


def _diamond() -> Graph:
    return Graph([
        Task("b", "child", ("a",), 10),
        Task("a", "parent", (), 100),
        Task("c", "child", ("a",), 20),
        Task("d", "pair", ("b", "c"), 1),
    ])


def test_order_puts_dependencies_first_and_keeps_planner_order():
    assert _diamond().ids() == ["a", "b", "c", "d"]
    g = Graph([Task("x", "k"), Task("y", "k"), Task("z", "k", ("x",))])
    assert g.ids() == ["x", "y", "z"]


def test_rejects_duplicates_unknown_deps_and_cycles():
    with pytest.raises(GraphError, match="twice"):
        Graph([Task("a", "k"), Task("a", "k")])
    with pytest.raises(GraphError, match="unknown"):
        Graph([Task("a", "k", ("nope",))])
    with pytest.raises(GraphError, match="cycle"):
        Graph([Task("a", "k", ("b",)), Task("b", "k", ("a",)), Task("c", "k")])


def test_ready_missing_upstream():
    g = _diamond()
    assert [t.id for t in g.ready(set())] == ["a"]
    assert [t.id for t in g.ready({"a"}, started={"b"})] == ["c"]
    assert [t.id for t in g.ready({"a", "b", "c"})] == ["d"]
    assert g.missing_deps("d", {"b"}) == ["c"]
    assert g.upstream("d") == {"a", "b", "c"}


def test_costs():
    g = _diamond()
    assert g.total_steps() == 131
    assert g.critical_path_steps() == 121
    assert g.critical_path_steps({"a": 1, "b": 1, "c": 5, "d": 1}) == 7
