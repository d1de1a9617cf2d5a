"""Hostile HTTP peers on loopback: bodies, headers, slowloris and redirects that try to stall the probe, fill
its memory or pull credentials elsewhere. Each case asserts the class, the wall time (within the timeout
plus one second), a memory bound, and -- where curl has a verdict -- that curl, run from the probe's own
reproduce line, gives the exit code the class claims.
"""

from __future__ import annotations

import base64
import ssl
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import hostile
import pytest
import requests
import servers
import test_probe_http
import trustme

from pytest_reachability.config import parse_target
from pytest_reachability.http_session import MAX_BODY, ResponseTooLarge, TargetSession
from pytest_reachability.probes.failures import Failure
from pytest_reachability.probes.http import (
    DEFAULT_BODY_CAP,
    KEPT_HEADER_VALUE,
    KEPT_HEADERS,
    ProbeResult,
    probe_address,
)

TIMEOUT = 1.5
MEMORY_BOUND = 24 << 20  # peak Python allocations of one probe, servers in the same process included


def tls_server_context(authority: trustme.CA) -> ssl.SSLContext:
    return test_probe_http.server_context(authority.issue_cert(servers.HOST))


def measured(call: Callable[[], ProbeResult]) -> tuple[ProbeResult, float, int]:
    """The result, the wall time and the peak of traced allocations while it ran."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        result = call()
    finally:
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return result, elapsed, peak


def assert_bounded(elapsed: float, peak: int, timeout: float = TIMEOUT) -> None:
    assert elapsed < timeout + 1, f"took {elapsed:.2f}s with a {timeout}s timeout"
    assert peak < MEMORY_BOUND, f"peak allocations {peak / 1e6:.1f} MB"


def assert_curl_agrees(result: ProbeResult) -> None:
    code = servers.run_curl(result.curl, "--max-time", str(TIMEOUT + 5))
    if result.failure is None:
        assert code == 0, f"curl exit {code} for a passing probe: {result.curl}"
    elif result.failure.curl_exit is None:
        assert code == 0, f"{result.failure.value}: curl cannot tell, it exits 0; got {code}: {result.curl}"
    else:
        assert code in result.failure.curl_exits, (
            f"{result.failure.value} claims {result.failure.curl_exits}, curl gave {code}"
        )


def probe_server(
    server: servers.LoopbackServer, scheme: str = "http", user: str = "", **options
) -> tuple[ProbeResult, float, int]:
    target = parse_target(f"{scheme}://{user}{servers.HOST}:{server.port}")
    return measured(lambda: probe_address(target, "127.0.0.1", timeout=TIMEOUT, **options))


# --------------------------------------------------------------------------- bodies


def test_huge_declared_body_is_read_to_the_cap_only() -> None:
    with servers.LoopbackServer(servers.huge_body(1 << 30)) as server:
        result, elapsed, peak = probe_server(server)
    assert result.ok and result.status == 200
    assert result.body_truncated and len(result.body) == DEFAULT_BODY_CAP
    assert server.bytes_sent < 64 << 20  # the probe stopped reading; it did not take the gigabyte
    assert_bounded(elapsed, peak)


def test_endless_body_is_read_to_the_cap_only() -> None:
    with servers.LoopbackServer(hostile.endless_body) as server:
        result, elapsed, peak = probe_server(server)
    assert result.ok and result.body_truncated and len(result.body) == DEFAULT_BODY_CAP
    assert_bounded(elapsed, peak)


def test_gzip_bomb_is_not_inflated() -> None:
    with servers.LoopbackServer(hostile.gzip_bomb) as server:
        result, elapsed, peak = probe_server(server, expect_body={"status": "ok"})
    # The probe asks for no encoding and decodes none: it
    # sees compressed bytes, which are not the JSON expected.
    assert result.failure is Failure.BODY_MISMATCH and "not JSON" in result.detail
    assert len(result.body) == len(hostile.GZIP_BOMB) < 1 << 20
    assert_bounded(elapsed, peak)


# --------------------------------------------------------------------------- headers


def test_one_20kb_header_is_accepted_and_kept_short() -> None:
    head = b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 20_000 + b"\r\nContent-Length: 2\r\n\r\nok"
    with servers.LoopbackServer(hostile.raw_answer(head)) as server:
        result, elapsed, peak = probe_server(server)
        assert result.ok, result.detail
        assert result.headers["x-big"] == "a" * KEPT_HEADER_VALUE + "..."
        assert_bounded(elapsed, peak)
        assert_curl_agrees(result)


def test_ten_thousand_headers_are_accepted_and_a_hundred_kept() -> None:
    head = (
        b"HTTP/1.1 200 OK\r\n"
        + b"".join(b"X-H%d: v\r\n" % n for n in range(10_000))
        + b"Location: /ignored\r\nContent-Length: 2\r\n\r\nok"
    )
    with servers.LoopbackServer(hostile.raw_answer(head)) as server:
        result, elapsed, peak = probe_server(server)
        assert result.ok, result.detail
        assert len(result.headers) == KEPT_HEADERS and result.headers_dropped == 10_002 - KEPT_HEADERS
        assert result.to_evidence()["headers_dropped"] == result.headers_dropped
        assert_bounded(elapsed, peak)
        assert_curl_agrees(result)


@pytest.mark.parametrize(
    ("case", "head"),
    [
        (
            "one 120 kB header",
            b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 120_000 + b"\r\nContent-Length: 2\r\n\r\nok",
        ),
        (
            "40 000 headers",
            b"HTTP/1.1 200 OK\r\n"
            + b"".join(b"X-H%d: v\r\n" % n for n in range(40_000))
            + b"Content-Length: 2\r\n\r\nok",
        ),
        ("a 120 kB status line", b"HTTP/1.1 200 " + b"O" * 120_000 + b"\r\nContent-Length: 2\r\n\r\nok"),
    ],
    ids=["one-120kB-header", "40000-headers", "120kB-status-line"],
)
def test_headers_beyond_curls_limits_are_refused_like_curl(case: str, head: bytes) -> None:
    with servers.LoopbackServer(hostile.raw_answer(head)) as server:
        result, elapsed, peak = probe_server(server)
        assert result.failure is Failure.HEADERS_TOO_LARGE, (case, result.failure, result.detail)
        assert_bounded(elapsed, peak)
        assert_curl_agrees(result)


def test_a_flood_of_interim_responses_is_not_http() -> None:
    with servers.LoopbackServer(hostile.interim_flood) as server:
        result, elapsed, peak = probe_server(server)
    assert result.failure is Failure.BAD_RESPONSE and "interim" in result.detail
    assert_bounded(elapsed, peak)


# --------------------------------------------------------------------------- slowloris


@pytest.mark.parametrize("where", ["status line", "headers", "body"])
def test_one_byte_a_second_ends_at_the_timeout(where: str) -> None:
    head = {
        "status line": b"HTTP/1.1 200 OK\r\n\r\n",
        "headers": b"HTTP/1.1 200 OK\r\nX-Slow: " + b"s" * 100 + b"\r\n\r\n",
        "body": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"b" * 100,
    }[where]
    # The whole head arrives at once when it is not what drips: the body case sends the head fast.
    behaviour = hostile.slowloris(head) if where != "body" else _fast_head_slow_body(head)
    with servers.LoopbackServer(behaviour) as server:
        result, elapsed, peak = probe_server(server)
        assert result.failure is Failure.READ_TIMEOUT, (where, result.failure, result.detail)
        assert elapsed >= TIMEOUT * 0.9
        assert_bounded(elapsed, peak)
        assert_curl_agrees(result)


def _fast_head_slow_body(data: bytes) -> servers.Behaviour:
    head, _, body = data.partition(b"\r\n\r\n")

    def behaviour(conn, server) -> None:
        servers.read_request(conn)
        conn.sendall(head + b"\r\n\r\n")
        hostile.slowloris(body)(_Replayed(conn), server)

    return behaviour


class _Replayed:
    """A connection whose request was already read: slowloris's read_request returns at once."""

    def __init__(self, conn) -> None:
        self.conn = conn

    def recv(self, _size: int) -> bytes:
        return b""

    def sendall(self, data: bytes) -> None:
        self.conn.sendall(data)


