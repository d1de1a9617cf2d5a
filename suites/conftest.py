"""Fixtures shared by the built-in suite's sections: cluster reads made once per run, and the target's Service.

``cluster_reads`` reads each kind of object once per run (shared by every xdist worker) and turns a
refused or failed read into a one-line skip (forbidden) or failure. ``target_service`` answers "which
Service is the target's?":

1. ``service = "api"`` in ``[tool.reachability.cluster]`` names it;
2. else the Services of the namespace whose LoadBalancer address is an address of the target (as DNS
   answers it), or that an Ingress rule for the target's host routes to;
3. else the Service named like the target's first label, else the one named ``api``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest

from pytest_reachability.cluster import ALL_NAMESPACES, ClusterError, ClusterErrorKind
from pytest_reachability.k8s import service_selects

# Tells the plugin that the tests under this folder are the built-in suite: without a target it stops with
# a usage error, and a run in which all of them were skipped verified nothing (exit status 5).
REACHABILITY_BUILTIN_SUITE = True


class ClusterReads:
    """Lists of cluster objects, read once per run and shared across xdist workers."""

    def __init__(self, cluster: Any, shared: Any) -> None:
        self.cluster = cluster
        self.namespace: str = cluster.namespace
        self._shared = shared

    def _read(self, what: str, read: Callable[[], Any], *, optional: bool = False, context: bool = False) -> Any:
        """``optional``: a resource the server may not have (404 skips); ``context``: refused gives []."""
        key = f"suite-cluster:{self.cluster.server}:{self.namespace}:{what}"
        try:
            return self._shared.get(key, read)
        except ClusterError as error:
            if context and error.kind in (ClusterErrorKind.FORBIDDEN, ClusterErrorKind.NOT_FOUND):
                if error.kind is ClusterErrorKind.FORBIDDEN:
                    # Nothing fails for lack of it, but the run says which grant would add the evidence.
                    warnings.warn(f"{what} not read, so missing from the evidence: {error.message}", stacklevel=2)
                return []
            if error.kind is ClusterErrorKind.FORBIDDEN or (optional and error.kind is ClusterErrorKind.NOT_FOUND):
                pytest.skip(error.message)
            pytest.fail(error.message, pytrace=False)

    def nodes(self) -> list[Any]:
        return self._read("nodes", self.cluster.nodes)

    def pods(self) -> list[Any]:
        return self._read("pods", self.cluster.pods)

    def deployments(self) -> list[Any]:
        return self._read("deployments", self.cluster.deployments)

    def services(self) -> list[Any]:
        return self._read("services", self.cluster.services)

    def endpoint_slices(self) -> list[Any]:
        return self._read("endpointslices", self.cluster.endpoint_slices)

    def ingresses(self) -> list[Any]:
        return self._read("ingresses", self.cluster.ingresses)

    def ingress_classes(self) -> list[Any]:
        return self._read("ingressclasses", self.cluster.ingress_classes, optional=True)

    def ingress_controller_pods(self) -> list[Any]:
        return self._read("ingress-controllers", self.cluster.ingress_controller_pods)

    def network_policies(self) -> list[Any]:
        return self._read("networkpolicies", self.cluster.network_policies)

    def events(self) -> list[Any]:
        """Events explain findings but decide none: when they may not be read there are none."""
        return self._read("events", self.cluster.events, context=True)

    def services_everywhere(self) -> list[Any]:
        """Services of every namespace (empty when listing every namespace is forbidden)."""
        try:
            return self._shared.get(f"suite-cluster:{self.cluster.server}:*:services",
                                    lambda: self.cluster.services(ALL_NAMESPACES))
        except ClusterError as error:
            if error.kind is ClusterErrorKind.FORBIDDEN:
                warnings.warn(f"Services of other namespaces not read: {error.message}", stacklevel=2)
            return []

    def services_named(self, name: str) -> list[Any]:
        """Services called ``name`` in any namespace readable."""
        return [service for service in self.services_everywhere() if service.name == name]

    def services_in(self, namespace: str) -> list[Any]:
        """Services of another namespace (empty when that cannot be read)."""
        if namespace == self.namespace:
            return self.services()
        return [service for service in self.services_everywhere() if service.namespace == namespace]


def host_matches(rule_host: str | None, host: str) -> bool:
    """An Ingress rule's host covers ``host`` (``*.example.com`` covers exactly one more label)."""
    if not rule_host:
        return False
    rule_host, host = rule_host.lower().rstrip("."), host.lower().rstrip(".")
    if rule_host.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == rule_host[2:]
    return rule_host == host


