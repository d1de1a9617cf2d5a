"""Section 1, cluster: the API server answers, nodes are Ready, the namespace's pods run and stay up.

The gate ``cluster-access`` lives here: sections 1-6 (and every check that compares with the cluster)
need it. Without a kubeconfig the gate is skipped and they are skipped with it, not failed.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_reachability import prefetch
from pytest_reachability.cluster import ClusterError
from pytest_reachability.k8s import batch_pod, replaced_pods, restarting_now, restarts_are_history
from pytest_reachability.moments import human_duration, seconds_between

pytestmark = pytest.mark.section("cluster", requires=["cluster-access"])

DEFAULT_MAX_RESTARTS = 5
TROUBLE_REASONS = (
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "InvalidImageName",
    "RunContainerError",
)


def record_access(evidence: Any, cluster: Any, error: ClusterError | None) -> None:
    evidence.record(
        "cluster_access",
        {
            "ok": error is None,
            "kind": error.kind.name if error is not None else None,
            "message": error.message if error is not None else "",
            "server": cluster.server,
            "namespace": cluster.namespace,
        },
    )


@pytest.mark.gate("cluster-access")
def test_api_server_answers(cluster, shared_results, evidence):
    version, error = prefetch.cluster_version(cluster, shared_results)
    version = version or {}
    record_access(evidence, cluster, error)
    assert error is None, f"API server {cluster.server} does not answer: {error.message}"
    assert version.get("git_version") or version.get("major"), (
        f"API server {cluster.server} answered /version without a version: {version}"
    )


@pytest.mark.gate("cluster-access")
def test_identity_may_read_the_namespace(cluster, shared_results, evidence):
    _, error = prefetch.namespace_access(cluster, shared_results)
    record_access(evidence, cluster, error)
    assert error is None, f"cannot read namespace {cluster.namespace}: {error.message}"


def ready_condition_reason(node: Any) -> str:
    """The reason (else the status) of a node's Ready condition, as ``kubectl describe node`` shows it."""
    ready = [c.get("reason") or c.get("status") for c in node.conditions if c["type"] == "Ready"]
    return ready[0] if ready else "no Ready condition"


def test_nodes_are_ready(cluster_reads, evidence):
    nodes = cluster_reads.nodes()
    for node in nodes:
        evidence.record("node", node)
    assert nodes, "the cluster lists no nodes"
    not_ready = [f"{node.name} ({ready_condition_reason(node)})" for node in nodes if not node.ready]
    assert not not_ready, f"nodes not Ready: {', '.join(not_ready)}; expected all {len(nodes)} Ready"


def pods_to_check(cluster_reads: Any) -> list[Any]:
    """The namespace's pods; with none, a pod check has nothing to judge and skips (a pass would say pods
    are healthy where there are none: the diagnosis reads an empty namespace as such)."""
    pods = cluster_reads.pods()
    if not pods:
        pytest.skip(f"no pods in namespace {cluster_reads.namespace}: nothing to check")
    return pods


def test_pods_are_running_and_ready(cluster_reads, evidence):
    pods = pods_to_check(cluster_reads)
    for pod in pods:
        evidence.record("pod", pod)
    for event in cluster_reads.events():
        if event.type == "Warning" and event.object.startswith("Pod/"):
            evidence.record("event", event)
    # A pod that ended and was replaced by its ReplicaSet (an old Evicted pod, say) lingers until the pod
    # garbage collector deletes it; its replacement is among the pods checked here. A Job's pods run to
    # completion: their outcome is the Job's, not a serving pod's.
    replaced = replaced_pods((pod.name, pod.phase, pod.owner) for pod in pods)
    unhealthy = [
        f"{pod.name} is {pod.phase}, {pod.containers} ready"
        for pod in pods
        if pod.phase != "Succeeded"
        and not (pod.phase == "Running" and pod.ready)
        and pod.name not in replaced
        and not batch_pod(pod.owner)
    ]
    assert not unhealthy, (
        f"pods not Running and Ready in {cluster_reads.namespace}: {'; '.join(unhealthy)}; expected every "
        "pod Running and Ready"
    )


def test_no_pod_in_crashloop_or_image_pull_backoff(cluster_reads, evidence):
    for pod in pods_to_check(cluster_reads):
        if any(reason in TROUBLE_REASONS for reason in pod.waiting_reasons):
            evidence.record("pod", pod)
    troubled = [
        f"{pod.name} ({', '.join(reason for reason in pod.waiting_reasons if reason in TROUBLE_REASONS)})"
        for pod in cluster_reads.pods()
        if any(reason in TROUBLE_REASONS for reason in pod.waiting_reasons)
    ]
    assert not troubled, f"pods waiting in a failure state: {'; '.join(troubled)}; expected none"


def test_no_pod_pending(cluster_reads, evidence):
    for pod in pods_to_check(cluster_reads):
        if pod.phase == "Pending":
            evidence.record("pod", pod)
    pending = [
        f"{pod.name}" + (f" ({pod.unschedulable_message})" if pod.unschedulable_message else "")
        for pod in cluster_reads.pods()
        if pod.phase == "Pending"
    ]
    assert not pending, f"pods Pending: {'; '.join(pending)}; expected none"


def last_restart(pod: Any) -> str:
    """ ", the last 2m ago" as kubectl's RESTARTS column says it ('' when unknown)."""
    ago = [seconds_between(state.get("last_finished_at"), pod.read_at) for state in pod.container_states]
    known = [seconds for seconds in ago if seconds is not None]
    return f", the last {human_duration(min(known))} ago" if known else ""


def test_containers_are_not_restarting(cluster_reads, run_settings, evidence):
    table = run_settings.tables.get("cluster", {})
    limit = (
        table.get("max_restarts", DEFAULT_MAX_RESTARTS) if isinstance(table, dict) else DEFAULT_MAX_RESTARTS
    )
    assert isinstance(limit, int) and not isinstance(limit, bool) and limit >= 0, (
        f"[tool.reachability.cluster] max_restarts must be a whole number >= 0, got {limit!r}"
    )
    # Restarts an hour and more behind a container that has run, ready, since are history, as kubectl's
    # "7 (4d ago)" shows them: they do not fail a run.
    # A container that restarted more than once, the last time minutes ago, flaps now however low its count.
    counted = [
        pod
        for pod in pods_to_check(cluster_reads)
        if (pod.restarts > limit and not restarts_are_history(pod.container_states, pod.read_at))
        or any(restarting_now(state, pod.read_at) for state in pod.container_states)
    ]
    for pod in counted:
        evidence.record("pod", pod)
    restarting = [
        f"{pod.name} restarted {pod.restarts} times{last_restart(pod)}"
        + (f" (last exit: {', '.join(pod.terminated_reasons)})" if pod.terminated_reasons else "")
        for pod in counted
    ]
    assert not restarting, (
        f"{'; '.join(restarting)}; expected at most {limit} restarts per pod, and none flapping now "
        "(restarted more than once, the last within 10 minutes)"
    )
