"""HTTP probe: DNS -> TCP -> TLS -> HTTP on every address of a target, each classified and timed.

Every address is probed separately with curl ``--resolve`` semantics: the socket goes to the address,
the Host header and the TLS SNI carry the target's name. Each phase is timed the same way
(``dns``, ``connect``, ``tls``, ``ttfb``, ``transfer``, ``total``, in ms) and a failure is named by the
taxonomy in ``failures.py``, with a ``curl`` command that reproduces it.

Raw sockets rather than an HTTP library, because the classes we need (empty reply vs reset vs read
timeout vs TLS on a plain port) are lost behind a library's generic exceptions, and because the body
must stop at a cap however large the answer is.

Example::

    results = probe_target(target, timeout=5)
    for result in results:
        assert result.ok, f"{result.address}: {result.failure.wording} -- {result.detail}\\n{result.curl}"
"""

from __future__ import annotations

import base64
import concurrent.futures
import errno
import json
import os
import shlex
import socket
import ssl
import time
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit, urlunsplit

from .dns import SYSTEM, DnsReport, is_ip_literal, resolve_all
from .failures import Failure

DEFAULT_BODY_CAP = 1 << 20
DEFAULT_EXPECT_STATUS = range(200, 400)
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_HEAD_LIMIT = 64 * 1024
_RECV_SIZE = 64 * 1024
_EXCERPT = 512
_DEFAULT_PORTS = {"http": 80, "https": 443}
USER_AGENT = "pytest-reachability-probe"

BodyExpectation = Callable[[bytes], Any] | Mapping[str, Any] | str | bytes | None


class TargetLike(Protocol):
    """The fields of ``config.Target`` the probe reads."""

    scheme: str
    host: str
    port: int
    username: str | None
    password: str | None

    @property
    def host_header(self) -> str: ...

    def url(self, path: str = ...) -> str: ...


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

    def to_evidence(self) -> dict:
        return {
            "verified": self.verified,
            "version": self.version,
            "expires": self.expires,
            "not_before": self.not_before,
            "subject_names": list(self.subject_names),
            "issuer": self.issuer,
            "error": self.error,
        }


@dataclass
class ProbeResult:
    """One address probed: what answered, how long each phase took and, if it failed, why."""

    address: str
    port: int
    scheme: str
    host: str
    path: str
    status: int | None = None
    reason: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    body_truncated: bool = False
    failure: Failure | None = None
    detail: str = ""
    phases: dict[str, float] = field(default_factory=dict)
    tls: TlsInfo | None = None
    redirects: list[str] = field(default_factory=list)
    curl: str = ""
    bytes_read: int = 0

    @property
    def ok(self) -> bool:
        return self.failure is None

    @property
    def curl_exit(self) -> int | None:
        """The exit code the ``curl`` line gives: 0 when fine, None when curl cannot tell (body mismatch)."""
        return 0 if self.failure is None else self.failure.curl_exit

    @property
    def summary(self) -> str:
        """One line: the failure wording and detail, or the status."""
        if self.failure is None:
            return f"{self.status} {self.reason}".strip()
        return f"{self.failure.value}: {self.detail or self.failure.wording}"

    def body_text(self, limit: int = _EXCERPT) -> str:
        text = self.body[:limit].decode("utf-8", "replace")
        return text + ("..." if len(self.body) > limit or self.body_truncated else "")

    def to_evidence(self) -> dict:
        """Plain JSON types only: this travels on test reports through xdist."""
        return {
            "address": self.address,
            "port": self.port,
            "scheme": self.scheme,
            "host": self.host,
            "path": self.path,
            "status": self.status,
            "reason": self.reason,
            "headers": dict(self.headers),
            "body_excerpt": self.body_text(),
            "body_bytes": len(self.body),
            "body_truncated": self.body_truncated,
            "failure": self.failure.value if self.failure else None,
            "failure_phase": self.failure.phase if self.failure else None,
            "wording": self.failure.wording if self.failure else None,
            "curl_exit": self.curl_exit,
            "detail": self.detail,
            "phases": {name: round(ms, 3) for name, ms in self.phases.items()},
            "tls": self.tls.to_evidence() if self.tls else None,
            "redirects": list(self.redirects),
            "curl": self.curl,
        }


