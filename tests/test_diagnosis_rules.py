"""Diagnosis rules: each rule on hand-built evidence (firing and not firing), ranking and contradictions,
and every sandbox scenario end to end (real probes and the sandbox's API server) naming its real fault first."""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_reachability.config import resolve_settings
from pytest_reachability.diagnosis import Facts, RunContext, diagnose, evaluate
from pytest_reachability.diagnosis import rules as R
from pytest_reachability.results import RunResults, TestResult

# --------------------------------------------------------------------------- hand-built evidence


def service(name: str, addresses=("127.0.10.53",), selector=None, type_="LoadBalancer", target_port=8000, pending=False):
    return {
        "name": name, "namespace": "production", "type": type_, "cluster_ip": "10.109.31.2",
        "selector": {"app": "api"} if selector is None else selector,
        "ports": [{"name": "http", "port": 80, "target_port": target_port, "node_port": 32558, "protocol": "TCP"}],
        "lb_addresses": [] if pending else list(addresses), "lb_pending": pending, "external_ips": [], "labels": {},
    }


def pod(name="api-847495fbc4-686tk", ready=True, waiting=(), restarts=0, labels=None, port=8000, namespace="production"):
    return {
        "name": name, "namespace": namespace, "phase": "Running", "ready": ready,
        "containers_ready": 1 if ready else 0, "containers_total": 1, "restarts": restarts,
        "waiting_reasons": list(waiting), "terminated_reasons": [], "labels": labels or {"app": "api"},
        "node": "pool-prod-k8s-x1a2b", "pod_ip": "10.244.0.45",
        "container_ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "owner": "ReplicaSet/api-847495fbc4",
    }


def controller_pod():
    return pod("ingress-nginx-controller-5c8d66c76d-x2x9q", labels={"app.kubernetes.io/name": "ingress-nginx"},
               port=80, namespace="ingress-nginx")


def endpoint_slice(service_name="api", ready=("10.244.0.45",), not_ready=()):
    return {"name": f"{service_name}-7xk2p", "namespace": "production", "service": service_name, "address_type": "IPv4",
            "ready_addresses": list(ready), "not_ready_addresses": list(not_ready), "ports": [], "targets": []}


def ingress(name="api-ingress", host="97v.test", backend="api", class_name="nginx", addresses=("127.0.10.80",)):
    return {"name": name, "namespace": "production", "class_name": class_name,
            "rules": [{"host": host, "paths": [{"path": "/", "path_type": "Prefix", "service": backend, "port": 80}]}],
            "tls": [{"hosts": [host], "secret": "letsencrypt-prod"}], "addresses": list(addresses), "default_backend": None}


def dns(addresses=("127.0.10.57",), answers=None):
    answers = answers or [{"resolver": "127.0.0.1:5353", "name": "97v.test", "addresses": list(addresses), "cnames": [],
                           "rcode": "NOERROR", "ttl": 300, "ms": 1.0, "failure": None, "error": None}]
    agree = len({tuple(sorted(a["addresses"])) for a in answers}) <= 1
    union = list(dict.fromkeys(x for a in answers for x in a["addresses"]))
    return {"name": "97v.test", "addresses": union, "agree": agree, "literal": False, "ms": 1.0, "failure": None, "answers": answers}


def http_probe(address, failure=None, status=None, source=None, service_name=None, tls=None):
    data = {
        "address": address, "port": 80, "scheme": "http", "host": "97v.test", "path": "/health",
        "status": status if failure is None or failure == "http_status" else None, "reason": "OK" if failure is None else "",
        "headers": {}, "body_excerpt": "", "failure": failure, "failure_phase": None, "wording": None,
        "curl_exit": {None: 0, "empty_reply": 52, "tcp_refused": 7, "tcp_timeout": 28, "read_timeout": 28,
                      "http_status": 22, "tls_cert_expired": 60, "tls_hostname": 60, "tls_untrusted": 60}[failure],
        "detail": "", "phases": {"dns": 0.1, "connect": 0.2, "ttfb": 1.0, "total": 1.5}, "tls": tls, "redirects": [],
        "curl": f"curl -v --resolve 97v.test:80:{address} http://97v.test/health",
    }
    if failure is None and status is None:
        data["status"] = 200
    if source:
        data["source"] = source
    if service_name:
        data["service"] = service_name
    return data


