"""The public hosts a cluster serves, discovered read-only through the official Kubernetes client.

Two sources, as the controllers that publish hosts read them:

- **Ingress rules**: every ``spec.rules[].host`` (a rule without a host is a catch-all, not a host, and is
  skipped; a ``*.`` wildcard host is kept as it is and marked ``wildcard``, nothing is expanded). TLS is
  configured for a host when a ``spec.tls`` entry lists it (exactly or through a ``*.`` wildcard of that
  entry) or lists no hosts at all (the controller's default, which the API leaves to it). The backend is the
  Service and port of the rule's ``/`` path (else its first path, else the Ingress's default backend).
- **LoadBalancer Services** with external-dns's hostname annotation: a comma-separated list of names
  (``external-dns.kubernetes.io/hostname`` when present, as external-dns reads it from v0.22 on, else the
  ``external-dns.alpha.kubernetes.io/hostname`` of earlier releases). Like external-dns, spaces are removed
  and empty entries skipped; a trailing dot is dropped; an entry that is not a host name is skipped with a
  warning naming the Service.

Each source carries the addresses its object reports in ``status.loadBalancer.ingress`` (IP or hostname).
A host found in several objects is one :class:`DiscoveredTarget` listing every source; targets come sorted
by host, sources by kind (Ingress first), namespace and name, so the same cluster always gives the same list.

Every read is a ``list`` (never a write, never a Secret): at cluster scope, or in each namespace given (what a
namespaced Role allows). A label selector is handed to the API server as ``labelSelector``, so equality-
and set-based selectors mean exactly what they mean to ``kubectl get -l``. Each call is bounded by the
:class:`~pytest_reachability.cluster.Cluster`'s timeout; a failure is one :class:`DiscoveryError` whose
message is one line saying what to grant or fix.

Example::

    with Cluster.connect(kubeconfig="~/.kube/config", timeout=5) as cluster:
        for target in discover(cluster, namespaces=["shop"], selector="tier in (public)"):
            print(target.host, target.tls, target.addresses, [s.object for s in target.sources])
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .cluster import (
    ALL_NAMESPACES,
    Cluster,
    ClusterError,
    ClusterErrorKind,
    IngressInfo,
    ServiceInfo,
)
from .k8s import ingress_host_matches

__all__ = [
    "EXTERNAL_DNS_HOSTNAME",
    "EXTERNAL_DNS_HOSTNAME_LEGACY",
    "DiscoveredTarget",
    "DiscoveryError",
    "TargetSource",
    "annotation_hosts",
    "discover",
    "is_wildcard",
    "merge_sources",
    "normalise_host",
    "sources_from_ingress",
    "sources_from_service",
    "targets_from",
]

_log = logging.getLogger(__name__)

EXTERNAL_DNS_HOSTNAME = "external-dns.kubernetes.io/hostname"
"""The annotation external-dns reads from v0.22 on (its ``--annotation-prefix`` default)."""
EXTERNAL_DNS_HOSTNAME_LEGACY = "external-dns.alpha.kubernetes.io/hostname"
"""The annotation of external-dns releases before v0.22, still the most common in manifests."""

_KIND_ORDER = {"Ingress": 0, "Service": 1}
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class DiscoveryError(ClusterError):
    """Discovery could not read the cluster; ``str()`` is one line (``discovery: forbidden: ...``)."""

    @classmethod
    def from_cluster_error(cls, error: ClusterError, *, cluster_wide: bool) -> DiscoveryError:
        message = f"discovery: {error.message}"
        if cluster_wide and error.kind is ClusterErrorKind.FORBIDDEN:
            # A namespaced Role is the usual read-only grant: say that naming namespaces is the other way.
            message += ", or name the namespaces to read"
        fields = ("verb", "resource", "group", "namespace", "user", "server", "status")
        return cls(error.kind, message, **{name: getattr(error, name) for name in fields})


@dataclasses.dataclass(frozen=True)
class TargetSource:
    """One object that publishes a host, and what it says about it."""

    kind: str  # "Ingress" or "Service"
    namespace: str
    name: str
    tls: bool = False  # an Ingress spec.tls entry covers the host (always False for a Service)
    tls_secret: str | None = None  # that entry's secretName
    service: str | None = None  # the backend Service (the Service itself for a LoadBalancer)
    port: int | str | None = None  # its port, by number or name
    addresses: tuple[str, ...] = ()  # status.loadBalancer.ingress: IPs or hostnames

    @property
    def object(self) -> str:
        """``Kind/namespace/name``, as the reports name objects."""
        return f"{self.kind}/{self.namespace}/{self.name}"

    def sort_key(self) -> tuple[int, str, str]:
        return (_KIND_ORDER.get(self.kind, len(_KIND_ORDER)), self.namespace, self.name)

    def to_evidence(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "object": self.object, "addresses": list(self.addresses)}


@dataclasses.dataclass(frozen=True)
class DiscoveredTarget:
    """A public host and every object that publishes it (sorted: Ingresses first)."""

    host: str
    sources: tuple[TargetSource, ...]
    wildcard: bool = False  # ``*.example.com``: a pattern, not a name one can ask DNS for

    @property
    def namespace(self) -> str:
        """The namespace of the first source (a host published
        from several namespaces lists each in ``sources``)."""
        return self.sources[0].namespace

    @property
    def namespaces(self) -> tuple[str, ...]:
        return tuple(sorted({source.namespace for source in self.sources}))

    @property
    def objects(self) -> tuple[str, ...]:
        return tuple(source.object for source in self.sources)

    @property
    def tls(self) -> bool:
        """Some Ingress configures TLS for the host."""
        return any(source.tls for source in self.sources)

    @property
    def addresses(self) -> tuple[str, ...]:
        """Every address the sources report, sorted, once each."""
        return tuple(sorted({address for source in self.sources for address in source.addresses}))

    def to_evidence(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "wildcard": self.wildcard,
            "namespace": self.namespace,
            "tls": self.tls,
            "addresses": list(self.addresses),
            "sources": [source.to_evidence() for source in self.sources],
        }


# -- pure functions: snapshots in, sources out -------------------------------------------------------------


def normalise_host(text: str) -> str | None:
    """``text`` as a comparable host name (lower case, no trailing dot), or None when it is not one.

    A leading ``*.`` label is allowed (a wildcard host); IP addresses, ports, schemes and paths are not.
    """
    host = text.strip().lower()
    if host.endswith("."):
        host = host[:-1]
    if not host or len(host) > 253:
        return None
    labels = host.split(".")
    if labels[0] == "*" and len(labels) > 1:
        labels = labels[1:]
    if not all(_LABEL.match(label) for label in labels):
        return None
    if all(label.isdigit() for label in labels):
        return None  # a dotted number (an IPv4 address) names no host
    return host


def is_wildcard(host: str) -> bool:
    return host.startswith("*.")


def annotation_hosts(value: str | None) -> tuple[list[str], list[str]]:
    """The hosts of an external-dns hostname annotation, and the entries that are not host names.

    As external-dns splits it: every space removed, then split on commas; empty entries are skipped.
    """
    hosts: list[str] = []
    rejected: list[str] = []
    for entry in (value or "").replace(" ", "").split(","):
        entry = entry.strip()  # tabs and newlines a YAML block scalar may leave
        if not entry:
            continue
        host = normalise_host(entry)
        if host is None:
            rejected.append(entry)
        elif host not in hosts:
            hosts.append(host)
    return hosts, rejected


def _hostname_annotation(annotations: Mapping[str, str]) -> str | None:
    if EXTERNAL_DNS_HOSTNAME in annotations:
        return annotations[EXTERNAL_DNS_HOSTNAME]
    return annotations.get(EXTERNAL_DNS_HOSTNAME_LEGACY)


def published_hosts(annotations: Mapping[str, str] | None) -> list[str]:
    """The host names external-dns publishes for a Service (its hostname annotation), [] without one."""
    return annotation_hosts(_hostname_annotation(annotations or {}))[0]


def _tls_for(host: str, tls_entries: Iterable[Mapping[str, Any]]) -> tuple[bool, str | None]:
    """Whether a spec.tls entry covers ``host``, and the first
    such entry's secret (controllers take the first)."""
    for entry in tls_entries:
        entry_hosts = [normalise_host(str(name)) for name in entry.get("hosts") or []]
        if not entry_hosts or any(
            name is not None and ingress_host_matches(name, host) for name in entry_hosts
        ):
            return True, entry.get("secret")
    return False, None


