"""The HTTP probe against real misbehaving servers on loopback: every class, and curl agreeing with it.

Each case starts a server that plays one failure, probes it with curl --resolve semantics, asserts the
class, then runs the probe's own ``curl`` line against the same server and asserts curl exits with the
code the class claims.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
import servers
import trustme

from pytest_reachability.config import parse_target
from pytest_reachability.probes.failures import Failure
from pytest_reachability.probes.http import ProbeResult, curl_command, probe_address, probe_target

TIMEOUT = 1.5
ROOT = Path(__file__).resolve().parents[1]


def server_context(certificate: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(context)
    return context


def target_for(server: servers.LoopbackServer, scheme: str = "http"):
    return parse_target(f"{scheme}://{servers.HOST}:{server.port}")


def assert_curl_agrees(result: ProbeResult, timeout: float = TIMEOUT) -> None:
    """curl, run from the probe's reproduce line, exits with the code the class claims."""
    assert result.curl.startswith("curl -v --resolve "), result.curl
    code = servers.run_curl(result.curl, "--max-time", str(timeout + 5))
    if result.failure is None:
        assert code == 0, f"curl exit {code} for a passing probe: {result.curl}"
    else:
        assert code in result.failure.curl_exits, (
            f"{result.failure.value} claims curl {result.failure.curl_exits}, curl gave {code}: {result.curl}"
        )


PLAIN_CASES = [
    ("empty reply", servers.empty_reply, Failure.EMPTY_REPLY),
    ("reset mid-body", servers.reset_mid_body, Failure.RECV_ERROR),
    ("read timeout", servers.stall, Failure.READ_TIMEOUT),
    ("garbage bytes", servers.garbage, Failure.BAD_RESPONSE),
    ("TLS alert on a plain port", servers.tls_alert, Failure.BAD_RESPONSE),
    ("503", servers.healthy(b"upstream down", status=503), Failure.HTTP_STATUS),
    ("redirect loop", servers.redirect_loop, Failure.TOO_MANY_REDIRECTS),
]


@pytest.mark.parametrize(
    ("case", "behaviour", "expected"), PLAIN_CASES, ids=[case[0] for case in PLAIN_CASES]
)
def test_plain_http_failures_are_classified_like_curl(case, behaviour, expected: Failure) -> None:
    with servers.LoopbackServer(behaviour) as server:
        started = time.perf_counter()
        result = probe_address(target_for(server), "127.0.0.1", timeout=TIMEOUT)
        elapsed = time.perf_counter() - started
        assert result.failure is expected, (result.failure, result.detail)
        assert not result.ok
        assert elapsed < TIMEOUT + 0.5, f"{case} took {elapsed:.2f}s with a {TIMEOUT}s timeout"
        assert result.detail and "\n" not in result.detail
        assert_curl_agrees(result)


def test_refused_port_is_tcp_refused_like_curl() -> None:
    port = servers.refused_port()
    result = probe_address(parse_target(f"http://{servers.HOST}:{port}"), "127.0.0.1", timeout=TIMEOUT)
    assert result.failure is Failure.TCP_REFUSED
    assert result.status is None and result.phases["ttfb"] == 0
    assert_curl_agrees(result)


def test_read_timeout_stops_at_the_timeout() -> None:
    with servers.LoopbackServer(servers.stall) as server:
        started = time.perf_counter()
        result = probe_address(target_for(server), "127.0.0.1", timeout=0.5)
        elapsed = time.perf_counter() - started
    assert result.failure is Failure.READ_TIMEOUT
    assert 0.45 <= elapsed < 1.0
    assert "--max-time 0.5" in result.curl


def test_healthy_server_passes_with_phases_and_curl_agrees() -> None:
    with servers.LoopbackServer(servers.healthy()) as server:
        result = probe_address(target_for(server), "127.0.0.1", timeout=TIMEOUT, expect_body={"status": "ok"})
        assert result.ok, result.detail
        assert result.status == 200 and result.headers["content-type"] == "application/json"
        assert json.loads(result.body) == {"status": "ok"}
        assert set(result.phases) >= {"dns", "connect", "tls", "ttfb", "transfer", "total"}
        assert result.phases["total"] >= result.phases["connect"] + result.phases["ttfb"]
        assert (
            result.curl == f"curl -v --resolve {servers.HOST}:{server.port}:127.0.0.1 "
            f"http://{servers.HOST}:{server.port}/health"
        )
        assert_curl_agrees(result)


