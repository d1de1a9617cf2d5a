"""A startup probe that kills the container before it has started (its budget, initialDelaySeconds +
failureThreshold x periodSeconds, shorter than the app's start-up): the kubelet's events say "Startup probe
failed" and "failed startup probe, will be restarted". That is not the app crashing — "fix the start-up
failure, then rollout restart" would change nothing — nor a liveness probe; the fix is the probe's budget."""

from __future__ import annotations

import diagnosis_evidence as E

from pytest_reachability.diagnosis import rules_workloads as R
from pytest_reachability.diagnosis.facts import Facts
from pytest_reachability.results import TestResult
from pytest_reachability.sandbox.evaluate import evaluate


def _facts(*messages: str) -> Facts:
    killed = E.container(
        "waiting", "CrashLoopBackOff", ready=False, restarts=7, last_reason="Error", last_exit_code=137
    )
    pod = E.pod(ready=False, containers=[killed])
    pod["probes"] = [
        {"container": "api", "probe": "startup", "handler": "httpGet", "path": "/health", "port": 8000}
        | {"initial_delay_seconds": 5, "period_seconds": 10, "failure_threshold": 3, "timeout_seconds": 1},
        {"container": "api", "probe": "liveness", "handler": "httpGet", "path": "/live", "port": 8000},
    ]
    test = TestResult("suites/test_01_cluster.py::test_pods_are_running_and_ready")
    test.outcome, test.section = "failed", "cluster"
    test.evidence = [{"kind": "service", "data": E.service()}, {"kind": "pod", "data": pod}] + [
        {"kind": "event", "data": E.event(f"Pod/{E.API_POD}", "Unhealthy", m)} for m in messages
    ]
    return Facts([test])


def test_startup_probe_kills_name_the_probe_and_its_budget() -> None:
    facts = _facts('Startup probe failed: Get "http://10.244.0.45:8000/health": connect: connection refused')
    assert R.liveness_probe_failing(facts) is None
    theory = R.startup_probe_failing(facts)
    assert theory is not None and theory.rule == "startup-probe-failing"
    assert "the startup probe (GET :8000/health) of container api fails" in theory.title
    assert "(5s + 3 x 10s = 35s)" in theory.title
    assert "failureThreshold" in theory.fix[0]
    assert R.pods_crashing(facts) is None  # the kubelet kills it: not "keeps crashing"


def test_liveness_kills_stay_liveness() -> None:
    facts = _facts("Liveness probe failed: HTTP probe failed with statuscode: 500")
    assert R.startup_probe_failing(facts) is None
    theory = R.liveness_probe_failing(facts)
    assert theory is not None and theory.rule == "liveness-probe-failing"
    assert "the liveness probe (GET :8000/live) of container api fails" in theory.title


def test_the_bundled_scenario_reads_the_budget_through_the_real_client() -> None:
    (row,) = evaluate(["startup-probe-too-short"])
    assert row.hit, row.problem()
    assert "(3 x 10s = 30s)" in row.title


def test_the_probe_kill_names_the_app_container_not_the_init_container_before_it() -> None:
    facts = _facts("Liveness probe failed: HTTP probe failed with statuscode: 500")
    pod = facts.of("pod")[0]
    migrate = {
        **E.container("terminated", "Completed", ready=False, name="migrate"),
        "init": True,
        "exit_code": 0,
    }
    pod["container_states"] = [migrate, *pod["container_states"]]
    theory = R.liveness_probe_failing(facts)
    assert theory is not None and "of container api fails" in theory.title
    assert any(line.endswith("-c api --previous --tail=50") for line in theory.confirm)