def _rule_backend(
    paths: Sequence[Mapping[str, Any]], default: Mapping[str, Any] | None
) -> tuple[str | None, int | str | None]:
    """The Service and port that answer the host's ``/``: that
    path's, else the first path's, else the default."""
    chosen = next((path for path in paths if path.get("path") in ("/", None)), paths[0] if paths else None)
    backend = chosen if chosen is not None else default  # a rule without paths sends all to the default
    if not backend:
        return None, None
    return backend.get("service"), backend.get("port")  # None for a resource backend


def sources_from_ingress(ingress: IngressInfo) -> list[tuple[str, TargetSource]]:
    """``(host, source)`` for each rule host of an Ingress; rules without a host are skipped."""
    found: list[tuple[str, TargetSource]] = []
    for rule in ingress.rules:
        host = normalise_host(str(rule.get("host") or ""))
        if host is None:
            continue  # a catch-all rule: it answers any Host, and names none
        tls, secret = _tls_for(host, ingress.tls)
        service, port = _rule_backend(rule.get("paths") or [], ingress.default_backend)
        source = TargetSource(
            kind="Ingress",
            namespace=ingress.namespace,
            name=ingress.name,
            tls=tls,
            tls_secret=secret,
            service=service,
            port=port,
            addresses=tuple(ingress.addresses),
        )
        found.append((host, source))
    return found


