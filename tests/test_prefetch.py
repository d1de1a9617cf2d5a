"""Work done ahead of its tests (``pytest_reachability.prefetch``): evidence handed to the test that reads
the result, a flow never done twice, work behind gates started only once they passed.

The built-in suite's use of it runs against the sandbox in ``test_suite_app.py`` (writes once, after the
database gate, before their test) and ``bench_latency.py`` (what it saves at a distance).
"""

from __future__ import annotations

import threading
import time
import types
from pathlib import Path

import pytest
import servers

from pytest_reachability import evidence as evidence_mod
from pytest_reachability import prefetch
from pytest_reachability.fixtures import SharedResults
from pytest_reachability.gating import FAILED, PASSED, SKIPPED, GatePlan, GateStore


@pytest.fixture
def running_test():
    """An Evidence object standing for the running test, as the plugin sets it around each test."""
    found = evidence_mod.Evidence()
    evidence_mod.set_current(found)
    yield found
    evidence_mod.set_current(None)


def recording_flow(calls: list[int], outcome: BaseException | None = None):
    def compute() -> str:
        calls.append(1)
        evidence_mod.record("http", {"method": "POST", "url": "http://a.test/x", "status": 201})
        if outcome is not None:
            raise outcome
        return "written"

    return compute


def test_work_ahead_hands_its_evidence_to_the_first_test_that_reads_it(running_test, tmp_path: Path):
    shared, calls = SharedResults(tmp_path), []
    with evidence_mod.suppressed():  # as a prefetch thread: nothing recorded on the running test
        value, records, error = prefetch.flow_outcome(shared, "k", recording_flow(calls))
    assert (value, error, len(records), running_test.records) == ("written", None, 1, [])
    assert prefetch.flow(shared, "k", recording_flow(calls)) == "written"
    assert running_test.of_kind("http") == [{"method": "POST", "url": "http://a.test/x", "status": 201}]
    assert prefetch.flow(shared, "k", recording_flow(calls)) == "written"
    assert len(running_test.records) == 1  # the second reader records nothing again
    assert calls == [1]  # and nothing was sent twice


def test_a_flow_done_by_its_test_records_as_before(running_test):
    calls: list[int] = []
    assert prefetch.flow(SharedResults(None), "k", recording_flow(calls)) == "written"
    assert calls == [1] and running_test.of_kind("http")[0]["status"] == 201


def test_what_work_ahead_raised_is_raised_to_its_reader_without_doing_it_again(running_test):
    shared, calls = SharedResults(None), []
    failure = AssertionError("step 2/2 'who am I': GET http://a.test/me answered 401")
    with evidence_mod.suppressed():
        prefetch.flow_outcome(shared, "k", recording_flow(calls, failure))
    with pytest.raises(AssertionError, match="answered 401"):
        prefetch.flow(shared, "k", recording_flow(calls))
    assert calls == [1]
    assert len(running_test.of_kind("http")) == 1  # the evidence came before the failure, as it was seen


def test_capture_inside_suppressed_keeps_what_is_recorded():
    with evidence_mod.suppressed(), evidence_mod.captured() as records:
        evidence_mod.record("app_check", {"ok": True}, section="integration")
    assert records == [("app_check", {"ok": True}, {"section": "integration"})]


# -- gates --------------------------------------------------------------------------------------------


def watch_of(tmp_path: Path, required: dict[str, str]) -> tuple[prefetch.GateWatch, GateStore]:
    plan = GatePlan()
    plan.members = {"api-health": ["t.py::a", "t.py::b"], "database": ["t.py::c"]}
    store = GateStore(tmp_path)
    return prefetch.GateWatch(plan, store, {"http://a.test": required}, bound=10.0), store


TARGET = types.SimpleNamespace(display="http://a.test")
BOTH = {"api-health": "api-health", "database": "database"}


def test_work_behind_gates_waits_until_every_member_of_every_gate_passed(tmp_path: Path):
    watch, store = watch_of(tmp_path, BOTH)
    answer: list[bool] = []
    waiter = threading.Thread(
        target=lambda: answer.append(watch.passed(TARGET, ["api-health", "database"], threading.Event()))
    )
    waiter.start()
    for gate, nodeid in (("api-health", "t.py::a"), ("api-health", "t.py::b")):
        store.record(gate, nodeid, PASSED, "")
        watch.changed()
    time.sleep(0.3)
    assert not answer  # the database gate is still undecided
    store.record("database", "t.py::c", PASSED, "")
    watch.changed()
    waiter.join(5)
    assert answer == [True]