def in_cluster(status=200, error=None, no_endpoints=False):
    return {"service": "api", "namespace": "production", "port": "80", "path": "/health", "status": status,
            "body": '{"status": "healthy"}' if status == 200 else "", "ms": 3.0, "error": error, "no_endpoints": no_endpoints}


def pod_logs(external=0, health=7):
    return {"namespace": "production", "pod": "api-847495fbc4-686tk", "tail": 200,
            "lines": ['INFO:     10.108.0.39:37160 - "GET /health HTTP/1.1" 200 OK'],
            "client_addresses": ["10.108.0.39"], "health_requests": health, "external_requests": external}


def facts_of(*records: tuple[str, Any], failed: str | None = "api-health", host="97v.test") -> Facts:
    """Facts from (kind, data) records; ``failed`` names a section with a failing test."""
    tests = [TestResult("suites/test_x.py::test_evidence", section="cluster", outcome="passed",
                        evidence=[{"kind": k, "data": copy.deepcopy(d)} for k, d in records])]
    if failed:
        tests.append(TestResult(f"suites/test_y.py::test_{failed}", section=failed, outcome="failed", reason="failed"))
    return Facts(tests, RunContext(host=host, port=80, namespace="production", resolvers=["127.0.0.1:5353"]))


def incident_records() -> list[tuple[str, Any]]:
    return [
        ("dns", dns(["127.0.10.57"])),
        ("service", service("api", ["127.0.10.53"])),
        ("service", service("api-service", ["127.0.10.239"])),
        ("service", service("bot-service", ["127.0.10.215"], selector={"app": "digital-twin-bot"})),
        ("deployment", {"name": "api", "namespace": "production"}),
        ("pod", pod()),
        ("endpoint_slice", endpoint_slice()),
        ("ingress_controller", controller_pod()),
        ("ingress_class", {"name": "nginx", "controller": "k8s.io/ingress-nginx", "is_default": True}),
        ("http_probe", http_probe("127.0.10.57", "empty_reply", source="dns")),
        ("http_probe", http_probe("127.0.10.53", source="loadbalancer", service_name="api")),
        ("http_probe", http_probe("127.0.10.239", source="loadbalancer", service_name="api-service")),
        ("in_cluster_health", in_cluster()),
        ("pod_logs", pod_logs()),
    ]


# --------------------------------------------------------------------------- each rule, firing and not


def without(records, kind, match=lambda d: True):
    return [(k, d) for k, d in records if not (k == kind and match(d))]


