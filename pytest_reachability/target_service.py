"""Which Service is the target's: the ``target_service`` fixture of the built-in suite and of user tests.

The answer, in this order:

1. ``service = "api"`` in ``[tool.reachability.cluster]`` names it;
2. else the Services of the namespace whose LoadBalancer address is an address of the target (as DNS
   answers it), or that an Ingress rule for the target's host routes to;
3. else the Service named like the target's first label, else the one named ``api``.

Example::

    def test_api_has_two_pods(target_service):
        assert target_service.found, target_service.why
        assert len(target_service.pods) >= 2
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from .cluster_reads import ClusterReads
from .k8s import ingress_host_matches as host_matches
from .k8s import service_selects

if TYPE_CHECKING:
    from .cluster import IngressInfo, PodInfo, ServiceInfo
    from .config import Settings, Target


@dataclass
class TargetService:
    """The target's Service in the namespace, how it was found, and what hangs off it."""

    name: str
    namespace: str
    found: bool
    found_in: list[str]
    how: str  # "config" or "inferred"
    why: str  # one line: what made this Service the target's
    service: ServiceInfo | None = None  # when found
    services: list[ServiceInfo] = field(
        default_factory=list
    )  # every Service of the namespace serving the target
    pods: list[PodInfo] = field(default_factory=list)  # pods selected by those Services
    loadbalancers: list[ServiceInfo] = field(
        default_factory=list
    )  # LoadBalancer Services in front of those pods
    ingresses: list[IngressInfo] = field(default_factory=list)  # Ingresses with a rule for the target's host
    controller_services: list[ServiceInfo] = field(
        default_factory=list
    )  # LoadBalancers in front of ingress controllers

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
        """Address -> owner.

        The addresses of the Ingresses for the target's host and of their controllers' LoadBalancers."""
        owners: dict[str, str] = {}
        for ingress in self.ingresses:
            for address in ingress.addresses:
                owners.setdefault(address, ingress.name)
        for service in self.controller_services if self.ingresses else ():
            for address in (*service.lb_addresses, *service.external_ips):
                owners.setdefault(address, f"{service.namespace}/{service.name}")
        return owners


def describe_loadbalancers(services: Iterable[ServiceInfo]) -> str:
    """``api (127.0.10.53) or api-service (127.0.10.239)``; pending ones say so."""
    parts = [
        f"{service.name} ({', '.join((*service.lb_addresses, *service.external_ips)) or 'pending'})"
        for service in services
    ]
    return " or ".join(parts) if parts else "none"


def _configured_service(settings: Settings) -> str | None:
    table = settings.tables.get("cluster", {})
    if not isinstance(table, dict):
        return None
    name = table.get("service")
    if name is None:
        return None
    if not isinstance(name, str) or not name.strip():
        pytest.fail(
            f"[tool.reachability.cluster] service must be a Service name (a string), got {name!r}",
            pytrace=False,
        )
    return name.strip()


def find_target_service(
    cluster_reads: ClusterReads, target: Target, settings: Settings, resolved: Callable[[], Iterable[str]]
) -> TargetService:
    """Which Service of the namespace is the target's, and its pods, LoadBalancers and Ingresses.

    ``resolved`` gives the addresses the target's name resolves to (asked only when the Service is
    inferred and the target is a name).
    """
    namespace = cluster_reads.namespace
    services = cluster_reads.services()
    ingresses = [ingress for ingress in cluster_reads.ingresses() if _rules_for(ingress, target.host)]
    configured = _configured_service(settings)
    if configured is not None:
        how, name, why, chosen = (
            "config",
            configured,
            f"named by service = {configured!r} in [tool.reachability.cluster]",
            [service for service in services if service.name == configured][:1],
        )
    else:
        how = "inferred"
        name, why, chosen = _inferred_service(cluster_reads, services, ingresses, target, resolved)
    found = bool(chosen) and chosen[0].name == name
    found_in = sorted(
        {service.namespace for service in cluster_reads.services_named(name)}
        | ({namespace} if found else set())
    )
    pods = [pod for pod in cluster_reads.pods() if _selected_by_any(chosen, pod)]
    loadbalancers = [
        service
        for service in services
        if service.type == "LoadBalancer"
        and (service in chosen or _selects_any(service, pods))
        and not _published_for_others(service, target)
    ]
    controller_services = _ingress_controller_services(cluster_reads) if ingresses else []
    return TargetService(
        name=name,
        namespace=namespace,
        found=found,
        found_in=found_in,
        how=how,
        why=why,
        service=chosen[0] if found else None,
        services=chosen,
        pods=pods,
        loadbalancers=loadbalancers,
        ingresses=ingresses,
        controller_services=list({(s.namespace, s.name): s for s in controller_services}.values()),
    )