class _Classified(Exception):
    """A probe step ended in a taxonomy class; carries the one-line detail."""

    def __init__(self, failure: Failure, detail: str) -> None:
        super().__init__(detail)
        self.failure = failure
        self.detail = detail


@dataclass
class _Response:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes
    truncated: bool
    bytes_read: int


def trust_bundle(ca_bundle: str | None = None) -> str | None:
    """The CA bundle in force: the argument, else ``REQUESTS_CA_BUNDLE``, else ``SSL_CERT_FILE``, else None (system)."""
    return ca_bundle or os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or None


def tls_context(ca_bundle: str | None = None) -> ssl.SSLContext:
    """A verifying client context trusting ``trust_bundle(ca_bundle)``; ValueError (one line) for a bad path."""
    bundle = trust_bundle(ca_bundle)
    try:
        if bundle and os.path.isdir(bundle):
            return ssl.create_default_context(capath=bundle)
        if bundle:
            return ssl.create_default_context(cafile=bundle)
        return ssl.create_default_context()
    except (OSError, ssl.SSLError) as error:
        raise ValueError(f"CA bundle {bundle!r} cannot be loaded: {getattr(error, 'strerror', None) or error}") from None


def probe_target(
    target: TargetLike,
    *,
    addresses: Iterable[str] | None = None,
    extra_addresses: Iterable[str] = (),
    resolvers: Iterable[str] = (SYSTEM,),
    path: str = "/health",
    timeout: float,
    ca_bundle: str | None = None,
    expect_status: Container[int] = DEFAULT_EXPECT_STATUS,
    expect_body: BodyExpectation = None,
    body_cap: int = DEFAULT_BODY_CAP,
    max_redirects: int = 5,
    dns_report: DnsReport | None = None,
) -> list[ProbeResult]:
    """Probe every address of ``target`` concurrently: the resolved ones (or ``addresses``) plus ``extra_addresses``.

    DNS takes at most ``timeout``, then every address at most ``timeout`` in parallel, so the call
    returns within about twice the timeout. When no address resolves, the one result carries the DNS
    class (address ``""``).
    """
    context = tls_context(ca_bundle) if target.scheme == "https" else None
    dns_ms = 0.0
    if addresses is None:
        if dns_report is None:
            dns_report = resolve_all(target.host, list(resolvers), timeout=timeout)
        dns_ms = dns_report.ms
        found = list(dns_report.addresses)
    else:
        found = list(addresses)
    for extra in extra_addresses:
        if extra not in found:
            found.append(extra)
    if not found:
        return [_unresolved(target, path, dns_report, dns_ms)]
    options = dict(
        path=path, timeout=timeout, ca_bundle=ca_bundle, expect_status=expect_status, expect_body=expect_body,
        body_cap=body_cap, max_redirects=max_redirects, dns_ms=dns_ms, context=context,
    )
    if len(found) == 1:
        return [probe_address(target, found[0], **options)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(found)), thread_name_prefix="probe") as pool:
        return list(pool.map(lambda address: probe_address(target, address, **options), found))