RULE_CASES = [
    # (rule, records that make it fire, records that must not)
    (
        R.dns_not_loadbalancer,
        incident_records(),
        [(k, dns(["127.0.10.53"]) if k == "dns" else d) for k, d in incident_records()],
    ),
    (
        R.resolvers_disagree,
        [("dns", dns(answers=[
            {"resolver": "127.0.0.1:5301", "addresses": ["127.0.10.53"], "rcode": "NOERROR", "ttl": 300},
            {"resolver": "127.0.0.1:5302", "addresses": ["127.0.10.57"], "rcode": "NOERROR", "ttl": 300}])),
         ("service", service("api")), ("http_probe", http_probe("127.0.10.57", "tcp_refused", source="dns"))],
        [("dns", dns(["127.0.10.53"])), ("service", service("api"))],
    ),
    (
        R.loadbalancer_pending,
        [("service", service("api", pending=True)), ("target_service", {"name": "api", "namespace": "production", "found": True, "found_in": ["production"], "how": "config"})],
        [("service", service("api"))],
    ),
    (
        R.duplicate_loadbalancers,
        [("service", service("api", ["127.0.10.53"])), ("service", service("api-service", ["127.0.10.239"])), ("pod", pod())],
        [("service", service("api", ["127.0.10.53"])), ("service", service("bot", ["127.0.10.215"], selector={"app": "bot"})), ("pod", pod())],
    ),
    (
        R.service_in_other_namespace,
        [("target_service", {"name": "api", "namespace": "default", "found": False, "found_in": ["production"], "how": "config"})],
        [("target_service", {"name": "api", "namespace": "production", "found": True, "found_in": ["production"], "how": "config"})],
    ),
    (
        R.no_ready_endpoints,
        [("service", service("api", selector={"app": "api-v2"})), ("pod", pod()), ("endpoint_slice", endpoint_slice(ready=()))],
        [("service", service("api")), ("pod", pod()), ("endpoint_slice", endpoint_slice())],
    ),
    (
        R.targetport_mismatch,
        [("service", service("api", target_port=8080)), ("pod", pod())],
        [("service", service("api", target_port=8000)), ("pod", pod())],
    ),
    (
        R.ingress_missing_rule,
        [("ingress_controller", controller_pod()), ("service", service("api"))],
        [("ingress_controller", controller_pod()), ("service", service("api")), ("ingress", ingress())],
    ),
    (
        R.ingress_backend_missing,
        [("service", service("api")), ("ingress", ingress(backend="api-svc"))],
        [("service", service("api")), ("ingress", ingress(backend="api"))],
    ),
    (
        R.ingress_class_missing,
        [("ingress", ingress(class_name="traefik")), ("ingress_class", {"name": "nginx", "controller": "x", "is_default": True})],
        [("ingress", ingress(class_name="nginx")), ("ingress_class", {"name": "nginx", "controller": "x", "is_default": True})],
    ),
    (
        R.network_policy_denies,
        [("service", service("api")), ("pod", pod()), ("http_probe", http_probe("127.0.10.53", "read_timeout", source="dns")),
         ("network_policy", {"name": "default-deny-ingress", "namespace": "production", "pod_selector": {"matchLabels": {"app": "api"}},
                             "policy_types": ["Ingress"], "ingress": [], "egress": []})],
        [("service", service("api")), ("pod", pod()),
         ("network_policy", {"name": "api-allow-http", "namespace": "production", "pod_selector": {"matchLabels": {"app": "api"}},
                             "policy_types": ["Ingress"], "ingress": [{"ports": [{"port": 8000, "protocol": "TCP"}]}], "egress": []})],
    ),
    (
        R.tcp_timeout,
        [("http_probe", http_probe("127.0.10.53", "tcp_timeout", source="dns"))],
        [("http_probe", http_probe("127.0.10.53", "empty_reply", source="dns"))],
    ),
    (
        R.edge_empty_reply,
        [("http_probe", http_probe("127.0.10.57", "empty_reply", source="dns")), ("in_cluster_health", in_cluster())],
        [("http_probe", http_probe("127.0.10.57", "empty_reply", source="dns")), ("in_cluster_health", in_cluster(503, "no endpoints available"))],
    ),
    (
        R.tls_expired,
        [("http_probe", http_probe("127.0.10.53", "tls_cert_expired", source="dns", tls={"expires": "2026-11-27T00:00:00", "subject_names": ["97v.test"], "issuer": "CA"}))],
        [("http_probe", http_probe("127.0.10.53", "tls_hostname", source="dns"))],
    ),
    (
        R.tls_wrong_host,
        [("http_probe", http_probe("127.0.10.53", "tls_hostname", source="dns"))],
        [("http_probe", http_probe("127.0.10.53", "tls_cert_expired", source="dns"))],
    ),
    (
        R.tls_untrusted,
        [("tls", {"address": "127.0.10.53", "port": 443, "host": "97v.test", "failure": "tls_untrusted", "curl_exit": 60, "detail": "self-signed", "phases": {}, "tls": None, "curl": ""})],
        [("tls", {"address": "127.0.10.53", "port": 443, "host": "97v.test", "failure": None, "curl_exit": 0, "detail": "", "phases": {}, "tls": None, "curl": ""})],
    ),
    (
        R.pods_crashing,
        [("service", service("api")), ("pod", pod(ready=False, waiting=["CrashLoopBackOff"], restarts=27)), ("in_cluster_health", in_cluster(503, "no endpoints available", True))],
        [("service", service("api")), ("pod", pod()), ("in_cluster_health", in_cluster())],
    ),
    (
        R.only_in_cluster_traffic,
        [("pod_logs", pod_logs(external=0)), ("http_probe", http_probe("127.0.10.57", "empty_reply", source="dns"))],
        [("pod_logs", pod_logs(external=3)), ("http_probe", http_probe("127.0.10.57", "empty_reply", source="dns"))],
    ),
]


