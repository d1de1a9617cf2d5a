"""Traffic rules: what the probes met at each address, one rule per failure class (connect, TLS, HTTP).

Each rule states what the probe observed as fact (refused, no SYN-ACK, a 503, a redirect loop) and names the
usual causes as causes, not facts; what the cluster would have told is an unknown when the cluster was not
read. More specific rules (DNS points elsewhere, pods crash, a NetworkPolicy drops) fold these as symptoms.
"""

from __future__ import annotations

import datetime
import ipaddress
import shlex
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from ..k8s import ingress_host_matches, ingress_path_matches
from ..probes.tls import describe_alert
from .facts import Facts
from .theory import Theory, curl_of, kubectl, openssl_certificate
from .wording import probe_line, record_type, short

TRAFFIC_SECTIONS = ("tcp", "tls", "api-health", "api-internal", "performance")
PROXY_SERVERS = (
    "nginx",
    "envoy",
    "haproxy",
    "traefik",
    "awselb",
    "cloudflare",
    "istio",
    "kong",
    "caddy",
    "openresty",
)


def failing_probes(
    facts: Facts, failures: tuple[str, ...], sources: tuple[str, ...] = ("dns",)
) -> list[dict[str, Any]]:
    """Probes (HTTP, TCP, TLS) of addresses DNS answered (or the LoadBalancers) that failed with one of
    ``failures``."""
    found = []
    seen = set()
    candidates = [p for s in sources for p in facts.http_probes(s)]
    candidates += [p for p in facts.of("tcp") + facts.of("tls") if p.get("source", "dns") in sources]
    for probe in candidates:
        if probe.get("failure") not in failures or not probe.get("address"):
            continue
        if _failed_after_redirect(probe):
            continue  # the redirect's target failed, not this address and port: redirect-target-fails
        key = (probe.get("address"), probe.get("port"), probe.get("failure"), probe.get("status"))
        if key not in seen:
            seen.add(key)
            found.append(probe)
    return found


# Failures to connect: after a redirect to another scheme, host or port they are the target's, and say that
# nothing serves there. (A status, body or TLS failure there is left to its own rule, which names it.)
CONNECT_FAILURES = ("tcp_refused", "tcp_timeout", "tcp_unreachable")


def _redirect_target(probe: Mapping[str, Any]) -> tuple[str, str, int] | None:
    """(scheme, host, port) of the last redirect an HTTP probe followed; None when it followed none."""
    redirects = probe.get("redirects") or []
    if not redirects:
        return None
    try:
        target = urlsplit(str(redirects[-1]))
        port = target.port or (443 if target.scheme == "https" else 80)
    except ValueError:
        return None
    return target.scheme, (target.hostname or ""), port


def _failed_after_redirect(probe: Mapping[str, Any]) -> bool:
    """An HTTP probe that could not connect where the redirects it followed led, on another scheme, host or
    port than the one probed: the failure is not this address's and port's."""
    target = _redirect_target(probe)
    if target is None or probe.get("failure") not in CONNECT_FAILURES:
        return False
    scheme, host, port = target
    same_host = host.rstrip(".").lower() == str(probe.get("host") or "").rstrip(".").lower()
    return not (scheme == probe.get("scheme") and same_host and port == probe.get("port"))


def _addresses(probes: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(str(p.get("address")) for p in probes))


def _where(probes: list[dict[str, Any]], facts: Facts) -> str:
    addresses = _addresses(probes)
    port = probes[0].get("port") or facts.context.port
    shown = ", ".join(f"[{a}]" if ":" in a else a for a in addresses)
    return f"{shown}:{port}" if len(addresses) == 1 else f"{shown} (port {port})"


def _of_record(address: str, facts: Facts) -> str:
    if address in facts.dns_addresses():
        return f"the {record_type(address)} record of {facts.context.host}"
    return "a LoadBalancer address"


def _cluster_unknown(facts: Facts, addresses: list[str]) -> list[str]:
    if facts.cluster_checked:
        return []
    return [
        f"whether {', '.join(addresses)} is a LoadBalancer or Ingress address of the cluster, and whether "
        "the "
        f"pods behind it are ready, was not checked (no cluster access) — "
        f"{kubectl(facts.context, 'get svc,ingress,pods -o wide')}{facts.kubectl_note()}"
    ]


def _owner_note(facts: Facts, addresses: list[str]) -> tuple[list[str], bool | None]:
    """Evidence lines naming what owns each address, and whether every address is the cluster's (None:
    unknown)."""
    if not facts.cluster_checked:
        return [], None
    balancers = facts.loadbalancer_addresses()
    lines = []
    for address in addresses:
        if address in balancers:
            lines.append(f"{address} is the address of {balancers[address]}")
        else:
            lines.append(f"{address} is no LoadBalancer or Ingress address of the cluster")
    return lines, all(a in balancers for a in addresses)


def _traffic_theory(
    facts: Facts,
    rule: str,
    failures: tuple[str, ...],
    title: str,
    fix: list[str],
    confidence: float,
    extra_confirm: list[str] | None = None,
    sources: tuple[str, ...] = ("dns",),
    keep: Callable[[Mapping[str, Any]], bool] | None = None,
    **fields: str,
) -> Theory | None:
    """A theory over the probes failing with ``failures`` (those ``keep`` accepts); ``title`` may use
    {where}, {host}, {record}, {path} and ``fields`` (text from the peer goes in as a field, never into the
    template, so braces in it stay text)."""
    probes = [p for p in failing_probes(facts, failures, sources) if keep is None or keep(p)]
    if not probes:
        return None
    addresses = _addresses(probes)
    evidence = [probe_line({**p, "source": p.get("source", "dns")}) for p in probes[:4]]
    owners, ours = _owner_note(facts, addresses)
    evidence += owners
    host = facts.context.host or probes[0].get("host") or ""
    text = title.format(
        where=_where(probes, facts),
        host=host,
        record=_of_record(addresses[0], facts),
        path=probes[0].get("path") or facts.context.health_path,
        **fields,
    )
    confirm = [curl_of(p, facts.context) for p in probes[:2]] + list(extra_confirm or [])
    theory = Theory(rule, text, confidence, evidence, confirm, fix, subjects=addresses)
    theory.explains = facts.explain(TRAFFIC_SECTIONS, addresses + list(failures))
    theory.unknowns = _cluster_unknown(facts, addresses)
    if ours is False:
        theory.confidence = round(
            theory.confidence - 0.1, 2
        )  # a wrong address explains it better (see DNS rules)
    return theory


# --- connect ------------------------------------------------------------------------------------------------


def tcp_refused(facts: Facts) -> Theory | None:
    """Connection refused (RST): nothing listens on the address and port."""
    probes = failing_probes(facts, ("tcp_refused",))
    port = probes[0].get("port") if probes else None
    extra = [f"nc -vz -w 5 {probes[0].get('address')} {port}"] if probes else []
    return _traffic_theory(
        facts,
        "tcp-refused",
        ("tcp_refused",),
        "nothing accepts connections on {where} ({record}): every connection is refused (RST) — the service "
        "that should listen there is gone or listens on another port",
        [
            "Find what should serve the address: a LoadBalancer deleted or re-created with a new address "
            "(update DNS), "
            "a Service whose port changed, or a process not running",
            "Point DNS at the address that serves the target, or restore the listener on that port",
        ],
        0.7,
        extra,
    )