def sources_from_service(service: ServiceInfo) -> tuple[list[tuple[str, TargetSource]], list[str]]:
    """``(host, source)`` for each host a LoadBalancer Service's hostname annotation names, and the rejected
    entries. Other Service types publish no public host here."""
    value = _hostname_annotation(service.annotations)
    if service.type != "LoadBalancer" or value is None:
        return [], []
    hosts, rejected = annotation_hosts(value)
    first_port = service.ports[0].get("port") if service.ports else None
    source = TargetSource(
        kind="Service",
        namespace=service.namespace,
        name=service.name,
        service=service.name,
        port=first_port,
        addresses=tuple(service.lb_addresses),
    )
    return [(host, source) for host in hosts], rejected


def merge_sources(found: Iterable[tuple[str, TargetSource]]) -> list[DiscoveredTarget]:
    """One target per host, sorted by host; each object once per host (rules repeating a host fold into one
    source, TLS if any of them has it)."""
    by_host: dict[str, dict[str, TargetSource]] = {}
    for host, source in found:
        sources = by_host.setdefault(host, {})
        earlier = sources.get(source.object)
        if earlier is None:
            sources[source.object] = source
        elif source.tls and not earlier.tls:
            sources[source.object] = dataclasses.replace(earlier, tls=True, tls_secret=source.tls_secret)
    return [
        DiscoveredTarget(
            host=host,
            sources=tuple(sorted(by_host[host].values(), key=TargetSource.sort_key)),
            wildcard=is_wildcard(host),
        )
        for host in sorted(by_host)
    ]


def targets_from(
    ingresses: Iterable[IngressInfo], services: Iterable[ServiceInfo]
) -> tuple[list[DiscoveredTarget], list[str]]:
    """The targets these objects publish, and one warning per annotation entry that names no host."""
    found: list[tuple[str, TargetSource]] = []
    warnings: list[str] = []
    for ingress in ingresses:
        found.extend(sources_from_ingress(ingress))
    for service in services:
        pairs, rejected = sources_from_service(service)
        found.extend(pairs)
        warnings.extend(
            f"Service/{service.namespace}/{service.name}: hostname annotation entry {entry!r} is not a "
            f"host name; skipped"
            for entry in rejected
        )
    return merge_sources(found), warnings


# -- reading the cluster -----------------------------------------------------------------------------------


def _check_arguments(namespaces: Sequence[str] | None, selector: str | None) -> list[str] | None:
    if isinstance(namespaces, str):
        raise ValueError(f"namespaces must be a list of namespace names, not the string {namespaces!r}")
    chosen = None
    if namespaces is not None:
        chosen = list(dict.fromkeys(namespaces))
        if not chosen:
            raise ValueError("namespaces must name at least one namespace (None reads every namespace)")
        for namespace in chosen:
            if not isinstance(namespace, str) or not _NAMESPACE.match(namespace):
                raise ValueError(f"namespace {namespace!r} is not a valid namespace name")
    if selector is not None and (not isinstance(selector, str) or not selector.strip()):
        raise ValueError(f"selector must be a label selector such as 'tier=public', not {selector!r}")
    return chosen


def discover(
    cluster: Cluster, *, namespaces: Sequence[str] | None = None, selector: str | None = None
) -> list[DiscoveredTarget]:
    """The public hosts the cluster serves, sorted by host.

    ``namespaces``: read only these (one ``list`` per namespace and resource, what a namespaced Role
    grants); None reads every namespace (cluster-wide ``list`` of ingresses and services).
    ``selector``: a label selector the API server applies to both Ingresses and Services.

    Raises :class:`DiscoveryError` (one line) when a read fails, ``ValueError`` for bad arguments.
    """
    chosen = _check_arguments(namespaces, selector)
    ingresses: list[IngressInfo] = []
    services: list[ServiceInfo] = []
    for namespace in chosen or [ALL_NAMESPACES]:
        try:
            ingresses += cluster.ingresses(namespace, selector=selector)
            services += cluster.services(namespace, selector=selector)
        except ClusterError as error:
            raise DiscoveryError.from_cluster_error(error, cluster_wide=chosen is None) from None
    targets, warnings = targets_from(ingresses, services)
    for warning in warnings:
        _log.warning("discovery: %s", warning)
    return targets