# --------------------------------------------------------------------------- redirects


def test_redirect_loop_is_bounded_like_curl() -> None:
    with servers.LoopbackServer(servers.redirect_loop) as server:
        result, elapsed, peak = probe_server(server)
        assert result.failure is Failure.TOO_MANY_REDIRECTS
        assert_bounded(elapsed, peak)
        assert_curl_agrees(result)


@pytest.mark.parametrize(
    "location",
    [
        "gopher://127.0.0.1:70/1x",
        "file:///etc/passwd",
        "ftp://127.0.0.1:21/pub/x",
        "javascript:alert(1)",
        "data:text/plain,hi",
    ],
)
def test_redirects_to_other_schemes_are_refused_like_curl_with_proto_redir(location: str) -> None:
    with servers.LoopbackServer(hostile.redirect_to(location)) as server:
        result, elapsed, peak = probe_server(server)
        assert result.failure is Failure.REDIRECT_UNSAFE, (result.failure, result.detail)
        assert "only http and https" in result.detail and result.status == 302
        assert server.connections == 1 and result.redirects == []
        assert "--proto-redir =http,https" in result.curl
        assert_bounded(elapsed, peak)
        assert_curl_agrees(result)


@pytest.mark.parametrize(
    ("location", "words"),
    [
        ("http://10.1.2.3/health", "private address 10.1.2.3"),
        ("http://169.254.169.254/latest/meta-data/", "link-local address 169.254.169.254 (cloud metadata"),
        ("http://127.0.0.2:9/health", "loopback address 127.0.0.2"),
        ("https://login.example.com/sso?next=/health", "another host"),
        ("http:///evil.example/x", "another host"),  # read as curl and browsers read it: host evil.example
    ],
)
def test_redirects_elsewhere_are_a_finding_and_not_followed(location: str, words: str) -> None:
    with servers.LoopbackServer(hostile.redirect_to(location)) as server:
        result, elapsed, peak = probe_server(server, user="user:Pw-9090@")
        assert result.failure is Failure.REDIRECT_ELSEWHERE, (result.failure, result.detail)
        assert words in result.detail and "not followed" in result.detail
        assert not result.ok and result.curl_exit is None and result.redirects == []
        assert server.connections == 1
        assert_bounded(elapsed, peak)
        assert_curl_agrees(result)  # without -L curl shows the redirect and exits 0: it cannot tell