def tcp_timeout(facts: Facts) -> Theory | None:
    """SYNs to a resolved address go unanswered: a firewall drops them, or the address is wrong."""
    probes = failing_probes(facts, ("tcp_timeout",))
    if not probes:
        return None
    addresses = _addresses(probes)
    balancers = facts.loadbalancer_addresses()
    known = [a for a in addresses if a in balancers]
    title = (
        f"connections to {_where(probes, facts)} time out (SYN unanswered): a firewall drops them, "
        "or the address is wrong"
    )
    evidence = [probe_line({**p, "source": p.get("source", "dns")}) for p in probes[:3]]
    confidence = 0.55 if known else 0.5
    if known:
        evidence.append(
            f"{', '.join(known)} is the address of {balancers[known[0]]}: suspect a firewall in front of it"
        )
    elif facts.cluster_checked:
        evidence.append(f"{', '.join(addresses)} is no LoadBalancer of the cluster: suspect a wrong address")
    confirm = [curl_of(p, facts.context) for p in probes[:2]]
    confirm.append(f"nc -vz -w 5 {addresses[0]} {probes[0].get('port') or facts.context.port or 80}")
    fix = [
        "Allow inbound TCP on the port in the cloud firewall / security group of the address",
        "or point DNS at the right address",
    ]
    theory = Theory("tcp-timeout", title, confidence, evidence, confirm, fix, subjects=addresses)
    theory.explains = facts.explain(TRAFFIC_SECTIONS, addresses + ["tcp_timeout"])
    theory.unknowns = _cluster_unknown(facts, addresses)
    return theory


def tcp_unreachable(facts: Facts) -> Theory | None:
    """No route to the address (ENETUNREACH / EHOSTUNREACH)."""
    probes = failing_probes(facts, ("tcp_unreachable",))
    if not probes:
        return None
    v6 = all(":" in str(p.get("address")) for p in probes)
    if v6:
        title = (
            "there is no route to {where} ({record}): this network has no IPv6 route to it — clients "
            "that prefer IPv6 fail while IPv4 may work"
        )
        fix = [
            f"If the service has no working IPv6 address, remove the AAAA record of {facts.context.host}; "
            "otherwise give the load balancer IPv6 and this network an IPv6 route"
        ]
    else:
        title = "there is no route to {where} ({record}): the address is not reachable from this network"
        fix = ["Check the address is right (DNS) and routed from where clients are (private address? VPN?)"]
    return _traffic_theory(
        facts,
        "tcp-unreachable",
        ("tcp_unreachable",),
        title,
        fix,
        0.65,
        [f"ip route get {probes[0].get('address')}"],
    )


# Address ranges no internet route leads to (RFC 1918, shared CGNAT space RFC 6598, IPv6 unique local
# RFC 4193): published in public DNS, they send every client outside the private network nowhere.
PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)
# Service annotations that make a cloud LoadBalancer internal (no public address), as each cloud documents
# them.
INTERNAL_LB_ANNOTATIONS = {
    "service.beta.kubernetes.io/aws-load-balancer-scheme": ("internal",),
    "service.beta.kubernetes.io/aws-load-balancer-internal": None,  # any value but "false" (legacy in-tree)
    "service.beta.kubernetes.io/azure-load-balancer-internal": ("true",),
    "networking.gke.io/load-balancer-type": ("internal",),
    "cloud.google.com/load-balancer-type": ("internal",),
    "service.beta.kubernetes.io/oci-load-balancer-internal": ("true",),
}


def is_private_address(address: object) -> bool:
    try:
        ip = ipaddress.ip_address(str(address))
    except ValueError:
        return False
    return any(ip.version == n.version and ip in n for n in PRIVATE_NETWORKS)


def _makes_internal(key: str, value: object) -> bool:
    if key not in INTERNAL_LB_ANNOTATIONS:
        return False
    wanted, said = INTERNAL_LB_ANNOTATIONS[key], str(value).lower()
    return said != "false" if wanted is None else said in wanted


def _internal_balancers(facts: Facts) -> list[str]:
    """``Service ns/name (annotation: value)`` of each LoadBalancer Service an annotation makes internal."""
    return [
        f"Service {service.get('namespace')}/{service.get('name')} ({key}: {value})"
        for service in facts.all_services()
        if service.get("type") == "LoadBalancer"
        for key, value in (service.get("annotations") or {}).items()
        if _makes_internal(key, value)
    ]


def dns_private_address(facts: Facts) -> Theory | None:
    """The target's DNS answer holds private addresses (RFC 1918 and kin) and connecting to them fails: the
    record publishes an internal address, which no client outside that network can reach."""
    dns = set(facts.dns_addresses())
    probes = [
        p
        for p in failing_probes(facts, ("tcp_timeout", "tcp_unreachable"))
        if p.get("address") in dns and is_private_address(p.get("address"))
    ]
    if not probes:
        return None
    addresses = sorted(_addresses(probes), key=ipaddress.ip_address)
    host = facts.context.host
    title = (
        f"{host} resolves to {', '.join(addresses)}, "
        + ("private addresses" if len(addresses) > 1 else "a private address")
        + " (RFC 1918 / unique local) where "
        "connections fail: no route on the internet leads there — the record publishes an internal load "
        "balancer's or node's address instead of a public one"
    )
    evidence = [probe_line({**p, "source": p.get("source", "dns")}) for p in probes[:3]]
    balancers = facts.loadbalancer_addresses()
    owned = sorted({balancers[a] for a in addresses if a in balancers})
    evidence += [
        f"{owner} has these private addresses as its load balancer's: the load balancer is internal"
        for owner in owned
    ]
    internal = _internal_balancers(facts)
    evidence += [f"{line} is an internal load balancer" for line in internal[:3]]
    public = [a for a in facts.dns_addresses() if not is_private_address(a)]
    if public:
        evidence.append(f"the answer also holds {', '.join(public)}: only those are public")
    confirm = [
        f"dig +short {host}",
        f"nc -vz -w 5 {addresses[0]} {probes[0].get('port') or facts.context.port}",
    ]
    if facts.cluster_checked:
        confirm.append(kubectl(facts.context, "get svc -A -o wide") + " | grep LoadBalancer")
    fix = [
        "If the service is public: make its load balancer internet-facing (remove the internal annotation, "
        "e.g. service.beta.kubernetes.io/aws-load-balancer-scheme: internet-facing) and publish its public "
        f"address for {host}",
        f"If it is meant to be internal: publish {host} only in the private zone (split-horizon DNS) and "
        "run this check from inside that network",
    ]
    if facts.cluster_checked and not owned:
        fix.insert(
            0, f"{', '.join(addresses)} is no load balancer of the cluster: point {host} at the one that is"
        )
    theory = Theory(
        "dns-private-address",
        title,
        0.85 if internal or owned else 0.8,
        evidence,
        confirm,
        fix,
        subjects=addresses,
    )
    theory.explains = facts.explain(("dns",), addresses) + facts.explain(
        TRAFFIC_SECTIONS, addresses + ["tcp_"]
    )
    return theory


