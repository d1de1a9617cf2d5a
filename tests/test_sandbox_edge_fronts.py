"""Sandbox edges that answer like an ingress-nginx controller (its HTML error pages, its Server header), with
headers of their own (Retry-After), and certificates that are not yet valid or whose wildcard is one label
too high: checked with curl and the plugin's TLS probe, as a client meets them."""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess

import pytest

from pytest_reachability.sandbox.certs import write_sandbox_certificates
from pytest_reachability.sandbox.edges import EdgeServer, server_tls_context
from pytest_reachability.sandbox.scenario import Behaviour, ScenarioError, load_scenario

HOST = "pay.eu.shop.test"


def require_curl() -> str:
    path = shutil.which("curl")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("curl is required in CI (apt-get install curl)")
        pytest.skip("curl is not installed")
    return path


def curl_head(
    port: int, address: str, *, scheme: str = "http", ca_file: str | None = None
) -> subprocess.CompletedProcess:
    command = [require_curl(), "-sS", "-i", "--max-time", "3", "--resolve", f"{HOST}:{port}:{address}"]
    if ca_file:
        command += ["--cacert", ca_file]
    return subprocess.run(
        [*command, f"{scheme}://{HOST}:{port}/health"], capture_output=True, text=True, timeout=20
    )


@pytest.fixture
def edge_of():
    started: list[EdgeServer] = []

    def start(address: str, behaviour: Behaviour, **options) -> EdgeServer:
        edge = EdgeServer(address, behaviour, hosts=[HOST], io_timeout=3, **options)
        edge.start()
        started.append(edge)
        return edge

    yield start
    for edge in started:
        edge.stop()


def test_nginx_front_answers_errors_with_its_own_page_and_one_server_header(edge_of):
    edge = edge_of("127.0.23.1", Behaviour("http_status", status=502), server="nginx")
    answer = curl_head(edge.port, "127.0.23.1")
    head, _, body = answer.stdout.partition("\n\n")
    assert head.startswith("HTTP/1.1 502 Bad Gateway")
    assert [line for line in head.splitlines() if line.lower().startswith("server:")] == ["Server: nginx"]
    assert "Content-Type: text/html" in head
    assert "<title>502 Bad Gateway</title>" in body and "<center>nginx</center>" in body


def test_nginx_front_passes_healthy_answers_through(edge_of):
    edge = edge_of("127.0.23.2", Behaviour("healthy"), server="nginx")
    head, _, body = curl_head(edge.port, "127.0.23.2").stdout.partition("\n\n")
    assert head.startswith("HTTP/1.1 200") and "Server: nginx" in head and body.startswith("{")


def test_extra_headers_ride_on_every_answer(edge_of):
    edge = edge_of("127.0.23.3", Behaviour("http_status", status=429), headers=[("Retry-After", "30")])
    head = curl_head(edge.port, "127.0.23.3").stdout.partition("\n\n")[0]
    assert head.startswith("HTTP/1.1 429") and "Retry-After: 30" in head and "Server: uvicorn" in head


@pytest.mark.parametrize(
    "kind, words",
    [
        ("not_yet_valid", "not yet valid"),
        ("wildcard_parent", "hostname mismatch"),
    ],
)
def test_certificates_fail_for_their_one_reason(tmp_path, edge_of, kind, words):
    from pytest_reachability.probes import tls as tls_probe

    certificates = write_sandbox_certificates(tmp_path, HOST)
    files = certificates.edges[kind]
    edge = edge_of(
        "127.0.23.4", Behaviour("healthy"), tls_context=server_tls_context(files.cert_file, files.key_file)
    )
    answer = curl_head(edge.port, "127.0.23.4", scheme="https", ca_file=certificates.ca_file)
    assert answer.returncode == 60, answer.stderr

    class Target:
        host, port = HOST, edge.port

    result = tls_probe.probe_address(Target(), "127.0.23.4", timeout=3, ca_bundle=certificates.ca_file)
    assert (
        not result.ok and words in (result.detail or "").lower() + " " + str(result.tls.error or "").lower()
    )
    if kind == "wildcard_parent":
        assert result.failure.value == "tls_hostname" and result.tls.subject_names == ["*.shop.test"]
    else:
        starts = datetime.datetime.fromisoformat(result.tls.not_before)
        assert result.failure.value == "tls_cert_expired" and starts > datetime.datetime.now(
            datetime.timezone.utc
        )


def test_scenario_schema_takes_server_and_headers_and_refuses_bad_ones(tmp_path):
    def scenario(edge: str) -> str:
        path = tmp_path / "edge.yaml"
        path.write_text(
            f"name: edge\ndescription: d\ntarget: {{host: {HOST}}}\n"
            f"dns: {{primary: {{records: {{{HOST}: {{A: [127.0.23.5]}}}}}}}}\nedges:\n  - {edge}\n"
        )
        return str(path)

    loaded = load_scenario(
        scenario(
            "{address: 127.0.23.5, behaviour: {http_status: 503}, server: nginx, "
            "headers: {Retry-After: 3600}, tls: not_yet_valid}"
        )
    )
    edge = loaded.edges[0]
    assert (edge.server, edge.headers, edge.tls) == ("nginx", (("Retry-After", "3600"),), "not_yet_valid")
    with pytest.raises(ScenarioError, match=r"edges\[0\]\.server: expected one of nginx, got 'apache'"):
        load_scenario(scenario("{address: 127.0.23.5, behaviour: healthy, server: apache}"))
    with pytest.raises(ScenarioError, match=r"edges\[0\]\.headers: expected a mapping of header names"):
        load_scenario(scenario('{address: 127.0.23.5, behaviour: healthy, headers: {"Bad Name": x}}'))
