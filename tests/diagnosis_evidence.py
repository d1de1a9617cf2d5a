"""Evidence records as the built-in suite records them, built by hand for the diagnosis tests.

Each builder returns the plain data one ``evidence.record(kind, data)`` call leaves on a test report (the
shapes of ``cluster.py``'s snapshots and the probes' ``to_evidence()``), with defaults describing the
healthy sandbox world: the ``api`` Deployment's pod behind the ``api`` LoadBalancer 127.0.10.53,
ingress-nginx at 127.0.10.80, DNS answering 97v.test.
"""

from __future__ import annotations

import copy
from typing import Any

from pytest_reachability.diagnosis import Facts, RunContext
from pytest_reachability.results import TestResult

Record = tuple[str, dict[str, Any]]
API_POD = "api-847495fbc4-686tk"
CURL_EXITS = {
    None: 0,
    "empty_reply": 52,
    "tcp_refused": 7,
    "tcp_timeout": 28,
    "tcp_unreachable": 7,
    "read_timeout": 28,
    "http_status": 22,
    "tls_cert_expired": 60,
    "tls_hostname": 60,
    "tls_untrusted": 60,
    "tls_handshake": 35,
    "tls_timeout": 28,
    "recv_error": 56,
    "partial_body": 18,
    "bad_response": 1,
    "too_many_redirects": 47,
    "body_mismatch": None,
    "dns_nxdomain": 6,
    "dns_no_answer": 6,
    "dns_timeout": 6,
    "dns_servfail": 6,
    "dns_refused": 6,
    "dns_bad_answer": 6,
    "redirect_unsafe": 1,
    "redirect_elsewhere": None,
    "headers_too_large": 56,
}


def service(
    name: str = "api",
    addresses=("127.0.10.53",),
    selector=None,
    type_="LoadBalancer",
    target_port=8000,
    pending=False,
    port=80,
    port_name="http",
    annotations=None,
) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": "production",
        "type": type_,
        "cluster_ip": "10.109.31.2",
        "selector": {"app": "api"} if selector is None else selector,
        "ports": [
            {
                "name": port_name,
                "port": port,
                "target_port": target_port,
                "node_port": 32558,
                "protocol": "TCP",
            }
        ],
        "lb_addresses": [] if pending or type_ != "LoadBalancer" else list(addresses),
        "lb_pending": pending,
        "external_ips": [],
        "labels": {},
        "annotations": dict(annotations or {}),
    }


def container(
    state="running",
    reason=None,
    message=None,
    ready=True,
    restarts=0,
    last_reason=None,
    last_exit_code=None,
    name="api",
    image="registry.97v.test/api:1.4.2",
) -> dict[str, Any]:
    return {
        "name": name,
        "init": False,
        "image": image,
        "ready": ready,
        "started": state == "running",
        "restarts": restarts,
        "state": state,
        "reason": reason,
        "message": message,
        "exit_code": None,
        "last_reason": last_reason,
        "last_exit_code": last_exit_code,
        "last_message": None,
    }


def pod(
    name=API_POD,
    ready=True,
    phase="Running",
    containers=None,
    labels=None,
    port=8000,
    namespace="production",
    node="pool-prod-k8s-x1a2b",
    owner="ReplicaSet/api-847495fbc4",
    unschedulable=None,
    probes=None,
    port_name="http",
) -> dict[str, Any]:
    states = containers if containers is not None else [container(ready=ready)]
    waiting = [c["reason"] for c in states if c.get("state") == "waiting" and c.get("reason")]
    return {
        "name": name,
        "namespace": namespace,
        "phase": phase,
        "ready": ready,
        "containers_ready": sum(1 for c in states if c.get("ready")),
        "containers_total": len(states),
        "restarts": sum(c.get("restarts") or 0 for c in states),
        "waiting_reasons": waiting,
        "terminated_reasons": [c["last_reason"] for c in states if c.get("last_reason")],
        "labels": labels or {"app": "api", "pod-template-hash": "847495fbc4"},
        "node": node,
        "pod_ip": "10.244.0.45",
        "container_ports": [{"name": port_name, "containerPort": port, "protocol": "TCP"}],
        "owner": owner,
        "reason": None,
        "unschedulable_message": unschedulable,
        "container_states": states,
        "conditions": [
            {"type": "Ready", "status": "True" if ready else "False", "reason": None, "message": None}
        ],
        "probes": probes
        if probes is not None
        else [
            {"container": "api", "probe": "readiness", "handler": "httpGet", "path": "/health", "port": 8000}
        ],
        "message": None,
    }