# --- HTTP after connect -------------------------------------------------------------------------------------


def edge_empty_reply(facts: Facts) -> Theory | None:
    """The edge accepts connections but closes them without a reply."""
    empties = failing_probes(facts, ("empty_reply",))
    if not empties:
        return None
    inside = facts.in_cluster_ok()
    if inside is False:
        return None
    address = empties[0].get("address")
    title = f"{address} accepts connections and closes them without a reply"
    if inside:
        title += " while the app is healthy inside the cluster"
    title += " — likely no healthy backend behind it, or it expects another port or protocol"
    evidence = [probe_line(p) for p in empties[:3]]
    for check in facts.in_cluster_health():
        evidence.append(
            f"in-cluster GET {check.get('path')} on Service {check.get('service')}: {check.get('status')} "
            f"{short(check.get('body'), 60)}".rstrip()
        )
    confidence = 0.45 + (0.15 if inside else 0.0)
    balancers = facts.loadbalancer_addresses()
    if balancers and address not in balancers:
        # The address is no LoadBalancer of the cluster: the DNS theory explains the silence better.
        confidence = 0.3
        evidence.append(f"{address} is not an address of any LoadBalancer or Ingress of the cluster")
    confirm = [curl_of(empties[0], facts.context), kubectl(facts.context, "get svc -o wide")]
    fix = [
        "Find what owns the address (load balancer / node / proxy) and give it the Service's healthy "
        "backend, "
        "or move DNS to an address that serves the app"
    ]
    theory = Theory("edge-empty-reply", title, confidence, evidence, confirm, fix, subjects=[str(address)])
    theory.explains = facts.explain(TRAFFIC_SECTIONS, _addresses(empties) + ["empty_reply", "empty reply"])
    theory.unknowns = _cluster_unknown(facts, _addresses(empties))
    if inside is None:
        proxied_health = "get --raw /api/v1/namespaces/NAMESPACE/services/SERVICE:PORT/proxy/health"
        theory.unknowns.append(
            "whether the app answers inside the cluster was not checked — "
            f"{kubectl(facts.context, proxied_health)}"
            f"{facts.kubectl_note() or '  # section api-internal'}"
        )
    return theory


def edge_reset(facts: Facts) -> Theory | None:
    """The connection is reset in the middle of the response."""
    return _traffic_theory(
        facts,
        "edge-reset",
        ("recv_error",),
        "{where} resets the connection in the middle of the response to GET {path}: the backend (or a proxy "
        "in "
        "between) dies or aborts while answering",
        [
            "Read the backend's and the proxy's logs at the time of the request (crash, worker killed, proxy "
            "timeout); "
            "check the pods' restarts and memory limits"
        ],
        0.6,
        # A TLS alert instead of the response is the handshake's verdict (tls-handshake), not a crash.
        keep=lambda probe: not (probe.get("tls") or {}).get("alert"),
    )


def edge_partial_body(facts: Facts) -> Theory | None:
    """The connection closes before the announced body ended."""
    return _traffic_theory(
        facts,
        "edge-partial-body",
        ("partial_body",),
        "{where} closes the connection before the body of GET {path} is complete: the backend stops "
        "mid-answer "
        "(crash, timeout of a proxy, a body larger than announced)",
        [
            "Check the backend's logs and the proxy's read/send timeouts; compare Content-Length with what "
            "is sent"
        ],
        0.6,
    )


def edge_not_http(facts: Facts) -> Theory | None:
    """Something answers on the port, but not HTTP."""
    probes = failing_probes(facts, ("bad_response",))
    if not probes:
        return None
    detail = " ".join(str(p.get("detail") or "") for p in probes)
    if "SSH-" in detail:
        what = "an SSH server answers there"
    elif "\\x15\\x03" in detail or "TLS" in detail:
        what = "it speaks TLS there: the target's scheme should be https"
    else:
        what = "another protocol or service listens on that port"
    return _traffic_theory(
        facts,
        "edge-not-http",
        ("bad_response",),
        "{where} answers GET {path} with bytes that are not HTTP: " + what,
        [
            "Point the target (or the load balancer's port mapping) at the port the HTTP service listens on, "
            "or use "
            "the scheme it speaks"
        ],
        0.7,
    )


def read_timeout(facts: Facts) -> Theory | None:
    """Connected, request sent, no (complete) response in time."""
    return _traffic_theory(
        facts,
        "read-timeout",
        ("read_timeout",),
        "{where} accepts connections but does not answer GET {path} in time: the request is held somewhere "
        "between the edge and the pods (backend hanging, upstream unreachable from the proxy, or dropped by "
        "a policy)",
        [
            "Follow the request inward: does the app answer inside the cluster (section api-internal)? Does "
            "the proxy "
            "reach the pods (NetworkPolicy, pod readiness)? Is the app blocked on a dependency?"
        ],
        0.55,
    )


def _failure_theory(
    facts: Facts, name: str, failure: str, cause: str, fixes: list[str], confidence: float
) -> Theory | None:
    """A theory for one failure class, when a probe failed with it: the first such probe's detail in the
    cause."""
    probes = failing_probes(facts, (failure,))
    if not probes:
        return None
    return _traffic_theory(
        facts, name, (failure,), cause, fixes, confidence, detail=short(probes[0].get("detail"), 200)
    )


NGINX_CONTROLLER = "k8s.io/ingress-nginx"
FORCE_SSL_REDIRECT = "nginx.ingress.kubernetes.io/force-ssl-redirect"
SSL_REDIRECT = "nginx.ingress.kubernetes.io/ssl-redirect"


def _nginx_ingress_for_host(facts: Facts) -> dict[str, Any] | None:
    """The host's Ingress when ingress-nginx serves it (its IngressClass's controller, or class ``nginx``
    when no IngressClass was read)."""
    host = facts.context.host or ""
    classes = {c.get("name"): c for c in facts.of("ingress_class")}
    default = next((name for name, c in classes.items() if c.get("is_default")), None)
    # A canary Ingress (ingress-nginx's canary annotation) shares the host with the main one: the main one
    # first.
    ingresses = sorted(
        facts.ingresses_for_host(host),
        key=lambda i: (
            str((i.get("annotations") or {}).get("nginx.ingress.kubernetes.io/canary")).lower() == "true"
        ),
    )
    for ingress in ingresses:
        name = ingress.get("class_name") or default
        controller = (classes.get(name) or {}).get("controller")
        if controller == NGINX_CONTROLLER or (controller is None and name == "nginx"):
            return ingress
    return None


def _ssl_redirect_reason(ingress: Mapping[str, Any], host: str) -> str | None:
    """Why ingress-nginx redirects this Ingress's host to https: force-ssl-redirect, or ssl-redirect (on by
    default) with a TLS entry for the host; None when neither applies."""
    annotations = ingress.get("annotations") or {}
    name = ingress.get("name")
    if str(annotations.get(FORCE_SSL_REDIRECT, "")).lower() == "true":
        return f'{FORCE_SSL_REDIRECT}: "true" on Ingress {name}'
    listed = any(
        ingress_host_matches(h, host) for entry in ingress.get("tls") or [] for h in entry.get("hosts") or []
    )
    if listed and str(annotations.get(SSL_REDIRECT, "true")).lower() != "false":
        return f"Ingress {name}'s TLS entry for {host} (ssl-redirect is on by default)"
    return None


