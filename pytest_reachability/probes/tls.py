"""TLS probe: handshake with every address of a target using the target's name as SNI; chain, name, expiry.

The handshake here is the one the HTTP probe uses for https targets. Certificate problems are split the
way people fix them: expired (renew), wrong host (reissue with the name), untrusted (chain or CA bundle),
handshake (not TLS at all, protocol or cipher mismatch). When verification fails the certificate is
fetched once more without verifying, so the report can still show its names, issuer and dates.

Example::

    for result in probe_target(target, timeout=5, ca_bundle="ca.pem"):
        assert result.ok, f"{result.address}: {result.detail}"
        assert result.tls.expires > "2026-01-01"
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .dns import SYSTEM, DnsReport, is_ip_literal
from .failures import Classified, Failure, ProbeFailure, log_result
from .tcp import (
    Endpoint,
    addresses_to_probe,
    close_quietly,
    connect,
    describe_os_error,
    hostport,
    run_concurrently,
    set_deadline,
)

log = logging.getLogger(__name__)

# OpenSSL verify codes (X509_V_ERR_*) -> class; anything else unverifiable counts as untrusted.
_VERIFY_CLASSES = {
    9: Failure.TLS_CERT_EXPIRED,  # not yet valid
    10: Failure.TLS_CERT_EXPIRED,  # expired
    62: Failure.TLS_HOSTNAME,  # hostname mismatch
    64: Failure.TLS_HOSTNAME,  # IP address mismatch
}
# OpenSSL reasons meaning "the peer does not speak TLS here" (a plain HTTP answer to our ClientHello).
_NOT_TLS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST")

# TLS alert descriptions (RFC 8446 section 6, RFC 5246 section 7.2) by name: the ssl module's, and the two
# TLS 1.3 added that it does not list.
ALERT_NUMBERS = {
    **{
        name[len("ALERT_DESCRIPTION_") :].lower(): int(getattr(ssl, name))
        for name in dir(ssl)
        if name.startswith("ALERT_DESCRIPTION_")
    },
    "certificate_required": 116,
    "no_application_protocol": 120,
}
# OpenSSL names a received alert SSLV3_ALERT_<NAME>, TLSV1_ALERT_<NAME>, TLSV13_ALERT_<NAME> or TLSV1_<NAME>.
_RECEIVED_ALERT = re.compile(r"(?:SSLV3_ALERT_|TLSV13_ALERT_|TLSV1_ALERT_|TLSV1_)([A-Z0-9_]+)")
# What an alert that ends the handshake means for a client that sends no certificate of its own.
ALERT_MEANINGS = {
    "handshake_failure": "the server accepts none of the parameters offered (cipher suites, key exchange "
    "groups, signature algorithms), requires a client certificate (mutual TLS), or refuses the name sent",
    "protocol_version": "the server speaks no TLS version this client offers (TLS 1.2 and 1.3): an old "
    "server, or a listener limited to other versions",
    "unrecognized_name": "the server has no certificate or virtual host for the name sent (SNI)",
    "internal_error": "the server failed on its own side during the handshake (its certificate or key "
    "could not be used: see the listener's logs)",
    "access_denied": "the server refuses this client on its TLS listener (an allow list, or mutual TLS)",
    "certificate_required": "the server requires a client certificate (mutual TLS)",
    "insufficient_security": "the server requires stronger cipher suites than those offered",
    "no_application_protocol": "the server accepts none of the application protocols offered (ALPN)",
}


# The same in OpenSSL's text, for reasons the ssl module has no name for ("tlsv1 alert no application
# protocol").
_ALERT_TEXT_MAX = 200  # OpenSSL's message is one short line; read no further
_RECEIVED_ALERT_TEXT = re.compile(r"\b(?:sslv3|tlsv13|tlsv1) alert ([a-z0-9 ]+?) \(")


def describe_alert(alert: str, unknown: str = "the server ended the handshake") -> str:
    """``"unrecognized_name (112): the server has no certificate ..."``; ``unknown`` for an alert without
    a meaning here."""
    return f"{alert} ({ALERT_NUMBERS.get(alert)}): {ALERT_MEANINGS.get(alert, unknown)}"


def received_alert(reason: str | None, text: str = "") -> str | None:
    """The alert a server ended the handshake with ("handshake_failure"), from OpenSSL's reason, or when
    the ssl module gives none, from the error's text; None for any other failure."""
    match = _RECEIVED_ALERT.fullmatch(reason or "")
    if match:
        name = match.group(1).lower()
    else:
        found = None if reason else _RECEIVED_ALERT_TEXT.search(text[:_ALERT_TEXT_MAX])
        name = found.group(1).replace(" ", "_") if found else None
    return name if name in ALERT_NUMBERS else None