@pytest.mark.parametrize(("rule", "firing", "quiet"), RULE_CASES, ids=[case[0].__name__ for case in RULE_CASES])
def test_rule_fires_on_its_evidence_and_not_otherwise(rule, firing, quiet):
    theory = rule(facts_of(*firing))
    assert theory is not None, f"{rule.__name__} did not fire"
    assert 0 < theory.confidence <= 0.99
    assert theory.title and theory.evidence and theory.confirm and theory.fix
    assert rule(facts_of(*quiet)) is None, f"{rule.__name__} fired on evidence that does not show its fault"


@pytest.mark.parametrize("reason", [
    "TLS secrets missing: production/letsencrypt-prod; expected the Secrets the Ingress names to exist",
    "TLS secret letsencrypt-prod of Ingress api-ingress is missing",
])
def test_ingress_tls_secret_missing_reads_the_ingress_sections_failure(reason):
    facts = Facts([
        TestResult("suites/test_05_ingress.py::test_tls_secrets", section="ingress", outcome="failed",
                   reason=reason, evidence=[{"kind": "ingress", "data": ingress()}]),
    ], RunContext(host="97v.test", namespace="production"))
    theory = R.ingress_tls_secret_missing(facts)
    assert theory is not None and "letsencrypt-prod" in theory.title
    assert any("kubectl -n production get secret letsencrypt-prod" in c for c in theory.confirm)
    facts.tests[0].outcome = "passed"
    assert R.ingress_tls_secret_missing(facts) is None


def test_incident_evidence_ranks_the_dns_mismatch_first_with_the_direct_probe():
    ranked, _ = evaluate(facts_of(*incident_records()))
    top = ranked[0]
    assert top.rule == "dns-not-loadbalancer"
    assert top.title == (
        "the DNS A record for 97v.test points at 127.0.10.57, which accepts TCP and closes without replying; "
        "the `api` LoadBalancer answers at 127.0.10.53 — update the record"
    )
    assert any("127.0.10.53:80: HTTP 200" in line and "probed directly" in line for line in top.evidence)
    rules = [t.rule for t in ranked]
    assert "duplicate-loadbalancers" in rules and "ingress-missing-rule" in rules
    assert "dig @127.0.0.1 -p 5353 97v.test +short" in top.confirm
    # Without the direct probe of the LoadBalancer the same theory is weaker.
    weaker = R.dns_not_loadbalancer(facts_of(*without(incident_records(), "http_probe", lambda d: d.get("source") == "loadbalancer")))
    assert weaker is not None and weaker.confidence < top.confidence
    assert "has its address at 127.0.10.53" in weaker.title


def test_firewall_theory_dropped_when_tcp_connected():
    records = [("http_probe", http_probe("127.0.10.53", "tcp_timeout", source="dns")),
               ("tcp", {"address": "127.0.10.53", "port": 80, "host": "97v.test", "failure": None, "curl_exit": 0, "detail": "", "phases": {"connect": 0.3}, "curl": ""})]
    ranked, dropped = evaluate(facts_of(*records))
    assert "tcp-timeout" not in [t.rule for t in ranked]
    assert [(t.rule, why) for t, why in dropped] == [("tcp-timeout", "TCP connected to 127.0.10.53")]
    ranked, dropped = evaluate(facts_of(*records[:1]))
    assert [t.rule for t in ranked] == ["tcp-timeout"] and not dropped


def test_findings_without_failures_rank_at_half_confidence():
    failing, _ = evaluate(facts_of(*incident_records()))
    quiet, _ = evaluate(facts_of(*incident_records(), failed=None))
    by_rule = {t.rule: t.confidence for t in failing}
    for theory in quiet:
        assert theory.confidence == pytest.approx(by_rule[theory.rule] / 2, abs=0.011)


def test_evidence_recorded_twice_counts_once_and_unknown_kinds_are_ignored():
    records = incident_records()
    facts = facts_of(*records, *records, ("something-else", {"x": 1}))
    assert len(facts.of("service")) == 3
    assert len(facts.http_probes("dns")) == 1


