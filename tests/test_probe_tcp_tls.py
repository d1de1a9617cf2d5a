"""The connect-level probes (tcp.py, tls.py) against loopback servers, each class checked against curl."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ssl
import time

import pytest
import servers
import trustme

from pytest_reachability.config import Settings, parse_target
from pytest_reachability.probes import http, tcp, tls
from pytest_reachability.probes.failures import Failure

TIMEOUT = 1.0


def tls_server(certificate: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(context)
    return context


def silent(conn, server) -> None:
    """Accepts and says nothing: a TLS handshake never gets its ServerHello."""
    server.stopping.wait(10)


def test_tcp_connects_and_classifies_refused() -> None:
    with servers.LoopbackServer(servers.healthy()) as server:
        target = parse_target(f"http://{servers.HOST}:{server.port}")
        results = tcp.probe_target(
            target, addresses=["127.0.0.1"], extra_addresses=["127.0.0.3"], timeout=TIMEOUT
        )
    assert [r.address for r in results] == ["127.0.0.1", "127.0.0.3"]
    assert results[0].ok and results[0].phases["connect"] > 0
    assert results[1].failure is Failure.TCP_REFUSED
    assert servers.run_curl(results[1].curl, "--max-time", "5") == Failure.TCP_REFUSED.curl_exit
    assert results[1].to_evidence()["failure"] == "tcp_refused"


def test_uniform_probe_signature_reads_settings() -> None:
    with servers.LoopbackServer(servers.healthy()) as server:
        target = parse_target(f"http://localhost:{server.port}")
        settings = dataclasses.replace(
            Settings(), resolvers=["system"], probe_timeout=TIMEOUT, health_path="/health"
        )
        tcp_results = tcp.probe(target, settings)
        http_results = http.probe(target, settings, expect_body={"status": "ok"})
    ok = [r for r in tcp_results if r.address == "127.0.0.1"]
    assert ok and ok[0].ok and ok[0].phases["dns"] > 0
    assert any(r.address == "127.0.0.1" and r.ok for r in http_results)


def test_tls_valid_certificate(ca: trustme.CA, ca_file: str) -> None:
    with servers.LoopbackServer(servers.healthy(), tls=tls_server(ca.issue_cert(servers.HOST))) as server:
        target = parse_target(f"https://{servers.HOST}:{server.port}")
        result = tls.probe_address(target, "127.0.0.1", timeout=TIMEOUT, ca_bundle=ca_file)
        assert result.ok, result.detail
        assert result.tls is not None and result.tls.verified and result.tls.subject_names == [servers.HOST]
        assert result.phases["tls"] > 0
        assert servers.run_curl(result.curl, "--max-time", "5") == 0


def test_tls_expired_certificate_like_curl(ca: trustme.CA, ca_file: str) -> None:
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2)
    certificate = ca.issue_cert(servers.HOST, not_before=past - dt.timedelta(days=30), not_after=past)
    with servers.LoopbackServer(servers.healthy(), tls=tls_server(certificate)) as server:
        result = tls.probe_address(
            parse_target(f"https://{servers.HOST}:{server.port}"),
            "127.0.0.1",
            timeout=TIMEOUT,
            ca_bundle=ca_file,
        )
        assert result.failure is Failure.TLS_CERT_EXPIRED
        assert result.tls is not None and result.tls.expires.startswith(past.date().isoformat())
        assert servers.run_curl(result.curl, "--max-time", "5") == 60


def test_tls_against_plain_http_is_a_handshake_failure(ca_file: str) -> None:
    with servers.LoopbackServer(servers.plain_http_anyway) as server:
        result = tls.probe_address(
            parse_target(f"https://{servers.HOST}:{server.port}"),
            "127.0.0.1",
            timeout=TIMEOUT,
            ca_bundle=ca_file,
        )
        assert result.failure is Failure.TLS_HANDSHAKE
        assert servers.run_curl(result.curl, "--max-time", "5") == 35


@pytest.mark.parametrize("probe_module", [tls, http], ids=["tls", "http"])
def test_silent_tls_port_is_a_tls_timeout_within_the_timeout(probe_module, ca_file: str) -> None:
    with servers.LoopbackServer(silent) as server:
        target = parse_target(f"https://{servers.HOST}:{server.port}")
        started = time.perf_counter()
        result = probe_module.probe_address(target, "127.0.0.1", timeout=TIMEOUT, ca_bundle=ca_file)
        elapsed = time.perf_counter() - started
        assert result.failure is Failure.TLS_TIMEOUT, result.detail
        assert TIMEOUT * 0.9 <= elapsed < TIMEOUT + 0.5
        assert servers.run_curl(result.curl) == 28
