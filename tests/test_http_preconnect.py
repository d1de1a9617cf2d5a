"""``TargetSession.preconnect``: one connection opened ahead (TCP, TLS verified as a request would be),
nothing sent, and the session's first request goes out on it -- against real loopback servers."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time

import pytest
import requests
import servers
import trustme

from pytest_reachability.config import parse_target
from pytest_reachability.http_session import TargetSession

TIMEOUT = 3.0


class KeepAlive:
    """A behaviour answering every request of a connection (HTTP/1.1 keep-alive), counting the requests
    it reads and the connections on which the first byte ever arrived."""

    def __init__(self) -> None:
        self.requests = 0
        self.spoken = 0  # connections on which anything was received
        self.lock = threading.Lock()

    def __call__(self, conn: socket.socket, server: servers.LoopbackServer) -> None:
        first = True
        while True:
            request = servers.read_request(conn)
            if not request:
                return
            with self.lock:
                self.requests += 1
                self.spoken += int(first)
            first = False
            body = b'{"status": "ok"}'
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )


def settle(condition, seconds: float = 2.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def tls_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(servers.HOST).configure_cert(context)
    return context


@contextlib.contextmanager
def preconnected(behaviour, scheme: str, ca: trustme.CA, ca_file: str):
    """(server, session) with the session's connection opened ahead and accepted by the server."""
    tls = tls_context(ca) if scheme == "https" else None
    with servers.LoopbackServer(behaviour, tls=tls) as server:
        target = parse_target(f"{scheme}://{servers.HOST}:{server.port}")
        with TargetSession(target, timeout=TIMEOUT, ca_bundle=ca_file, address="127.0.0.1") as session:
            session.preconnect()
            settle(lambda: server.connections == 1)
            time.sleep(0.1)  # a request sent by preconnect would have been read by now
            yield server, session


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_preconnect_opens_one_connection_sends_nothing_and_the_first_request_uses_it(
    scheme: str, ca: trustme.CA, ca_file: str
) -> None:
    behaviour = KeepAlive()
    with preconnected(behaviour, scheme, ca, ca_file) as (server, session):
        assert (server.connections, behaviour.requests) == (1, 0)
        assert session.get("/health").json() == {"status": "ok"}
        assert session.get("/health").status_code == 200
        assert (server.connections, behaviour.requests, behaviour.spoken) == (1, 2, 1)
    assert server.errors == []


def test_preconnect_verifies_the_certificate_as_a_request_would(ca: trustme.CA, tmp_path) -> None:
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))  # a CA that did not sign the server's certificate
    with servers.LoopbackServer(KeepAlive(), tls=tls_context(ca)) as server:
        target = parse_target(f"https://{servers.HOST}:{server.port}")
        with TargetSession(target, timeout=TIMEOUT, ca_bundle=str(other), address="127.0.0.1") as session:
            with pytest.raises((ssl.SSLError, requests.exceptions.SSLError)):
                session.preconnect()
            with pytest.raises(requests.exceptions.SSLError):
                session.get("/health")  # the failed connection was not left in the pool


def test_preconnect_to_nothing_fails_within_the_timeout_and_leaves_the_session_usable() -> None:
    port = servers.refused_port()
    target = parse_target(f"http://{servers.HOST}:{port}")
    with TargetSession(target, timeout=TIMEOUT, address="127.0.0.1", retries=0) as session:
        started = time.monotonic()
        with pytest.raises(Exception) as raised:
            session.preconnect()
        assert time.monotonic() - started < TIMEOUT
        assert "refused" in str(raised.value).lower() or isinstance(raised.value, ConnectionError)
        # The pool's slot came back: the next request fails on its own, it does not wait for a slot.
        with pytest.raises(requests.exceptions.ConnectionError):
            session.get("/health")


