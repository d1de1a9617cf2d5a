"""The ``http`` fixture's session against a real HTTPS edge of the sandbox."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Callable, Iterator

import pytest
import requests

from pytest_reachability.config import parse_target
from pytest_reachability.evidence import Evidence, set_current
from pytest_reachability.http_session import TargetSession
from pytest_reachability.sandbox import Sandbox, SandboxInfo


@pytest.fixture(scope="module")
def https_world() -> Iterator[SandboxInfo]:
    with Sandbox("healthy-https", postgres=False) as info:
        yield info


def test_connects_to_the_pinned_address_with_the_targets_name(https_world: SandboxInfo) -> None:
    target = parse_target(https_world.target)
    with TargetSession(target, timeout=5, ca_bundle=https_world.ca_bundle, address="127.0.10.53") as session:
        response = session.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "healthy"


def test_configured_bundle_wins_over_requests_ca_bundle(
    https_world: SandboxInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    # requests would otherwise let these variables replace Session.verify and reject the sandbox's CA.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    target = parse_target(https_world.target)
    with TargetSession(target, timeout=5, ca_bundle=https_world.ca_bundle, address="127.0.10.53") as session:
        assert session.get("/health").status_code == 200
    with (
        TargetSession(target, timeout=5, address="127.0.10.53") as session,
        pytest.raises(requests.exceptions.SSLError),
    ):
        session.get("/health")  # without the bundle the sandbox CA is untrusted: the check is real


def test_responses_are_recorded_as_evidence(https_world: SandboxInfo) -> None:
    target = parse_target(https_world.target)
    evidence = Evidence()
    set_current(evidence)
    try:
        with TargetSession(
            target, timeout=5, ca_bundle=https_world.ca_bundle, address="127.0.10.53"
        ) as session:
            session.get("/health")
            with pytest.raises(requests.exceptions.ConnectionError):
                session.get(
                    target.url("/health").replace("97v.test", "127.0.0.1").replace(str(target.port), "1")
                )
    finally:
        set_current(None)
    first, second = evidence.of_kind("http")
    assert first["status"] == 200 and first["url"].endswith("/health") and first["method"] == "GET"
    assert "ConnectionError" in second["error"]


def test_the_environments_bundle_is_trusted_when_none_is_configured(
    https_world: SandboxInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert https_world.ca_bundle is not None
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", https_world.ca_bundle)
    target = parse_target(https_world.target)
    with TargetSession(target, timeout=5, address="127.0.10.53") as session:
        assert session.get("/health").status_code == 200


class _Answer(http.server.BaseHTTPRequestHandler):
    """Answers every GET with its own name and the request line it saw."""

    name = "direct"

    def do_GET(self) -> None:  # noqa: N802 - the handler's protocol
        body = f"{self.name} {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _Proxy(_Answer):
    name = "proxy"


@contextlib.contextmanager
def _serving(handler: type, host: str) -> Iterator[int]:
    server = http.server.ThreadingHTTPServer((host, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize(
    ("no_proxy", "through"),
    [(None, "proxy"), ("127.0.0.0/8", "direct"), ("127.0.0.3", "direct"), ("127.0.0.4,other.test", "proxy")],
)
def test_the_environments_proxy_and_no_proxy_hold_as_requests_reads_them(
    monkeypatch: pytest.MonkeyPatch, no_proxy: str | None, through: str
) -> None:
    with _serving(_Proxy, "127.0.0.1") as proxy_port, _serving(_Answer, "127.0.0.3") as port:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy_port}")
        for name in ("NO_PROXY", "no_proxy", "http_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        if no_proxy is not None:
            monkeypatch.setenv("NO_PROXY", no_proxy)
        with TargetSession(parse_target(f"http://127.0.0.3:{port}"), timeout=5) as session:
            texts = [session.get("/health").text for _ in range(2)]
    # A proxy is sent the absolute URL; the server itself, the path.
    expected = f"proxy http://127.0.0.3:{port}/health" if through == "proxy" else "direct /health"
    assert texts == [expected, expected]


def test_requests_from_threads_survive_a_changing_environment(
    under_a_changing_environment: Callable[[Callable[[], None], int], list[BaseException]],
) -> None:
    # requests reads proxies from the environment on every request unless told otherwise.
    with _serving(_Answer, "127.0.0.1") as port:
        target = parse_target(f"http://127.0.0.1:{port}")

        def send() -> None:
            with TargetSession(target, timeout=5) as session:
                for _ in range(100):
                    session.get("/health")

        assert under_a_changing_environment(send, 2) == []