def test_body_mismatch_names_the_difference() -> None:
    with servers.LoopbackServer(servers.healthy(b'{"status": "degraded", "db": "down"}')) as server:
        result = probe_address(target_for(server), "127.0.0.1", timeout=TIMEOUT, expect_body={"status": "ok"})
        assert result.failure is Failure.BODY_MISMATCH
        assert "status is 'degraded', expected 'ok'" in result.detail
        assert result.curl_exit is None  # curl cannot tell a wrong body; it exits 0
        assert servers.run_curl(result.curl, "--max-time", "5") == 0
        callable_check = probe_address(
            target_for(server), "127.0.0.1", timeout=TIMEOUT, expect_body=lambda body: b"ok" in body
        )
        assert callable_check.failure is Failure.BODY_MISMATCH
        substring = probe_address(target_for(server), "127.0.0.1", timeout=TIMEOUT, expect_body="degraded")
        assert substring.ok


def test_redirect_is_followed_on_the_same_address() -> None:
    with servers.LoopbackServer(servers.redirect_once) as server:
        result = probe_address(target_for(server), "127.0.0.1", timeout=TIMEOUT)
        assert result.ok and result.status == 200
        assert result.redirects == [f"http://{servers.HOST}:{server.port}/healthz"]
        assert json.loads(result.body)["path"] == "/healthz"
        unfollowed = probe_address(target_for(server), "127.0.0.1", timeout=TIMEOUT, max_redirects=0)
        assert unfollowed.status == 301 and unfollowed.redirects == []


def test_plain_http_on_a_tls_port_is_a_handshake_failure(ca_file: str) -> None:
    with servers.LoopbackServer(servers.plain_http_anyway) as server:
        result = probe_address(target_for(server, "https"), "127.0.0.1", timeout=TIMEOUT, ca_bundle=ca_file)
        assert result.failure is Failure.TLS_HANDSHAKE
        assert "plain HTTP" in result.detail
        assert f"--cacert {ca_file}" in result.curl
        assert_curl_agrees(result)


def test_tls_on_a_plain_port_is_a_reset_before_any_byte(ca: trustme.CA) -> None:
    with servers.LoopbackServer(servers.healthy(), tls=server_context(ca.issue_cert(servers.HOST))) as server:
        result = probe_address(target_for(server, "http"), "127.0.0.1", timeout=TIMEOUT)
        # OpenSSL rejects the plain request and closes with unread data: RST before a response byte.
        assert result.failure is Failure.RECV_ERROR
        assert "try https://" in result.detail
        assert_curl_agrees(result)


def test_valid_certificate_passes_with_tls_details(ca: trustme.CA, ca_file: str) -> None:
    with servers.LoopbackServer(servers.healthy(), tls=server_context(ca.issue_cert(servers.HOST))) as server:
        result = probe_address(target_for(server, "https"), "127.0.0.1", timeout=TIMEOUT, ca_bundle=ca_file)
        assert result.ok, result.detail
        assert result.tls is not None and result.tls.verified
        assert result.tls.subject_names == [servers.HOST]
        assert result.tls.version and result.tls.version.startswith("TLS")
        assert dt.datetime.fromisoformat(result.tls.expires) > dt.datetime.now(dt.timezone.utc)
        assert result.phases["tls"] > 0
        assert_curl_agrees(result)


def test_trust_comes_from_requests_ca_bundle(
    ca: trustme.CA, ca_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with servers.LoopbackServer(servers.healthy(), tls=server_context(ca.issue_cert(servers.HOST))) as server:
        monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        without = probe_address(target_for(server, "https"), "127.0.0.1", timeout=TIMEOUT)
        assert without.failure is Failure.TLS_UNTRUSTED
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_file)
        with_env = probe_address(target_for(server, "https"), "127.0.0.1", timeout=TIMEOUT)
        assert with_env.ok, with_env.detail