def _https_to_itself(probe: Mapping[str, Any]) -> bool:
    """An https request answered with a redirect to the same https URL."""
    location = str((probe.get("headers") or {}).get("location") or "")
    return probe.get("scheme") == "https" and urlsplit(location).scheme == "https"


def _tls_terminated_ahead(facts: Facts, probe: Mapping[str, Any]) -> Theory | None:
    """ingress-nginx answers https requests with a redirect to https: it saw plain HTTP, so TLS ends in front
    of it (a load balancer's TLS listener forwarding to its http port) and it was not told the client's
    scheme."""
    ingress = _nginx_ingress_for_host(facts)
    host = facts.context.host or str(probe.get("host") or "")
    why = _ssl_redirect_reason(ingress, host) if ingress is not None else None
    if why is None or not _https_to_itself(probe):
        return None
    name, ns = ingress.get("name"), ingress.get("namespace")
    port = "" if probe.get("port") in (None, 443) else f":{probe.get('port')}"
    title = (
        f"ingress-nginx redirects https://{host}{port}{probe.get('path') or '/'} to itself "
        f"(HTTP {probe.get('status')} to {short((probe.get('headers') or {}).get('location'), 120)}): it "
        "receives the request as plain HTTP — TLS is terminated in front of it (a load balancer's TLS "
        f"listener sending to its http port) — and {why} sends it to https again"
    )
    evidence = [
        probe_line({**probe, "source": probe.get("source", "dns")}),
        f"Ingress {ns}/{name} is served by ingress-nginx: {why}",
    ]
    if (probe.get("headers") or {}).get("server"):
        evidence.append(f"Server: {short(probe['headers']['server'], 60)}")
    confirm = [
        curl_of(probe, facts.context) + "  # each hop answers a redirect to the same https URL",
        kubectl(facts.context, f"get ingress {name} -o jsonpath='{{.metadata.annotations}}'", ns),
        kubectl(facts.context, "get svc -o yaml", "ingress-nginx")
        + " | grep -E 'ssl-cert|backend-protocol|ssl-ports|targetPort'  # a TLS listener sent to port http?",
    ]
    fix = [
        "Tell ingress-nginx the client's scheme: with an L7 load balancer that sends X-Forwarded-Proto, set "
        'use-forwarded-headers: "true" in the controller\'s ConfigMap; with an NLB terminating TLS, send its '
        "TLS port to the controller's https port (TLS passthrough) or to a port of the controller that does "
        "not redirect",
        f"or drop the redirect where the load balancer already does it: remove {FORCE_SSL_REDIRECT} (and set "
        f'{SSL_REDIRECT}: "false") on Ingress {name}',
    ]
    theory = Theory(
        "redirect-loop", title, 0.85, evidence, confirm, fix, subjects=[str(probe.get("address"))]
    )
    theory.explains = facts.explain(
        TRAFFIC_SECTIONS, [str(probe.get("address")), "too_many_redirects", "redirect"]
    )
    return theory


def redirect_loop(facts: Facts) -> Theory | None:
    """Redirects loop (or exceed the bound); an https request that ingress-nginx redirects to https again is
    named as TLS terminated in front of the controller."""
    probes = failing_probes(facts, ("too_many_redirects",))
    for probe in probes:
        theory = _tls_terminated_ahead(facts, probe)
        if theory is not None:
            return theory
    return _failure_theory(
        facts,
        "redirect-loop",
        "too_many_redirects",
        "GET {path} on {where} redirects in a loop ({detail}): a redirect rule sends the request back where "
        "it came from — often an app behind a TLS-terminating proxy that does not trust X-Forwarded-Proto",
        [
            "Make one side stop redirecting: let the app trust the proxy's X-Forwarded-Proto (or disable its "
            "https "
            "redirect behind the proxy), or remove the proxy's redirect for this host"
        ],
        0.75,
    )


def redirect_unsafe(facts: Facts) -> Theory | None:
    """A redirect to another scheme than http/https, or from https down to http: clients must not follow
    it."""
    return _failure_theory(
        facts,
        "redirect-unsafe",
        "redirect_unsafe",
        "GET {path} on {where} redirects where a client must not follow ({detail}): a downgrade from https "
        "to "
        "http sends requests and credentials in clear, other schemes are not web requests at all",
        [
            "Make the redirect keep https (or point it at an http/https URL); a proxy that terminates TLS "
            "must pass "
            "X-Forwarded-Proto so the app does not build http:// URLs"
        ],
        0.75,
    )


def redirect_elsewhere(facts: Facts) -> Theory | None:
    """A redirect to another host (or a private address): the target itself does not answer the check."""
    return _failure_theory(
        facts,
        "redirect-elsewhere",
        "redirect_elsewhere",
        "GET {path} on {where} sends the client to another host ({detail}): the target answers with a "
        "redirect, "
        "not with its own health check — a canonical-host or login redirect, or a default site answering the "
        "host",
        [
            "If the redirect is intended, check the host it names instead (--target); otherwise fix the "
            "redirect rule "
            "(canonical host, login redirect exemption for the health path, the default site of the edge)"
        ],
        0.65,
    )


def redirect_target_fails(facts: Facts) -> Theory | None:
    """The target answers with a redirect the client follows, and the request where it leads fails: the
    failure belongs to the redirect's scheme, host and port (an http -> https redirect with no HTTPS listener
    behind it, a canonical host that is down), not to the address and port probed."""
    probes = [p for p in facts.http_probes("dns") if p.get("address") and _failed_after_redirect(p)]
    if not probes:
        return None
    probe = probes[0]
    scheme, host, port = _redirect_target(probe) or ("", "", 0)
    url = str((probe.get("redirects") or [""])[-1])
    title = (
        f"GET {probe.get('path') or facts.context.health_path} on {_where(probes, facts)} answers "
        f"{probe.get('status')} {probe.get('reason') or ''}".rstrip()
        + f" redirecting to {url}, and the request there fails: "
        + str(probe.get("wording") or probe.get("failure"))
        + (f" ({short(probe.get('detail'), 160)})" if probe.get("detail") else "")
        + f" — the redirect leads to {scheme}://{host}:{port}, where nothing serves the request"
    )
    evidence = [probe_line({**p, "source": p.get("source", "dns")}) for p in probes[:3]]
    target = f"{host}:{port}"
    confirm = [
        curl_of(probe, facts.context),
        f"curl -v {shlex.quote(url)}",
        f"nc -vz -w 5 {shlex.quote(host)} {port}",
    ]
    fix = [
        f"Serve {target}"
        + (
            " (an HTTPS listener: the LoadBalancer's port 443 and the Ingress's tls, with a certificate)"
            if scheme == "https"
            else ""
        )
        + ", or stop redirecting there (the edge's redirect rule — ingress-nginx ssl-redirect / "
        "force-ssl-redirect — or the app's own)"
    ]
    theory = Theory("redirect-target-fails", title, 0.75, evidence, confirm, fix, subjects=[target])
    theory.explains = facts.explain(TRAFFIC_SECTIONS, [url, target, *{str(p.get("failure")) for p in probes}])
    return theory


