"""A container's past is not this run's cause.

``kubectl get pods`` prints RESTARTS as "7 (6d ago)", measured from the reader's clock: the pod evidence
carries the moments that make that possible (the container's ``started_at``, its last termination's
``last_finished_at``, the pod's ``read_at``). A container that has run, ready, for longer than the kubelet's
crash back-off (5 minutes, doubled) is settled: an OOMKill or liveness kill before that is history, and
neither the diagnosis nor the restart check blames it for today's failure. A container that restarted a
few minutes ago is not settled, and is still blamed.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import diagnosis_evidence as E
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scenario_runs import run_suite

from pytest_reachability.diagnosis import rules_workloads as R
from pytest_reachability.diagnosis.facts import Facts
from pytest_reachability.diagnosis.wording import pod_line
from pytest_reachability.k8s import (
    SETTLED_AFTER_S,
    container_settled,
    restarting_now,
    restarts_are_history,
    running_for,
)
from pytest_reachability.results import TestResult
from pytest_reachability.sandbox.evaluate import evaluate

IMAGE_ID = (
    "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/checkout@sha256:"
    "0c2f4e6a8b0d1f3e5a7c9e1b3d5f7a9c0e2f4a6b8d0f1e3a5c7e9b1d3f5a7c90"
)
READ = datetime(2026, 12, 2, 10, 0, 0, tzinfo=timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _running(started_ago: timedelta, ready: bool = True) -> dict:
    state = E.container(ready=ready, restarts=7, last_reason="OOMKilled", last_exit_code=137)
    state.update(started_at=_iso(READ - started_ago), last_finished_at=_iso(READ - started_ago))
    return state


@given(st.integers(min_value=-86_400, max_value=30 * 86_400))
def test_a_container_settles_after_twice_the_longest_back_off(seconds: int) -> None:
    state = _running(timedelta(seconds=seconds))
    assert running_for(state, _iso(READ)) == seconds
    assert container_settled(state, _iso(READ)) is (seconds >= SETTLED_AFTER_S)


@pytest.mark.parametrize(
    "change",
    [
        {"ready": False},  # running, not ready: its probes still fail
        {"state": "waiting", "reason": "CrashLoopBackOff"},
        {"started_at": None},
        {"started_at": "not a time"},
    ],
)
def test_what_is_not_running_and_ready_or_has_no_moment_never_settles(change: dict) -> None:
    state = {**_running(timedelta(days=6)), **change}
    assert container_settled(state, _iso(READ)) is False
    assert container_settled(_running(timedelta(days=6)), None) is False  # read time unknown


def _facts(*records: tuple[str, dict]) -> Facts:
    test = TestResult("suites/test_01_cluster.py::test_pods_are_running_and_ready")
    test.evidence = [{"kind": kind, "data": data} for kind, data in records]
    return Facts([test])


def _pod(state: dict) -> dict:
    pod = E.pod(containers=[state])
    pod["read_at"] = _iso(READ)
    return pod


def test_an_oom_kill_six_days_ago_is_history_and_three_minutes_ago_is_not() -> None:
    assert (
        R.container_oom_killed(_facts(("service", E.service()), ("pod", _pod(_running(timedelta(days=6))))))
        is None
    )
    theory = R.container_oom_killed(
        _facts(("service", E.service()), ("pod", _pod(_running(timedelta(minutes=3)))))
    )
    assert theory is not None and "OOMKilled" in theory.title


def _liveness(last_seen: timedelta) -> dict:
    event = E.event(
        f"Pod/{E.API_POD}", "Unhealthy", "Liveness probe failed: HTTP probe failed with statuscode: 500"
    )
    event["last_seen"] = _iso(READ - last_seen)
    return event


def test_liveness_failures_before_the_container_started_are_history() -> None:
    settled = _running(timedelta(days=4))
    settled["last_reason"] = "Error"
    old = _facts(
        ("service", E.service()), ("pod", _pod(settled)), ("event", _liveness(timedelta(days=4, hours=1)))
    )
    assert R.liveness_probe_failing(old) is None
    # The same container failing its probe since it started: the kubelet is about to kill it again.
    now = _facts(
        ("service", E.service()), ("pod", _pod(settled)), ("event", _liveness(timedelta(seconds=30)))
    )
    theory = R.liveness_probe_failing(now)
    assert theory is not None and "liveness probe" in theory.title


def _test(results: dict, name: str) -> dict:
    return next(t for t in results["tests"] if t["nodeid"].endswith(name))


def test_the_real_client_records_the_moments_and_old_restarts_do_not_fail_the_run(tmp_path: Path) -> None:
    """Through the official client against the sandbox API server: 7 restarts 6 days ago, ready since."""
    results, output = run_suite("shop-edge-502-old-restarts", tmp_path)
    assert _test(results, "test_containers_are_not_restarting")["outcome"] == "passed", output[-3000:]
    pods = [
        record["data"]
        for record in _test(results, "test_pods_are_running_and_ready")["evidence"]
        if record["kind"] == "pod"
    ]
    oomed = next(p for p in pods if p["name"] == "checkout-7c9d6b5f8-p9w3r")
    state = oomed["container_states"][0]
    read = datetime.fromisoformat(oomed["read_at"])
    assert abs((read - datetime.fromisoformat(state["started_at"])) - timedelta(days=6)) < timedelta(
        minutes=5
    )
    assert state["last_finished_at"] == state["started_at"]
    assert "last terminated OOMKilled exit code 137 6d ago, running and ready for 6d" in pod_line(oomed)
    assert results["theories"][0]["rule"] == "http-5xx"


def test_the_same_restarts_three_minutes_ago_fail_the_restart_check(tmp_path: Path) -> None:
    scenario = tmp_path / "recent.yaml"
    scenario.write_text(
        "name: recent-oom\n"
        "base: shop-edge-502-old-restarts\n"
        "kubernetes:\n"
        "  objects:\n"
        "    - apiVersion: v1\n"
        "      kind: Pod\n"
        "      metadata: {name: checkout-7c9d6b5f8-p9w3r, namespace: payments}\n"
        "      status:\n"
        "        containerStatuses:\n"
        "          - name: checkout\n"
        "            image: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/checkout:2.14.0\n"
        f"            imageID: {IMAGE_ID}\n"
        "            containerID: containerd://cc09\n"
        "            ready: true\n"
        "            started: true\n"
        "            restartCount: 7\n"
        "            state: {running: {startedAt: -3m}}\n"
        "            lastState:\n"
        "              terminated: {exitCode: 137, reason: OOMKilled, startedAt: -40m, finishedAt: -3m}\n"
        "expect: {top: http-5xx, failing: [api-health, cluster]}\n"
    )
    results, output = run_suite(str(scenario), tmp_path)
    restarts = _test(results, "test_containers_are_not_restarting")
    assert restarts["outcome"] == "failed", output[-3000:]
    assert re.search(
        r"checkout-7c9d6b5f8-p9w3r restarted 7 times, the last 3m(\d+s)? ago \(last exit: OOMKilled\)",
        restarts["reason"],
    ), restarts["reason"]
    rules = [t["rule"] for t in results["theories"]]
    assert "container-oom-killed" in rules, rules


def test_an_oom_kill_38_minutes_ago_explains_the_restarts_but_not_the_traffic() -> None:
    """Settled (ready for longer than the back-off) but within the hour the restart check counts: the theory
    stays, says how long the container has served since, and claims only the workload checks."""
    pod = _pod(_running(timedelta(minutes=38)))
    restarts = TestResult("suites/test_01_cluster.py::test_containers_are_not_restarting")
    restarts.outcome, restarts.section = "failed", "cluster"
    restarts.reason = (
        f"{E.API_POD} restarted 7 times, the last 38m ago (last exit: OOMKilled); expected at most 5 restarts"
    )
    edge = TestResult("suites/test_08_api_health.py::test_health_answers_on_every_resolved_address")
    edge.outcome, edge.section = "failed", "api-health"
    restarts.evidence = [{"kind": "service", "data": E.service()}, {"kind": "pod", "data": pod}]
    theory = R.container_oom_killed(Facts([restarts, edge]))
    assert theory is not None
    assert theory.title.endswith("; it has run, ready, for 38m since"), theory.title
    assert restarts.nodeid in theory.explains and edge.nodeid not in theory.explains
    fresh = R.container_oom_killed(
        _facts(("service", E.service()), ("pod", _pod(_running(timedelta(minutes=3)))))
    )
    assert fresh is not None and theory.confidence < fresh.confidence


@pytest.mark.parametrize(
    ("restarts", "ago", "flapping"),
    [
        (4, timedelta(minutes=2), True),
        (2, timedelta(minutes=9), True),
        (1, timedelta(minutes=2), False),  # one restart: a start-up race, not yet a pattern
        (4, timedelta(minutes=11), False),  # longer ago than the back-off reaches
    ],
)
def test_a_container_flaps_now_when_it_restarted_more_than_once_minutes_ago(
    restarts: int, ago: timedelta, flapping: bool
) -> None:
    state = _running(ago)
    state["restarts"] = restarts
    assert restarting_now(state, _iso(READ)) is flapping
    assert restarting_now({**state, "last_finished_at": None}, _iso(READ)) is False


def test_one_replica_segfaulting_below_the_restart_limit_is_not_healthy() -> None:
    """4 restarts, the last 2m ago, exit 139: a HEALTHY verdict would hide the third of requests that 502."""
    (row,) = evaluate(["shop-one-replica-segfaults"])
    assert row.hit, row.problem()
    assert "cluster" in row.failing
    assert (
        "keeps crashing (running again, 4 restarts, last exit code 139 Error): the process crashed"
        in row.title
    )


def test_a_completed_init_containers_restarts_are_over() -> None:
    """An init container that restarted three times and then exited 0: kubectl shows "3 (4d ago)"; it will
    not restart again, so it is neither flapping nor counted."""
    done = {**E.container("terminated", "Completed", ready=False, restarts=3, name="wait-db"), "init": True}
    done.update(exit_code=0, last_finished_at=_iso(READ - timedelta(minutes=4)))
    assert restarting_now(done, _iso(READ)) is False
    assert restarts_are_history([done, E.container()], _iso(READ)) is True
    failing = {**done, "state": "waiting", "reason": "CrashLoopBackOff", "exit_code": None}
    assert restarts_are_history([failing, E.container()], _iso(READ)) is False