@pytest.mark.parametrize("outcome", [FAILED, SKIPPED])
def test_work_behind_a_failed_or_skipped_gate_never_starts(tmp_path: Path, outcome: str):
    watch, store = watch_of(tmp_path, BOTH)
    store.record("api-health", "t.py::a", outcome, "GET /health answered 503")
    if outcome == SKIPPED:  # a skip is the gate's outcome once every member is in (a failure at once)
        store.record("api-health", "t.py::b", outcome, "not configured")
    started = time.monotonic()
    assert watch.passed(TARGET, ["api-health", "database"], threading.Event()) is False
    assert time.monotonic() - started < 5  # decided as soon as seen, not at the bound


def test_work_behind_a_gate_no_selected_test_requires_is_not_done(tmp_path: Path):
    watch, store = watch_of(tmp_path, {"api-health": "api-health"})
    store.record("api-health", "t.py::a", PASSED, "")
    store.record("api-health", "t.py::b", PASSED, "")
    assert watch.passed(TARGET, ["api-health", "database"], threading.Event()) is False
    assert (
        watch.passed(types.SimpleNamespace(display="http://other.test"), ["api-health"], threading.Event())
        is False
    )


def test_a_scoped_gate_of_a_fleet_target_is_read_under_its_own_key(tmp_path: Path):
    watch, store = watch_of(tmp_path, {"api-health": "api-health@target:http://a.test"})
    watch.plan.members["api-health@target:http://a.test"] = ["t.py::a[a]"]
    store.record("api-health", "t.py::a", FAILED, "another target's instance")
    store.record("api-health@target:http://a.test", "t.py::a[a]", PASSED, "")
    assert watch.passed(TARGET, ["api-health"], threading.Event()) is True


def test_the_session_end_releases_work_waiting_for_a_gate(tmp_path: Path):
    watch, _ = watch_of(tmp_path, BOTH)
    stopped = threading.Event()
    answer: list[bool] = []
    waiter = threading.Thread(target=lambda: answer.append(watch.passed(TARGET, ["api-health"], stopped)))
    waiter.start()
    stopped.set()
    watch.changed()
    waiter.join(5)
    assert answer == [False] and not waiter.is_alive()


def test_sessions_of_work_after_gates_are_reused_per_target_and_closed_at_stop():
    made: list[types.SimpleNamespace] = []

    def make() -> types.SimpleNamespace:
        made.append(types.SimpleNamespace(closed=False))
        made[-1].close = lambda session=made[-1]: setattr(session, "closed", True)
        return made[-1]

    prefetcher = prefetch.Prefetcher(SharedResults(None), 2)
    with prefetcher.target_session(TARGET, make) as first:
        with prefetcher.target_session(TARGET, make) as second:
            assert first is not second  # taken for the block's time: never shared by two flows at once
    with prefetcher.target_session(TARGET, make) as again:
        assert again in (first, second)
    assert len(made) == 2 and not any(session.closed for session in made)
    prefetcher.stop()
    assert all(session.closed for session in made)
    with prefetcher.target_session(TARGET, make) as late:
        pass
    assert late.closed  # one taken after the stop is closed when given back


# -- work behind several gates: its connection opened while the last gate is decided ----------------------