def headers_too_large(facts: Facts) -> Theory | None:
    """The response headers exceed what clients accept (curl: 100 kB a line, 300 kB in all)."""
    return _traffic_theory(
        facts,
        "headers-too-large",
        ("headers_too_large",),
        "{where} answers GET {path} with response headers larger than clients accept: a header (often "
        "Set-Cookie) "
        "grows without bound or is repeated",
        [
            "Find the oversized header (curl -sv ... 2>&1 | head) and stop it growing (cookie size, a header "
            "added per hop)"
        ],
        0.7,
    )


def _status_probes(
    facts: Facts, low: int, high: int, sources: tuple[str, ...] = ("dns",)
) -> list[dict[str, Any]]:
    return [
        p
        for p in failing_probes(facts, ("http_status",), sources)
        if isinstance(p.get("status"), int) and low <= p["status"] <= high
    ]


def _server_of(probe: Mapping[str, Any]) -> str:
    headers = {str(k).lower(): str(v) for k, v in (probe.get("headers") or {}).items()}
    server = headers.get("server", "")
    return server if any(name in server.lower() for name in PROXY_SERVERS) else ""


HTTP_5XX_MEANING = {
    500: "the application fails while handling it (500)",
    502: "the proxy in front got no valid answer from its backend (502 Bad Gateway): the backend refused or "
    "closed "
    "the connection — wrong target port, pods not listening or crashing",
    503: "no backend is available to answer (503 Service Unavailable): no ready endpoints behind the proxy, "
    "or the "
    "application reports itself unavailable",
    504: "the proxy in front waited for its backend and gave up (504 Gateway Timeout): the backend hangs or "
    "is "
    "unreachable from the proxy",
}


def _header(probe: Mapping[str, Any], name: str) -> str | None:
    headers = {str(k).lower(): str(v) for k, v in (probe.get("headers") or {}).items()}
    return headers.get(name.lower())


def _inside_answers(facts: Facts) -> dict[str, Any] | None:
    """The in-cluster health check that answered 2xx/3xx through the Service (None when none did)."""
    return next(
        (
            c
            for c in facts.in_cluster_health()
            if c.get("error") is None and isinstance(c.get("status"), int) and 200 <= c["status"] < 400
        ),
        None,
    )


def _inside_line(check: Mapping[str, Any]) -> str:
    return f"in-cluster GET {check.get('path')} through Service {check.get('service')}: {check.get('status')}"


def http_5xx(facts: Facts) -> Theory | None:
    """The address answers 5xx: the server side fails (meaning per status, RFC 9110 section 15.6). When the
    app answers inside the cluster, the failing hop is between the edge and the pods, or the edge itself."""
    probes = _status_probes(facts, 500, 599) or _status_probes(facts, 500, 599, ("loadbalancer",))
    if not probes:
        return None
    status = probes[0]["status"]
    meaning = HTTP_5XX_MEANING.get(status, f"the server side fails ({status})")
    server = _server_of(probes[0])
    retry_after = _header(probes[0], "Retry-After")
    inside = _inside_answers(facts)
    confidence = 0.55
    if inside is not None and status in (502, 503, 504):
        if status == 503:
            meaning = (
                "the edge itself refuses to pass the request on (503 Service Unavailable"
                + (f", Retry-After: {retry_after}" if retry_after else "")
                + "): the application answers inside the cluster, so this is the edge's own answer — a "
                "maintenance page, load shedding or a rate limit, or a proxy that does not see the ready "
                "endpoints"
            )
        else:
            meaning += (
                "; the application answers inside the cluster, so the hop from the proxy to the pods fails"
            )
        confidence = 0.6
    elif retry_after and status == 503:
        meaning += f" (Retry-After: {retry_after}: the server expects to be back, as a maintenance page says)"
    theory = _traffic_theory(
        facts,
        "http-5xx",
        ("http_status",),
        "{who}{where} answers GET {path} with {status}: {meaning}",
        [
            "Find the first hop that fails: the app's answer inside the cluster (section api-internal), the "
            "Service's "
            "ready endpoints (section endpoints), then the proxy's logs for this request"
        ],
        confidence,
        sources=tuple(dict.fromkeys(p.get("source", "dns") for p in probes)),
        who=f"{server} at " if server else "",
        status=str(status),
        meaning=meaning,
    )
    if theory is not None:
        if retry_after:
            theory.evidence.append(f"response header Retry-After: {retry_after}")
        if inside is not None:
            theory.evidence.append(_inside_line(inside))
            if status in (502, 503, 504):
                theory.fix = [
                    "The pods answer: look at the edge for this host — a maintenance or default page, a rate "
                    "or connection limit, a policy between the proxy and the pods — in the proxy's log for "
                    "these requests and its configuration (ingress-nginx: the Ingress annotations and the "
                    "controller's ConfigMap)"
                ]
        theory.explains = facts.explain(TRAFFIC_SECTIONS, [str(status)] + theory.subjects)
    return theory


def http_404(facts: Facts) -> Theory | None:
    """The address answers 404 for the target's host and path."""
    probes = _status_probes(facts, 404, 404)
    if not probes:
        return None
    path = probes[0].get("path") or facts.context.health_path
    inside = [c for c in facts.in_cluster_health() if c.get("status") == 404 and c.get("error") is None]
    declared: list[str] | None = None
    if inside:
        # The app itself has no such route: no routing fix at the edge would help.
        title = (
            "{where} answers 404 to GET {path}, and so does the application inside the cluster: the app has "
            "no route {path} — its health check lives at another path"
        )
        fix = [
            f"Pass the application's real health path with --health-path (it does not serve {path}), or add "
            "the route to the app"
        ]
        confidence = 0.8
    elif (declared := _unmatched_ingress_paths(facts, path)) is not None:
        # The Ingress has a rule for the host, but no path of it matches: the controller answers itself.
        title = (
            "{where} answers 404 to GET {path} for Host {host}: no path of the Ingress rules for the host "
            "matches {path} ({declared}) — the ingress controller answers it itself, with its default backend"
        )
        fix = [
            f"Add a path matching {path} to the Ingress rule for {facts.context.host}, or widen the one "
            "there: pathType Exact matches that one path only, Prefix matches by path element (Prefix / "
            "matches every path)"
        ]
        confidence = 0.75
    else:
        title = (
            "{where} answers 404 to GET {path} for Host {host}: the server there has no route for this host "
            "or "
            "path — an ingress controller without a rule for the host, or a health path the app does not "
            "serve"
        )
        fix = [
            f"If an ingress controller answers, add an Ingress rule for {facts.context.host}; otherwise pass "
            "the "
            f"app's real health path with --health-path (not {path})"
        ]
        confidence = 0.55
    theory = _traffic_theory(
        facts,
        "http-404",
        ("http_status",),
        title,
        fix,
        confidence,
        declared=", ".join(declared or []),
    )
    if theory is not None:
        theory.evidence += [f"{line} does not match {path}" for line in (declared or [])[:3]]
        answered = _inside_answers(facts)
        if declared and answered is not None:
            theory.evidence.append(_inside_line(answered))
        theory.evidence += [
            f"in-cluster GET {c.get('path')} via Service {c.get('service')}: 404" for c in inside[:1]
        ]
        theory.explains = facts.explain(TRAFFIC_SECTIONS, ["404"])
        if inside:
            theory.unknowns = []
    return theory