def test_https_to_http_downgrade_is_refused_and_nothing_is_sent_in_clear(
    ca: trustme.CA, ca_file: str
) -> None:
    with servers.LoopbackServer(hostile.recording()) as plain:
        downgrade = hostile.redirect_to(f"http://{servers.HOST}:{plain.port}/health")
        with servers.LoopbackServer(downgrade, tls=tls_server_context(ca)) as secure:
            result, elapsed, peak = probe_server(secure, "https", user="user:Clear-Pw-77@", ca_bundle=ca_file)
            assert result.failure is Failure.REDIRECT_UNSAFE, (result.failure, result.detail)
            assert "from https down to" in result.detail
            assert "--proto-redir =https" in result.curl
            assert_bounded(elapsed, peak)
            assert_curl_agrees(result)
        assert plain.connections == 0  # the credentials never travelled in clear


def test_credentials_stay_with_the_scheme_host_and_port_they_were_given_for() -> None:
    secret = base64.b64encode(b"user:Port-Pw-55").decode()
    with servers.LoopbackServer(hostile.recording()) as other_port:
        # Same host name, another port (and credentials in the
        # Location itself): followed, without any credentials.
        location = f"http://evil:stolen@{servers.HOST}:{other_port.port}/next"
        with servers.LoopbackServer(hostile.redirect_to(location)) as first:
            result, elapsed, peak = probe_server(first, user="user:Port-Pw-55@")
            assert result.ok, result.detail
            assert result.redirects == [f"http://{servers.HOST}:{other_port.port}/next"]
            assert f"Authorization: Basic {secret}".encode() in first.requests[0]
        assert other_port.requests and b"authorization" not in other_port.requests[0].lower()
        assert b"evil" not in other_port.requests[0] and b"stolen" not in other_port.requests[0]
    assert_bounded(elapsed, peak)