def probe_address(
    target: TargetLike,
    address: str,
    *,
    path: str = "/health",
    timeout: float,
    ca_bundle: str | None = None,
    expect_status: Container[int] = DEFAULT_EXPECT_STATUS,
    expect_body: BodyExpectation = None,
    body_cap: int = DEFAULT_BODY_CAP,
    max_redirects: int = 5,
    dns_ms: float = 0.0,
    context: ssl.SSLContext | None = None,
) -> ProbeResult:
    """GET ``path`` of ``target`` from one ``address`` (curl --resolve semantics), bounded by ``timeout``."""
    started = time.perf_counter()
    deadline = started + timeout
    address = address.strip("[]")
    url = _strip_credentials(target.url(path))
    parts = urlsplit(url)
    result = ProbeResult(
        address=address, port=target.port, scheme=target.scheme, host=target.host,
        path=_request_target(parts), phases={"dns": dns_ms, "connect": 0.0, "tls": 0.0, "ttfb": 0.0, "transfer": 0.0},
    )
    bundle = trust_bundle(ca_bundle)
    if target.scheme == "https" and context is None:
        context = tls_context(ca_bundle)
    hop_url, hop_address = url, address
    visited = [url]
    try:
        for _hop in range(max(0, max_redirects) + 1):
            hop = urlsplit(hop_url)
            hop_host = hop.hostname or target.host
            hop_port = hop.port or _DEFAULT_PORTS.get(hop.scheme, target.port)
            same_origin = hop_host == target.host.lower() and hop_port == target.port
            if hop.scheme == "https" and context is None:
                context = tls_context(ca_bundle)
            response = _fetch(
                address=hop_address, port=hop_port, scheme=hop.scheme, server_name=hop_host,
                host_header=target.host_header if hop_url == url else hop.netloc.rpartition("@")[2],
                request_target=_request_target(hop), authorization=_authorization(target) if same_origin else None,
                deadline=deadline, timeout=timeout, context=context, body_cap=body_cap, result=result,
            )
            result.status, result.reason, result.headers = response.status, response.reason, response.headers
            result.body, result.body_truncated = response.body, response.truncated
            result.bytes_read += response.bytes_read
            location = response.headers.get("location")
            if response.status not in REDIRECT_STATUSES or not location or max_redirects <= 0:
                break
            next_url = urljoin(hop_url, location)
            if next_url in visited:
                chain = " -> ".join(_path_of(u) for u in [*visited, next_url])
                raise _Classified(Failure.TOO_MANY_REDIRECTS, f"redirect loop: {chain}")
            if len(result.redirects) >= max_redirects:
                raise _Classified(Failure.TOO_MANY_REDIRECTS, f"more than {max_redirects} redirects, last to {next_url}")
            visited.append(next_url)
            result.redirects.append(next_url)
            hop_url, hop_address = next_url, _address_for(next_url, target, address, deadline)
        _check_answer(result, expect_status, expect_body)
    except _Classified as classified:
        result.failure, result.detail = classified.failure, classified.detail
    result.phases["total"] = dns_ms + (time.perf_counter() - started) * 1000
    result.curl = curl_command(target, address, url, result.failure, bundle, timeout, max_redirects)
    return result


def curl_command(
    target: TargetLike,
    address: str,
    url: str,
    failure: Failure | None = None,
    ca_bundle: str | None = None,
    timeout: float | None = None,
    max_redirects: int = 5,
) -> str:
    """The ``curl -v --resolve host:port:addr URL`` line that reproduces a probe (never with credentials)."""
    words = ["curl", "-v"]
    if not is_ip_literal(target.host):
        pinned = f"[{address}]" if ":" in address else address
        words += ["--resolve", f"{target.host}:{target.port}:{pinned}"]
    if ca_bundle and urlsplit(url).scheme == "https":
        words += ["--cacert", ca_bundle]
    if failure is Failure.HTTP_STATUS:
        words.append("-f")
    if failure is Failure.TOO_MANY_REDIRECTS:
        words += ["-L", "--max-redirs", str(max_redirects)]
    if timeout and failure in (Failure.TCP_TIMEOUT, Failure.TLS_TIMEOUT, Failure.READ_TIMEOUT):
        words += ["--max-time", f"{timeout:g}"]
    words.append(_strip_credentials(url))
    return " ".join(shlex.quote(word) for word in words)


# --- one request/response exchange -------------------------------------------------------------------