def controller_pod() -> dict[str, Any]:
    return pod(
        "ingress-nginx-controller-5c8d66c76d-x2x9q",
        labels={"app.kubernetes.io/name": "ingress-nginx"},
        port=80,
        namespace="ingress-nginx",
        owner="ReplicaSet/ingress-nginx-controller-5c8d66c76d",
    )


def node(
    name="pool-prod-k8s-x1a2b", ready=True, taints=(), unschedulable=False, message=None
) -> dict[str, Any]:
    status = "True" if ready else "Unknown"
    return {
        "name": name,
        "ready": ready,
        "roles": [],
        "version": "v1.31.1",
        "conditions": [
            {
                "type": "Ready",
                "status": status,
                "reason": "KubeletReady" if ready else "NodeStatusUnknown",
                "message": message
                or ("kubelet is posting ready status" if ready else "Kubelet stopped posting node status."),
            }
        ],
        "addresses": [{"type": "InternalIP", "address": "10.108.0.39"}],
        "unschedulable": unschedulable,
        "taints": [f"{key}:{effect}" for key, effect in taints],
    }


def deployment(
    name="api", desired=1, available=1, updated=None, conditions=(), template_labels=None
) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": "production",
        "desired": desired,
        "ready": available,
        "available": available,
        "updated": desired if updated is None else updated,
        "rollout_complete": not conditions,
        "rollout_message": "successfully rolled out",
        "selector": {"app": name},
        "labels": {"app": name},
        "current": desired,
        "unavailable": max(0, desired - available),
        "conditions": [{"type": t, "status": s, "reason": r, "message": m} for t, s, r, m in conditions],
        "revision": "2",
        "paused": False,
        "template_labels": template_labels or {"app": name},
        "images": ["registry.97v.test/api:1.4.2"],
    }


def event(obj: str, reason: str, message: str, type_="Warning", count=3) -> dict[str, Any]:
    return {
        "namespace": "production",
        "type": type_,
        "reason": reason,
        "message": message,
        "object": obj,
        "count": count,
        "first_seen": None,
        "last_seen": None,
        "source": "kubelet",
    }


def endpoint_slice(service_name="api", ready=("10.244.0.45",), not_ready=()) -> dict[str, Any]:
    return {
        "name": f"{service_name}-7xk2p",
        "namespace": "production",
        "service": service_name,
        "address_type": "IPv4",
        "ready_addresses": list(ready),
        "not_ready_addresses": list(not_ready),
        "ports": [],
        "targets": [],
    }


def ingress(
    name="api-ingress",
    host="97v.test",
    backend="api",
    class_name="nginx",
    addresses=("127.0.10.80",),
    port=80,
) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": "production",
        "class_name": class_name,
        "rules": [
            {"host": host, "paths": [{"path": "/", "path_type": "Prefix", "service": backend, "port": port}]}
        ],
        "tls": [{"hosts": [host], "secret": "letsencrypt-prod"}],
        "addresses": list(addresses),
        "default_backend": None,
        "annotations": {},
    }