def _inferred_service(
    cluster_reads: ClusterReads,
    services: list[ServiceInfo],
    ingresses: list[IngressInfo],
    target: Target,
    resolved: Callable[[], Iterable[str]],
) -> tuple[str, str, list[ServiceInfo]]:
    """(name, why, the Services serving the target) when no Service is configured: by LoadBalancer address,
    by Ingress backend, else by the target's first label or ``api``."""
    by_name = {service.name: service for service in services}
    addresses = set([target.host] if target.is_ip else resolved())
    by_address = [
        service for service in services if addresses & {*service.lb_addresses, *service.external_ips}
    ]
    backends = [
        path.get("service")
        for ingress in ingresses
        for rule in _rules_for(ingress, target.host)
        for path in rule.get("paths", [])
    ]
    by_ingress = [by_name[backend] for backend in dict.fromkeys(backends) if backend in by_name]
    chosen = list({service.name: service for service in by_address + by_ingress}.values())
    if by_address:
        shown = ", ".join(sorted(set(by_address[0].lb_addresses) & addresses))
        return chosen[0].name, f"its LoadBalancer address {shown} is what {target.host} resolves to", chosen
    if by_ingress:
        return chosen[0].name, f"an Ingress rule for {target.host} routes to it", chosen
    name = _named_like(cluster_reads, by_name, target)
    why = (
        f"no LoadBalancer address or Ingress rule matches {target.host}; "
        f"chose the Service named {name!r} (the target's first label or 'api')"
    )
    return name, why, [by_name[name]] if name in by_name else []


def _ingress_controller_services(cluster_reads: ClusterReads) -> list[ServiceInfo]:
    """LoadBalancer Services in front of the ingress controllers' pods (none when those may not be read)."""
    try:
        controllers = cluster_reads.ingress_controller_pods()
    except (pytest.skip.Exception, pytest.fail.Exception):  # the Ingress's own address still counts
        return []
    return [
        service
        for pod in controllers
        for service in cluster_reads.services_in(pod.namespace)
        if service.type == "LoadBalancer" and service_selects(service.selector, pod.labels)
    ]


def _named_like(cluster_reads: ClusterReads, by_name: dict[str, ServiceInfo], target: Target) -> str:
    """The Service named like the target's first label, else ``api``.

    Looked for here first, else in another namespace."""
    candidates = [n for n in (target.host.split(".")[0] if not target.is_ip else "", "api") if n]
    return next((n for n in candidates if n in by_name), None) or next(
        (n for n in candidates if cluster_reads.services_named(n)), "api"
    )


def _rules_for(ingress: IngressInfo, host: str) -> list[dict[str, Any]]:
    return [rule for rule in ingress.rules if host_matches(rule.get("host"), host)]


def _selected_by_any(services: list[ServiceInfo], pod: PodInfo) -> bool:
    return any(service_selects(service.selector, pod.labels) for service in services)


def _published_for_others(service: ServiceInfo, target: Target) -> bool:
    """A LoadBalancer external-dns publishes under other names only: another host's way in to the same
    pods (which may route by Host), not one of this target's."""
    from .discover import published_hosts

    hosts = published_hosts(getattr(service, "annotations", None))
    return bool(hosts) and not target.is_ip and not any(host_matches(host, target.host) for host in hosts)


def _selects_any(service: ServiceInfo, pods: list[PodInfo]) -> bool:
    return any(service_selects(service.selector, pod.labels) for pod in pods)