@dataclass
class TargetService:
    """The target's Service in the namespace, how it was found, and what hangs off it."""

    name: str
    namespace: str
    found: bool
    found_in: list[str]
    how: str  # "config" or "inferred"
    why: str  # one line: what made this Service the target's
    service: Any = None  # ServiceInfo when found
    services: list[Any] = field(default_factory=list)  # every Service of the namespace serving the target
    pods: list[Any] = field(default_factory=list)  # pods selected by those Services
    loadbalancers: list[Any] = field(default_factory=list)  # LoadBalancer Services in front of those pods
    ingresses: list[Any] = field(default_factory=list)  # Ingresses with a rule for the target's host
    controller_services: list[Any] = field(default_factory=list)  # LoadBalancers in front of ingress controllers

    def to_evidence(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "namespace": self.namespace,
            "found": self.found,
            "found_in": list(self.found_in),
            "how": self.how,
            "why": self.why,
            "services": [service.name for service in self.services],
            "pods": [pod.name for pod in self.pods],
            "loadbalancers": [service.name for service in self.loadbalancers],
            "ingresses": [ingress.name for ingress in self.ingresses],
            "controller_services": [f"{s.namespace}/{s.name}" for s in self.controller_services],
        }

    def loadbalancer_addresses(self) -> dict[str, str]:
        """LoadBalancer (and external IP) address -> the Service owning it, in a stable order."""
        owners: dict[str, str] = {}
        for service in self.loadbalancers:
            for address in (*service.lb_addresses, *service.external_ips):
                owners.setdefault(address, service.name)
        return owners

    def ingress_addresses(self) -> dict[str, str]:
        """Addresses of the Ingresses for the target's host and of their controllers' LoadBalancers -> owner."""
        owners: dict[str, str] = {}
        for ingress in self.ingresses:
            for address in ingress.addresses:
                owners.setdefault(address, ingress.name)
        for service in self.controller_services if self.ingresses else ():
            for address in (*service.lb_addresses, *service.external_ips):
                owners.setdefault(address, f"{service.namespace}/{service.name}")
        return owners


def describe_loadbalancers(services: Iterable[Any]) -> str:
    """``api (127.0.10.53) or api-service (127.0.10.239)``; pending ones say so."""
    parts = [
        f"{service.name} ({', '.join((*service.lb_addresses, *service.external_ips)) or 'pending'})"
        for service in services
    ]
    return " or ".join(parts) if parts else "none"


def _configured_service(settings: Any) -> str | None:
    table = settings.tables.get("cluster", {})
    if not isinstance(table, dict):
        return None
    name = table.get("service")
    if name is None:
        return None
    if not isinstance(name, str) or not name.strip():
        pytest.fail(f"[tool.reachability.cluster] service must be a Service name (a string), got {name!r}",
                    pytrace=False)
    return name.strip()


@pytest.fixture(scope="session")
def cluster_reads(cluster: Any, shared_results: Any) -> ClusterReads:
    """The namespace's objects, each kind read once per run (see :class:`ClusterReads`)."""
    return ClusterReads(cluster, shared_results)


@pytest.fixture(scope="session")
def target_service(cluster_reads: ClusterReads, target: Any, request: pytest.FixtureRequest,
                   reachability_settings: Any) -> TargetService:
    """Which Service of the namespace is the target's, and its pods, LoadBalancers and Ingresses."""
    namespace = cluster_reads.namespace
    services = cluster_reads.services()
    by_name = {service.name: service for service in services}
    ingresses = [
        ingress for ingress in cluster_reads.ingresses()
        if any(host_matches(rule.get("host"), target.host) for rule in ingress.rules)
    ]
    configured = _configured_service(reachability_settings)
    chosen: list[Any] = []
    if configured is not None:
        how, name = "config", configured
        why = f"named by service = {configured!r} in [tool.reachability.cluster]"
        chosen = [by_name[name]] if name in by_name else []
    else:
        how = "inferred"
        addresses = [target.host] if target.is_ip else list(request.getfixturevalue("dns").addresses)
        by_address = [
            service for service in services
            if set(service.lb_addresses) & set(addresses) or set(service.external_ips) & set(addresses)
        ]
        backends = [
            path.get("service") for ingress in ingresses for rule in ingress.rules
            if host_matches(rule.get("host"), target.host) for path in rule.get("paths", [])
        ]
        by_ingress = [by_name[backend] for backend in dict.fromkeys(backends) if backend in by_name]
        chosen = list({service.name: service for service in by_address + by_ingress}.values())
        if by_address:
            why = f"its LoadBalancer address {', '.join(sorted(set(by_address[0].lb_addresses) & set(addresses)))} is what {target.host} resolves to"
        elif by_ingress:
            why = f"an Ingress rule for {target.host} routes to it"
        first_label = target.host.split(".")[0] if not target.is_ip else ""
        if chosen:
            name = chosen[0].name
        else:
            candidates = [n for n in (first_label, "api") if n]
            name = next((n for n in candidates if n in by_name), None) or next(
                (n for n in candidates if cluster_reads.services_named(n)), "api")
            why = (f"no LoadBalancer address or Ingress rule matches {target.host}; "
                   f"chose the Service named {name!r} (the target's first label or 'api')")
            chosen = [by_name[name]] if name in by_name else []
    found = bool(chosen) and chosen[0].name == name
    found_in = sorted({service.namespace for service in cluster_reads.services_named(name)} | (
        {namespace} if found else set()))
    pods = [pod for pod in cluster_reads.pods() if any(service_selects(s.selector, pod.labels) for s in chosen)]
    loadbalancers = [
        service for service in services
        if service.type == "LoadBalancer"
        and (service in chosen or any(service_selects(service.selector, pod.labels) for pod in pods))
    ]
    controller_services: list[Any] = []
    if ingresses:
        try:
            controllers = cluster_reads.ingress_controller_pods()
        except (pytest.skip.Exception, pytest.fail.Exception):  # the Ingress's own address still counts
            controllers = []
        controller_services = [
            service for pod in controllers for service in cluster_reads.services_in(pod.namespace)
            if service.type == "LoadBalancer" and service_selects(service.selector, pod.labels)
        ]
    return TargetService(
        name=name, namespace=namespace, found=found, found_in=found_in, how=how, why=why,
        service=chosen[0] if found else None, services=chosen, pods=pods, loadbalancers=loadbalancers,
        ingresses=ingresses, controller_services=list({(s.namespace, s.name): s for s in controller_services}.values()),
    )
