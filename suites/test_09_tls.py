"""Section 9, tls: on every resolved address the TLS handshake completes with a certificate that is
trusted, names the target and has not expired. Plain-HTTP targets skip the section, saying so.

The certificate checks require ``test_tls_handshake_completes``: without a handshake no certificate
was seen, so they are BLOCKED by it. OpenSSL stops verifying at the first problem (chain, then name,
then dates), so when the chain is untrusted the name and the dates are read from the certificate
fetched without verification; a certificate that could not be fetched at all is not judged.
"""

from __future__ import annotations

import datetime
from collections.abc import Collection
from typing import Any

import pytest

from pytest_reachability import prefetch
from pytest_reachability.probes import tls
from pytest_reachability.probes.failures import Failure

pytestmark = pytest.mark.section("tls")

CERTIFICATE_FAILURES = (Failure.TLS_CERT_EXPIRED, Failure.TLS_HOSTNAME, Failure.TLS_UNTRUSTED)


@pytest.fixture
def handshakes(
    target: Any, dns: Any, reachability_settings: Any, shared_results: Any, evidence: Any
) -> list[tls.TlsResult]:
    """One TLS handshake per resolved address, as the target's host (SNI and verification)."""
    if target.scheme != "https":
        pytest.skip(f"target {target.display} is plain HTTP: TLS is checked for https:// targets")
    addresses = [target.host] if target.is_ip else list(dns.addresses)
    if not addresses:
        pytest.skip(f"{target.host} did not resolve: no address to handshake with (see section dns)")
    results = prefetch.tls_results(target, addresses, reachability_settings, shared_results)
    for result in results:
        evidence.record("tls", result, source="dns")
    return results


def name_matches(pattern: str, host: str) -> bool:
    """A certificate name covers ``host``: exactly, or a ``*.``
    wildcard standing for one whole left-most label."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        label, _, rest = host.partition(".")
        return bool(label) and rest == pattern[2:]
    return pattern == host


def failures_of(results: list[tls.TlsResult], classes: Collection[Failure]) -> str:
    return "; ".join(
        f"{r.address}:{r.port} {r.failure.value} (curl {r.curl_exit}): {r.detail}"
        for r in results
        if r.failure in classes
    )


def test_tls_handshake_completes(handshakes):
    # Certificate problems have their own checks below; this one is about speaking TLS at all.
    broken = [r for r in handshakes if not r.ok and r.failure not in CERTIFICATE_FAILURES]
    assert not broken, (
        f"TLS handshake failed: {failures_of(broken, {r.failure for r in broken})}; "
        f"expected a completed handshake on every address"
    )


@pytest.mark.requires(test="test_tls_handshake_completes")
def test_certificate_is_trusted(handshakes, reachability_settings):
    bundle = tls.trust_bundle(reachability_settings.ca_bundle) or "the system CA store"
    assert not any(r.failure is Failure.TLS_UNTRUSTED for r in handshakes), (
        f"certificate not trusted: {failures_of(handshakes, {Failure.TLS_UNTRUSTED})}; expected a chain to "
        f"{bundle}"
    )


@pytest.mark.requires(test="test_tls_handshake_completes")
def test_certificate_names_the_target(handshakes, target):
    wrong = [
        f"{r.address}:{r.port} {r.failure.value} (curl {r.curl_exit}): {r.detail}"
        for r in handshakes
        if r.failure is Failure.TLS_HOSTNAME
    ]
    unseen = []
    for r in handshakes:
        if r.failure is not Failure.TLS_UNTRUSTED:
            continue  # verified, or verification got past the name (it is checked before the dates)
        names = r.tls.subject_names if r.tls else []
        if not names:
            unseen.append(f"{r.address}:{r.port}")
        elif not any(name_matches(name, target.host) for name in names):
            wrong.append(f"{r.address}:{r.port} certificate (untrusted) names {', '.join(names)}")
    assert not wrong, (
        f"certificate does not name {target.host}: {'; '.join(wrong)}; expected {target.host} among its names"
    )
    if unseen:
        pytest.skip(
            f"certificate of {', '.join(unseen)} not seen (untrusted, and fetching it again failed): "
            f"cannot say whether it names {target.host}"
        )


@pytest.mark.requires(test="test_tls_handshake_completes")
def test_certificate_has_not_expired(handshakes):
    now = datetime.datetime.now(datetime.timezone.utc).isoformat()
    expired, unseen = [], []
    for r in handshakes:
        dates = (r.tls.not_before, r.tls.expires) if r.tls else (None, None)
        if (
            r.failure is Failure.TLS_CERT_EXPIRED
            or (dates[1] and dates[1] < now)
            or (dates[0] and dates[0] > now)
        ):
            expired.append(f"{r.address}:{r.port} certificate valid {dates[0] or '?'} .. {dates[1] or '?'}")
        elif not dates[1]:
            unseen.append(f"{r.address}:{r.port}")
    assert not expired, (
        f"certificate expired or not yet valid: {'; '.join(expired)}; expected it valid now ({now[:19]}Z)"
    )
    if unseen:
        pytest.skip(f"certificate dates of {', '.join(unseen)} not seen: cannot say whether it is valid now")
