"""ingress-nginx annotation rules: an annotation on the host's Ingress that makes ingress-nginx fail the
requests itself while the pods answer inside the cluster, as ingress-nginx documents each annotation.

Each reading needs the annotation on the Ingress that routes the host, that Ingress served by ingress-nginx,
and the failure that annotation produces observed at the edge (with the app healthy inside the cluster where
the annotation's failure is the edge's alone).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .facts import Facts
from .rules_traffic import TRAFFIC_SECTIONS, _nginx_ingress_for_host, failing_probes
from .theory import Theory, curl_of, kubectl
from .wording import probe_line, short

PREFIX = "nginx.ingress.kubernetes.io/"
# backend-protocol values that make ingress-nginx speak something else than plain HTTP to the pods.
NOT_HTTP = ("HTTPS", "GRPC", "GRPCS", "AJP", "FCGI")


def _edge_failures(facts: Facts, statuses: tuple[int, ...]) -> list[dict[str, Any]]:
    """HTTP probes of the addresses DNS answered that got one of ``statuses``."""
    return [p for p in failing_probes(facts, ("http_status",)) if p.get("status") in statuses]


def _from_nginx(probe: Mapping[str, Any]) -> bool:
    """The answer is nginx's own (its Server header or its error page), not the app's."""
    server = str((probe.get("headers") or {}).get("server") or "").lower()
    return server.startswith("nginx") or "<center>nginx" in str(probe.get("body_excerpt") or "")


def _controller_logs(facts: Facts, pattern: str) -> str:
    namespace = next((p.get("namespace") for p in facts.of("ingress_controller")), "ingress-nginx")
    return kubectl(
        facts.context, f"logs deploy/ingress-nginx-controller --tail 200 | grep -E '{pattern}'", namespace
    )


def _theory(
    facts: Facts,
    title: str,
    probes: list[dict[str, Any]],
    evidence: list[str],
    confirm: list[str],
    fix: list[str],
    confidence: float,
) -> Theory:
    addresses = list(dict.fromkeys(str(p.get("address")) for p in probes))
    lines = [probe_line({**p, "source": p.get("source", "dns")}) for p in probes[:2]] + evidence
    for check in facts.in_cluster_health()[:1]:
        lines.append(
            f"in-cluster GET {check.get('path')} on Service {check.get('service')}: {check.get('status')}"
        )
    theory = Theory(
        "ingress-annotation", title, confidence, lines, [curl_of(probes[0], facts.context), *confirm], fix
    )
    theory.subjects = addresses
    theory.explains = facts.explain(TRAFFIC_SECTIONS, addresses)
    return theory


def _backend_protocol(
    facts: Facts, ingress: Mapping[str, Any], annotations: Mapping[str, Any]
) -> Theory | None:
    """backend-protocol HTTPS (or gRPC, AJP, FastCGI) against pods that answer plain HTTP: 502."""
    raw = str(annotations.get(PREFIX + "backend-protocol") or "")
    probes = _edge_failures(facts, (502,))
    if raw.upper() not in NOT_HTTP or not probes or not facts.in_cluster_ok():
        return None
    name = ingress.get("name")
    title = (
        f"Ingress {name} tells ingress-nginx to speak {raw.upper()} to the pods "
        f'({PREFIX}backend-protocol: "{raw}"), but they answer plain HTTP inside the cluster: every request '
        "through the controller fails at the upstream and ingress-nginx answers 502"
    )
    confirm = [_controller_logs(facts, "upstream|SSL_do_handshake")]
    fix = [
        kubectl(facts.context, f"annotate ingress {name} {PREFIX}backend-protocol-", ingress.get("namespace"))
        + "  # back to HTTP; keep HTTPS only if the pods serve TLS on that port"
    ]
    return _theory(
        facts, title, probes, [f"Ingress {name}: {PREFIX}backend-protocol: {raw}"], confirm, fix, 0.85
    )


def _auth_url(facts: Facts, ingress: Mapping[str, Any], annotations: Mapping[str, Any]) -> Theory | None:
    """auth-url whose subrequest fails: ingress-nginx answers 500 to every request (its own page)."""
    url = str(annotations.get(PREFIX + "auth-url") or "")
    probes = [p for p in _edge_failures(facts, (500, 502, 503)) if _from_nginx(p)]
    if not url or not probes or not facts.in_cluster_ok():
        return None
    name = ingress.get("name")
    title = (
        f"ingress-nginx answers {probes[0].get('status')} itself (its own error page) while the app is "
        f"healthy inside the cluster, and Ingress {name} sends every request first to its auth-url "
        f"({short(url, 120)}); "
        "ingress-nginx answers 500 when that authentication request fails (the auth service unresolvable, "
        "unreachable or erroring)"
    )
    confirm = [
        _controller_logs(facts, "auth request|could not be resolved|external-auth"),
        f"curl -sS -o /dev/null -w '%{{http_code}}\\n' '{url}'"
        "  # from a pod: the auth service must answer 2xx or 401",
    ]
    fix = [
        f"Point {PREFIX}auth-url of Ingress {name} at the auth service as it is now (its Service name, "
        "namespace and port), or restore that service; remove the annotation only if the host needs no "
        "sign-in"
    ]
    return _theory(
        facts, title, probes, [f"Ingress {name}: {PREFIX}auth-url: {short(url, 160)}"], confirm, fix, 0.8
    )


def _rewrite_target(
    facts: Facts, ingress: Mapping[str, Any], annotations: Mapping[str, Any]
) -> Theory | None:
    """rewrite-target without a capture group: every request path becomes that one path."""
    target = str(annotations.get(PREFIX + "rewrite-target") or "")
    probes = [p for p in _edge_failures(facts, (400, 404, 405)) if p.get("path") != target]
    if not target or "$" in target or not probes or not facts.in_cluster_ok():
        return None
    name, path = ingress.get("name"), probes[0].get("path") or facts.context.health_path
    title = (
        f"Ingress {name} rewrites every request path to {target} ({PREFIX}rewrite-target: {target} with no "
        f"capture group): GET {path} reaches the app as GET {target}, which answers "
        f"{probes[0].get('status')}, while {path} answers inside the cluster"
    )
    fix = [
        f"Remove {PREFIX}rewrite-target from Ingress {name}, or pass the path on: a path with a capture "
        f'group (/(.*)) with {PREFIX}use-regex: "true" and rewrite-target: /$1'
    ]
    confirm = [
        kubectl(
            facts.context,
            f"get ingress {name} -o jsonpath='{{.metadata.annotations}}'",
            ingress.get("namespace"),
        )
    ]
    return _theory(
        facts, title, probes, [f"Ingress {name}: {PREFIX}rewrite-target: {target}"], confirm, fix, 0.85
    )


def _ssl_passthrough(
    facts: Facts, ingress: Mapping[str, Any], annotations: Mapping[str, Any]
) -> Theory | None:
    """ssl-passthrough: TLS goes unopened to pods that speak plain HTTP: the handshake fails."""
    if str(annotations.get(PREFIX + "ssl-passthrough") or "").lower() != "true":
        return None
    probes = failing_probes(facts, ("tls_handshake",))
    if not probes:
        return None
    name = ingress.get("name")
    title = (
        f'Ingress {name} has {PREFIX}ssl-passthrough: "true": ingress-nginx hands each TLS connection for '
        f"{facts.context.host} unopened to the pods, which speak plain HTTP, so the handshake fails "
        f"({short(probes[0].get('detail'), 120)})"
    )
    confirm = [
        kubectl(
            facts.context,
            "get deploy ingress-nginx-controller -o jsonpath='{.spec.template.spec.containers[0].args}'",
            next((p.get("namespace") for p in facts.of("ingress_controller")), "ingress-nginx"),
        )
        + "  # passthrough works only with --enable-ssl-passthrough"
    ]
    fix = [
        f"Remove {PREFIX}ssl-passthrough from Ingress {name} so ingress-nginx ends TLS with the Ingress's "
        "certificate, or make the pods serve TLS themselves"
    ]
    return _theory(
        facts, title, probes, [f"Ingress {name}: {PREFIX}ssl-passthrough: true"], confirm, fix, 0.85
    )


def _canary_share(ingress: Mapping[str, Any]) -> float | None:
    """The share of requests an ingress-nginx canary Ingress takes by weight (0-1), None when it is none."""
    annotations = ingress.get("annotations") or {}
    if str(annotations.get(PREFIX + "canary") or "").lower() != "true":
        return None
    try:
        weight = float(annotations.get(PREFIX + "canary-weight") or 0)
        total = float(annotations.get(PREFIX + "canary-weight-total") or 100)
    except ValueError:
        return None
    share = weight / total if total > 0 else 0.0
    return share if 0 < share < 1 else None


def _canary_weight(facts: Facts) -> Theory | None:
    """A canary Ingress taking a share of the host's requests by weight, and about that share failing."""
    report = facts.performance() or {}
    errors, requests = report.get("errors") or 0, report.get("requests") or 0
    if not 0 < errors < requests:
        return None
    rate = errors / requests
    for ingress in facts.ingresses_for_host(facts.context.host or ""):
        share = _canary_share(ingress)
        if share is None or abs(rate - share) > 0.15:
            continue
        name, ns = ingress.get("name"), ingress.get("namespace")
        backends = sorted(
            {
                str(p.get("service"))
                for r in ingress.get("rules") or []
                for p in r.get("paths") or []
                if p.get("service")
            }
        )
        weight = (ingress.get("annotations") or {}).get(PREFIX + "canary-weight")
        title = (
            f"Ingress {name} is an ingress-nginx canary sending {share:.0%} of {facts.context.host}'s "
            f"requests to Service {', '.join(backends) or '?'} ({PREFIX}canary-weight: {weight}), and "
            f"{errors} of {requests} requests failed ({rate:.0%}): the canary's share — the release behind "
            "it fails"
        )
        evidence = [
            f"Ingress {ns}/{name}: {PREFIX}canary: true, canary-weight: {weight}",
            f"error rate {rate:.2f} of {requests} requests; canary share {share:.2f}",
        ]
        confirm = [
            kubectl(facts.context, f"get ingress {name} -o jsonpath='{{.metadata.annotations}}'", ns),
            *(kubectl(facts.context, f"logs svc/{b} --tail 50", ns) for b in backends[:1]),
        ]
        fix = [
            "Take the canary out of traffic: "
            + kubectl(facts.context, f"annotate ingress {name} {PREFIX}canary-weight=0 --overwrite", ns)
            + f" (or delete Ingress {name}); then fix or roll back the release behind it"
        ]
        theory = Theory(
            "ingress-annotation", title, 0.8, evidence, confirm, fix, subjects=[f"Ingress/{name}"]
        )
        theory.explains = facts.explain(
            ("performance", "api-health", "integration", "services", "results-storage")
        )
        return theory
    return None


