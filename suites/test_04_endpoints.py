"""Section 4, endpoints: each Service's selector matches
ready pods, and its targetPort is a container port."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_reachability.k8s import port_declared, service_selects

pytestmark = pytest.mark.section("endpoints", requires=["cluster-access"])


def selected_services(cluster_reads: Any) -> list[Any]:
    """Services that route to pods by selector (ExternalName
    and selector-less Services have no pods to check)."""
    return [s for s in cluster_reads.services() if s.selector and s.type != "ExternalName"]


def pods_of(service: Any, pods: list[Any]) -> list[Any]:
    return [pod for pod in pods if service_selects(service.selector, pod.labels)]


def test_service_selectors_match_pods(cluster_reads, evidence):
    pods = cluster_reads.pods()
    services = selected_services(cluster_reads)
    if not services:
        pytest.skip(f"no Services with a selector in namespace {cluster_reads.namespace}")
    unmatched = []
    for service in services:
        evidence.record("service", service)
        if not pods_of(service, pods):
            selector = ",".join(f"{k}={v}" for k, v in sorted(service.selector.items()))
            unmatched.append(f"Service {service.name} selects {selector}, which matches no pod")
    carried = sorted({f"{k}={v}" for pod in pods for k, v in pod.labels.items() if k != "pod-template-hash"})
    assert not unmatched, f"{'; '.join(unmatched)} (pods here carry {', '.join(carried) or 'no labels'})"


def test_endpoint_slices_have_ready_endpoints(cluster_reads, evidence):
    services = selected_services(cluster_reads)
    if not services:
        pytest.skip(f"no Services with a selector in namespace {cluster_reads.namespace}")
    slices = cluster_reads.endpoint_slices()
    for endpoint_slice in slices:
        evidence.record("endpoint_slice", endpoint_slice)
    empty = []
    for service in services:
        own = [s for s in slices if s.service == service.name]
        ready = [address for s in own for address in s.ready_addresses]
        if not ready:
            not_ready = [address for s in own for address in s.not_ready_addresses]
            detail = f"{len(not_ready)} not ready ({', '.join(not_ready)})" if not_ready else "none at all"
            empty.append(f"Service {service.name} has no ready endpoints, {detail}")
    assert not empty, f"{'; '.join(empty)}; expected at least one ready endpoint per Service"


def test_target_ports_match_container_ports(cluster_reads, evidence):
    pods = cluster_reads.pods()
    mismatched = []
    checked = 0
    for service in selected_services(cluster_reads):
        selected = pods_of(service, pods)
        if not selected:
            continue  # reported by test_service_selectors_match_pods
        for port in service.ports:
            target_port = port["target_port"]
            for pod in selected:
                checked += 1
                if port_declared(target_port, pod.container_ports):
                    continue
                listening = (
                    ", ".join(
                        f"{p['containerPort']}" + (f" ({p['name']})" if p.get("name") else "")
                        for p in pod.container_ports
                    )
                    or "no declared port"
                )
                mismatched.append(
                    f"Service {service.name} port {port['port']} forwards to targetPort {target_port}, "
                    f"but pod {pod.name} listens on {listening}"
                )
                evidence.record("pod", pod)
    if not checked:
        pytest.skip("no Service selects a pod: nothing to compare (see test_service_selectors_match_pods)")
    assert not mismatched, f"{'; '.join(mismatched)}; expected targetPort to be a container port"
