"""The evidence of a run, indexed for the rules: one place that knows the evidence kinds' shapes.

The rules read only this index (plus test outcomes), never pytest objects, so a rule is tested by
building evidence by hand. Evidence recorded twice (a shared probe re-recorded by a section) is kept once.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..k8s import deployment_of_owner, ingress_host_matches, service_selects
from ..results import RunResults, TestResult

CLUSTER_KINDS = (
    "node",
    "pod",
    "deployment",
    "service",
    "endpoint_slice",
    "ingress",
    "network_policy",
    "event",
)
SNAPSHOT_KINDS = (
    "node",
    "pod",
    "deployment",
    "service",
    "endpoint_slice",
    "ingress",
    "ingress_class",
    "network_policy",
    "event",
    "ingress_controller",
)


@dataclass
class RunContext:
    """What the rules need to know of the run besides evidence: target, namespace, resolvers, kubectl
    flags."""

    host: str = ""
    port: int | None = None
    scheme: str = "http"
    namespace: str | None = None
    resolvers: list[str] = field(default_factory=list)
    kubectl: str = "kubectl"
    health_path: str = "/health"
    is_ip: bool = False

    @classmethod
    def from_settings(cls, settings: Any) -> RunContext:
        if settings is None:
            return cls()
        target = getattr(settings, "target", None)
        kubectl = "kubectl"
        sources = getattr(settings, "sources", {}) or {}
        # Only flags the user chose: a sandbox's temporary kubeconfig means nothing once the run ended.
        if getattr(settings, "kubeconfig", None) and sources.get("kubeconfig") in ("cli", "env", "file"):
            # Quoted: the printed command is pasted into a shell, and a path may hold spaces or quotes.
            kubectl += f" --kubeconfig {shlex.quote(str(settings.kubeconfig))}"
        if getattr(settings, "kube_context", None) and sources.get("kube_context") in ("cli", "env", "file"):
            kubectl += f" --context {shlex.quote(str(settings.kube_context))}"
        return cls(
            host=getattr(target, "host", "") or "",
            port=getattr(target, "port", None),
            scheme=getattr(target, "scheme", "http") or "http",
            namespace=getattr(settings, "namespace", None),
            resolvers=list(getattr(settings, "resolvers", None) or []),
            kubectl=kubectl,
            health_path=getattr(settings, "health_path", "/health") or "/health",
            is_ip=bool(getattr(target, "is_ip", False)),
        )


def _key(data: Any) -> str:
    return json.dumps(data, sort_keys=True, default=str)


class Facts:
    """Evidence of every test of a run by kind, deduplicated, with the lookups rules share."""

    def __init__(self, tests: Iterable[TestResult], context: RunContext | None = None) -> None:
        self.tests = list(tests)
        self.context = context or RunContext()
        self.by_kind: dict[str, list[dict[str, Any]]] = {}
        seen: set[tuple[str, str]] = set()
        for test in self.tests:
            for record in test.evidence:
                kind, data = record.get("kind"), record.get("data")
                if not isinstance(kind, str) or not isinstance(data, Mapping):
                    continue
                key = (kind, _key(data))
                if key in seen:
                    continue
                seen.add(key)
                self.by_kind.setdefault(kind, []).append(dict(data))
        if not self.context.namespace:
            self.context.namespace = self._guess_namespace()
        if not self.context.host:
            dns = self.dns
            if dns:
                self.context.host = dns.get("name", "")

    @classmethod
    def from_results(cls, results: RunResults, context: RunContext | None = None) -> Facts:
        return cls(results.tests.values(), context)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return self.by_kind.get(kind, [])

    def _guess_namespace(self) -> str | None:
        for kind in ("target_service", "in_cluster_health", "cluster_access", "service"):
            for data in self.of(kind):
                if data.get("namespace"):
                    return data["namespace"]
        return None

    # --- outcomes -------------------------------------------------------------------------------------

    def failed_sections(self) -> set[str]:
        return {t.section for t in self.tests if t.outcome in ("failed", "error")}

    def section_failed(self, section: str) -> bool:
        return section in self.failed_sections()

    def failing_tests(self, section: str | None = None) -> list[TestResult]:
        return [
            t
            for t in self.tests
            if t.outcome in ("failed", "error") and (section is None or t.section == section)
        ]

    def explain(self, sections: Iterable[str] = (), words: Iterable[str] = ()) -> list[str]:
        """Node ids of failing tests in ``sections`` (every section when empty) whose one-line reason names
        one of ``words`` (any reason when empty): what a theory accounts for."""
        wanted = set(sections)
        needles = [w.lower() for w in words if w]
        found = []
        for test in self.failing_tests():
            if wanted and test.section not in wanted:
                continue
            if needles and not any(n in (test.reason or "").lower() for n in needles):
                continue
            found.append(test.nodeid)
        return found

    # --- what could be checked ---------------------------------------------------------------------------

    @property
    def cluster_checked(self) -> bool:
        """True when the run read the cluster (a working access check or any cluster object recorded)."""
        if any(data.get("ok") for data in self.of("cluster_access")):
            return True
        return any(self.of(kind) for kind in CLUSTER_KINDS)

    def cluster_access_failure(self) -> dict[str, Any] | None:
        """The failed cluster access check (the API server does not answer, or refuses this identity)."""
        return next((data for data in self.of("cluster_access") if data.get("ok") is False), None)

    def kubectl_note(self) -> str:
        """What a printed kubectl command needs when the run had no cluster access ('' when it had)."""
        return "" if self.cluster_checked else "  # needs cluster access (run with --kubeconfig)"

    # --- DNS ------------------------------------------------------------------------------------------

    @property
    def dns(self) -> dict[str, Any] | None:
        """The target's DNS report (the one naming the target host when several were recorded)."""
        reports = self.of("dns")
        if not reports:
            return None
        for report in reports:
            if self.context.host and report.get("name") == self.context.host:
                return report
        return reports[0]

    def dns_addresses(self) -> list[str]:
        dns = self.dns
        if not dns or dns.get("literal"):
            return []
        return list(dns.get("addresses") or [])

    # --- cluster objects --------------------------------------------------------------------------------

    def services(self, namespace: str | None = None) -> list[dict[str, Any]]:
        namespace = namespace or self.context.namespace
        return [s for s in self.of("service") if namespace is None or s.get("namespace") == namespace]

    def all_services(self) -> list[dict[str, Any]]:
        return self.of("service")

    def pods(self, namespace: str | None = None) -> list[dict[str, Any]]:
        namespace = namespace or self.context.namespace
        return [p for p in self.of("pod") if namespace is None or p.get("namespace") == namespace]

    def nodes(self) -> list[dict[str, Any]]:
        return self.of("node")

    def deployments(self, namespace: str | None = None) -> list[dict[str, Any]]:
        namespace = namespace or self.context.namespace
        return [
            d for d in self.of("deployment") if namespace is None or d.get("namespace") in (None, namespace)
        ]

    def events_for(self, obj: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Events about ``Kind/name`` (newest last)."""
        return [
            e
            for e in self.of("event")
            if e.get("object") == obj and (namespace is None or e.get("namespace") in (None, "", namespace))
        ]

    def target_pods(self) -> list[dict[str, Any]]:
        """The pods behind the target: selected by its Service, else (no Service known) every pod of the
        namespace except ingress controllers'."""
        service = self.target_service()
        if service is not None and service.get("selector"):
            return self.selected_pods(service)
        controllers = {(p.get("namespace"), p.get("name")) for p in self.of("ingress_controller")}
        return [p for p in self.pods() if (p.get("namespace"), p.get("name")) not in controllers]

    def deployment_of(self, pod: Mapping[str, Any]) -> dict[str, Any] | None:
        """The Deployment owning ``pod`` (through its ReplicaSet ``<deployment>-<hash>``), if recorded."""
        owner_deployment = deployment_of_owner(pod.get("owner"))
        for deployment in self.deployments(pod.get("namespace")):
            if owner_deployment is not None and owner_deployment == deployment.get("name"):
                return deployment
            if service_selects(deployment.get("selector"), pod.get("labels")):
                return deployment
        return None

    def deployments_for(self, service: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Deployments whose pod template the Service's selector matches (they would give it endpoints)."""
        selector = service.get("selector") or {}
        if not selector:
            return []
        return [
            d
            for d in self.deployments(service.get("namespace"))
            if service_selects(selector, d.get("template_labels") or d.get("selector"))
        ]

    def target_service_name(self) -> str | None:
        for data in self.of("target_service"):
            if data.get("name"):
                return data["name"]
        for data in self.of("in_cluster_health"):
            if data.get("service"):
                return data["service"]
        return None

    def target_service(self) -> dict[str, Any] | None:
        name = self.target_service_name()
        services = self.services()
        if name:
            for service in services:
                if service.get("name") == name:
                    return service
            return None
        # Without a name: the Service whose address DNS answers, else the LoadBalancer named like a
        # Deployment (the usual `api` Service of Deployment `api`), else the shortest-named LoadBalancer.
        dns = set(self.dns_addresses())
        for service in services:
            if dns & set(service.get("lb_addresses") or []):
                return service
        deployments = {d.get("name") for d in self.of("deployment")}
        balancers = [s for s in services if s.get("type") == "LoadBalancer"]
        balancers.sort(
            key=lambda s: (s.get("name") not in deployments, len(s.get("name") or ""), s.get("name") or "")
        )
        return balancers[0] if balancers else None

    def candidate_addresses(self) -> list[tuple[str, str]]:
        """(address, owner) where the target should resolve: its Service, LoadBalancers selecting the same
        pods, Ingresses routing its host; best first."""
        target = self.target_service()
        if target is not None:
            out = self._balancers_serving(target)
        elif self.target_service_name() is None:
            # No target Service known at all (the cluster section did not name one): any LoadBalancer may
            # be it.
            out = [(a, str(s.get("name"))) for s in self.services() for a in s.get("lb_addresses") or []]
        else:
            out = []
        if self.context.host:
            for ingress in self.ingresses_for_host(self.context.host):
                out += [(a, f"Ingress {ingress.get('name')}") for a in ingress.get("addresses") or []]
        seen: set[str] = set()
        return [(a, o) for a, o in out if not (a in seen or seen.add(a))]

    def _balancers_serving(self, target: Mapping[str, Any]) -> list[tuple[str, str]]:
        """(address, Service name) of the target's LoadBalancer, then of the other LoadBalancers sending
        traffic to the same pods (the same selected pods, or the same selector)."""
        out = [(a, str(target.get("name"))) for a in target.get("lb_addresses") or []]
        pods = {p.get("name") for p in self.selected_pods(target)}
        for service in self.services():
            if service is target or service.get("type") != "LoadBalancer":
                continue
            if self._same_backends(service, target, pods):
                out += [(a, str(service.get("name"))) for a in service.get("lb_addresses") or []]
        return out

    def _same_backends(self, service: Mapping[str, Any], target: Mapping[str, Any], pods: set) -> bool:
        """Whether ``service`` selects the target's pods (``pods``, by name) or has the target's selector."""
        if pods and pods == {p.get("name") for p in self.selected_pods(service)}:
            return True
        return bool(service.get("selector") and service.get("selector") == target.get("selector"))

    def selected_pods(self, service: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Pods of the service's namespace its selector matches (a Service without selector matches none)."""
        selector = service.get("selector") or {}
        if not selector:
            return []
        return [
            pod for pod in self.pods(service.get("namespace")) if service_selects(selector, pod.get("labels"))
        ]

    def endpoint_slices_of(self, service_name: str, namespace: str | None = None) -> list[dict[str, Any]]:
        namespace = namespace or self.context.namespace
        return [
            s
            for s in self.of("endpoint_slice")
            if s.get("service") == service_name and (namespace is None or s.get("namespace") == namespace)
        ]

    def loadbalancer_addresses(self) -> dict[str, str]:
        """Address -> ``Service/namespace/name`` of every LoadBalancer, every Ingress and ingress controller
        Service."""
        out: dict[str, str] = {}
        for service in self.all_services():
            for address in service.get("lb_addresses") or []:
                out.setdefault(address, f"Service {service.get('namespace')}/{service.get('name')}")
            for address in service.get("external_ips") or []:
                out.setdefault(address, f"Service {service.get('namespace')}/{service.get('name')}")
        host = self.context.host or ""
        # The Ingress routing the target's host names a shared controller address better than its neighbours.
        for ingress in sorted(
            self.of("ingress"),
            key=lambda i: (
                not any(ingress_host_matches(rule.get("host"), host) for rule in i.get("rules") or [])
            ),
        ):
            for address in ingress.get("addresses") or []:
                out.setdefault(address, f"Ingress {ingress.get('namespace')}/{ingress.get('name')}")
        # A LoadBalancer that publishes a hostname (AWS's ELB/NLB): the addresses that hostname resolved to,
        # as the dns check recorded them, are that LoadBalancer's too.
        named = {key.rstrip(".").lower(): owner for key, owner in out.items()}
        for report in self.of("dns"):
            owner = named.get(str(report.get("name") or "").rstrip(".").lower())
            if report.get("source") == "loadbalancer_hostname" and owner is not None:
                for address in report.get("addresses") or []:
                    out.setdefault(address, owner)
        return out

    def ingress_controller_running(self) -> list[dict[str, Any]]:
        return [p for p in self.of("ingress_controller") if p.get("phase") == "Running"]

    def ingresses_for_host(self, host: str) -> list[dict[str, Any]]:
        return [
            ingress
            for ingress in self.of("ingress")
            if any(ingress_host_matches(rule.get("host"), host) for rule in ingress.get("rules") or [])
        ]

    # --- traffic ----------------------------------------------------------------------------------------

    def http_probes(self, source: str | None = None) -> list[dict[str, Any]]:
        """HTTP probes; ``source`` ``dns`` (an address DNS answered) or ``loadbalancer`` (probed directly)."""
        out = []
        seen: set[tuple] = set()
        dns = set(self.dns_addresses())
        balancers = self.loadbalancer_addresses()
        for probe in self.of("http_probe"):
            found = probe.get("source")
            if found is None:
                address = probe.get("address")
                found = "dns" if address in dns or address not in balancers else "loadbalancer"
            key = (
                probe.get("address"),
                probe.get("port"),
                probe.get("path"),
                found,
                probe.get("failure"),
                probe.get("status"),
            )
            if key in seen:
                continue
            seen.add(key)
            if source is None or found == source:
                out.append({**probe, "source": found})
        return out

    def connected(self, address: str) -> bool:
        """True when any probe got a TCP connection to ``address`` (it failed later than connect, or not at
        all)."""
        for probe in self.of("http_probe") + self.of("tls") + self.of("tcp"):
            if probe.get("address") == address and failure_phase(probe) not in ("dns", "connect"):
                return True
        return False

    def in_cluster_health(self) -> list[dict[str, Any]]:
        return self.of("in_cluster_health")

    def dns_answers(self) -> list[dict[str, Any]]:
        """Each resolver's answer for the target's name."""
        return list((self.dns or {}).get("answers") or [])

    def app_checks(self, section: str | None = None) -> list[dict[str, Any]]:
        return [c for c in self.of("app_check") if section is None or c.get("section") == section]

    def performance(self) -> dict[str, Any] | None:
        reports = self.of("performance")
        return reports[-1] if reports else None

    def in_cluster_ok(self) -> bool | None:
        """True when some in-cluster health check answered 2xx/3xx, False when all failed, None when none
        ran."""
        checks = self.in_cluster_health()
        if not checks:
            return None
        return any(
            c.get("error") is None and isinstance(c.get("status"), int) and 200 <= c["status"] < 400
            for c in checks
        )


def probe_ok(probe: Mapping[str, Any]) -> bool:
    return (
        probe.get("failure") is None and isinstance(probe.get("status"), int) and 200 <= probe["status"] < 400
    )


def failure_phase(probe: Mapping[str, Any]) -> str | None:
    """``dns``, ``connect``, ``tls`` or ``http`` for a failed probe, None for one that passed."""
    failure = probe.get("failure")
    if not failure:
        return None
    if probe.get("failure_phase"):
        return probe["failure_phase"]
    prefix = failure.split("_", 1)[0]
    return {"dns": "dns", "tcp": "connect", "tls": "tls"}.get(prefix, "http")