def test_diagnose_reads_run_results_and_settings():
    results = RunResults()
    results.tests["t1"] = TestResult("t1", section="api-health", outcome="failed", reason="empty reply",
                                     evidence=[{"kind": k, "data": d} for k, d in incident_records()])
    settings = resolve_settings({"target": "http://97v.test", "namespace": "production"}, {})
    theories = diagnose(results, settings)
    assert theories[0].rule == "dns-not-loadbalancer"
    assert all(re.match(r"^(kubectl|dig|curl|nc|openssl) ", c) for t in theories for c in t.confirm)
    assert diagnose(RunResults(), settings) == []


# --------------------------------------------------------------------------- every sandbox scenario, end to end

SECTIONS_AFTER_GATE = ("database", "services", "integration", "performance", "results-storage")


def collect_scenario(info: Any, probe_timeout: float = 2.0) -> tuple[RunResults, Any]:
    """Evidence of a sandbox as the suite records it (the evidence-kinds contract), with outcomes per section.

    Real reads and probes: the sandbox's API server through the cluster view, its DNS servers through the
    DNS probe, its edges through the HTTP probe.
    """
    from pytest_reachability.cluster import Cluster
    from pytest_reachability.probes import dns as dns_probe
    from pytest_reachability.probes import http as http_probe_mod

    settings = resolve_settings({}, {}).with_overrides(
        target=info.target, kubeconfig=info.kubeconfig, kube_context=info.context, namespace=info.namespace,
        resolvers=info.resolvers, ca_bundle=info.ca_bundle, probe_timeout=probe_timeout,
    )
    target = settings.target
    results = RunResults()

    def add(name: str, section: str, ok: bool, records: list[tuple[str, Any]], reason: str = "") -> None:
        evidence = [{"kind": k, "data": d.to_evidence() if hasattr(d, "to_evidence") else d} for k, d in records]
        results.tests[f"suites/{section}.py::{name}"] = TestResult(
            f"suites/{section}.py::{name}", section=section, outcome="passed" if ok else "failed",
            reason="" if ok else reason or f"{name} failed", evidence=evidence)

    cluster = Cluster.connect(kubeconfig=info.kubeconfig, context=info.context, namespace=info.namespace, timeout=5)
    try:
        pods = cluster.pods()
        add("test_pods_ready", "cluster", all(p.ready for p in pods), [("pod", p) for p in pods] + [("node", n) for n in cluster.nodes()],
            "pods not ready: " + ", ".join(p.name for p in pods if not p.ready))
        deployments = cluster.deployments()
        add("test_deployments_available", "workloads", all(d.available >= d.desired for d in deployments), [("deployment", d) for d in deployments])
        services = cluster.services()
        names = {d.name for d in deployments}
        balancers = sorted((s for s in services if s.type == "LoadBalancer"), key=lambda s: (s.name not in names, len(s.name)))
        target_name = balancers[0].name if balancers else "api"
        add("test_target_service", "k8s-services", not any(s.lb_pending for s in services),
            [("service", s) for s in services]
            + [("target_service", {"name": target_name, "namespace": info.namespace, "found": True, "found_in": [info.namespace], "how": "inferred"})])
        slices = cluster.endpoint_slices()
        add("test_endpoints_ready", "endpoints", all(s.ready_addresses for s in slices if s.service == target_name),
            [("endpoint_slice", s) for s in slices])
        ingresses, classes, controllers = cluster.ingresses(), cluster.ingress_classes(), cluster.ingress_controller_pods()
        ruled = any(r.get("host") == target.host for i in ingresses for r in i.rules)
        add("test_ingress_rule", "ingress", ruled or not controllers,
            [("ingress", i) for i in ingresses] + [("ingress_class", c) for c in classes] + [("ingress_controller", p) for p in controllers])
        add("test_network_policy", "network-policy", True, [("network_policy", p) for p in cluster.network_policies()])
        events = cluster.events()

        report = dns_probe.probe(target, settings)
        lb_addresses = {a: s.name for s in services for a in s.lb_addresses}
        lb_addresses.update({a: f"Ingress {i.name}" for i in ingresses for a in i.addresses})
        add("test_dns_answers_are_loadbalancers", "dns", bool(report.addresses) and set(report.addresses) <= set(lb_addresses),
            [("dns", report)], f"{target.host} -> {report.addresses}, not a LoadBalancer address")
        probes = http_probe_mod.probe_target(target, resolvers=settings.resolvers, timeout=probe_timeout,
                                             ca_bundle=info.ca_bundle, dns_report=report)
        direct = http_probe_mod.probe_target(target, addresses=list(lb_addresses), timeout=probe_timeout, ca_bundle=info.ca_bundle)
        records = [("http_probe", {**p.to_evidence(), "source": "dns"}) for p in probes]
        records += [("http_probe", {**p.to_evidence(), "source": "loadbalancer", "service": lb_addresses[p.address]}) for p in direct]
        healthy = bool(probes) and all(p.ok for p in probes)
        add("test_health_every_address", "api-health", healthy, records,
            "; ".join(f"{p.address}: {p.summary}" for p in probes if not p.ok))
        results.tests["suites/api-health.py::test_health_every_address"].gate = "api-health"
        in_cluster = cluster.proxy_get(target_name, 80, settings.health_path)
        log_records = []
        for p in pods:
            if p.labels.get("app") != "api":
                continue
            text = cluster.pod_logs(p.name, tail_lines=200)
            lines = text.splitlines()
            clients = sorted({m.group(1) for line in lines if (m := re.search(r"(\d+\.\d+\.\d+\.\d+):\d+ - \"", line))})
            external = sum(1 for line in lines if (m := re.search(r"(\d+\.\d+\.\d+\.\d+):\d+ - \"", line)) and not m.group(1).startswith("10."))
            log_records.append(("pod_logs", {"namespace": p.namespace, "pod": p.name, "tail": 200, "lines": lines[-20:],
                                             "client_addresses": clients, "health_requests": sum("/health" in x for x in lines),
                                             "external_requests": external}))
        add("test_in_cluster_health", "api-internal", in_cluster.ok, [("in_cluster_health", in_cluster), *log_records, *[("event", e) for e in events]],
            f"in-cluster {in_cluster.status} {in_cluster.error}")
    finally:
        cluster.close()
    for section in SECTIONS_AFTER_GATE:
        nodeid = f"suites/{section}.py::test_{section.replace('-', '_')}"
        if healthy:
            results.tests[nodeid] = TestResult(nodeid, section=section, outcome="skipped", reason=f"[tool.reachability.{section}] not configured")
        else:
            results.tests[nodeid] = TestResult(nodeid, section=section, outcome="blocked", blocked_by="api-health",
                                               reason="blocked by api-health: " + results.tests["suites/api-health.py::test_health_every_address"].reason)
    return results, settings


