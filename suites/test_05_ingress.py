"""Section 5, ingress: when an ingress controller runs, a rule routes the target's host to a backend.

The incident's engineers found ingress-nginx running and no Ingress at all: traffic for the host had no
route through the controller.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_reachability.k8s import ingress_host_matches

pytestmark = pytest.mark.section("ingress", requires=["cluster-access"])


def rules_for_host(ingresses: list[Any], host: str) -> list[tuple[Any, dict]]:
    """(ingress, rule) pairs whose rule host covers ``host``."""
    return [
        (ingress, rule)
        for ingress in ingresses
        for rule in ingress.rules
        if ingress_host_matches(rule.get("host"), host)
    ]


@pytest.fixture
def host_rules(cluster_reads: Any, target: Any, evidence: Any) -> list[tuple[Any, dict]]:
    """The namespace's Ingress rules for the target's host; skips when there is none."""
    if target.is_ip:
        pytest.skip(f"target {target.host} is an IP address: Ingress rules match host names")
    ingresses = cluster_reads.ingresses()
    for ingress in ingresses:
        evidence.record("ingress", ingress)
    found = rules_for_host(ingresses, target.host)
    if not found:
        pytest.skip(
            f"no Ingress rule for {target.host} in namespace {cluster_reads.namespace} "
            f"(see test_ingress_rule_exists_for_target_host)"
        )
    return found


def test_ingress_rule_exists_for_target_host(cluster_reads, target, target_service, dns, evidence):
    if target.is_ip:
        pytest.skip(f"target {target.host} is an IP address: Ingress rules match host names")
    ingresses = cluster_reads.ingresses()
    if not rules_for_host(ingresses, target.host):
        # A host whose name resolves to its own LoadBalancer Service is exposed without an Ingress.
        direct = [
            service
            for service in target_service.loadbalancers
            if set(dns.addresses) & {*service.lb_addresses, *service.external_ips}
        ]
        if direct:
            pytest.skip(
                f"{target.host} resolves to the LoadBalancer of Service {direct[0].name}: it is exposed "
                "without an Ingress"
            )
    controllers = cluster_reads.ingress_controller_pods()
    for pod in controllers:
        evidence.record("ingress_controller", pod)
    for ingress in ingresses:
        evidence.record("ingress", ingress)
    if not controllers:
        pytest.skip("no ingress controller runs: the target is exposed without an Ingress")
    running = ", ".join(f"{pod.namespace}/{pod.name}" for pod in controllers)
    hosts = sorted({rule.get("host") or "*" for ingress in ingresses for rule in ingress.rules})
    assert rules_for_host(ingresses, target.host), (
        f"no Ingress in namespace {cluster_reads.namespace} has a rule for {target.host} "
        f"(Ingresses: {len(ingresses)}, hosts: {', '.join(hosts) or 'none'}) although an ingress controller "
        "runs "
        f"({running}); expected a rule routing {target.host} to its Service"
    )


def test_ingress_backends_exist(cluster_reads, host_rules, evidence):
    services = {service.name: service for service in cluster_reads.services()}
    missing = []
    for ingress, rule in host_rules:
        for path in rule.get("paths", []):
            name, port = path.get("service"), path.get("port")
            if name is None:
                continue  # a resource backend, not a Service
            service = services.get(name)
            route = f"{rule['host']}{path.get('path', '/')}"
            where = f"Ingress {ingress.name} routes {route} to Service {name}:{port}"
            if service is None:
                missing.append(f"{where}, which does not exist in namespace {ingress.namespace}")
                continue
            evidence.record("service", service)
            if port is not None and not any(port in (p["port"], p.get("name")) for p in service.ports):
                ports = ", ".join(
                    str(p["port"]) + (f" ({p['name']})" if p.get("name") else "") for p in service.ports
                )
                missing.append(f"{where}, but the Service has port {ports or 'none'}")
    assert not missing, f"{'; '.join(missing)}; expected every backend Service and port to exist"


def test_ingress_class_exists(cluster_reads, host_rules, evidence):
    classes = cluster_reads.ingress_classes()
    for ingress_class in classes:
        evidence.record("ingress_class", ingress_class)
    names = {c.name for c in classes}
    problems = []
    for ingress in {ingress.name: ingress for ingress, _rule in host_rules}.values():
        if ingress.class_name is None:
            if not any(c.is_default for c in classes):
                problems.append(f"Ingress {ingress.name} names no IngressClass and none is the default")
        elif ingress.class_name not in names:
            problems.append(
                f"Ingress {ingress.name} names IngressClass {ingress.class_name}, which does not exist "
                f"(classes: {', '.join(sorted(names)) or 'none'})"
            )
    assert not problems, f"{'; '.join(problems)}; expected an existing IngressClass"


def test_ingress_tls_secrets_exist(cluster, host_rules, target):
    from pytest_reachability.cluster import ClusterError, ClusterErrorKind

    wanted: dict[str, list[str]] = {}
    for ingress in {ingress.name: ingress for ingress, _rule in host_rules}.values():
        for entry in ingress.tls:
            if entry.get("secret"):
                wanted.setdefault(ingress.namespace, []).append(entry["secret"])
    if not wanted:
        pytest.skip(f"no Ingress for {target.host} declares TLS")
    missing = []
    for namespace, names in wanted.items():
        try:
            present = cluster.secrets_exist(namespace, names)
        except ClusterError as error:
            if error.kind is ClusterErrorKind.FORBIDDEN:
                # Least privilege: no Secret access unless granted for these names
                # (deploy/rbac-tls-secrets.yaml).
                pytest.skip(
                    f"not checked: reading Secret {namespace}/{', '.join(names)} is not granted; "
                    "grant get on these Secrets by name to check them (deploy/rbac-tls-secrets.yaml): "
                    f"{error.message}"
                )
            pytest.fail(error.message, pytrace=False)
        missing += [f"{namespace}/{name}" for name, exists in present.items() if not exists]
    assert not missing, (
        f"TLS secrets missing: {', '.join(missing)}; expected the Secrets the Ingress names to exist"
    )