def test_preconnect_to_a_server_that_never_finishes_the_handshake_ends_within_the_timeout() -> None:
    """A TLS peer that accepts and then says nothing: the handshake is bounded by the session's timeout."""
    with servers.LoopbackServer(servers.stall) as server:
        target = parse_target(f"https://{servers.HOST}:{server.port}")
        with TargetSession(target, timeout=1.0, address="127.0.0.1", retries=0) as session:
            started = time.monotonic()
            with pytest.raises(Exception, match="(?i)timed? ?out"):
                session.preconnect()
            assert time.monotonic() - started < 3.0


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_an_idle_connection_the_server_wrote_on_is_not_reused(
    scheme: str, ca: trustme.CA, ca_file: str
) -> None:
    """A peer that speaks first (bytes nobody asked for) on the connection opened ahead: the request
    goes out on a new connection instead of reading that stray answer as its own."""
    behaviour = KeepAlive()
    spoken_first: list[int] = []

    def chatty(conn: socket.socket, server: servers.LoopbackServer) -> None:
        if not spoken_first:
            spoken_first.append(1)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nnot for you")
        behaviour(conn, server)

    with preconnected(chatty, scheme, ca, ca_file) as (server, session):
        assert session.get("/health").json() == {"status": "ok"}
        assert server.connections == 2


def test_a_ticket_that_lands_between_the_read_and_the_look_does_not_drop_the_connection(
    ca: trustme.CA, ca_file: str
) -> None:
    """The idle check reads the TLS 1.3 tickets waiting, then looks whether the socket is quiet. When the
    thread pauses between the two (or a relay forwards the two tickets apart), a ticket lands in between:
    the connection is still reusable. Here the first read comes before the server's tickets (as if it ran
    a moment earlier) and the tickets have arrived by the look."""
    behaviour = KeepAlive()
    with preconnected(behaviour, "https", ca, ca_file) as (server, session):
        adapter = session.get_adapter(session.base_url)
        (pool,) = (adapter.poolmanager.pools[key] for key in adapter.poolmanager.pools.keys())
        (connection,) = (each for each in list(pool.pool.queue) if each is not None)
        sock, calls = connection.sock, []
        real_recv = sock.recv

        def recv_before_the_tickets(*args):
            calls.append(args)
            if len(calls) == 1:
                raise ssl.SSLWantReadError("nothing had arrived yet")
            return real_recv(*args)

        sock.recv = recv_before_the_tickets
        assert session.get("/health").json() == {"status": "ok"}
        assert (server.connections, behaviour.requests, behaviour.spoken) == (1, 1, 1)
        assert len(calls) >= 2  # the tickets that had arrived were read by the check
    assert server.errors == []


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_preconnect_goes_through_the_proxy_the_requests_take(
    scheme: str, ca: trustme.CA, ca_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The proxy is read once from the environment; the connection opened ahead goes where the first request
    # would go (a CONNECT tunnel for https), and that request uses it.
    for name in (
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "NO_PROXY",
        "no_proxy",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)
    behaviour, seen = KeepAlive(), []
    tls = None
    if scheme == "https":
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(tls)
    with (
        servers.LoopbackServer(behaviour, tls=tls) as server,
        servers.LoopbackServer(servers.connect_proxy(seen)) as proxy,
    ):
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
        with TargetSession(
            parse_target(f"{scheme}://127.0.0.1:{server.port}"), timeout=TIMEOUT, ca_bundle=ca_file
        ) as session:
            session.preconnect()
            settle(lambda: proxy.connections == int(scheme == "https"))
            if scheme == "https":
                assert session.get("/health").json() == {"status": "ok"}
                assert (proxy.connections, server.connections, behaviour.requests) == (1, 1, 1)
                assert seen == [f"CONNECT 127.0.0.1:{server.port} HTTP/1.0"] or all(
                    line.startswith(f"CONNECT 127.0.0.1:{server.port} HTTP/1.") for line in seen
                )
            else:  # HTTPS_PROXY is not for http:// URLs: nothing goes through it
                assert session.get("/health").status_code == 200
                assert (proxy.connections, server.connections) == (0, 1)
