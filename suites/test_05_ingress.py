"""Section 5, ingress: when an ingress controller runs, a rule routes the target's host to a backend.

The incident's engineers found ingress-nginx running and no Ingress at all: traffic for the host had no
route through the controller.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from pytest_reachability import prefetch
from pytest_reachability.k8s import ingress_host_matches, ingress_host_name, ingress_names_covering

pytestmark = pytest.mark.section("ingress", requires=["cluster-access"])


def rules_for_host(ingresses: list[Any], host: str) -> list[tuple[Any, dict]]:
    """(ingress, rule) pairs whose rule host covers ``host`` (``ingress_host_matches``), in the Ingresses'
    order. A fleet's namespace may hold hundreds of rules and each of its hosts asks: the rules are indexed by
    host once per list, and a host looks up its own name and the one wildcard that covers it."""
    index = _rule_index(ingresses)
    found = sorted({position for name in ingress_names_covering(host) for position in index.get(name, ())})
    return [(ingresses[i], ingresses[i].rules[j]) for i, j in found]


def rules_of(ingress: Any, host: str) -> list[dict]:
    """``ingress``'s rules whose host covers ``host``."""
    return [rule for rule in ingress.rules if ingress_host_matches(rule.get("host"), host)]


# id of an Ingress list -> (the list, what it held when indexed, normalised rule host -> [(ingress index,
# rule index)]); holding the list keeps its id from being reused, and a list changed in place since is
# indexed again. The session's snapshot lists are few.
_RULE_INDEXES: dict[int, tuple[list[Any], tuple[int, ...], dict[str, list[tuple[int, int]]]]] = {}


def _rule_index(ingresses: list[Any]) -> dict[str, list[tuple[int, int]]]:
    held = tuple(map(id, ingresses))
    cached = _RULE_INDEXES.get(id(ingresses))
    if cached is not None and cached[0] is ingresses and cached[1] == held:
        return cached[2]
    index: dict[str, list[tuple[int, int]]] = {}
    for i, ingress in enumerate(ingresses):
        for j, rule in enumerate(ingress.rules):
            if rule.get("host"):
                index.setdefault(ingress_host_name(rule["host"]), []).append((i, j))
    if len(_RULE_INDEXES) >= 16:
        _RULE_INDEXES.clear()
    _RULE_INDEXES[id(ingresses)] = (ingresses, held, index)
    return index


def record_ingresses(ingresses: list[Any], host: str, evidence: Any) -> None:
    """Every Ingress of the namespace as evidence: in full when none routes ``host`` (what it routes
    instead); else those routing it with their rules for ``host`` and the others without rules -- their
    class and published address still tell which controllers serve what, while a fleet's namespace may hold
    hundreds of rules for other hosts."""
    matching = {id(ingress) for ingress, _rule in rules_for_host(ingresses, host)}
    for ingress in ingresses:
        if not matching:
            evidence.record("ingress", ingress)
        elif id(ingress) in matching:
            evidence.record("ingress", for_host(ingress, host))
        else:
            evidence.record("ingress", dataclasses.replace(ingress, rules=(), tls=()))


def for_host(ingress: Any, host: str) -> Any:
    """``ingress`` as far as ``host`` is concerned: its rules and TLS entries for that host (all of its TLS
    entries when none lists the host: which hosts they do list is what says why the host gets the
    controller's default certificate)."""
    rules = tuple(rules_of(ingress, host))
    tls = tuple(
        entry
        for entry in ingress.tls
        if not entry.get("hosts") or any(ingress_host_matches(name, host) for name in entry["hosts"])
    ) or tuple(ingress.tls)
    if len(rules) == len(ingress.rules) and len(tls) == len(ingress.tls):
        return ingress
    return dataclasses.replace(ingress, rules=rules, tls=tls)


@pytest.fixture
def host_rules(cluster_reads: Any, target: Any, evidence: Any) -> list[tuple[Any, dict]]:
    """The namespace's Ingress rules for the target's host; skips when there is none."""
    if target.is_ip:
        pytest.skip(f"target {target.host} is an IP address: Ingress rules match host names")
    ingresses = cluster_reads.ingresses()
    record_ingresses(ingresses, target.host, evidence)
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
    record_ingresses(ingresses, target.host, evidence)
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


def tls_secrets_wanted(host_rules: list[tuple[Any, dict]]) -> dict[str, list[str]]:
    """namespace -> the Secrets named by the TLS entries of the Ingresses routing the host."""
    wanted: dict[str, list[str]] = {}
    for ingress in {ingress.name: ingress for ingress, _rule in host_rules}.values():
        for entry in ingress.tls:
            if entry.get("secret"):
                wanted.setdefault(ingress.namespace, []).append(entry["secret"])
    return wanted


def tls_secrets_present(cluster: Any, namespace: str, names: list[str], shared: Any) -> tuple[Any, Any]:
    """(name -> exists, ClusterError) of ``Cluster.secrets_exist``, read once per session."""
    return prefetch.cluster_outcome(
        shared,
        f"suite-secrets:{cluster.server}:{namespace}:{names}",
        lambda: cluster.secrets_exist(namespace, names),
    )


def prefetch_for_target(work: Any) -> None:
    """The TLS Secrets this host's Ingresses name, read at session start (see ``prefetch``)."""
    reads = work.cluster_reads()
    if reads is None or work.target.is_ip:
        return
    cluster = reads.cluster
    wanted = tls_secrets_wanted(rules_for_host(reads.ingresses(), work.target.host))
    prefetch.run_together(
        [
            lambda namespace=namespace, names=names: tls_secrets_present(
                cluster, namespace, names, work.shared
            )
            for namespace, names in wanted.items()
        ]
    )


def test_ingress_tls_secrets_exist(cluster, host_rules, target, shared_results):
    from pytest_reachability.cluster import ClusterErrorKind

    wanted = tls_secrets_wanted(host_rules)
    if not wanted:
        pytest.skip(f"no Ingress for {target.host} declares TLS")
    missing = []
    for namespace, names in wanted.items():
        present, error = tls_secrets_present(cluster, namespace, names, shared_results)
        if error is not None:
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