def _past(days: int) -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days)


CERT_CASES = [
    (
        "expired",
        lambda ca: ca.issue_cert(servers.HOST, not_before=_past(30), not_after=_past(1)),
        Failure.TLS_CERT_EXPIRED,
    ),
    ("wrong host", lambda ca: ca.issue_cert("other.test"), Failure.TLS_HOSTNAME),
    ("untrusted", lambda ca: trustme.CA().issue_cert(servers.HOST), Failure.TLS_UNTRUSTED),
]


@pytest.mark.parametrize(("case", "issue", "expected"), CERT_CASES, ids=[case[0] for case in CERT_CASES])
def test_certificate_problems_are_classified_like_curl(
    case, issue, expected: Failure, ca: trustme.CA, ca_file: str
) -> None:
    with servers.LoopbackServer(servers.healthy(), tls=server_context(issue(ca))) as server:
        result = probe_address(target_for(server, "https"), "127.0.0.1", timeout=TIMEOUT, ca_bundle=ca_file)
        assert result.failure is expected, (result.failure, result.detail)
        assert result.tls is not None and not result.tls.verified
        assert result.tls.error  # what OpenSSL said
        assert result.tls.expires  # the certificate was still read, for the report
        if expected is Failure.TLS_CERT_EXPIRED:
            assert dt.datetime.fromisoformat(result.tls.expires) < dt.datetime.now(dt.timezone.utc)
        if expected is Failure.TLS_HOSTNAME:
            assert result.tls.subject_names == ["other.test"]
        assert_curl_agrees(result)


def test_chunked_body_is_decoded_and_capped() -> None:
    pieces = [b"a" * 100, b"b" * 100, b"c" * 100]
    with servers.LoopbackServer(servers.chunked(pieces)) as server:
        whole = probe_address(target_for(server), "127.0.0.1", timeout=TIMEOUT)
        assert whole.ok and whole.body == b"".join(pieces) and not whole.body_truncated
        capped = probe_address(target_for(server), "127.0.0.1", timeout=TIMEOUT, body_cap=150)
        assert capped.ok and capped.body == b"a" * 100 + b"b" * 50 and capped.body_truncated