# --------------------------------------------------------------------------- the http fixture's session


def session_for(server: servers.LoopbackServer, scheme: str = "http") -> TargetSession:
    return TargetSession(
        parse_target(f"{scheme}://{servers.HOST}:{server.port}"), timeout=TIMEOUT, address="127.0.0.1"
    )


def test_session_slowloris_ends_at_twice_the_timeout() -> None:
    with servers.LoopbackServer(
        hostile.slowloris(b"HTTP/1.1 200 OK\r\nX-Slow: " + b"s" * 100 + b"\r\n\r\n")
    ) as server:
        started = time.perf_counter()
        with pytest.raises(requests.exceptions.ReadTimeout, match="no complete response"):
            session_for(server).get("/health")
        assert time.perf_counter() - started < 2 * TIMEOUT + 1


def test_session_slowloris_through_a_proxy_ends_at_twice_the_timeout(ca, ca_file, monkeypatch) -> None:
    # The deadline cuts the connections of a request sent through a proxy's tunnel too.
    import ssl

    for name in ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(tls)
    slow = hostile.slowloris(b"HTTP/1.1 200 OK\r\nX-Slow: " + b"s" * 100 + b"\r\n\r\n")
    with (
        servers.LoopbackServer(slow, tls=tls) as server,
        servers.LoopbackServer(servers.connect_proxy([])) as proxy,
    ):
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
        target = parse_target(f"https://127.0.0.1:{server.port}")
        started = time.perf_counter()
        with TargetSession(target, timeout=TIMEOUT, ca_bundle=ca_file) as session:
            with pytest.raises(requests.exceptions.ReadTimeout, match="no complete response"):
                session.get("/health")
        assert time.perf_counter() - started < 2 * TIMEOUT + 1
        assert proxy.connections == 1  # it did go through the proxy


@pytest.mark.parametrize("behaviour", [hostile.gzip_bomb, hostile.endless_body], ids=["gzip-bomb", "endless"])
def test_session_bodies_stop_at_the_cap(behaviour) -> None:
    with servers.LoopbackServer(behaviour) as server:

        def fetch() -> None:
            with pytest.raises(ResponseTooLarge):
                session_for(server).get("/health")

        _, elapsed, peak = measured(fetch)
    assert elapsed < 2 * TIMEOUT + 1
    assert peak < MAX_BODY + MEMORY_BOUND


@pytest.mark.parametrize(
    "location",
    ["gopher://127.0.0.1:70/1x", "http://169.254.169.254/latest/meta-data/", "http://other.example/x"],
)
def test_session_does_not_follow_redirects_elsewhere(location: str) -> None:
    with servers.LoopbackServer(hostile.redirect_to(location)) as server:
        response = session_for(server).get("/health")
    assert response.status_code == 302 and response.headers["Location"] == location
    assert server.connections == 1


def test_session_does_not_downgrade(ca: trustme.CA, ca_file: str, tmp_path: Path) -> None:
    with servers.LoopbackServer(hostile.recording()) as plain:
        downgrade = hostile.redirect_to(f"http://{servers.HOST}:{plain.port}/health")
        with servers.LoopbackServer(downgrade, tls=tls_server_context(ca)) as secure:
            session = TargetSession(
                parse_target(f"https://user:pw-4444@{servers.HOST}:{secure.port}"),
                timeout=TIMEOUT,
                ca_bundle=ca_file,
                address="127.0.0.1",
            )
            response = session.get("/health")
        assert response.status_code == 302 and plain.connections == 0
