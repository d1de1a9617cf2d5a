"""Section 3, k8s-services: the target's Service exists here, LoadBalancers have addresses, no duplicates.

Which Service is the target's is inferred (see ``conftest.py``) or named with ``service = "api"`` in
``[tool.reachability.cluster]``.
"""

from __future__ import annotations

import pytest

from pytest_reachability.k8s import service_selects

pytestmark = pytest.mark.section("k8s-services", requires=["cluster-access"])


def test_target_service_exists_in_namespace(target_service, cluster_reads, evidence):
    evidence.record("target_service", target_service)
    for service in cluster_reads.services():
        evidence.record("service", service)
    # What happened to the target's Service (a load balancer deleted when its type changed, ...).
    for event in cluster_reads.events():
        if event.object == f"Service/{target_service.name}":
            evidence.record("event", event)
    elsewhere = [ns for ns in target_service.found_in if ns != target_service.namespace]
    where = f"; it exists in namespace {', '.join(elsewhere)}" if elsewhere else "; no namespace has it"
    assert target_service.found, (
        f"Service {target_service.name} not found in namespace {target_service.namespace}{where} "
        f"({target_service.why})"
    )


def test_loadbalancers_have_an_address(cluster_reads, evidence):
    balancers = [service for service in cluster_reads.services() if service.type == "LoadBalancer"]
    if not balancers:
        pytest.skip(f"no LoadBalancer Services in namespace {cluster_reads.namespace}")
    pending = [service.name for service in balancers if service.lb_pending]
    for event in cluster_reads.events():
        if event.object in {f"Service/{name}" for name in pending}:
            evidence.record("event", event)
    reasons = {
        event.object.split("/", 1)[1]: event.message
        for event in cluster_reads.events()
        if event.type == "Warning" and event.object.startswith("Service/")
    }
    described = [f"{name} (pending{': ' + reasons[name] if name in reasons else ''})" for name in pending]
    assert not pending, (
        f"LoadBalancer without an address: {'; '.join(described)}; expected an external address"
    )


def test_no_duplicate_loadbalancers_select_the_same_pods(cluster_reads, evidence):
    pods = cluster_reads.pods()
    balancers = [
        service for service in cluster_reads.services() if service.type == "LoadBalancer" and service.selector
    ]
    groups: dict[tuple[str, ...], list] = {}
    for service in balancers:
        selected = tuple(sorted(pod.name for pod in pods if service_selects(service.selector, pod.labels)))
        if selected:
            groups.setdefault(selected, []).append(service)
    duplicates = {pods_: services for pods_, services in groups.items() if len(services) > 1}
    for services in duplicates.values():
        for service in services:
            evidence.record("service", service)
    described = [
        " and ".join(f"{s.name} ({', '.join(s.lb_addresses) or 'pending'})" for s in services)
        + f" select the same pods ({', '.join(selected)})"
        for selected, services in duplicates.items()
    ]
    assert not duplicates, (
        f"duplicate LoadBalancers: {'; '.join(described)}; expected one LoadBalancer per set of pods"
    )
