"""A scenario's ``latency:`` delays, in user space, every exchange with its DNS servers, edges and API
server by a round trip (twice the one-way delay), measured from outside with real clients: dnspython, raw
sockets and Python's ssl, the official Kubernetes client. Only lower bounds are asserted: a loaded machine
may add time, never remove it.
"""

from __future__ import annotations

import socket
import ssl
import textwrap
import time

import dns.message
import dns.query
import dns.rcode
import pytest

from pytest_reachability.sandbox import Sandbox, ScenarioError, load_scenario
from pytest_reachability.sandbox.scenario import LatencySpec

DNS_DELAY, EDGE_DELAY, API_DELAY = 0.06, 0.08, 0.1  # one way, seconds: distinct, to tell the parts apart

SCENARIO = f"""\
name: distant
description: a small world far away, each part at its own distance
target: {{host: far.test, scheme: https}}
namespace: production
postgres: false
latency: {{dns: {DNS_DELAY * 1000:g}ms, edges: {EDGE_DELAY * 1000:g}ms, apiserver: {API_DELAY * 1000:g}ms}}
dns:
  primary:
    records:
      far.test: {{A: [127.0.32.1]}}
edges:
  - {{address: 127.0.32.1, behaviour: healthy, tls: good, plain_http: true, hosts: [far.test]}}
kubernetes:
  objects:
    - {{apiVersion: v1, kind: Namespace, metadata: {{name: production}}, status: {{phase: Active}}}}
"""


def write(tmp_path, text: str, name: str = "distant.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    with Sandbox(write(tmp_path_factory.mktemp("latency"), SCENARIO), postgres=False) as info:
        yield info


def elapsed(action) -> tuple[float, object]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def query(sandbox, name: str, *, tcp: bool = False) -> tuple[float, dns.message.Message]:
    """How long one query to the sandbox's resolver takes, and its answer."""
    host, port = sandbox.resolvers[0].rsplit(":", 1)
    send = dns.query.tcp if tcp else dns.query.udp
    return elapsed(lambda: send(dns.message.make_query(name, "A"), host, port=int(port), timeout=5))


@pytest.mark.parametrize(
    ("name", "tcp", "rcode", "round_trips"),
    [
        ("far.test", False, dns.rcode.NOERROR, 1),
        ("gone.test", False, dns.rcode.NXDOMAIN, 1),  # negative answers are as far away
        ("far.test", True, dns.rcode.NOERROR, 2),  # the TCP connection, then the query
    ],
    ids=["udp", "udp-nxdomain", "tcp"],
)
def test_a_dns_query_costs_its_round_trips(sandbox, name, tcp, rcode, round_trips):
    took, response = query(sandbox, name, tcp=tcp)
    assert response.rcode() == rcode
    assert took >= round_trips * 2 * DNS_DELAY


def read_response(connection) -> bytes:
    reply = b""
    for _ in range(1000):
        chunk = connection.recv(65536)
        reply += chunk
        if not chunk or b"\r\n\r\n" in reply:
            return reply
    return reply


def test_a_plain_http_request_on_a_new_connection_costs_two_round_trips(sandbox):
    def request() -> bytes:
        with socket.create_connection(("127.0.32.1", sandbox.edge_port), timeout=5) as connection:
            connection.sendall(b"GET /health HTTP/1.1\r\nHost: far.test\r\nConnection: close\r\n\r\n")
            return read_response(connection)

    took, reply = elapsed(request)
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert took >= 4 * EDGE_DELAY  # TCP handshake, then the request


def test_a_tls_handshake_costs_the_tcp_and_tls_round_trips_and_each_request_one_more(sandbox):
    context = ssl.create_default_context(cafile=sandbox.ca_bundle)
    started = time.perf_counter()
    with socket.create_connection(("127.0.32.1", sandbox.edge_port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="far.test") as tls:
            handshake = time.perf_counter() - started
            for _ in range(2):  # keep-alive: every request pays its own round trip
                sent = time.perf_counter()
                tls.sendall(b"GET /health HTTP/1.1\r\nHost: far.test\r\n\r\n")
                head = read_response(tls)
                assert head.startswith(b"HTTP/1.1 200 ")
                assert time.perf_counter() - sent >= 2 * EDGE_DELAY
    assert handshake >= 4 * EDGE_DELAY


def test_an_api_get_through_the_official_client_costs_its_round_trips(sandbox):
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=sandbox.kubeconfig)
    try:
        core = client.CoreV1Api(api_client)
        took, namespaces = elapsed(lambda: core.list_namespace(_request_timeout=10))
        assert "production" in [item.metadata.name for item in namespaces.items]
        assert took >= 6 * API_DELAY  # TCP, TLS, the request (a fresh client opens a fresh connection)
        took_again, _ = elapsed(lambda: core.read_namespace("production", _request_timeout=10))
        assert took_again >= 2 * API_DELAY
    finally:
        api_client.close()


def test_one_value_applies_to_every_part(tmp_path):
    path = write(tmp_path, SCENARIO.replace(SCENARIO.splitlines()[5], "latency: 50ms"))
    assert load_scenario(path).latency == LatencySpec(dns=0.05, edges=0.05, apiserver=0.05)


def test_missing_parts_are_no_delay_and_no_latency_is_none(tmp_path):
    path = write(tmp_path, SCENARIO.replace(SCENARIO.splitlines()[5], "latency: {edges: 1s}"))
    assert load_scenario(path).latency == LatencySpec(edges=1.0)
    path = write(tmp_path, SCENARIO.replace(SCENARIO.splitlines()[5], ""), "plain.yaml")
    assert not load_scenario(path).latency


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (
            "latency: fast",
            "latency: expected a duration such as 50ms (at most 2000ms), or a mapping of dns, edges, "
            "apiserver to one, got 'fast'",
        ),
        ("latency: {dns: 3s}", "latency.dns: expected a duration such as 50ms (at most 2000ms), got '3s'"),
        ("latency: {edges: 20}", "latency.edges: expected a duration such as 50ms (at most 2000ms), got 20"),
        ("latency: {disk: 5ms}", "latency.disk: expected one of the keys dns, edges, apiserver, got 'disk'"),
    ],
)
def test_a_bad_latency_is_one_line_naming_file_path_and_expectation(tmp_path, line, error):
    path = write(tmp_path, SCENARIO.replace(SCENARIO.splitlines()[5], line))
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)
    assert str(raised.value) == f"{path}: {error}"


def test_latency_of_the_api_server_is_refused_for_a_real_control_plane(tmp_path):
    with pytest.raises(ScenarioError, match="latency.apiserver is added by the embedded API server only"):
        Sandbox(write(tmp_path, SCENARIO), apiserver="real")