# Characters that make an ImplementationSpecific path a controller's pattern (GKE and ALB's "/*", nginx
# regular expressions), not a prefix.
_PATTERN_CHARACTERS = set("*()[]{}|^$?+\\")


def _path_unknown(ingress: Mapping[str, Any], entry: Mapping[str, Any]) -> bool:
    """Whether how the controller matches this path is its own: ImplementationSpecific with a pattern, or
    ingress-nginx's use-regex / rewrite-target."""
    annotations = ingress.get("annotations") or {}
    if str(annotations.get("nginx.ingress.kubernetes.io/use-regex", "")).lower() == "true":
        return True
    if "nginx.ingress.kubernetes.io/rewrite-target" in annotations:
        return True
    return entry.get("path_type") not in ("Exact", "Prefix") and bool(
        _PATTERN_CHARACTERS & set(str(entry.get("path")))
    )


def _unmatched_ingress_paths(facts: Facts, path: str) -> list[str] | None:
    """The paths of the Ingress rules for the target's host ("Ingress api: / (Exact)") when there are some
    and none matches ``path``; None when no Ingress has a rule for the host, or a path matches."""
    host = facts.context.host or ""
    paths = [
        (ingress, entry)
        for ingress in facts.ingresses_for_host(host)
        for rule in ingress.get("rules") or []
        if ingress_host_matches(rule.get("host"), host)
        for entry in rule.get("paths") or []
    ]
    if not paths or any(ingress_path_matches(e.get("path"), e.get("path_type"), path) for _i, e in paths):
        return None
    if any(_path_unknown(i, e) for i, e in paths) or any(i.get("default_backend") for i, _e in paths):
        return None  # a pattern the controller reads its own way, or a default backend that takes the rest
    return [f"Ingress {i.get('name')}: {e.get('path')} ({e.get('path_type')})" for i, e in paths]


def http_auth(facts: Facts) -> Theory | None:
    """401/403: the address wants credentials (or refuses these)."""
    probes = _status_probes(facts, 401, 403)
    probes = [p for p in probes if p.get("status") in (401, 403)]
    if not probes:
        return None
    status = probes[0]["status"]
    challenge = {str(k).lower(): v for k, v in (probes[0].get("headers") or {}).items()}.get(
        "www-authenticate"
    )
    meaning = (
        "it requires authentication" + (f" ({short(challenge, 100)})" if challenge else "")
        if status == 401
        else "it refuses this client (authorisation, IP allow-list or WAF)"
    )
    fix = [
        "Give the check credentials (https://user:password@host in --target) or exempt the health path "
        "from "
        "authentication; for 403, check the allow-list / WAF rules for this client"
    ]
    confidence = 0.6
    inside_refuses = any(c.get("status") == 403 for c in facts.in_cluster_health())
    lists = _source_allow_lists(facts) if status == 403 and not inside_refuses else []
    if lists:
        # The Ingress filters clients by address (and the app does not refuse inside the cluster): a 403 from
        # the controller is that filter's refusal.
        meaning = (
            f"the Ingress filters clients by source address ({lists[0]}) and refuses this one — the address "
            "the check comes from is most likely "
            + ("on the deny list" if "denylist" in lists[0] else "not admitted by it")
        )
        fix = [
            "Take the checking client's public address off the deny list (or run the check from another "
            "address)"
            if "denylist" in lists[0]
            else "Add the checking client's public address to the list (or run the check from an address in "
            "it); if the list is meant to admit everyone, fix its ranges",
        ]
        confidence = 0.75
    theory = _traffic_theory(
        facts,
        "http-auth",
        ("http_status",),
        "{where} answers {status} to GET {path}: {meaning}",
        fix,
        confidence,
        status=str(status),
        meaning=meaning,
    )
    if theory is not None:
        theory.explains = facts.explain(TRAFFIC_SECTIONS, [str(status)])
        if lists:
            theory.evidence += lists
            answered = _inside_answers(facts)
            if answered is not None:
                theory.evidence.append(_inside_line(answered))
    return theory


# ingress-nginx's annotations that admit or refuse clients by source address with a 403. (The AWS Load
# Balancer Controller's inbound-cidrs is a security group: its refusal is a timeout, not a 403.)
SOURCE_LIST_ANNOTATIONS = (
    "nginx.ingress.kubernetes.io/whitelist-source-range",
    "nginx.ingress.kubernetes.io/allowlist-source-range",
    "nginx.ingress.kubernetes.io/denylist-source-range",
)


def _source_allow_lists(facts: Facts) -> list[str]:
    """ "Ingress api: nginx.ingress.kubernetes.io/whitelist-source-range=10.0.0.0/8" for the target's host."""
    return [
        f"Ingress {ingress.get('name')}: {key}={value}"
        for ingress in facts.ingresses_for_host(facts.context.host or "")
        for key, value in sorted((ingress.get("annotations") or {}).items())
        if key in SOURCE_LIST_ANNOTATIONS
    ]


HTTP_4XX_MEANING = {
    400: "the server rejects the request itself (400) — a plain-HTTP request on an HTTPS port answers this "
    "way",
    405: "the method is not allowed on that path (405)",
    408: "the server timed out waiting for the request (408)",
    421: "the server is not configured for this host (421 Misdirected Request)",
    429: "the client is rate limited (429)",
}


# ingress-nginx annotations that limit the request rate of a client.
RATE_LIMIT_ANNOTATIONS = (
    "nginx.ingress.kubernetes.io/limit-rps",
    "nginx.ingress.kubernetes.io/limit-rpm",
    "nginx.ingress.kubernetes.io/limit-connections",
)