def answer(
    resolver="127.0.0.1:5353",
    addresses=("127.0.10.53",),
    failure=None,
    rcode="NOERROR",
    cnames=(),
    error=None,
):
    return {
        "resolver": resolver,
        "name": "97v.test",
        "addresses": list(addresses),
        "cnames": list(cnames),
        "rcode": rcode,
        "ttl": 300,
        "ms": 1.0,
        "failure": failure,
        "error": error,
    }


def dns(addresses=("127.0.10.57",), answers=None) -> dict[str, Any]:
    answers = answers or [answer(addresses=addresses)]
    agree = len({tuple(sorted(a["addresses"])) for a in answers}) <= 1
    union = list(dict.fromkeys(x for a in answers for x in a["addresses"]))
    failure = None if union else next((a["failure"] for a in answers if a["failure"]), "dns_no_answer")
    return {
        "name": "97v.test",
        "addresses": union,
        "agree": agree,
        "literal": False,
        "ms": 1.0,
        "failure": failure,
        "answers": answers,
    }


def external_name_alias(failure: str, rcode: str) -> list[tuple[str, Any]]:
    """Service api as an ExternalName for api.gone.test, the host's Ingress routing to it, and what the
    resolver answered for the name."""
    report = dns(answers=[answer(addresses=(), failure=failure, rcode=rcode)])
    return [
        ("service", {**service(type_="ExternalName", selector={}), "external_name": "api.gone.test"}),
        ("ingress", ingress()),
        (
            "external_name_dns",
            {**report, "name": "api.gone.test", "service": "api", "namespace": "production"},
        ),
    ]


def http_probe(
    address,
    failure=None,
    status=None,
    source="dns",
    service_name=None,
    tls=None,
    body="",
    detail="",
    headers=None,
    port=80,
) -> dict[str, Any]:
    data = {
        "address": address,
        "port": port,
        "scheme": "https" if tls else "http",
        "host": "97v.test",
        "path": "/health",
        "status": status if failure in (None, "http_status", "body_mismatch") else None,
        "reason": "OK" if failure is None else "",
        "headers": dict(headers or {}),
        "body_excerpt": body,
        "failure": failure,
        "failure_phase": None,
        "wording": None,
        "curl_exit": CURL_EXITS[failure],
        "detail": detail,
        "phases": {"dns": 0.1, "connect": 0.2, "ttfb": 1.0, "total": 1.5},
        "tls": tls,
        "redirects": [],
        "curl": f"curl -v --resolve 97v.test:{port}:{address} http://97v.test/health",
    }
    if failure is None and status is None:
        data["status"] = 200
    if source:
        data["source"] = source
    if service_name:
        data["service"] = service_name
    return data


def tcp_probe(address, failure=None, source="dns", port=80) -> dict[str, Any]:
    return {
        "address": address,
        "port": port,
        "host": "97v.test",
        "failure": failure,
        "curl_exit": CURL_EXITS[failure],
        "detail": "",
        "phases": {"connect": 0.3},
        "curl": f"curl -v --resolve 97v.test:{port}:{address} http://97v.test/",
        "source": source,
    }


def tls_info(
    error=None, issuer="CN=pytest-reachability sandbox intermediate CA", chain=None
) -> dict[str, Any]:
    return {
        "verified": error is None,
        "version": "TLSv1.3",
        "expires": "2026-11-27T00:00:00+00:00",
        "not_before": "2025-11-27T00:00:00+00:00",
        "subject_names": ["97v.test"],
        "issuer": issuer,
        "error": error,
        "chain": chain or [],
    }


def in_cluster(status=200, error=None, no_endpoints=False, body=None) -> dict[str, Any]:
    text = body if body is not None else ('{"status": "healthy"}' if status == 200 else "")
    return {
        "service": "api",
        "namespace": "production",
        "port": "80",
        "path": "/health",
        "status": status,
        "body": text,
        "truncated": False,
        "ms": 3.0,
        "error": error,
        "no_endpoints": no_endpoints,
    }


