"""Pods that ended (phase Failed), as the kubelet leaves them after an eviction.

A ReplicaSet replaces such a pod at once and leaves the Failed object for the pod garbage collector (by
default only past 12,500 terminated pods), so ``kubectl get pods`` lists it for days as
``ContainerStatusUnknown``. It serves nothing and never runs again: it fails neither the cluster section nor
the diagnosis. A pod no controller replaces is still reported, under the pod's own reason (Evicted), not
its container's (ContainerStatusUnknown, which only says the container was stopped with it).
"""

from __future__ import annotations

import diagnosis_evidence as E
import pytest

from pytest_reachability.diagnosis import rules_workloads as R
from pytest_reachability.diagnosis.facts import Facts
from pytest_reachability.k8s import batch_pod, replaced_pods
from pytest_reachability.results import TestResult
from pytest_reachability.sandbox.evaluate import evaluate

MESSAGE = "The node was low on resource: memory. Threshold quantity: 100Mi, available: 92468Ki. "


RS = "ReplicaSet/api-847495fbc4"


@pytest.mark.parametrize(
    ("pods", "replaced"),
    [
        ([("old", "Failed", RS), ("new", "Running", RS)], {"old"}),
        ([("old", "Failed", RS), ("new", "Pending", RS)], {"old"}),  # its replacement is judged instead
        (
            [("old", "Failed", RS), ("next", "Running", "ReplicaSet/api-5f6d7c8b9a")],
            {"old"},
        ),  # same Deployment
        ([("old", "Failed", RS)], set()),  # nothing in its place: still counts
        ([("old", "Failed", RS), ("other", "Failed", RS)], set()),
        ([("old", "Failed", RS), ("web", "Running", "ReplicaSet/web-847495fbc4")], set()),
        ([("db-0", "Failed", "StatefulSet/db"), ("db-1", "Running", "StatefulSet/db")], {"db-0"}),
        ([("bare", "Failed", None), ("new", "Running", RS)], set()),
        ([("m-1", "Failed", "Job/migrate"), ("m-2", "Running", "Job/migrate")], set()),  # a Job's: batch_pod
    ],
)
def test_which_ended_pods_their_controller_replaced(pods: list, replaced: set) -> None:
    assert replaced_pods(pods) == replaced


def test_a_jobs_pods_are_batch_pods() -> None:
    assert batch_pod("Job/backup-29876543") and not batch_pod(RS) and not batch_pod(None)


def _evicted(owner: str | None) -> dict:
    stopped = E.container(
        "terminated",
        "ContainerStatusUnknown",
        "The container could not be located when the pod was terminated",
        ready=False,
    )
    pod = E.pod(name="api-847495fbc4-zz4kd", ready=False, phase="Failed", containers=[stopped], owner=owner)
    pod.update(reason="Evicted", message=MESSAGE)
    return pod


def _facts(*pods: dict) -> Facts:
    test = TestResult("suites/test_01_cluster.py::test_pods_are_running_and_ready")
    test.outcome = "failed"
    test.evidence = [{"kind": "service", "data": E.service()}] + [{"kind": "pod", "data": p} for p in pods]
    return Facts([test])


def test_an_evicted_pod_its_replicaset_replaced_is_no_theory() -> None:
    assert R.pods_not_ready(_facts(E.pod(), _evicted(RS))) is None
    # The same pod with nothing in its place is what keeps the Deployment short of a replica.
    theory = R.pods_not_ready(_facts(_evicted(RS)))
    assert theory is not None and "(Evicted)" in theory.title


def test_an_evicted_bare_pod_is_called_evicted_with_the_kubelets_message() -> None:
    theory = R.pods_not_ready(_facts(E.pod(), _evicted(None)))
    assert theory is not None
    assert theory.title.startswith(
        "pod api-847495fbc4-zz4kd is Failed (Evicted) and not Ready: The node was low"
    )
    assert "ContainerStatusUnknown" not in theory.title


def test_the_bundled_scenario_is_healthy_with_an_old_evicted_pod_listed() -> None:
    (row,) = evaluate(["shop-healthy-old-evicted-pod"])
    assert row.hit, row.problem()
    assert row.failing == [], row.failing