def _fetch(
    *,
    address: str,
    port: int,
    scheme: str,
    server_name: str,
    host_header: str,
    request_target: str,
    authorization: str | None,
    deadline: float,
    timeout: float,
    context: ssl.SSLContext | None,
    body_cap: int,
    result: ProbeResult,
) -> _Response:
    phases = result.phases
    mark = time.perf_counter()
    sock = _connect(address, port, deadline, timeout)
    phases["connect"] += (time.perf_counter() - mark) * 1000
    try:
        if scheme == "https":
            mark = time.perf_counter()
            assert context is not None
            sock = _handshake(sock, context, address, port, server_name, deadline, timeout, result)
            phases["tls"] += (time.perf_counter() - mark) * 1000
        request = [
            f"GET {request_target} HTTP/1.1",
            f"Host: {host_header}",
            f"User-Agent: {USER_AGENT}",
            "Accept: */*",
            "Connection: close",
        ]
        if authorization:
            request.append(f"Authorization: {authorization}")
        payload = ("\r\n".join(request) + "\r\n\r\n").encode("latin-1")
        reader = _Reader(sock, deadline, timeout)
        try:
            _settimeout(sock, deadline, timeout, "sending the request")
            sock.sendall(payload)
        except TimeoutError:
            raise _Classified(Failure.READ_TIMEOUT, f"request not accepted within {timeout:g}s") from None
        except OSError as error:
            # The peer closed or reset before taking the request; curl reports the same as a failed receive.
            raise _Classified(Failure.RECV_ERROR, f"sending the request failed: {_os_error(error)}") from None
        sent = time.perf_counter()
        response = _read_response(reader, body_cap, phases, sent, scheme)
        return response
    finally:
        _close(sock)


