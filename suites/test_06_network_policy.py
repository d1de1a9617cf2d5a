"""Section 6, network-policy: the policies selecting the API's pods admit traffic from the edge.

"The edge" is whatever brings outside traffic to the pods: a LoadBalancer (any source address) or an
ingress controller's pods. A pod no policy selects admits everything; once a policy with type Ingress
selects it, only what some selecting policy's rule admits gets through.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from pytest_reachability.k8s import selector_matches

pytestmark = pytest.mark.section("network-policy", requires=["cluster-access"])


def peer_admits_edge(peer: dict, controllers: list[Any], policy_namespace: str) -> bool:
    """A ``from`` peer admits outside traffic (an ipBlock
    covering everything) or an ingress controller pod."""
    block = peer.get("ipBlock")
    if block:
        try:
            network = ipaddress.ip_network(block.get("cidr", ""), strict=False)
        except ValueError:
            return False
        return network.prefixlen == 0 and not block.get("except")
    namespace_selector = peer.get("namespaceSelector")
    pod_selector = peer.get("podSelector")
    for pod in controllers:
        in_namespace = (
            selector_matches(namespace_selector, {"kubernetes.io/metadata.name": pod.namespace})
            if namespace_selector is not None
            else pod.namespace == policy_namespace
        )
        if in_namespace and (pod_selector is None or selector_matches(pod_selector, pod.labels)):
            return True
    return False


def port_admitted(rule_ports: list, port_number: int, port_names: set) -> bool:
    if not rule_ports:
        return True
    for entry in rule_ports:
        port = entry.get("port")
        if port is None or port == port_number or port in port_names:
            return True
        end = entry.get("endPort")
        if isinstance(port, int) and end and port <= port_number <= end:
            return True
    return False


def ports_to_check(pod: Any, services: list[Any]) -> list[tuple[int, str | None]]:
    """(number, name) of the pod's container ports the Services forward to; every container port when none
    matches (a targetPort that is no container port is the endpoints section's finding, not a policy's)."""
    declared = [(p["containerPort"], p.get("name")) for p in pod.container_ports]
    wanted = {port["target_port"] for service in services for port in service.ports}
    chosen = [(number, name) for number, name in declared if number in wanted or (name and name in wanted)]
    return chosen or declared


def test_network_policies_admit_edge_traffic_to_api_pods(cluster_reads, target_service, evidence):
    pods = target_service.pods
    if not pods:
        pytest.skip(f"no pods behind Service {target_service.name}: nothing for a policy to admit")
    policies = cluster_reads.network_policies()
    for policy in policies:
        evidence.record("network_policy", policy)
    try:
        controllers = cluster_reads.ingress_controller_pods()
    except (
        pytest.skip.Exception
    ):  # not allowed to see them: policies are judged on open rules and ipBlocks alone
        controllers = []
    blocked = []
    for pod in pods:
        evidence.record("pod", pod)
        selecting = [
            p
            for p in policies
            if "Ingress" in p.policy_types and selector_matches(p.pod_selector, pod.labels)
        ]
        if not selecting:
            continue
        for number, name in ports_to_check(pod, target_service.services):
            admitted = any(
                port_admitted(rule.get("ports") or [], number, {name} if name else set())
                and (
                    not rule.get("from")
                    or any(peer_admits_edge(peer, controllers, p.namespace) for peer in rule["from"])
                )
                for p in selecting
                for rule in p.ingress
            )
            if not admitted:
                blocked.append(
                    f"port {number} of pod {pod.name} (selected by NetworkPolicy "
                    f"{', '.join(p.name for p in selecting)})"
                )
    assert not blocked, (
        f"no NetworkPolicy admits traffic from the edge to {'; '.join(blocked)}; "
        f"expected a rule admitting the LoadBalancer or ingress controller on that port"
    )
