"""Section 9, tls: on every resolved address the TLS handshake completes with a certificate that is
trusted, names the target and has not expired. Plain-HTTP targets skip the section, saying so.
"""

from __future__ import annotations

import datetime
from collections.abc import Collection
from typing import Any

import pytest

from pytest_reachability.probes import tls
from pytest_reachability.probes.failures import Failure

pytestmark = pytest.mark.section("tls")

CERTIFICATE_FAILURES = (Failure.TLS_CERT_EXPIRED, Failure.TLS_HOSTNAME, Failure.TLS_UNTRUSTED)


@pytest.fixture
def handshakes(target: Any, dns: Any, reachability_settings: Any, shared_results: Any,
               evidence: Any) -> list[tls.TlsResult]:
    """One TLS handshake per resolved address, as the target's host (SNI and verification)."""
    if target.scheme != "https":
        pytest.skip(f"target {target.display} is plain HTTP: TLS is checked for https:// targets")
    addresses = [target.host] if target.is_ip else list(dns.addresses)
    if not addresses:
        pytest.skip(f"{target.host} did not resolve: no address to handshake with (see section dns)")
    results = shared_results.get(
        f"suite-tls:{target.host}:{target.port}:{addresses}",
        lambda: tls.probe_target(target, addresses=addresses, timeout=reachability_settings.probe_timeout,
                                 ca_bundle=reachability_settings.ca_bundle),
    )
    for result in results:
        evidence.record("tls", {**result.to_evidence(), "source": "dns"})
    return results


def failures_of(results: list[tls.TlsResult], classes: Collection[Failure]) -> str:
    return "; ".join(f"{r.address}:{r.port} {r.failure.value} (curl {r.curl_exit}): {r.detail}"
                     for r in results if r.failure in classes)


def test_tls_handshake_completes(handshakes):
    # Certificate problems have their own checks below; this one is about speaking TLS at all.
    broken = [r for r in handshakes if not r.ok and r.failure not in CERTIFICATE_FAILURES]
    assert not broken, (f"TLS handshake failed: {failures_of(broken, {r.failure for r in broken})}; "
                        f"expected a completed handshake on every address")


def test_certificate_is_trusted(handshakes, reachability_settings):
    bundle = tls.trust_bundle(reachability_settings.ca_bundle) or "the system CA store"
    assert not any(r.failure is Failure.TLS_UNTRUSTED for r in handshakes), (
        f"certificate not trusted: {failures_of(handshakes, {Failure.TLS_UNTRUSTED})}; expected a chain to {bundle}")


def test_certificate_names_the_target(handshakes, target):
    assert not any(r.failure is Failure.TLS_HOSTNAME for r in handshakes), (
        f"certificate does not name {target.host}: {failures_of(handshakes, {Failure.TLS_HOSTNAME})}; "
        f"expected {target.host} among its names")


def test_certificate_has_not_expired(handshakes):
    now = datetime.datetime.now(datetime.timezone.utc).isoformat()
    expired = [
        f"{r.address}:{r.port} certificate valid {r.tls.not_before if r.tls else '?'} .. {r.tls.expires if r.tls else '?'}"
        for r in handshakes
        if r.failure is Failure.TLS_CERT_EXPIRED or (r.tls and r.tls.expires and r.tls.expires < now)
    ]
    assert not expired, f"certificate expired or not yet valid: {'; '.join(expired)}; expected it valid now ({now[:19]}Z)"