def http_4xx(facts: Facts) -> Theory | None:
    """Other 4xx answers; 429 is a rate limit, named with its Retry-After and the limits the Ingress
    declares."""
    probes = [p for p in _status_probes(facts, 400, 499) if p.get("status") not in (401, 403, 404)]
    if not probes:
        return None
    status = probes[0]["status"]
    meaning = HTTP_4XX_MEANING.get(status, f"the server refuses the request ({status})")
    fix = [
        "Compare the probe's request (curl line) with what the server expects: scheme, host, path and method"
    ]
    confidence = 0.5
    extra: list[str] = []
    if status == 429:
        retry_after = _header(probes[0], "Retry-After")
        limits = [
            f"Ingress {i.get('name')}: {key}={value}"
            for i in facts.ingresses_for_host(facts.context.host or "")
            for key, value in sorted((i.get("annotations") or {}).items())
            if key in RATE_LIMIT_ANNOTATIONS
        ]
        inside = _inside_answers(facts)
        meaning = (
            f"Retry-After: {retry_after}; " if retry_after else ""
        ) + "a rate limiter in front of the app throttles this client"
        if inside is not None:
            meaning += " (the application answers inside the cluster)"
            extra.append(_inside_line(inside))
        if limits:
            meaning += f"; the Ingress declares a limit ({limits[0].split(': ', 1)[1]})"
            extra += limits
        if retry_after:
            extra.append(f"response header Retry-After: {retry_after}")
        fix = [
            "Exempt the checking address from the limit or raise it where it is set (ingress-nginx: the "
            "nginx.ingress.kubernetes.io/limit-* annotations and limit-whitelist; a WAF or API gateway rule)",
            "Re-run after the Retry-After delay with fewer requests (the performance section's requests and "
            "concurrency)",
        ]
        confidence = 0.6 + (0.1 if inside is not None or limits else 0)
    theory = _traffic_theory(
        facts,
        "http-4xx",
        ("http_status",),
        "{where} answers GET {path} with {status}: {meaning}",
        fix,
        confidence,
        status="429 Too Many Requests" if status == 429 else str(status),
        meaning=meaning,
    )
    if theory is not None:
        theory.evidence += extra
        theory.explains = facts.explain(TRAFFIC_SECTIONS, [str(status)])
    return theory


def body_mismatch(facts: Facts) -> Theory | None:
    """The status was fine but the body was not what the check expects."""
    return _traffic_theory(
        facts,
        "body-mismatch",
        ("body_mismatch",),
        "{where} answers GET {path} with an expected status but an unexpected body: the service answering is "
        "not "
        "the one the check expects (another app or a default backend), or it reports a problem in its body",
        ["Compare the body (curl line) with what the check expects; if another app answers, fix the routing"],
        0.5,
    )


# --- TLS ----------------------------------------------------------------------------------------------------


def _tls_failures(facts: Facts, classes: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        p for p in facts.http_probes() + facts.of("tls") if p.get("failure") in classes and p.get("address")
    ]


def _tls_theory(
    facts: Facts,
    rule: str,
    classes: tuple[str, ...],
    title: str,
    confidence: float,
    fix: list[str],
    failures: list[dict[str, Any]] | None = None,
) -> Theory | None:
    failures = _tls_failures(facts, classes) if failures is None else failures
    if not failures:
        return None
    first = failures[0]
    info = first.get("tls") or {}
    evidence = [probe_line({**first, "source": first.get("source", "dns")})]
    if first.get("detail"):
        evidence.append(f"detail: {first['detail']}")
    if info.get("subject_names") or info.get("issuer"):
        evidence.append(
            f"certificate: subject names {info.get('subject_names')}, issuer {info.get('issuer')}, "
            f"not before {info.get('not_before')}, not after {info.get('expires')}"
        )
    if info.get("chain"):
        evidence.append(
            "certificates the server sent: "
            + "; ".join(f"{c.get('subject')} (issued by {c.get('issuer')})" for c in info["chain"])
        )
    host = facts.context.host or first.get("host")
    port = first.get("port") or facts.context.port or 443
    confirm = [
        openssl_certificate(first.get("address"), port, host),
        curl_of(first, facts.context),
    ]
    addresses = list(dict.fromkeys(str(p.get("address")) for p in failures))
    chain = info.get("chain") or [{}]
    text = title.format(
        host=host,
        address=first.get("address"),
        expires=info.get("expires"),
        not_before=info.get("not_before"),
        issuer=info.get("issuer"),
        detail=short(first.get("detail"), 120),
        issuer_url=chain[0].get("issuer_url"),
    )
    theory = Theory(rule, text, confidence, evidence, confirm, fix, subjects=addresses)
    theory.explains = facts.explain(("tls", "api-health", "performance"), addresses + list(classes))
    return theory


def _not_yet_valid(probe: Mapping[str, Any]) -> bool:
    """A certificate refused for its validity period because it starts later (OpenSSL's "certificate is not
    yet valid", verify code 9), told from an expired one by the verifier's words or by its notBefore."""
    info = probe.get("tls") or {}
    error = str(info.get("error") or probe.get("detail") or "").lower()
    if "not yet valid" in error:
        return True
    if "expired" in error:
        return False
    try:
        not_before = datetime.datetime.fromisoformat(str(info.get("not_before")))
    except ValueError:
        return False
    if not_before.tzinfo is None:
        not_before = not_before.replace(tzinfo=datetime.timezone.utc)
    return not_before > datetime.datetime.now(datetime.timezone.utc)


def tls_expired(facts: Facts) -> Theory | None:
    """The server certificate is expired."""
    failures = [p for p in _tls_failures(facts, ("tls_cert_expired",)) if not _not_yet_valid(p)]
    return _tls_theory(
        facts,
        "tls-expired",
        ("tls_cert_expired",),
        "the TLS certificate served for {host} at {address} has expired (not after {expires}) — renew it",
        0.9,
        [
            kubectl(facts.context, "get certificate -A")
            + "  # cert-manager: which Certificate is not Ready, and why",
            "Renew the certificate (cert-manager: kubectl delete secret <tls-secret> to force re-issue) and "
            "reload the edge",
        ],
        failures=failures,
    )


def tls_not_yet_valid(facts: Facts) -> Theory | None:
    """The server certificate's validity starts in the future: issued ahead of time, or a clock is wrong."""
    failures = [p for p in _tls_failures(facts, ("tls_cert_expired",)) if _not_yet_valid(p)]
    return _tls_theory(
        facts,
        "tls-not-yet-valid",
        ("tls_cert_expired",),
        "the TLS certificate served for {host} at {address} is not valid yet (not before {not_before}): it "
        "was "
        "issued with a start date in the future, or the clock of the issuer (or of this client) is wrong",
        0.9,
        [
            "Compare the certificate's notBefore with the time on this machine and on the issuer (date -u; "
            "timedatectl)",
            "Serve the previous, still valid certificate until the new one starts, or re-issue it from a CA "
            "whose clock "
            "is right",
        ],
        failures=failures,
    )


def _wildcard_too_high(names: list[str], host: str) -> str | None:
    """A ``*.`` name whose base ends the host but covers one label only, so it misses a deeper host
    (``*.shop.test`` for ``pay.eu.shop.test``): RFC 6125 section 6.4.3, a wildcard matches exactly one
    label."""
    for name in names:
        if name.startswith("*.") and host.endswith("." + name[2:]) and host.count(".") > name.count("."):
            return name
    return None