@dataclass
class TlsInfo:
    """What the TLS handshake showed; certificate facts are filled even when verification failed."""

    verified: bool
    version: str | None = None
    expires: str | None = None
    not_before: str | None = None
    subject_names: list[str] = field(default_factory=list)
    issuer: str | None = None
    error: str | None = None
    alert: str | None = None  # the TLS alert the server ended the handshake with ("handshake_failure")
    # When verification failed: the certificates the server sent, in order ({subject, issuer, issuer_url}),
    # so a missing intermediate can be told from an unknown CA.
    chain: list[dict] = field(default_factory=list)

    def to_evidence(self) -> dict:
        return {
            "verified": self.verified,
            "version": self.version,
            "expires": self.expires,
            "not_before": self.not_before,
            "subject_names": list(self.subject_names),
            "issuer": self.issuer,
            "error": self.error,
            "alert": self.alert,
            "chain": [dict(entry) for entry in self.chain],
        }


@dataclass
class TlsResult(Classified):
    """One address: handshake verified or why not, with connect and handshake times."""

    address: str
    port: int
    host: str
    failure: Failure | None = None
    detail: str = ""
    phases: dict[str, float] = field(default_factory=dict)
    tls: TlsInfo | None = None
    curl: str = ""

    def to_evidence(self) -> dict:
        return {
            "address": self.address,
            "port": self.port,
            "host": self.host,
            "failure": self.failure.value if self.failure else None,
            "curl_exit": self.curl_exit,
            "detail": self.detail,
            "phases": {name: round(ms, 3) for name, ms in self.phases.items()},
            "tls": self.tls.to_evidence() if self.tls else None,
            "curl": self.curl,
        }


def trust_bundle(ca_bundle: str | None = None) -> str | None:
    """The CA bundle in force.

    The argument, else ``REQUESTS_CA_BUNDLE``, else ``SSL_CERT_FILE``, else None (system)."""
    return ca_bundle or os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or None


def tls_context(ca_bundle: str | None = None) -> ssl.SSLContext:
    """A verifying client context trusting ``trust_bundle(ca_bundle)``.

    ValueError (one line) for a bad path."""
    bundle = trust_bundle(ca_bundle)
    try:
        if bundle and os.path.isdir(bundle):
            return ssl.create_default_context(capath=bundle)
        if bundle:
            return ssl.create_default_context(cafile=bundle)
        return ssl.create_default_context()
    except (OSError, ssl.SSLError) as error:
        raise ValueError(
            f"CA bundle {bundle!r} cannot be loaded: {getattr(error, 'strerror', None) or error}"
        ) from None


def handshake(
    sock: socket.socket,
    context: ssl.SSLContext,
    *,
    address: str,
    port: int,
    server_name: str,
    deadline: float,
    timeout: float,
) -> tuple[ssl.SSLSocket, TlsInfo]:
    """Wrap ``sock`` and handshake before ``deadline``; ProbeFailure (with ``facts['tls']``) when it fails."""
    tls_sock = context.wrap_socket(
        sock, server_hostname=server_name.strip("[]"), do_handshake_on_connect=False
    )
    try:
        return _complete_handshake(tls_sock, address, port, server_name, deadline, timeout)
    except BaseException:
        close_quietly(
            tls_sock
        )  # wrap_socket took over the descriptor: the caller's socket is already detached
        raise