SCENARIO_FAULT = {
    "incident-2025-12-08": "dns-not-loadbalancer",
    "lb-pending": "loadbalancer-pending",
    "selector-no-pods": "no-ready-endpoints",
    "targetport-mismatch": "targetport-mismatch",
    "crashloop": "pods-crashing",
    "ingress-backend-missing": "ingress-backend-missing",
    "tls-expired": "tls-expired",
    "resolvers-disagree": "resolvers-disagree",
    "netpol-deny": "network-policy-denies",
}


@pytest.fixture(scope="module")
def scenario_runs():
    from pytest_reachability.sandbox import Sandbox

    cache: dict[str, tuple[RunResults, Any]] = {}

    def run(name: str) -> tuple[RunResults, Any]:
        if name not in cache:
            with Sandbox(name) as info:
                cache[name] = collect_scenario(info)
        return cache[name]

    return run


@pytest.mark.parametrize("scenario", sorted(SCENARIO_FAULT))
def test_scenario_top_theory_is_its_real_fault(scenario_runs, scenario):
    results, settings = scenario_runs(scenario)
    theories = diagnose(results, settings)
    assert theories, f"{scenario}: no theory"
    ranking = [(t.rule, t.confidence) for t in theories]
    assert theories[0].rule == SCENARIO_FAULT[scenario], f"{scenario}: ranked {ranking}"
    assert theories[0].confidence >= 0.7, ranking


