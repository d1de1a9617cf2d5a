"""Section 4, endpoints: each Service's selector matches
ready pods, and its targetPort is a container port; an ExternalName Service's name resolves."""

from __future__ import annotations

import time
from typing import Any

import pytest

from pytest_reachability.k8s import port_declared, service_selects
from pytest_reachability.probes.dns import NO_SUCH_NAME, SYSTEM, is_ip_literal, resolve_all

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


MAX_EXTERNAL_NAMES = 8  # ExternalName Services resolved per check, all within one probe timeout


def in_cluster_name(name: str) -> bool:
    """A name only the cluster's DNS answers: ``<service>.<namespace>.svc[.<cluster domain>]``."""
    labels = name.rstrip(".").lower().split(".")
    return "svc" in labels[2:] or name.rstrip(".").lower().endswith(".cluster.local")


def test_external_names_resolve(cluster_reads, reachability_settings, evidence):
    """An ExternalName Service is a DNS alias (a CNAME in the cluster's DNS): its clients, ingress
    controllers included, get an address only when its name resolves."""
    aliases = [s for s in cluster_reads.services() if s.external_name][:MAX_EXTERNAL_NAMES]
    if not aliases:
        pytest.skip(f"no ExternalName Services in namespace {cluster_reads.namespace}")
    resolvers = list(reachability_settings.resolvers or [SYSTEM])
    deadline = time.monotonic() + reachability_settings.probe_timeout
    broken, checked, inside, unanswered = [], 0, [], []
    for service in aliases:
        evidence.record("service", service)
        name = service.external_name.rstrip(".")
        if is_ip_literal(name):
            # The API accepts an IPv4 string as a name; DNS servers do not resolve it as an address.
            broken.append(
                f"Service {service.name}'s externalName {name} is an address, which DNS does not resolve as "
                "a name (a Service without selector and an EndpointSlice hold addresses)"
            )
            continue
        if in_cluster_name(name):
            inside.append(f"{service.name} ({name})")
            continue
        left = deadline - time.monotonic()
        if left <= 0:
            break
        report = resolve_all(name, resolvers, timeout=left)
        evidence.record("external_name_dns", report, service=service.name, namespace=service.namespace)
        checked += 1
        if report.addresses:
            continue
        failures = {answer.failure.value if answer.failure else None for answer in report.answers}
        if report.answers and failures <= NO_SUCH_NAME:
            said = ", ".join(f"{a.resolver}: {a.rcode}" for a in report.answers)
            broken.append(
                f"Service {service.name} is an ExternalName for {name}, which has no address ({said})"
            )
        else:
            unanswered.append(f"{name} ({report.failure.value if report.failure else 'no answer'})")
    assert not broken, (
        f"{'; '.join(broken)}; expected every ExternalName to resolve to an address, or its clients "
        "(ingress controllers included) have nowhere to connect"
    )
    if not checked:
        why = f"names only the cluster's DNS answers: {', '.join(inside)}" if inside else "no time left"
        pytest.skip(f"no ExternalName resolvable from here ({why})")
    if unanswered:
        pytest.skip(f"the resolvers did not answer for {', '.join(unanswered)} (see section dns)")