def _complete_handshake(
    tls_sock: ssl.SSLSocket, address: str, port: int, server_name: str, deadline: float, timeout: float
) -> tuple[ssl.SSLSocket, TlsInfo]:
    where = hostport(address, port)
    try:
        set_deadline(tls_sock, deadline, "TLS handshake")
        tls_sock.do_handshake()
    except ssl.SSLCertVerificationError as error:
        failure = _VERIFY_CLASSES.get(error.verify_code, Failure.TLS_UNTRUSTED)
        message = error.verify_message or str(error)
        info = _unverified_certificate(address, port, server_name, deadline)
        info.error = message
        raise ProbeFailure(
            failure, f"certificate of {where} for {server_name}: {message}", tls=info
        ) from None
    except TimeoutError:
        raise ProbeFailure(
            Failure.TLS_TIMEOUT,
            f"no TLS handshake answer from {where} within {timeout:g}s",
            tls=TlsInfo(verified=False, error="timeout"),
        ) from None
    except ssl.SSLError as error:
        reason = error.reason or str(error)
        if reason in _NOT_TLS:
            detail = f"{where} did not answer TLS ({reason}): plain HTTP on a TLS port?"
        elif isinstance(error, ssl.SSLEOFError) or reason == "UNEXPECTED_EOF_WHILE_READING":
            detail = f"{where} closed the connection during the TLS handshake"
        else:
            detail = f"TLS handshake with {where} failed: {reason}"
        alert = received_alert(error.reason, str(error))
        if alert is not None:
            detail = f"TLS handshake with {where} failed: the server sent alert {describe_alert(alert)}"
        info = TlsInfo(verified=False, error=reason, alert=alert)
        raise ProbeFailure(Failure.TLS_HANDSHAKE, detail, tls=info) from None
    except OSError as error:
        raise ProbeFailure(
            Failure.TLS_HANDSHAKE,
            f"TLS handshake with {where}: {describe_os_error(error)}",
            tls=TlsInfo(verified=False, error=describe_os_error(error)),
        ) from None
    info = certificate_facts(tls_sock.getpeercert(binary_form=True), verified=True)
    info.version = tls_sock.version()
    return tls_sock, info


def probe_address(
    target: Endpoint,
    address: str,
    *,
    timeout: float,
    ca_bundle: str | None = None,
    dns_ms: float = 0.0,
    context: ssl.SSLContext | None = None,
) -> TlsResult:
    """Connect to ``address`` and handshake as the target's host (SNI, verification).

    Bounded by ``timeout``."""
    address = address.strip("[]")
    started = time.perf_counter()
    deadline = started + timeout
    context = context or tls_context(ca_bundle)
    result = TlsResult(
        address=address,
        port=target.port,
        host=target.host,
        phases={"dns": dns_ms, "connect": 0.0, "tls": 0.0},
    )
    log.debug(
        "tls %s: connecting, then handshaking as %s (timeout %gs)",
        hostport(address, target.port),
        target.host,
        timeout,
    )
    try:
        sock = connect(address, target.port, deadline=deadline, timeout=timeout)
        result.phases["connect"] = (time.perf_counter() - started) * 1000
        mark = time.perf_counter()
        try:
            tls_sock, result.tls = handshake(
                sock,
                context,
                address=address,
                port=target.port,
                server_name=target.host,
                deadline=deadline,
                timeout=timeout,
            )
            close_quietly(tls_sock)
        finally:
            result.phases["tls"] = (time.perf_counter() - mark) * 1000
            close_quietly(sock)
    except ProbeFailure as failed:
        result.failure, result.detail = failed.failure, failed.detail
        result.tls = failed.facts.get("tls", result.tls)
    result.phases["total"] = dns_ms + (time.perf_counter() - started) * 1000
    words = ["curl", "-v", "-o", "/dev/null"]
    if result.failure is Failure.TCP_TIMEOUT or result.failure is Failure.TLS_TIMEOUT:
        words += ["--max-time", f"{timeout:g}"]
    if trust_bundle(ca_bundle):
        words += ["--cacert", trust_bundle(ca_bundle)]
    url_host = f"[{target.host}]" if ":" in target.host else target.host
    if not is_ip_literal(target.host):
        pinned = f"[{address}]" if ":" in address else address
        words += ["--resolve", f"{target.host}:{target.port}:{pinned}"]
    words.append(f"https://{url_host}:{target.port}/")
    result.curl = " ".join(shlex.quote(word) for word in words)
    log_result(log, f"tls {hostport(address, target.port)}", result)
    return result


def probe_target(
    target: Endpoint,
    *,
    addresses: Iterable[str] | None = None,
    extra_addresses: Iterable[str] = (),
    resolvers: Iterable[str] = (SYSTEM,),
    timeout: float,
    ca_bundle: str | None = None,
    dns_report: DnsReport | None = None,
) -> list[TlsResult]:
    """Handshake with every resolved (or given) address plus ``extra_addresses`` concurrently."""
    context = tls_context(ca_bundle)
    found, dns_ms, report = addresses_to_probe(
        target, addresses, extra_addresses, resolvers, timeout, dns_report
    )
    unresolved = []
    if (report is not None and not report.addresses) or not found:
        failure = (report.failure if report else None) or Failure.DNS_NO_ANSWER
        unresolved = [
            TlsResult(
                address="",
                port=target.port,
                host=target.host,
                failure=failure,
                detail=f"{target.host} did not resolve",
                phases={"dns": dns_ms, "total": dns_ms},
            )
        ]
    if not found:
        return unresolved
    return unresolved + run_concurrently(
        lambda address: probe_address(
            target, address, timeout=timeout, ca_bundle=ca_bundle, dns_ms=dns_ms, context=context
        ),
        found,
    )


def probe(target: Endpoint, settings: Any, **options: Any) -> list[TlsResult]:
    """The uniform probe signature: ``settings`` supplies ``resolvers``, ``probe_timeout`` and ``ca_bundle``;
    ``options`` are :func:`probe_target`'s."""
    return probe_target(
        target,
        **{
            "resolvers": settings.resolvers,
            "timeout": settings.probe_timeout,
            "ca_bundle": settings.ca_bundle,
            **options,
        },
    )


def _unverified_certificate(address: str, port: int, server_name: str, deadline: float) -> TlsInfo:
    """Fetch the certificate once more without verifying, so a report can say what was wrong with it."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as raw:
            set_deadline(raw, deadline, "certificate fetch")
            raw.connect((address, port))
            with context.wrap_socket(raw, server_hostname=server_name.strip("[]")) as tls_sock:
                facts = certificate_facts(tls_sock.getpeercert(binary_form=True), verified=False)
                facts.version = tls_sock.version()
                facts.chain = presented_chain(tls_sock)
                return facts
    except (OSError, ValueError):
        return TlsInfo(verified=False)


def presented_chain(tls_sock: ssl.SSLSocket, limit: int = 10) -> list[dict]:
    """The certificates the server sent, in order: subject, issuer and the issuer's certificate URL (AIA).

    Python 3.13 has ``SSLSocket.get_unverified_chain()``; 3.10-3.12 have it on the private ``_sslobj``.
    """
    getter = getattr(tls_sock, "get_unverified_chain", None) or getattr(
        getattr(tls_sock, "_sslobj", None), "get_unverified_chain", None
    )
    if getter is None:
        return []
    try:
        from cryptography import x509
        from cryptography.x509.oid import AuthorityInformationAccessOID

        chain = []
        for item in list(getter() or [])[:limit]:
            der = item if isinstance(item, bytes) else item.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
            certificate = x509.load_der_x509_certificate(der)
            issuer_url = None
            try:
                access = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
                issuer_url = next(
                    (
                        str(d.access_location.value)
                        for d in access
                        if d.access_method == AuthorityInformationAccessOID.CA_ISSUERS
                    ),
                    None,
                )
            except x509.ExtensionNotFound:
                pass
            chain.append(
                {
                    "subject": certificate.subject.rfc4514_string(),
                    "issuer": certificate.issuer.rfc4514_string(),
                    "issuer_url": issuer_url,
                }
            )
        return chain
    except Exception:  # noqa: BLE001 - the chain only sharpens a report; a parse problem must not fail the probe
        return []


def certificate_facts(der: bytes | None, *, verified: bool) -> TlsInfo:
    """Names, issuer and validity of a DER certificate."""
    info = TlsInfo(verified=verified)
    if not der:
        return info
    try:
        from cryptography import x509

        certificate = x509.load_der_x509_certificate(der)
    except (
        Exception
    ) as error:  # a certificate cryptography cannot parse still leaves the probe's class intact
        info.error = f"certificate not parsed: {error}"
        return info
    info.expires = certificate.not_valid_after_utc.isoformat()
    info.not_before = certificate.not_valid_before_utc.isoformat()
    info.issuer = certificate.issuer.rfc4514_string()
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        info.subject_names = [str(n) for n in names.get_values_for_type(x509.DNSName)]
        info.subject_names += [str(n) for n in names.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        common = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        info.subject_names = [str(attribute.value) for attribute in common]
    return info
