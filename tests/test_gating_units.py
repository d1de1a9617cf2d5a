"""GatePlan, order_items, GateStore and the gates-first xdist schedulers on plain objects (no pytest run).

The pytester tests in test_gating.py prove the behaviour end to end; these pin each piece on its own,
the way pytest-xdist tests its schedulers with a stand-in node.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pytest
from xdist.scheduler import LoadFileScheduling, LoadScopeScheduling

from pytest_reachability.gating import FAILED, PASSED, SKIPPED, GatePlan, GateStore, GraphError, order_items
from pytest_reachability.scheduling import GatesFirstLoadFile, GatesFirstLoadScope, make_scheduler


@dataclass
class Item:
    """What GatePlan reads of a pytest item: its node id and its markers, closest first."""

    nodeid: str
    marks: list = field(default_factory=list)

    def iter_markers(self):
        return iter(self.marks)


def gate(name):
    return pytest.mark.gate(name).mark


def requires(*names, **kwargs):
    return pytest.mark.requires(*names, **kwargs).mark


def section(name, **kwargs):
    return pytest.mark.section(name, **kwargs).mark


HEALTH = Item("t_health.py::test_health", [gate("api-health"), section("api-health")])
ORDERS = Item("t_db.py::test_orders", [section("database", requires=["api-health"])])
ROWS = Item("t_db.py::test_rows", [gate("database"), section("database", requires=["api-health"])])
PLAIN = Item("t_misc.py::test_plain")


# -- GatePlan -------------------------------------------------------------------------------------


def test_plan_reads_sections_gates_and_requirements():
    plan = GatePlan.build([ORDERS, ROWS, HEALTH, PLAIN])
    assert plan.section == {
        ORDERS.nodeid: "database",
        ROWS.nodeid: "database",
        HEALTH.nodeid: "api-health",
        PLAIN.nodeid: "other",
    }
    assert plan.members == {"database": [ROWS.nodeid], "api-health": [HEALTH.nodeid]}
    assert plan.requires == {ORDERS.nodeid: ("api-health",), ROWS.nodeid: ("api-health",)}
    assert plan.member_of[ROWS.nodeid] == ("database",)
    assert plan.closure([ORDERS.nodeid]) == {"api-health"}
    plan.check()


def test_plan_requirement_on_a_test_of_the_same_module():
    handshake = Item("t_tls.py::test_handshake[a]")
    handshake_b = Item("t_tls.py::test_handshake[b]")
    trusted = Item("t_tls.py::test_trusted", [requires(test="test_handshake")])
    plan = GatePlan.build([handshake, handshake_b, trusted])
    (key,) = plan.requires[trusted.nodeid]
    assert plan.is_test_requirement(key) and plan.label(key) == "test_handshake"
    assert plan.members[key] == [handshake.nodeid, handshake_b.nodeid]


def test_plan_refuses_unknown_gates_and_cycles():
    with pytest.raises(GraphError, match="unknown gate 'api-health' required by t_db.py::test_orders"):
        GatePlan.build([ORDERS]).check()
    a = Item("a.py::test_a", [gate("a"), requires("b")])
    b = Item("b.py::test_b", [gate("b"), requires("a")])
    with pytest.raises(GraphError, match="cycle: a -> b -> a|cycle: b -> a -> b"):
        GatePlan.build([a, b]).check()
    with pytest.raises(GraphError, match="takes one name"):
        GatePlan.build([Item("x.py::test_x", [pytest.mark.gate("a", "b").mark])])


# -- ordering -------------------------------------------------------------------------------------


def test_order_moves_gates_just_before_their_first_dependent():
    items = [PLAIN, ORDERS, ROWS, HEALTH]
    ordered = order_items(items, GatePlan.build(items))
    assert [i.nodeid for i in ordered] == [PLAIN.nodeid, HEALTH.nodeid, ORDERS.nodeid, ROWS.nodeid]


def test_order_without_gates_is_unchanged():
    items = [Item("b.py::test_b"), Item("a.py::test_a")]
    assert order_items(items, GatePlan.build(items)) == items


# -- GateStore ------------------------------------------------------------------------------------


def test_store_in_memory_keeps_the_first_failure():
    store = GateStore()
    store.record("api-health", "t::a", FAILED, "empty reply")
    store.record("api-health", "t::a", PASSED, "")  # a later phase does not replace the cause
    result = store.wait_for("api-health", ["t::a"], timeout=0)
    assert result.state == FAILED and result.reason == "blocked by api-health: empty reply"


def test_store_shared_through_a_directory(tmp_path):
    writer, reader = GateStore(tmp_path), GateStore(tmp_path)  # two processes of one session
    writer.record("db", "t::x", SKIPPED, "no [tool.reachability.database]")
    assert reader.results("db") == {"t::x": (SKIPPED, "no [tool.reachability.database]")}
    writer.write_plan(["t::x"])
    assert reader.read_plan() == ["t::x"]
    assert GateStore().read_plan() == []


def test_store_waits_for_a_gate_decided_elsewhere(tmp_path):
    store = GateStore(tmp_path)
    later = threading.Timer(0.2, GateStore(tmp_path).record, ("g", "t::y", PASSED, ""))
    later.start()
    try:
        assert store.wait_for("g", ["t::y"], timeout=30).state == PASSED
    finally:
        later.cancel()


def test_store_says_how_long_it_waited():
    started = time.monotonic()
    result = GateStore().wait_for("g", ["t::a", "t::b"], timeout=0.1, waited=300)
    assert time.monotonic() - started < 10
    assert result.state == "unknown"
    assert result.reason == "blocked by g: result unknown after waiting 300s (2 of 2 gate tests not finished)"


# -- schedulers -----------------------------------------------------------------------------------


class MockGateway:
    def __init__(self, name):
        self.id = name


class MockNode:
    """A worker as xdist's schedulers see it (xdist's own tests use the same stand-in)."""

    def __init__(self, name):
        self.gateway = MockGateway(name)
        self.sent: list[int] = []
        self._shutdown = False

    def send_runtest_some(self, indices):
        self.sent.extend(indices)

    def send_runtest_all(self):
        self.sent.append("ALL")

    def shutdown(self):
        self._shutdown = True

    @property
    def shutting_down(self):
        return self._shutdown


# The gate's file is the smallest and comes last: size order and collection order both send it last.
COLLECTION = [
    "t_db.py::test_a",
    "t_db.py::test_b",
    "t_db.py::test_c",
    "t_web.py::test_d",
    "t_web.py::test_e",
    "t_health.py::test_health",
]


def first_units(scheduler_class, pytester, dist, **kwargs):
    config = pytester.parseconfig("--tx=2*popen", "--dist", dist)
    scheduler = scheduler_class(config, **kwargs)
    nodes = [MockNode("gw0"), MockNode("gw1")]
    for node in nodes:
        scheduler.add_node(node)
    for node in nodes:
        scheduler.add_node_collection(node, COLLECTION)
    scheduler.schedule()
    return [sorted({COLLECTION[i].split("::")[0] for i in node.sent[:1]}) for node in nodes], scheduler


@pytest.mark.parametrize(
    ("plain", "gates_first", "dist"),
    [
        (LoadScopeScheduling, GatesFirstLoadScope, "loadscope"),
        (LoadFileScheduling, GatesFirstLoadFile, "loadfile"),
    ],
)
def test_scheduler_sends_the_gate_scope_first(pytester, plain, gates_first, dist):
    before, _ = first_units(plain, pytester, dist)
    assert ["t_health.py"] not in before  # xdist's own order would keep the gate waiting

    after, scheduler = first_units(
        gates_first, pytester, dist, gate_tests=lambda: ["t_health.py::test_health"]
    )
    assert after[0] == ["t_health.py"]
    for node in list(scheduler.assigned_work):  # every test still runs exactly once
        for index in node.sent:
            scheduler.mark_test_complete(node, index)
    assert scheduler.tests_finished


def test_scheduler_without_gates_keeps_xdist_order(pytester):
    before, _ = first_units(LoadScopeScheduling, pytester, "loadscope")
    after, _ = first_units(GatesFirstLoadScope, pytester, "loadscope", gate_tests=list)
    assert after == before


def test_make_scheduler_only_for_scope_based_dists(pytester):
    config = pytester.parseconfig("--tx=2*popen")
    assert make_scheduler("load", config, None, list) is None
    assert make_scheduler("worksteal", config, None, list) is None
    assert isinstance(make_scheduler("loadfile", config, None, list), LoadFileScheduling)