def test_healthy_scenario_has_no_theory_worth_acting_on(scenario_runs):
    results, settings = scenario_runs("healthy")
    assert not results.by_outcome("failed")
    assert all(t.confidence < 0.5 for t in diagnose(results, settings))


def test_incident_scenario_names_mismatch_duplicates_and_missing_ingress(scenario_runs):
    results, settings = scenario_runs("incident-2025-12-08")
    theories = diagnose(results, settings)
    top = theories[0]
    assert top.title.startswith("the DNS A record for 97v.test points at 127.0.10.57, which accepts TCP and closes without replying; "
                                "the `api` LoadBalancer answers at 127.0.10.53")
    assert any("LoadBalancer address of `api` 127.0.10.53" in line and "HTTP 200" in line for line in top.evidence)
    rules = [t.rule for t in theories]
    assert {"duplicate-loadbalancers", "ingress-missing-rule"} <= set(rules[1:])
    assert "tcp-timeout" not in rules


# --------------------------------------------------------------------------- the built-in suite, end to end

SUITES = Path(__file__).resolve().parents[1] / "suites"


def run_builtin_suite(workdir: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run a copy of the built-in suite in ``workdir`` (its own rootdir) in a child pytest; bounded in time."""
    if not any(SUITES.glob("test_*.py")):
        pytest.fail("the built-in suite (suites/test_*.py) is missing")
    copy_dir = workdir / "suites"
    if not copy_dir.exists():
        shutil.copytree(SUITES, copy_dir, ignore=shutil.ignore_patterns("__pycache__"))
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith("REACHABILITY_") and k not in ("KUBECONFIG", "PYTEST_ADDOPTS")}
    environment.update(env or {})
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "suites", *args]
    return subprocess.run(command, cwd=workdir, env=environment, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("scenario", sorted(SCENARIO_FAULT))
def test_builtin_suite_ranks_the_scenario_fault_first(tmp_path, scenario):
    run = run_builtin_suite(tmp_path, "--sandbox", scenario, "--results-json", "out.json", "-q")
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-2000:]
    theories = json.loads((tmp_path / "out.json").read_text())["theories"]
    ranking = [(t["rule"], t["confidence"]) for t in theories]
    assert theories and theories[0]["rule"] == SCENARIO_FAULT[scenario], ranking
    assert "reachability: most likely causes" in run.stdout
    assert f"1. [{round(theories[0]['confidence'] * 100)}%] {theories[0]['title']}" in run.stdout


@pytest.mark.parametrize("scenario", ["healthy", "healthy-https"])
def test_builtin_suite_on_healthy_sandbox_names_no_cause(tmp_path, scenario):
    run = run_builtin_suite(tmp_path, "--sandbox", scenario, "--results-json", "out.json", "-q")
    assert run.returncode == 0, run.stdout[-3000:]
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["theories"] == [] and data["health_score"] == 100
    assert "most likely causes" not in run.stdout


def test_builtin_suite_in_the_wrong_namespace_says_where_the_service_is(tmp_path):
    run = run_builtin_suite(tmp_path, "--sandbox", "healthy", "--namespace", "default", "--results-json", "out.json", "-q")
    assert run.returncode == 1, run.stdout[-3000:]
    theories = json.loads((tmp_path / "out.json").read_text())["theories"]
    assert theories[0]["rule"] == "service-in-other-namespace", [(t["rule"], t["confidence"]) for t in theories]
    assert theories[0]["title"].startswith("Service `api` does not exist in namespace default but in production")
    assert all(t["confidence"] < theories[0]["confidence"] for t in theories[1:])


def test_printed_kubectl_flags_are_shell_quoted(tmp_path: Path) -> None:
    # A kubeconfig path with a space and a quote, a context with shell syntax: pasted into a shell, the
    # printed command must pass each as one argument and run nothing else.
    directory = tmp_path / "kube dir"
    directory.mkdir()
    kubeconfig = directory / "it's config"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    settings = resolve_settings(
        {"target": "http://api.test", "kubeconfig": str(kubeconfig), "kube_context": "prod $(id)"}, {}
    )
    kubectl = RunContext.from_settings(settings).kubectl
    assert shlex.split(kubectl) == ["kubectl", "--kubeconfig", str(kubeconfig), "--context", "prod $(id)"]