def pod_logs(external=0, health=7) -> dict[str, Any]:
    return {
        "namespace": "production",
        "pod": API_POD,
        "tail": 200,
        "lines": ['INFO:     10.108.0.39:37160 - "GET /health HTTP/1.1" 200 OK'],
        "client_addresses": ["10.108.0.39"],
        "health_requests": health,
        "external_requests": external,
    }


def target_service(
    name="api", found=True, found_in=("production",), namespace="production"
) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": namespace,
        "found": found,
        "found_in": list(found_in),
        "how": "inferred",
        "why": "its LoadBalancer address is what 97v.test resolves to",
    }


def app_check(section, check, ok, observed, expected=None, url="postgresql://127.0.0.1:5432/app", ms=12.0):
    return {
        "section": section,
        "check": check,
        "ok": ok,
        "observed": observed,
        "expected": expected,
        "url": url,
        "ms": ms,
    }


def performance(
    errors=0,
    requests=100,
    p50=20.0,
    p95=40.0,
    p99=60.0,
    kinds=None,
    p95_limit=250,
    p99_limit=500,
    max_error_rate=0.01,
) -> dict[str, Any]:
    return {
        "requests": requests,
        "planned": requests,
        "concurrency": 4,
        "errors": errors,
        "error_rate": round(errors / requests, 4),
        "p50_ms": p50,
        "p95_ms": p95,
        "p99_ms": p99,
        "error_kinds": dict(kinds or {}),
        "seconds": 3.0,
        "deadline_reached": False,
        "url": "http://97v.test:80/health",
        "thresholds": {
            "p95_ms": p95_limit,
            "p99_ms": p99_limit,
            "max_error_rate": max_error_rate,
            "deadline_s": 20,
        },
    }


def cluster_access(ok=True, kind=None, message="") -> dict[str, Any]:
    return {
        "ok": ok,
        "kind": kind,
        "message": message,
        "server": "https://127.0.0.1:6443",
        "namespace": "production",
    }


def facts_of(
    *records: Record, failed: dict[str, str] | None = None, host: str = "97v.test", kubeconfig: bool = True
) -> Facts:
    """Facts from (kind, data) records on one passing test, plus failing tests: ``{section: reason}``."""
    tests = [
        TestResult(
            "suites/test_x.py::test_evidence",
            section="cluster",
            outcome="passed",
            evidence=[{"kind": k, "data": copy.deepcopy(d)} for k, d in records],
        )
    ]
    for section, reason in (failed if failed is not None else {"api-health": "GET /health failed"}).items():
        tests.append(
            TestResult(
                f"suites/test_{section}.py::test_{section.replace('-', '_')}",
                section=section,
                outcome="failed",
                reason=reason,
            )
        )
    return Facts(tests, RunContext(host=host, port=80, namespace="production", resolvers=["127.0.0.1:5353"]))


def incident_records() -> list[Record]:
    return [
        ("dns", dns(["127.0.10.57"])),
        ("target_service", target_service()),
        ("service", service("api", ["127.0.10.53"])),
        ("service", service("api-service", ["127.0.10.239"])),
        ("service", service("bot-service", ["127.0.10.215"], selector={"app": "digital-twin-bot"})),
        ("deployment", deployment()),
        ("pod", pod()),
        ("endpoint_slice", endpoint_slice()),
        ("ingress_controller", controller_pod()),
        ("ingress_class", {"name": "nginx", "controller": "k8s.io/ingress-nginx", "is_default": True}),
        ("http_probe", http_probe("127.0.10.57", "empty_reply")),
        ("http_probe", http_probe("127.0.10.53", source="loadbalancer", service_name="api")),
        ("http_probe", http_probe("127.0.10.239", source="loadbalancer", service_name="api-service")),
        ("in_cluster_health", in_cluster()),
        ("pod_logs", pod_logs()),
    ]


def without(records: list[Record], kind: str, match=lambda data: True) -> list[Record]:
    return [(k, d) for k, d in records if not (k == kind and match(d))]