HUGE = 1 << 30
_PROBE_IN_CHILD = """
import json, resource, sys
from pytest_reachability.config import parse_target
from pytest_reachability.probes.http import probe_address
result = probe_address(parse_target(sys.argv[1]), "127.0.0.1", timeout=20)
print(json.dumps({"failure": result.failure and result.failure.value, "body": len(result.body),
    "truncated": result.body_truncated, "bytes_read": result.bytes_read,
    "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def _probe_in_child(url: str) -> dict:
    completed = subprocess.run(
        [sys.executable, "-c", _PROBE_IN_CHILD, url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(completed.stdout)


def test_huge_body_stops_at_the_cap_and_memory_stays_flat() -> None:
    with servers.LoopbackServer(servers.huge_body(1024)) as small_server:
        small = _probe_in_child(f"http://{servers.HOST}:{small_server.port}/health")
    with servers.LoopbackServer(servers.huge_body(HUGE)) as server:
        huge = _probe_in_child(f"http://{servers.HOST}:{server.port}/health")
        deadline = time.monotonic() + 5
        while server.connections and time.monotonic() < deadline and not server.errors:
            time.sleep(0.05)  # the sender notices the closed connection
        sent = server.bytes_sent
    assert huge["failure"] is None and huge["truncated"] is True
    assert huge["body"] == 1 << 20
    assert huge["bytes_read"] <= (1 << 20) + 64 * 1024 + 1024, huge
    assert sent < 64 << 20, f"server pushed {sent} bytes: the probe kept reading past the cap"
    growth_mib = (huge["maxrss_kib"] - small["maxrss_kib"]) / 1024
    assert growth_mib < 16, f"peak RSS grew {growth_mib:.1f} MiB for a 1 GiB body"


def test_huge_body_curl_reads_it_all_and_exits_zero() -> None:
    with servers.LoopbackServer(servers.huge_body(HUGE)) as server:
        result = probe_address(target_for(server), "127.0.0.1", timeout=TIMEOUT)
        assert result.ok and result.body_truncated
        assert_curl_agrees(result, timeout=30)


def test_every_address_is_probed_separately_including_extras() -> None:
    with (
        servers.LoopbackServer(servers.healthy()) as good,
        servers.LoopbackServer(servers.empty_reply) as edge,
    ):
        # One name, two addresses: the listener on 127.0.0.1 answers, 127.0.0.2 has nothing on that port.
        target = target_for(good)
        results = probe_target(
            target, addresses=["127.0.0.1"], extra_addresses=["127.0.0.2", "127.0.0.1"], timeout=TIMEOUT
        )
        assert [r.address for r in results] == ["127.0.0.1", "127.0.0.2"]
        assert results[0].ok and results[1].failure is Failure.TCP_REFUSED
        assert (
            results[1].curl == f"curl -v --resolve {servers.HOST}:{good.port}:127.0.0.2 "
            f"http://{servers.HOST}:{good.port}/health"
        )
        edge_result = probe_target(target_for(edge), addresses=["127.0.0.1"], timeout=TIMEOUT)[0]
        assert edge_result.failure is Failure.EMPTY_REPLY


def test_ipv6_address_gets_bracketed_curl_line() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        server = servers.LoopbackServer(servers.healthy(), family=socket.AF_INET6)
    except OSError as error:
        pytest.skip(f"::1 not bindable here: {error}")
    with server:
        result = probe_address(target_for(server), "::1", timeout=TIMEOUT)
        assert result.ok, result.detail
        assert (
            f"--resolve '{servers.HOST}:{server.port}:[::1]' " in result.curl
        )  # quoted: brackets are shell globs
        assert_curl_agrees(result)


def test_unresolvable_name_gives_one_dns_result() -> None:
    target = parse_target("http://name-that-does-not-exist.invalid:8080")
    results = probe_target(target, resolvers=["system"], timeout=TIMEOUT)
    assert len(results) == 1
    assert results[0].address == "" and results[0].failure is not None
    assert results[0].failure.phase == "dns" and results[0].curl_exit == 6


def test_credentials_are_sent_but_never_in_the_curl_line() -> None:
    seen: list[bytes] = []

    def record(conn, server):
        seen.append(servers.read_request(conn))
        conn.sendall(servers.http_answer(200, b"ok", "OK"))

    with servers.LoopbackServer(record) as server:
        target = parse_target(f"http://alice:s3cret@{servers.HOST}:{server.port}/api")
        result = probe_address(target, "127.0.0.1", timeout=TIMEOUT)
    assert result.ok
    assert b"Authorization: Basic YWxpY2U6czNjcmV0" in seen[0]
    assert seen[0].startswith(b"GET /api/health HTTP/1.1\r\nHost: 97v.test:")
    assert "s3cret" not in result.curl and "alice" not in result.curl
    assert "s3cret" not in json.dumps(result.to_evidence())


def test_evidence_is_plain_json() -> None:
    with servers.LoopbackServer(servers.healthy(status=503)) as server:
        result = probe_address(target_for(server), "127.0.0.1", timeout=TIMEOUT)
    evidence = json.loads(json.dumps(result.to_evidence()))
    assert evidence["failure"] == "http_status" and evidence["curl_exit"] == 22 and evidence["status"] == 503
    assert evidence["address"] == "127.0.0.1" and evidence["port"] == server.port
    assert set(evidence["phases"]) >= {"connect", "ttfb", "total"}


def test_curl_command_for_ip_target_has_no_resolve() -> None:
    target = parse_target("https://127.0.0.1:8443")
    assert curl_command(target, "127.0.0.1", target.url("/health")) == "curl -v https://127.0.0.1:8443/health"


def test_unresolvable_name_with_extra_addresses_reports_both() -> None:
    with servers.LoopbackServer(servers.healthy()) as server:
        target = parse_target(f"http://name-that-does-not-exist.invalid:{server.port}")
        results = probe_target(target, resolvers=["system"], extra_addresses=["127.0.0.1"], timeout=TIMEOUT)
    assert [r.address for r in results] == ["", "127.0.0.1"]
    assert results[0].failure is not None and results[0].failure.phase == "dns"
    assert results[1].ok
