"""A redirect the probe follows, to a port where nothing listens (ingress-nginx's force-ssl-redirect with no
HTTPS listener behind the LoadBalancer): the failure is the redirect target's. The first address and port
answered; a theory that says "nothing accepts connections on" them, and a ``nc -vz`` that would succeed
there, are false. Probed for real on loopback, then diagnosed from the probe's own evidence."""

from __future__ import annotations

import json
import socket

import servers

from pytest_reachability.config import parse_target
from pytest_reachability.diagnosis.facts import Facts
from pytest_reachability.diagnosis.rules_traffic import redirect_target_fails, tcp_refused
from pytest_reachability.probes.http import probe_address
from pytest_reachability.results import TestResult

TIMEOUT = 1.5


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _redirect_to(location: str) -> servers.Behaviour:
    def behaviour(conn: socket.socket, server: servers.LoopbackServer) -> None:
        servers.read_request(conn)
        conn.sendall(servers.http_answer(308, b"", "Permanent Redirect", {"Location": location}))

    return behaviour


def _facts(evidence: dict) -> Facts:
    test = TestResult("suites/test_10_api_health.py::test_health_answers_on_every_resolved_address")
    test.outcome, test.section = "failed", "api-health"
    test.reason = (
        f"GET /health failed on 127.0.0.1:{evidence['port']} {evidence['failure']}: {evidence['detail']}"
    )
    test.evidence = [{"kind": "http_probe", "data": evidence}]
    return Facts([test])


def _probe(server: servers.LoopbackServer) -> dict:
    target = parse_target(f"http://{servers.HOST}:{server.port}")
    result = probe_address(target, "127.0.0.1", timeout=TIMEOUT)
    return json.loads(json.dumps(result.to_evidence()))


def test_a_refused_redirect_target_is_named_and_the_answering_port_is_not_blamed() -> None:
    closed = _closed_port()
    location = f"http://{servers.HOST}:{closed}/health"
    with servers.LoopbackServer(_redirect_to(location)) as server:
        evidence = _probe(server)
    assert evidence["failure"] == "tcp_refused" and evidence["redirects"] == [location], evidence
    facts = _facts(evidence)
    assert (
        tcp_refused(facts) is None
    )  # before: "nothing accepts connections on 127.0.0.1:<the port that answered>"
    theory = redirect_target_fails(facts)
    assert theory is not None
    assert f"answers 308 Permanent Redirect redirecting to {location}" in theory.title
    assert f"leads to http://{servers.HOST}:{closed}" in theory.title
    assert f"nc -vz -w 5 {servers.HOST} {closed}" in theory.confirm
    assert not any(f" {server.port}" in line for line in theory.confirm if line.startswith("nc "))
    assert theory.explains == ["suites/test_10_api_health.py::test_health_answers_on_every_resolved_address"]


def test_a_refused_first_connection_is_still_tcp_refused() -> None:
    closed = _closed_port()
    target = parse_target(f"http://{servers.HOST}:{closed}")
    evidence = json.loads(json.dumps(probe_address(target, "127.0.0.1", timeout=TIMEOUT).to_evidence()))
    facts = _facts(evidence)
    assert redirect_target_fails(facts) is None
    theory = tcp_refused(facts)
    assert theory is not None and f"127.0.0.1:{closed}" in theory.title


def test_a_redirect_on_the_same_port_that_then_fails_stays_with_that_port() -> None:
    """Followed to another path on the same scheme, host and port: the failure is that port's own."""

    def behaviour(conn: socket.socket, server: servers.LoopbackServer) -> None:
        path = servers.request_path(servers.read_request(conn))
        if path == "/health":
            conn.sendall(servers.http_answer(301, b"", "Moved Permanently", {"Location": "/healthz"}))
        # /healthz: closed without an answer

    with servers.LoopbackServer(behaviour) as server:
        evidence = _probe(server)
    assert evidence["failure"] == "empty_reply" and evidence["redirects"], evidence
    assert redirect_target_fails(_facts(evidence)) is None


def test_a_status_or_tls_failure_after_a_redirect_is_left_to_its_own_rule() -> None:
    """A 503 (no ready pods) or an expired certificate where the redirect leads: "nothing serves there" would
    hide it; http-5xx and the TLS rules name it."""
    from pytest_reachability.diagnosis.rules_traffic import http_5xx

    for failure, extra in (("http_status", {"status": 503}), ("tls_expired", {"status": None})):
        evidence = {
            "address": "127.0.0.1",
            "port": 8080,
            "scheme": "http",
            "host": servers.HOST,
            "path": "/health",
            "reason": "",
            "failure": failure,
            "detail": "",
            "redirects": [f"https://{servers.HOST}/health"],
            "headers": {},
            **extra,
        }
        facts = _facts(evidence)
        assert redirect_target_fails(facts) is None, failure
        if failure == "http_status":
            assert http_5xx(facts) is not None