def tls_wrong_host(facts: Facts) -> Theory | None:
    """The server certificate does not name the host."""
    failures = _tls_failures(facts, ("tls_hostname",))
    host = facts.context.host or (failures[0].get("host") if failures else "") or ""
    names = [str(n) for n in ((failures[0].get("tls") or {}).get("subject_names") or [])] if failures else []
    wildcard = _wildcard_too_high(names, host)
    if wildcard:
        return _tls_theory(
            facts,
            "tls-wrong-host",
            ("tls_hostname",),
            "the TLS certificate at {address} names "
            + wildcard.replace("{", "{{").replace("}", "}}")
            + ", a wildcard that covers one label only, not {host}",
            0.85,
            [
                f"Issue a certificate naming {host} (or *.{host.split('.', 1)[1]}) and reference it from the "
                "Ingress/LoadBalancer TLS settings"
            ],
            failures=failures,
        )
    shown = ", ".join(names[:4]).replace("{", "{{").replace("}", "}}")
    return _tls_theory(
        facts,
        "tls-wrong-host",
        ("tls_hostname",),
        "the TLS certificate at {address} does not name {host}"
        + (f" (it names {shown})" if names else "")
        + " — the edge serves another site's (or the default) certificate",
        0.85,
        [
            "Issue a certificate whose subjectAltName includes the host and reference it from the "
            "Ingress/LoadBalancer "
            "TLS settings"
        ],
        failures=failures,
    )


def _chain_of(probe: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list((probe.get("tls") or {}).get("chain") or [])


def _missing_intermediate(probe: Mapping[str, Any]) -> bool:
    """The server sent only its leaf, whose issuer publishes its certificate for chain building (the leaf's
    Authority Information Access names a caIssuers URL, as intermediates of public CAs do), and verification
    could not find that issuer: the intermediate is missing from what the server sends. A leaf signed
    directly by an unknown (private) root carries no such URL: that is an untrusted CA, not a broken chain."""
    info = probe.get("tls") or {}
    chain = _chain_of(probe)
    error = str(info.get("error") or probe.get("detail") or "").lower()
    return (
        len(chain) == 1
        and chain[0].get("subject") != chain[0].get("issuer")
        and bool(chain[0].get("issuer_url"))
        and "unable to get local issuer" in error
    )


def tls_incomplete_chain(facts: Facts) -> Theory | None:
    """The server sends its certificate without the intermediate CA certificate."""
    failures = [p for p in _tls_failures(facts, ("tls_untrusted",)) if _missing_intermediate(p)]
    if not failures:
        return None
    return _tls_theory(
        facts,
        "tls-incomplete-chain",
        ("tls_untrusted",),
        "the server at {address} sends its certificate for {host} without the intermediate CA certificate "
        "({issuer}, published at {issuer_url}): clients that do not already hold that intermediate cannot "
        "verify it",
        0.85,
        [
            "Serve the full chain (leaf followed by the intermediate: fullchain.pem); cert-manager writes it "
            "into "
            "tls.crt, a hand-made Secret must contain both certificates"
        ],
        failures,
    )


def tls_untrusted(facts: Facts) -> Theory | None:
    """The server certificate chain does not lead to a trusted CA."""
    failures = [p for p in _tls_failures(facts, ("tls_untrusted",)) if not _missing_intermediate(p)]
    if not failures:
        return None
    error = str((failures[0].get("tls") or {}).get("error") or failures[0].get("detail") or "").lower()
    if "self-signed" in error or "self signed" in error:
        why = "it is self-signed (or its chain ends in a self-signed CA nobody trusts)"
    else:
        why = (
            "its issuer {issuer} is not in the trust store (a private or staging CA, or an intermediate not "
            "sent)"
        )
    return _tls_theory(
        facts,
        "tls-untrusted",
        ("tls_untrusted",),
        "the TLS certificate for {host} at {address} is not trusted: " + why,
        0.75,
        [
            "Serve a certificate from a CA clients trust (cert-manager: a production ClusterIssuer) with its "
            "full "
            "chain, or pass --ca-bundle for a private CA"
        ],
        failures,
    )


# What to change when the server ended the handshake with one of these alerts.
_ALERT_FIXES = {
    "unrecognized_name": "Give the edge's TLS listener a certificate for {host}: the Ingress's `tls` hosts "
    "and secretName, or the listener's SNI names",
    "protocol_version": "Enable TLS 1.2 and 1.3 on the server (its listener's minimum and maximum versions, "
    "nginx `ssl_protocols`)",
    "handshake_failure": "Compare the listener's versions, cipher suites and groups with those of a current "
    "client, and check whether it requires client certificates for {host}",
    "certificate_required": "The listener for {host} requires mutual TLS, so clients without a certificate "
    "cannot connect: make client verification optional or off for a public host",
    "access_denied": "The listener refuses this client: check its allow list or client-certificate "
    "requirement for {host}",
    "internal_error": "Read the TLS listener's logs: its certificate or key for {host} could not be used",
    "insufficient_security": "Offer the cipher suites the server requires, or relax its minimum for {host}",
    "no_application_protocol": "Make the listener accept http/1.1 or h2 (ALPN) for {host}",
}


def _after_handshake_alerts(facts: Facts) -> list[dict[str, Any]]:
    """Requests a TLS 1.3 server ended with an alert on the first read (``certificate_required``: it judges
    the client's certificate once the client's side of the handshake is done): still the handshake."""
    return [p for p in _tls_failures(facts, ("recv_error",)) if (p.get("tls") or {}).get("alert")]


def tls_handshake(facts: Facts) -> Theory | None:
    """The TLS handshake itself fails (not TLS at all, protocol or cipher mismatch, closed mid-handshake);
    when the server ended it with an alert (handshake_failure, protocol_version, unrecognized_name, ...),
    the alert says which."""
    failures = _tls_failures(facts, ("tls_handshake",)) or _after_handshake_alerts(facts)
    if not failures:
        return None
    detail = str(failures[0].get("detail") or "")
    alert = (failures[0].get("tls") or {}).get("alert")
    fix = "Check the edge's TLS listener for the host (certificate for this SNI name, protocols and ciphers)"
    if alert:
        return _tls_theory(
            facts,
            "tls-handshake",
            ("tls_handshake", "recv_error"),
            "the TLS handshake with {address} fails: the server ends it with alert " + describe_alert(alert),
            0.8 if alert in _ALERT_FIXES else 0.7,
            [_ALERT_FIXES.get(alert, fix).replace("{host}", str(facts.context.host or "the host"))],
            failures,
        )
    if "plain HTTP" in detail or "did not answer TLS" in detail:
        why = (
            "the port answers plain HTTP, not TLS: the target should be http://, or the TLS listener is "
            "missing"
        )
    elif "closed" in detail:
        why = (
            "the server closes the connection during the handshake: no certificate configured for this name "
            "(SNI), "
            "or no TLS listener behind the port"
        )
    else:
        why = "client and server share no protocol version or cipher, or the server rejects the handshake"
    return _tls_theory(
        facts,
        "tls-handshake",
        ("tls_handshake",),
        "the TLS handshake with {address} fails ({detail}): " + why,
        0.7,
        [fix],
    )


def tls_timeout(facts: Facts) -> Theory | None:
    """TCP connected, but the TLS handshake got no answer."""
    return _tls_theory(
        facts,
        "tls-timeout",
        ("tls_timeout",),
        "{address} accepts TCP but never answers the TLS handshake: nothing speaks TLS behind the port (a "
        "plain "
        "TCP forwarder to a dead backend, or a server waiting for HTTP)",
        0.6,
        ["Check what listens behind the port and whether it expects TLS"],
    )