def _connect(address: str, port: int, deadline: float, timeout: float) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        sock.connect((address, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    except ConnectionRefusedError:
        _close(sock)
        raise _Classified(Failure.TCP_REFUSED, f"{_hostport(address, port)} refused the connection (RST)") from None
    except TimeoutError:
        _close(sock)
        raise _Classified(Failure.TCP_TIMEOUT, f"no answer to SYN from {_hostport(address, port)} within {timeout:g}s") from None
    except OSError as error:
        _close(sock)
        if error.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            raise _Classified(Failure.TCP_UNREACHABLE, f"{_hostport(address, port)}: {_os_error(error)}") from None
        raise _Classified(Failure.TCP_UNREACHABLE, f"connect to {_hostport(address, port)}: {_os_error(error)}") from None


# OpenSSL verify codes (X509_V_ERR_*) -> class; anything else unverifiable counts as untrusted.
_VERIFY_CLASSES = {
    9: Failure.TLS_CERT_EXPIRED,  # not yet valid
    10: Failure.TLS_CERT_EXPIRED,  # expired
    62: Failure.TLS_HOSTNAME,  # hostname mismatch
    64: Failure.TLS_HOSTNAME,  # IP address mismatch
}


def _handshake(
    sock: socket.socket,
    context: ssl.SSLContext,
    address: str,
    port: int,
    server_name: str,
    deadline: float,
    timeout: float,
    result: ProbeResult,
) -> ssl.SSLSocket:
    tls_sock = context.wrap_socket(sock, server_hostname=server_name.strip("[]"), do_handshake_on_connect=False)
    try:
        _settimeout(tls_sock, deadline, timeout, "TLS handshake")
        tls_sock.do_handshake()
    except ssl.SSLCertVerificationError as error:
        failure = _VERIFY_CLASSES.get(error.verify_code, Failure.TLS_UNTRUSTED)
        message = error.verify_message or str(error)
        result.tls = _unverified_certificate(address, port, server_name, deadline)
        result.tls.error = message
        raise _Classified(failure, f"certificate of {_hostport(address, port)} for {server_name}: {message}") from None
    except TimeoutError:
        raise _Classified(Failure.TLS_TIMEOUT, f"no TLS handshake answer from {_hostport(address, port)} within {timeout:g}s") from None
    except ssl.SSLError as error:
        reason = error.reason or str(error)
        if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST"):
            detail = f"{_hostport(address, port)} did not answer TLS ({reason}): plain HTTP on a TLS port?"
        elif isinstance(error, ssl.SSLEOFError) or reason == "UNEXPECTED_EOF_WHILE_READING":
            detail = f"{_hostport(address, port)} closed the connection during the TLS handshake"
        else:
            detail = f"TLS handshake with {_hostport(address, port)} failed: {reason}"
        result.tls = TlsInfo(verified=False, error=reason)
        raise _Classified(Failure.TLS_HANDSHAKE, detail) from None
    except OSError as error:
        result.tls = TlsInfo(verified=False, error=_os_error(error))
        raise _Classified(Failure.TLS_HANDSHAKE, f"TLS handshake with {_hostport(address, port)}: {_os_error(error)}") from None
    result.tls = _certificate_facts(tls_sock.getpeercert(binary_form=True), verified=True)
    result.tls.version = tls_sock.version()
    return tls_sock


def _unverified_certificate(address: str, port: int, server_name: str, deadline: float) -> TlsInfo:
    """Fetch the certificate once more without verifying, so a report can say what was wrong with it."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    remaining = deadline - time.perf_counter()
    if remaining <= 0:
        return TlsInfo(verified=False)
    try:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as raw:
            raw.settimeout(remaining)
            raw.connect((address, port))
            with context.wrap_socket(raw, server_hostname=server_name.strip("[]")) as tls_sock:
                facts = _certificate_facts(tls_sock.getpeercert(binary_form=True), verified=False)
                facts.version = tls_sock.version()
                return facts
    except (OSError, ValueError):
        return TlsInfo(verified=False)


def _certificate_facts(der: bytes | None, *, verified: bool) -> TlsInfo:
    info = TlsInfo(verified=verified)
    if not der:
        return info
    try:
        from cryptography import x509

        certificate = x509.load_der_x509_certificate(der)
    except Exception as error:  # a certificate cryptography cannot parse still leaves the probe's class intact
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


# --- reading the response -----------------------------------------------------------------------------


class _Reader:
    """Buffered, deadline-bounded reads that turn socket errors into taxonomy classes."""

    def __init__(self, sock: socket.socket, deadline: float, timeout: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.timeout = timeout
        self.buffer = bytearray()
        self.total = 0
        self.eof = False
        self.first_byte_at = 0.0

    def fill(self, what: str) -> bool:
        """Read one more chunk into the buffer; False at EOF."""
        if self.eof:
            return False
        try:
            _settimeout(self.sock, self.deadline, self.timeout, what)
            chunk = self.sock.recv(_RECV_SIZE)
        except TimeoutError:
            raise _Classified(Failure.READ_TIMEOUT, f"{what}: nothing more within {self.timeout:g}s ({self.total} bytes read)") from None
        except ssl.SSLError as error:
            if isinstance(error, ssl.SSLEOFError) or "EOF" in str(error.reason):
                self.eof = True  # TLS peers often close without close_notify; treat as a plain close
                return False
            raise _Classified(Failure.RECV_ERROR, f"{what}: TLS error {error.reason or error}") from None
        except OSError as error:
            hint = ""
            if self.total == 0 and not isinstance(self.sock, ssl.SSLSocket):
                hint = " (a TLS-only port resets plain HTTP like this: try https://)"
            raise _Classified(Failure.RECV_ERROR, f"{what}: {_os_error(error)} after {self.total} bytes{hint}") from None
        if not chunk:
            self.eof = True
            return False
        self.total += len(chunk)
        self.buffer += chunk
        return True

    def take(self, count: int) -> bytes:
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data

    def line(self, what: str, limit: int = _HEAD_LIMIT) -> bytes | None:
        """One CRLF-terminated line without its ending; None at EOF before a full line."""
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                return self.take(end + 1).rstrip(b"\r\n")
            if len(self.buffer) > limit:
                raise _Classified(Failure.BAD_RESPONSE, f"{what}: line longer than {limit} bytes")
            if not self.fill(what):
                return None


def _read_response(reader: _Reader, body_cap: int, phases: dict[str, float], sent: float, scheme: str) -> _Response:
    first_byte: float | None = None
    while True:  # skip interim 1xx answers
        head = _read_head(reader, scheme)
        if first_byte is None:
            first_byte = reader.first_byte_at
            phases["ttfb"] += (first_byte - sent) * 1000
        status, reason, headers = head
        if not (100 <= status < 200) or status == 101:
            break
    if status in (204, 304) or 100 <= status < 200:
        body, truncated = b"", False
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        body, truncated = _read_chunked(reader, body_cap)
    elif "content-length" in headers:
        body, truncated = _read_length(reader, headers["content-length"], body_cap)
    else:
        body, truncated = _read_until_close(reader, body_cap)
    phases["transfer"] += (time.perf_counter() - first_byte) * 1000
    return _Response(status=status, reason=reason, headers=headers, body=body, truncated=truncated, bytes_read=reader.total)


def _read_head(reader: _Reader, scheme: str) -> tuple[int, str, dict[str, str]]:
    what = "waiting for the response"
    while len(reader.buffer) < 5 and b"\n" not in reader.buffer:
        if not reader.fill(what):
            break
        what = "reading the response headers"
    reader.first_byte_at = time.perf_counter()
    if reader.total == 0:
        raise _Classified(Failure.EMPTY_REPLY, "connected and sent the request; the server closed without a byte")
    start = bytes(reader.buffer[:5])
    if start[:1] in (b"\x15", b"\x16") and start[1:2] == b"\x03":
        raise _Classified(Failure.BAD_RESPONSE, f"server answered with a TLS record on a plain-HTTP port ({start[:3].hex()}...): use https://")
    if not b"HTTP/".startswith(start) and not start.startswith(b"HTTP/"):
        raise _Classified(Failure.BAD_RESPONSE, f"not HTTP: first bytes {bytes(reader.buffer[:24])!r}")
    status_line = reader.line("reading the status line")
    if status_line is None:
        raise _Classified(Failure.BAD_RESPONSE, f"closed inside the status line: {bytes(reader.buffer[:40])!r}")
    words = status_line.decode("latin-1").split(" ", 2)
    if len(words) < 2 or not words[0].startswith("HTTP/1.") or not (words[1].isdigit() and len(words[1]) == 3):
        raise _Classified(Failure.BAD_RESPONSE, f"malformed status line {status_line[:60]!r}")
    status, reason = int(words[1]), (words[2] if len(words) > 2 else "")
    headers: dict[str, str] = {}
    size = len(status_line)
    while True:
        line = reader.line("reading the response headers")
        if line is None:
            raise _Classified(Failure.BAD_RESPONSE, f"closed inside the headers after status {status}")
        if not line:
            break
        size += len(line)
        if size > _HEAD_LIMIT:
            raise _Classified(Failure.BAD_RESPONSE, f"headers longer than {_HEAD_LIMIT} bytes")
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon or not name.strip():
            raise _Classified(Failure.BAD_RESPONSE, f"malformed header line {line[:60]!r}")
        key = name.strip().lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return status, reason, headers


def _read_length(reader: _Reader, value: str, body_cap: int) -> tuple[bytes, bool]:
    if not value.strip().isdigit():
        raise _Classified(Failure.BAD_RESPONSE, f"bad Content-Length {value!r}")
    length = int(value)
    wanted = min(length, body_cap)
    while len(reader.buffer) < wanted:
        if not reader.fill("reading the body"):
            raise _Classified(Failure.PARTIAL_BODY, f"closed after {len(reader.buffer)} of {length} body bytes")
    return reader.take(wanted), length > body_cap


def _read_until_close(reader: _Reader, body_cap: int) -> tuple[bytes, bool]:
    while len(reader.buffer) <= body_cap:
        if not reader.fill("reading the body"):
            return reader.take(len(reader.buffer)), False
    return reader.take(body_cap), True


def _read_chunked(reader: _Reader, body_cap: int) -> tuple[bytes, bool]:
    body = bytearray()
    while True:
        line = reader.line("reading a chunk size", limit=4096)
        if line is None:
            raise _Classified(Failure.PARTIAL_BODY, f"closed inside the chunked body after {len(body)} bytes")
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _Classified(Failure.BAD_RESPONSE, f"bad chunk size {line[:20]!r}") from None
        if size == 0:
            for _trailer in range(100):
                trailer = reader.line("reading the trailers")
                if not trailer:  # empty line ends the message; EOF here is tolerated like curl does
                    break
            return bytes(body), False
        room = body_cap - len(body)
        while len(reader.buffer) < min(size, room) + (2 if size <= room else 0):
            if not reader.fill("reading a chunk"):
                raise _Classified(Failure.PARTIAL_BODY, f"closed inside a chunk after {len(body)} bytes")
        if size > room:
            body += reader.take(room)
            return bytes(body), True
        body += reader.take(size)
        reader.take(2)


# --- checks and small pieces ---------------------------------------------------------------------------


def _check_answer(result: ProbeResult, expect_status: Container[int], expect_body: BodyExpectation) -> None:
    if result.status not in expect_status:
        raise _Classified(Failure.HTTP_STATUS, f"status {result.status} {result.reason}".rstrip() + f"; body {result.body_text(80)!r}")
    if expect_body is None:
        return
    problem = body_problem(result.body, expect_body, truncated=result.body_truncated)
    if problem:
        raise _Classified(Failure.BODY_MISMATCH, problem)


def body_problem(body: bytes, expected: BodyExpectation, *, truncated: bool = False) -> str | None:
    """None when ``body`` meets ``expected`` (callable, JSON subset dict, or substring), else one line saying why not."""
    excerpt = body[:80].decode("utf-8", "replace")
    if callable(expected):
        try:
            verdict = expected(body)
        except Exception as error:  # the user's check raising is a mismatch, reported with its message
            return f"body check raised {type(error).__name__}: {error}; body {excerpt!r}"
        return None if verdict else f"body check {getattr(expected, '__name__', 'callable')} rejected {excerpt!r}"
    if isinstance(expected, Mapping):
        try:
            document = json.loads(body)
        except ValueError:
            cut = " (truncated at the cap)" if truncated else ""
            return f"body is not JSON{cut}: {excerpt!r}"
        missing = _json_difference(document, expected)
        return None if missing is None else f"JSON {missing}; body {excerpt!r}"
    needle = expected.encode() if isinstance(expected, str) else bytes(expected)
    return None if needle in body else f"body lacks {needle.decode('utf-8', 'replace')!r}: {excerpt!r}"


def _json_difference(document: Any, expected: Mapping[str, Any], where: str = "") -> str | None:
    if not isinstance(document, Mapping):
        return f"{where or 'document'} is {type(document).__name__}, expected an object"
    for key, want in expected.items():
        here = f"{where}.{key}" if where else key
        if key not in document:
            return f"{here} missing"
        have = document[key]
        if isinstance(want, Mapping):
            nested = _json_difference(have, want, here)
            if nested:
                return nested
        elif have != want:
            return f"{here} is {have!r}, expected {want!r}"
    return None


def _unresolved(target: TargetLike, path: str, report: DnsReport | None, dns_ms: float) -> ProbeResult:
    failure = report.failure if report else Failure.DNS_NO_ANSWER
    reasons = "; ".join(
        f"{answer.resolver}: {answer.rcode}{' ' + answer.error if answer.error else ''}" for answer in (report.answers if report else [])
    )
    url = _strip_credentials(target.url(path))
    return ProbeResult(
        address="", port=target.port, scheme=target.scheme, host=target.host, path=_request_target(urlsplit(url)),
        failure=failure or Failure.DNS_NO_ANSWER, detail=f"{target.host} did not resolve ({reasons or 'no resolver'})",
        phases={"dns": dns_ms, "total": dns_ms}, curl=f"curl -v {shlex.quote(url)}",
    )


def _address_for(url: str, target: TargetLike, pinned: str, deadline: float) -> str:
    """The address for a redirect hop: the pinned one for the same host:port (like curl --resolve), else DNS."""
    parts = urlsplit(url)
    host = parts.hostname or target.host
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme, target.port)
    if host == target.host.lower() and port == target.port:
        return pinned
    if host == target.host.lower() or is_ip_literal(host):
        return pinned if host == target.host.lower() else host
    report = resolve_all(host, [SYSTEM], timeout=max(0.1, deadline - time.perf_counter()))
    if not report.addresses:
        raise _Classified(report.failure or Failure.DNS_NO_ANSWER, f"redirect target {host} did not resolve")
    return report.addresses[0]


def _settimeout(sock: socket.socket, deadline: float, timeout: float, what: str) -> None:
    remaining = deadline - time.perf_counter()
    if remaining <= 0:
        raise TimeoutError(what)
    sock.settimeout(remaining)


def _authorization(target: TargetLike) -> str | None:
    if not getattr(target, "username", None):
        return None
    token = f"{target.username}:{getattr(target, 'password', None) or ''}".encode()
    return "Basic " + base64.b64encode(token).decode("ascii")


def _strip_credentials(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _request_target(parts) -> str:
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _path_of(url: str) -> str:
    parts = urlsplit(url)
    return _request_target(parts) if parts.netloc else url


def _hostport(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _os_error(error: OSError) -> str:
    return error.strerror or type(error).__name__


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass
