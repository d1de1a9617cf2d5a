"""A pod stuck at Init:0/1: its init container keeps running (``until nc -z db-primary 5432; do sleep 2;
done`` against a Service that does not exist) and the app container waits in PodInitializing. Init
containers have no readiness probe, so the app container's probe is no reason to hand the pod to the
readiness rule; the theory names the init container, how long it has run, and its logs."""

from __future__ import annotations

from pytest_reachability.sandbox.evaluate import evaluate


def test_the_init_container_that_never_completes_is_named() -> None:
    (row,) = evaluate(["init-container-waits-forever"])
    assert row.hit, row.problem()
    assert row.title.startswith("init container wait-for-db of pod api-6b8c9d7f5-q2w4e has run for 25m")
    assert "(Init:0/1)" in row.title


def test_a_sidecar_running_in_an_initialized_pod_is_not_a_stuck_init_container() -> None:
    """A native sidecar (an init container with restartPolicy Always) runs for the pod's life; once the pod
    is Initialized it blocks nothing."""
    from pytest_reachability.diagnosis.rules_workloads import _init_still_running

    sidecar = {"name": "proxy", "init": True, "state": "running", "ready": True}
    pod = {"container_states": [sidecar], "conditions": [{"type": "Initialized", "status": "True"}]}
    assert _init_still_running(pod) is None
    pod["conditions"] = [{"type": "Initialized", "status": "False"}]
    assert _init_still_running(pod) == sidecar