def _local_endpoint_nodes(facts: Facts, ingress: Mapping[str, Any]) -> tuple[dict[str, Any], set] | None:
    """(backend Service with internalTrafficPolicy Local, the nodes of its ready endpoints) for the first
    such backend of the Ingress."""
    backends = {p.get("service") for r in ingress.get("rules") or [] for p in r.get("paths") or []}
    for service in facts.services(ingress.get("namespace")):
        if service.get("name") in backends and service.get("internal_traffic_policy") == "Local":
            slices = facts.endpoint_slices_of(str(service.get("name")), service.get("namespace"))
            return service, {t.get("node") for s in slices for t in s.get("targets") or [] if t.get("ready")}
    return None


def _service_upstream_local(
    facts: Facts, ingress: Mapping[str, Any], annotations: Mapping[str, Any]
) -> Theory | None:
    """service-upstream sends to the backend Service's cluster IP; with internalTrafficPolicy: Local
    kube-proxy on the controller's node forwards only to pods on that node, and none runs there."""
    if str(annotations.get(PREFIX + "service-upstream") or "").lower() != "true":
        return None
    probes = _edge_failures(facts, (502, 503, 504))
    controllers = {p.get("node") for p in facts.of("ingress_controller") if p.get("node")}
    local = _local_endpoint_nodes(facts, ingress)
    if not probes or not controllers or not facts.in_cluster_ok() or local is None:
        return None
    service, nodes = local
    if not nodes or nodes & controllers:
        return None
    name, svc, ns = ingress.get("name"), service.get("name"), service.get("namespace")
    title = (
        f'Ingress {name} sends to Service {svc}\'s cluster IP ({PREFIX}service-upstream: "true") and the '
        "Service has internalTrafficPolicy: Local: kube-proxy on the ingress controller's node "
        f"({', '.join(sorted(controllers))}) forwards only to pods on that node, and none runs there — "
        f"ingress-nginx answers {probes[0].get('status')}"
    )
    evidence = [
        f"Ingress {name}: {PREFIX}service-upstream: true",
        f"Service {svc}: internalTrafficPolicy Local; ready endpoints on {', '.join(sorted(nodes))}",
    ]
    confirm = [kubectl(facts.context, f"get svc {svc} -o jsonpath='{{.spec.internalTrafficPolicy}}'", ns)]
    fix = [
        kubectl(facts.context, f"edit svc {svc}", ns) + "  # set internalTrafficPolicy: Cluster",
        f"or remove {PREFIX}service-upstream from Ingress {name} (ingress-nginx then sends to the pods)",
    ]
    return _theory(facts, title, probes, evidence, confirm, fix, 0.85)


READINGS: tuple[Callable[[Facts, Mapping[str, Any], Mapping[str, Any]], Theory | None], ...] = (
    _backend_protocol,
    _auth_url,
    _rewrite_target,
    _ssl_passthrough,
    _service_upstream_local,
)


def ingress_annotation(facts: Facts) -> Theory | None:
    """An ingress-nginx annotation on the host's Ingress that fails the requests at the controller (or a
    canary Ingress that sends a share of them to a failing release)."""
    canary = _canary_weight(facts)
    if canary is not None:
        return canary
    ingress = _nginx_ingress_for_host(facts)
    if ingress is None:
        return None
    annotations = ingress.get("annotations") or {}
    for reading in READINGS:
        theory = reading(facts, ingress, annotations)
        if theory is not None:
            return theory
    return None