def staged_run(tmp_path: Path, scheme: str, ca_file: str | None, server, last_gate: str):
    """A Prefetcher whose two modules each send a GET behind api-health and database, against ``server``;
    api-health passes, then ``database`` gets ``last_gate``. Returns (the server's connections and
    requests read while database was undecided, the test-side behaviour counters, the Prefetcher)."""
    import dataclasses

    from pytest_reachability.config import Settings, parse_target

    target = parse_target(f"{scheme}://127.0.0.1:{server.port}")
    settings = dataclasses.replace(Settings(), resolvers=["system"], probe_timeout=3.0, ca_bundle=ca_file)
    plan = GatePlan()
    plan.members = {"api-health": ["t.py::a"], "database": ["t.py::c"]}
    store = GateStore(tmp_path)
    watch = prefetch.GateWatch(plan, store, {target.display: BOTH}, bound=10.0)
    sent: list[int] = []

    def module(key: str):
        return lambda work: work.flow(key, lambda http: sent.append(http.get(f"/{key}").status_code))

    # Two modules behind both gates (the integration flow and the storage round trip): one takes the
    # connection opened at session start, the other opens its own once api-health passed.
    gates = ("api-health", "database")
    prefetcher = prefetch.Prefetcher(
        SharedResults(tmp_path), 2, after_gates=[(module("a"), gates), (module("b"), gates)], gates=watch
    )
    prefetcher.start([(target, settings)])
    prefetcher._futures[0].result(timeout=10)  # the session-start probes (health, TCP) are done
    time.sleep(0.2)
    start = (server.connections, server.behaviour.requests)
    store.record("api-health", "t.py::a", PASSED, "")
    watch.changed()
    settle(lambda: server.connections > start[0])
    time.sleep(0.2)  # a request sent before the database gate would have been read by now
    before = (server.connections - start[0], server.behaviour.requests - start[1])
    store.record("database", "t.py::c", last_gate, "" if last_gate == PASSED else "database down")
    watch.changed()
    if last_gate == PASSED:
        settle(lambda: len(sent) == 2, 5.0)
    else:
        time.sleep(0.3)
    return before, sent, prefetcher, start


def settle(condition, seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_work_behind_two_gates_connects_after_the_first_and_sends_after_the_last(
    tmp_path: Path, scheme: str, ca, ca_file: str
) -> None:
    import ssl

    from test_http_preconnect import KeepAlive

    behaviour = KeepAlive()
    tls = None
    if scheme == "https":  # TLS 1.3 by default: the server sends session tickets after the handshake
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(tls)
    with servers.LoopbackServer(behaviour, tls=tls) as server:
        server.behaviour = behaviour
        before, sent, prefetcher, start = staged_run(tmp_path, scheme, ca_file, server, PASSED)
        try:
            assert before == (1, 0)  # connected while the database gate was undecided; nothing sent
            assert sent == [200, 200]
            # The requests went out on the two connections opened ahead (a TLS 1.3 server's tickets did
            # not make them stale).
            assert (server.connections - start[0], behaviour.requests - start[1]) == (1, 2)
        finally:
            prefetcher.stop()


def test_work_behind_a_last_gate_that_fails_sends_nothing(tmp_path: Path, ca_file: str) -> None:
    from test_http_preconnect import KeepAlive

    behaviour = KeepAlive()
    with servers.LoopbackServer(behaviour) as server:
        server.behaviour = behaviour
        before, sent, prefetcher, start = staged_run(tmp_path, "http", ca_file, server, FAILED)
        try:
            assert before == (1, 0)
            assert sent == [] and behaviour.requests == start[1]
        finally:
            prefetcher.stop()


def test_work_behind_one_gate_starts_once_it_passed_on_the_connection_opened_ahead(tmp_path: Path) -> None:
    import dataclasses

    from test_http_preconnect import KeepAlive

    from pytest_reachability.config import Settings, parse_target

    behaviour = KeepAlive()
    with servers.LoopbackServer(behaviour) as server:
        target = parse_target(f"http://127.0.0.1:{server.port}")
        settings = dataclasses.replace(Settings(), resolvers=["system"], probe_timeout=3.0)
        plan = GatePlan()
        plan.members = {"api-health": ["t.py::a"]}
        store = GateStore(tmp_path)
        watch = prefetch.GateWatch(plan, store, {target.display: {"api-health": "api-health"}}, bound=10.0)
        sent: list[int] = []
        prefetcher = prefetch.Prefetcher(
            SharedResults(tmp_path),
            1,
            after_gates=[
                (
                    lambda work: work.flow("one", lambda http: sent.append(http.get("/").status_code)),
                    ("api-health",),
                )
            ],
            gates=watch,
        )
        try:
            prefetcher.start([(target, settings)])
            prefetcher._futures[0].result(timeout=10)  # the session-start probes
            time.sleep(0.3)
            start = (server.connections, behaviour.requests)
            assert sent == []  # nothing behind the gate before it passed
            store.record("api-health", "t.py::a", PASSED, "")
            watch.changed()
            settle(lambda: bool(sent))
            # On the connection opened at session start.
            assert sent == [200] and (server.connections, behaviour.requests) == (start[0], start[1] + 1)
        finally:
            prefetcher.stop()
