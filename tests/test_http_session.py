"""The ``http`` fixture's session against a real HTTPS edge of the sandbox."""

from __future__ import annotations

from collections.abc import Iterator

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
