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
