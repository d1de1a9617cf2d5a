"""Sandbox edges fail byte-exact.

curl exits with the code each behaviour implies, raw sockets see the bytes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

from pytest_reachability.sandbox.app import HEALTH_BODY
from pytest_reachability.sandbox.certs import write_sandbox_certificates
from pytest_reachability.sandbox.edges import (
    GARBAGE_BYTES,
    NFT_TABLE_PREFIX,
    EdgeGroup,
    EdgeServer,
    SynDrop,
    server_tls_context,
    syn_drop_unavailable_reason,
)
from pytest_reachability.sandbox.scenario import Behaviour, HealthSpec

HOST = "97v.test"
REQUEST = f"GET /health HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: test\r\nAccept: */*\r\n\r\n".encode()

# address, behaviour, tls kind, curl exit code
EDGES = [
    ("127.0.20.1", Behaviour("healthy"), None, 0),
    ("127.0.20.2", Behaviour("empty_reply"), None, 52),
    ("127.0.20.3", Behaviour("refuse"), None, 7),
    ("127.0.20.4", Behaviour("hang"), None, 28),
    ("127.0.20.5", Behaviour("reset_mid_body"), None, 56),
    ("127.0.20.6", Behaviour("garbage"), None, 1),  # curl: "(1) Received HTTP/0.9 when not allowed"
    ("127.0.20.7", Behaviour("http_status", status=503), None, 22),
    ("127.0.20.8", Behaviour("slow", delay=0.3), None, 0),
    ("127.0.20.9", Behaviour("healthy"), "good", 0),
    ("127.0.20.10", Behaviour("healthy"), "expired", 60),
    ("127.0.20.11", Behaviour("healthy"), "wrong_host", 60),
    ("127.0.20.12", Behaviour("healthy"), "untrusted", 60),
]


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is required in CI (apt-get install {name})")
        pytest.skip(f"{name} is not installed")
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    certificates = write_sandbox_certificates(tmp_path_factory.mktemp("pki"), HOST)
    edges = []
    for address, behaviour, tls, _ in EDGES:
        context = None
        if tls is not None:
            files = certificates.edges[tls]
            context = server_tls_context(files.cert_file, files.key_file)
        edges.append(EdgeServer(address, behaviour, hosts=[HOST], tls_context=context, io_timeout=3))
    group = EdgeGroup(edges)
    group.start()
    yield group, certificates
    group.stop()


def curl(
    port: int,
    address: str,
    *,
    scheme: str = "http",
    ca_file: str | None = None,
    host: str = HOST,
    extra: tuple[str, ...] = (),
) -> subprocess.CompletedProcess:
    command = [require_tool("curl"), "-sS", "-f", "--max-time", "1", "--resolve", f"{host}:{port}:{address}"]
    if ca_file:
        command += ["--cacert", ca_file]
    return subprocess.run(
        [*command, *extra, f"{scheme}://{host}:{port}/health"], capture_output=True, text=True, timeout=20
    )


@pytest.mark.parametrize(
    "address, behaviour, tls, code",
    EDGES,
    ids=[f"{behaviour}{'-' + tls if tls else ''}" for _, behaviour, tls, _ in EDGES],
)
def test_curl_exit_code_per_behaviour(world, address, behaviour, tls, code):
    group, certificates = world
    result = curl(group.port, address, scheme="https" if tls else "http", ca_file=certificates.ca_file)
    assert result.returncode == code, result.stderr
    if code == 0:
        assert json.loads(result.stdout) == HEALTH_BODY


def test_curl_messages_match_the_incident_wording(world):
    group, _ = world
    assert "Empty reply from server" in curl(group.port, "127.0.20.2").stderr
    assert "Connection reset by peer" in curl(group.port, "127.0.20.5").stderr
    assert (
        "certificate has expired"
        in curl(group.port, "127.0.20.10", scheme="https", ca_file=world[1].ca_file).stderr
    )


def test_all_edges_share_one_port(world):
    group, _ = world
    assert {edge.port for edge in group.edges} == {group.port} and group.port > 0


def raw_exchange(
    address: str, port: int, request: bytes = REQUEST, timeout: float = 2.0
) -> tuple[bytes, str | None]:
    """Send ``request``; return every byte received and how the stream ended ('eof', 'reset', 'timeout')."""
    received = bytearray()
    with socket.create_connection((address, port), timeout=timeout) as sock:
        sock.sendall(request)
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    return bytes(received), "eof"
                received.extend(chunk)
        except ConnectionResetError:
            return bytes(received), "reset"
        except TimeoutError:
            return bytes(received), "timeout"


def test_empty_reply_reads_the_request_then_closes_with_zero_bytes(world):
    group, _ = world
    assert raw_exchange("127.0.20.2", group.port) == (b"", "eof")
    edge = group.by_address()["127.0.20.2"]
    assert edge.access_log[-1]["target"] == "/health" and edge.access_log[-1]["host"] == HOST


def test_empty_reply_with_a_request_body_still_ends_in_fin_not_reset(world):
    group, _ = world
    body = b"x" * 5000
    request = f"POST /results HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    assert raw_exchange("127.0.20.2", group.port, request) == (b"", "eof")


def test_reset_mid_body_sends_headers_and_part_of_the_body_then_rst(world):
    group, _ = world
    received, ending = raw_exchange("127.0.20.5", group.port)
    assert ending == "reset"
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    length = int(
        next(
            line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        )
    )
    assert 0 < len(body) < length


def test_hang_reads_and_never_answers(world):
    group, _ = world
    started = time.monotonic()
    assert raw_exchange("127.0.20.4", group.port, timeout=0.5) == (b"", "timeout")
    assert time.monotonic() - started >= 0.5


def test_garbage_is_not_http(world):
    group, _ = world
    assert raw_exchange("127.0.20.6", group.port) == (GARBAGE_BYTES, "eof")


def test_refuse_rejects_the_connection(world):
    group, _ = world
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.20.3", group.port), timeout=2).close()


def test_healthy_edge_answers_only_its_hosts_and_keeps_connections_alive(world):
    group, _ = world
    other = REQUEST.replace(HOST.encode(), b"other.test")
    with socket.create_connection(("127.0.20.1", group.port), timeout=2) as sock:
        stream = sock.makefile("rb")
        statuses = []
        for request in (REQUEST, other, REQUEST.replace(b"GET /health", b"GET /nope")):
            sock.sendall(request)
            status_line = stream.readline()
            headers = {}
            while (line := stream.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.lower()] = value.strip()
            stream.read(int(headers["content-length"]))
            statuses.append(int(status_line.split()[1]))
            assert headers["connection"] == "keep-alive"
    assert statuses == [200, 404, 404]


def test_head_and_wrong_method(world):
    group, _ = world
    received, _ = raw_exchange(
        "127.0.20.1",
        group.port,
        REQUEST.replace(b"GET", b"HEAD").replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"),
    )
    assert received.startswith(b"HTTP/1.1 200 OK") and received.endswith(b"\r\n\r\n")
    received, _ = raw_exchange(
        "127.0.20.1", group.port, b"DELETE /health HTTP/1.1\r\nHost: 97v.test\r\nConnection: close\r\n\r\n"
    )
    assert received.startswith(b"HTTP/1.1 405 ")


def test_slow_edge_answers_after_its_delay(world):
    group, _ = world
    started = time.monotonic()
    result = curl(group.port, "127.0.20.8")
    assert result.returncode == 0 and time.monotonic() - started >= 0.3
    assert curl(group.port, "127.0.20.8", extra=("--max-time", "0.1")).returncode == 28


def test_two_groups_on_the_same_addresses_get_different_ports():
    first = EdgeGroup(
        [EdgeServer("127.0.21.1", Behaviour("healthy")), EdgeServer("127.0.21.2", Behaviour("refuse"))]
    )
    second = EdgeGroup(
        [EdgeServer("127.0.21.1", Behaviour("healthy")), EdgeServer("127.0.21.2", Behaviour("refuse"))]
    )
    first.start()
    try:
        second.start()
        try:
            assert first.port != second.port
            for group in (first, second):
                with pytest.raises(ConnectionRefusedError):
                    socket.create_connection(("127.0.21.2", group.port), timeout=2).close()
                assert raw_exchange(
                    "127.0.21.1", group.port, REQUEST.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
                )[0].startswith(b"HTTP/1.1 200")
        finally:
            second.stop()
    finally:
        first.stop()


def test_stop_ends_hanging_connections_and_threads_promptly():
    before = set(threading.enumerate())
    edge = EdgeServer("127.0.21.3", Behaviour("hang"), io_timeout=30)
    edge.start()
    clients = [socket.create_connection(("127.0.21.3", edge.port), timeout=5) for _ in range(3)]
    for client in clients:
        client.sendall(REQUEST)
    deadline = time.monotonic() + 5
    while len(edge.access_log) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(edge.access_log) == 3
    started = time.monotonic()
    edge.stop()
    assert time.monotonic() - started < 2
    for client in clients:
        assert client.recv(10) == b""
        client.close()
    assert set(threading.enumerate()) <= before
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.21.3", edge.port), timeout=2).close()


# -- behaviours for the diagnosis corpus: black hole, redirect, intermittent, health bodies, IPv6, chains

CLOSE = REQUEST.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")


def require_root_and_nft() -> None:
    reason = syn_drop_unavailable_reason()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI runs as root with nftables installed")
        pytest.skip(reason)


def nft_tables() -> str:
    return subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, timeout=10).stdout


def test_blackhole_drops_syns_so_connect_times_out_and_stop_removes_the_rule():
    require_root_and_nft()
    edge = EdgeServer("127.0.22.1", Behaviour("blackhole"))
    edge.start()
    try:
        table = edge._drop.table
        assert table in nft_tables()
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            socket.create_connection(("127.0.22.1", edge.port), timeout=1.0).close()
        assert time.monotonic() - started >= 0.9  # no RST came back: the SYN was dropped
        assert curl(edge.port, "127.0.22.1", extra=("--connect-timeout", "1")).returncode == 28
        # Only that address and port: another port on the same address still gets an RST at once.
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(
                ("127.0.22.1", edge.port + 1 if edge.port < 65535 else edge.port - 1), timeout=2
            ).close()
    finally:
        edge.stop()
    assert table not in nft_tables()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.22.1", edge.port), timeout=2).close()


def test_blackhole_tables_of_dead_processes_are_removed_by_the_next_one():
    require_root_and_nft()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(10)  # a PID that no longer runs, as a killed sandbox's would be
    orphan = SynDrop("127.0.22.2", 9)
    orphan.table = f"{NFT_TABLE_PREFIX}{child.pid}_9_orphan"
    done = subprocess.run(
        ["nft", "add", "table", "ip", orphan.table], capture_output=True, text=True, timeout=10
    )
    assert done.returncode == 0, done.stderr
    edge = EdgeServer("127.0.22.3", Behaviour("blackhole"))
    edge.start()
    try:
        assert orphan.table not in nft_tables()
    finally:
        edge.stop()
        orphan.remove()


def test_redirect_answers_its_status_and_location_with_the_port_filled_in():
    edge = EdgeServer(
        "127.0.22.4",
        Behaviour("redirect", status=302, location="http://{host}:{port}/login"),
        target_host=HOST,
    )
    edge.start()
    try:
        received, _ = raw_exchange("127.0.22.4", edge.port, CLOSE)
        head = received.split(b"\r\n\r\n")[0].decode()
        assert head.startswith("HTTP/1.1 302 Found")
        assert f"Location: http://{HOST}:{edge.port}/login" in head.split("\r\n")
        # A Location that leads back to the edge loops: curl -L gives up with exit code 47.
        loop = EdgeServer(
            "127.0.22.5", Behaviour("redirect", status=301, location="/health"), target_host=HOST
        )
        loop.start()
        try:
            assert curl(loop.port, "127.0.22.5", extra=("-L", "--max-redirs", "3")).returncode == 47
        finally:
            loop.stop()
    finally:
        edge.stop()


@pytest.mark.parametrize(
    "fail_with, failed", [(503, b"HTTP/1.1 503"), ("empty_reply", b""), ("reset_mid_body", None)]
)
def test_intermittent_fails_exactly_its_share_of_requests(fail_with, failed):
    edge = EdgeServer("127.0.22.6", Behaviour("intermittent", share=0.25, fail_with=fail_with), hosts=[HOST])
    edge.start()
    try:
        outcomes = []
        for _ in range(8):
            received, end = raw_exchange("127.0.22.6", edge.port, CLOSE)
            outcomes.append(
                "ok" if received.startswith(b"HTTP/1.1 200") and end == "eof" else (end, received[:12])
            )
        # share 0.25: the 4th and the 8th request fail, the others are served.
        assert [index for index, outcome in enumerate(outcomes) if outcome != "ok"] == [3, 7]
        end, head = outcomes[3]
        if fail_with == "reset_mid_body":
            assert end == "reset"
        else:
            assert head.startswith(failed) and end == "eof"
    finally:
        edge.stop()


def test_health_override_answers_the_health_path_and_leaves_the_rest_to_the_app():
    body = '{"status":"DOWN","components":{"db":{"status":"DOWN"}}}'
    edge = EdgeServer(
        "127.0.22.7",
        Behaviour("healthy"),
        hosts=[HOST],
        health=HealthSpec(status=503, body=body, content_type="application/json"),
    )
    edge.start()
    try:
        received, _ = raw_exchange("127.0.22.7", edge.port, CLOSE)
        head, _, payload = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503") and payload.decode() == body
        received, _ = raw_exchange("127.0.22.7", edge.port, CLOSE.replace(b"/health", b"/bot/health"))
        assert received.startswith(b"HTTP/1.1 200")
    finally:
        edge.stop()


def test_ipv6_edge_listens_on_the_ipv6_loopback():
    edge = EdgeServer("::1", Behaviour("healthy"), hosts=[HOST])
    try:
        edge.start()
    except OSError as error:  # a machine without IPv6 on loopback
        pytest.skip(f"no IPv6 loopback here: {error}")
    try:
        result = curl(edge.port, "::1")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == HEALTH_BODY
    finally:
        edge.stop()


def test_binary_bytes_get_400_at_once_instead_of_a_wait():
    edge = EdgeServer("127.0.22.8", Behaviour("healthy"), io_timeout=5)
    edge.start()
    try:
        started = time.monotonic()
        received, end = raw_exchange(
            "127.0.22.8", edge.port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", timeout=4
        )
        assert received.startswith(b"HTTP/1.1 400") and time.monotonic() - started < 2
    finally:
        edge.stop()


@pytest.mark.parametrize(
    "kind, verifies, chain_length, issuer_url",
    [
        ("intermediate", True, 2, True),
        ("missing_intermediate", False, 1, True),
        ("untrusted", False, 1, False),
    ],
)
def test_certificate_chains_as_the_tls_probe_sees_them(tmp_path, kind, verifies, chain_length, issuer_url):
    from pytest_reachability.probes import tls as tls_probe

    certificates = write_sandbox_certificates(tmp_path, HOST)
    files = certificates.edges[kind]
    edge = EdgeServer(
        "127.0.22.9",
        Behaviour("healthy"),
        hosts=[HOST],
        tls_context=server_tls_context(files.cert_file, files.key_file),
    )
    edge.start()
    try:
        assert (
            curl(edge.port, "127.0.22.9", scheme="https", ca_file=certificates.ca_file).returncode == 0
        ) is verifies

        class Target:
            host, port = HOST, edge.port

        result = tls_probe.probe_address(Target(), "127.0.22.9", timeout=3, ca_bundle=certificates.ca_file)
        if verifies:
            assert result.ok
            return
        assert (
            result.failure.value == "tls_untrusted"
            and "unable to get local issuer certificate" in result.detail
        )
        chain = result.tls.chain
        assert len(chain) == chain_length and chain[0]["subject"] == f"CN={HOST}"
        assert bool(chain[0]["issuer_url"]) is issuer_url
    finally:
        edge.stop()
