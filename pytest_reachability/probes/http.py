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
import ipaddress
import logging
import re
import shlex
import socket
import ssl
import time
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit, urlunsplit

from .. import jsontext
from .dns import SYSTEM, DnsReport, is_ip_literal
from .failures import Classified, Failure, ProbeFailure, log_result
from .tcp import (
    addresses_to_probe,
    close_quietly,
    connect,
    describe_os_error,
    hostport,
    run_concurrently,
    set_deadline,
)
from .tls import (
    TlsInfo,
    describe_alert,
    handshake,
    received_alert,
    tls_context,
    trust_bundle,
)

log = logging.getLogger(__name__)

__all__ = [
    "ProbeResult",
    "TlsInfo",
    "body_problem",
    "curl_command",
    "probe",
    "probe_address",
    "probe_target",
    "tls_context",
    "trust_bundle",
]

DEFAULT_BODY_CAP = 1 << 20
DEFAULT_EXPECT_STATUS = range(200, 400)
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# What a peer may send before the probe gives up, as curl does: one header line up to 100 kB, all headers
# up to 300 kB. What is *kept* for evidence is smaller: the first KEPT_HEADERS headers, each value cut at
# KEPT_HEADER_VALUE characters (Location, Content-Length and Transfer-Encoding are read whole regardless).
MAX_HEADER_LINE = 100 * 1024
MAX_HEADER_TOTAL = 300 * 1024
KEPT_HEADERS = 100
KEPT_HEADER_VALUE = 1024
MAX_INTERIM_RESPONSES = 20
REDIRECT_SCHEMES = ("http", "https")
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
class ProbeResult(Classified):
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
    headers_dropped: int = 0  # headers received beyond KEPT_HEADERS, not kept

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
            "headers_dropped": self.headers_dropped,
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


@dataclass
class _Response:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes
    truncated: bool
    bytes_read: int
    location: str | None = None
    headers_dropped: int = 0


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
    """Probe every address of ``target`` concurrently.

    The addresses are the resolved ones (or ``addresses``) plus ``extra_addresses``.

    DNS takes at most ``timeout``, then every address at most ``timeout`` in parallel, so the call
    returns within about twice the timeout. When the name resolves nowhere, a first result with
    address ``""`` carries the DNS class, followed by the extra addresses' results.
    """
    context = tls_context(ca_bundle) if target.scheme == "https" else None
    found, dns_ms, dns_report = addresses_to_probe(
        target, addresses, extra_addresses, resolvers, timeout, dns_report
    )
    # A name that resolves nowhere is a failure of its own, even when extra addresses still answer.
    unresolved = (
        [_unresolved(target, path, dns_report, dns_ms)]
        if dns_report is not None and not dns_report.addresses
        else []
    )
    if not found:
        return unresolved or [_unresolved(target, path, dns_report, dns_ms)]
    options = dict(
        path=path,
        timeout=timeout,
        ca_bundle=ca_bundle,
        expect_status=expect_status,
        expect_body=expect_body,
        body_cap=body_cap,
        max_redirects=max_redirects,
        dns_ms=dns_ms,
        context=context,
    )
    return unresolved + run_concurrently(lambda address: probe_address(target, address, **options), found)


def probe(target: TargetLike, settings: Any, **options: Any) -> list[ProbeResult]:
    """The uniform probe signature.

    ``settings`` supplies resolvers, health_path, probe_timeout and ca_bundle; ``options`` are
    :func:`probe_target`'s (``addresses``, ``path``, ``expect_body``, ...) and win over them."""
    return probe_target(
        target,
        **{
            "resolvers": settings.resolvers,
            "path": settings.health_path,
            "timeout": settings.probe_timeout,
            "ca_bundle": settings.ca_bundle,
            **options,
        },
    )


def _record_failure(result: ProbeResult, classified: ProbeFailure) -> None:
    result.failure, result.detail = classified.failure, classified.detail
    late_alert = classified.facts.get("alert")
    if late_alert and result.tls is not None:
        # TLS 1.3: the server judges the client's certificate (or its absence) after the client's side of
        # the handshake is done, and says so with an alert on the first read.
        result.tls.alert = str(late_alert)


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
        address=address,
        port=target.port,
        scheme=target.scheme,
        host=target.host,
        path=_request_target(parts),
        phases={"dns": dns_ms, "connect": 0.0, "tls": 0.0, "ttfb": 0.0, "transfer": 0.0},
    )
    bundle = trust_bundle(ca_bundle)
    if target.scheme == "https" and context is None:
        context = tls_context(ca_bundle)
    hop_url = url
    visited = [url]
    redirect_protocols = None
    log.debug("http %s: GET %s (timeout %gs)", hostport(address, target.port), _shown_url(url), timeout)
    try:
        for _hop in range(max(0, max_redirects) + 1):
            hop = urlsplit(hop_url)
            hop_host = (hop.hostname or target.host).lower()
            hop_port = hop.port or _DEFAULT_PORTS[hop.scheme]
            # Credentials go only where the user sent them: same scheme, host and port (curl does the same).
            same_origin = (hop.scheme, hop_host, hop_port) == (
                target.scheme,
                target.host.lower(),
                target.port,
            )
            if hop.scheme == "https" and context is None:
                context = tls_context(ca_bundle)
            response = _fetch(
                address=address,
                port=hop_port,
                scheme=hop.scheme,
                server_name=hop_host,
                host_header=target.host_header if hop_url == url else hop.netloc.rpartition("@")[2],
                request_target=_request_target(hop),
                authorization=_authorization(target) if same_origin else None,
                deadline=deadline,
                timeout=timeout,
                context=context,
                body_cap=body_cap,
                result=result,
            )
            result.status, result.reason, result.headers = response.status, response.reason, response.headers
            result.body, result.body_truncated = response.body, response.truncated
            result.headers_dropped = response.headers_dropped
            result.bytes_read += response.bytes_read
            location = response.location
            if response.status not in REDIRECT_STATUSES or not location or max_redirects <= 0:
                break
            next_url = redirect_url(hop_url, location)
            try:
                check_redirect(target, hop_url, next_url)
            except ProbeFailure as refused:
                redirect_protocols = refused.facts.get("protocols")
                raise
            if next_url in visited:
                chain = " -> ".join(_path_of(u) for u in [*visited, next_url])
                raise ProbeFailure(Failure.TOO_MANY_REDIRECTS, f"redirect loop: {chain}")
            if len(result.redirects) >= max_redirects:
                raise ProbeFailure(
                    Failure.TOO_MANY_REDIRECTS,
                    f"more than {max_redirects} redirects, last to {_shown_url(next_url)}",
                )
            visited.append(next_url)
            result.redirects.append(next_url)
            log.debug(
                "http %s: HTTP %s, redirected to %s",
                hostport(address, target.port),
                response.status,
                _shown_url(next_url),
            )
            hop_url = next_url
        _check_answer(result, expect_status, expect_body)
    except ProbeFailure as classified:
        _record_failure(result, classified)
    result.phases["total"] = dns_ms + (time.perf_counter() - started) * 1000
    result.curl = curl_command(
        target,
        address,
        url,
        result.failure,
        bundle,
        timeout,
        max_redirects,
        redirect_protocols=redirect_protocols,
    )
    if result.status is not None:
        log.debug(
            "http %s: HTTP %s %s, %d bytes read",
            hostport(address, target.port),
            result.status,
            result.reason,
            result.bytes_read,
        )
    log_result(log, f"http {hostport(address, target.port)}", result)
    return result


def curl_command(
    target: TargetLike,
    address: str,
    url: str,
    failure: Failure | None = None,
    ca_bundle: str | None = None,
    timeout: float | None = None,
    max_redirects: int = 5,
    *,
    redirect_protocols: str | None = None,
) -> str:
    """The ``curl -v --resolve host:port:addr URL`` line that reproduces a probe (never with credentials).

    A refused redirect is reproduced with ``-L --proto-redir``, curl's own switch for the same refusal.
    """
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
    if failure is Failure.REDIRECT_UNSAFE:
        words += [
            "-L",
            "--max-redirs",
            str(max_redirects),
            "--proto-redir",
            redirect_protocols or "=http,https",
        ]
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
    sock = connect(address, port, deadline=deadline, timeout=timeout)
    phases["connect"] += (time.perf_counter() - mark) * 1000
    try:
        if scheme == "https":
            mark = time.perf_counter()
            assert context is not None
            try:
                sock, result.tls = handshake(
                    sock,
                    context,
                    address=address,
                    port=port,
                    server_name=server_name,
                    deadline=deadline,
                    timeout=timeout,
                )
            except ProbeFailure as failed:
                result.tls = failed.facts.get("tls")
                raise
            finally:
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
            set_deadline(sock, deadline, "sending the request")
            sock.sendall(payload)
        except TimeoutError:
            raise ProbeFailure(Failure.READ_TIMEOUT, f"request not accepted within {timeout:g}s") from None
        except OSError as error:
            # The peer closed or reset before taking the request; curl reports the same as a failed receive.
            raise ProbeFailure(
                Failure.RECV_ERROR, f"sending the request failed: {describe_os_error(error)}"
            ) from None
        sent = time.perf_counter()
        return _read_response(reader, body_cap, phases, sent)
    finally:
        close_quietly(sock)


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
            set_deadline(self.sock, self.deadline, what)
            chunk = self.sock.recv(_RECV_SIZE)
        except TimeoutError:
            raise ProbeFailure(
                Failure.READ_TIMEOUT,
                f"{what}: nothing more within {self.timeout:g}s ({self.total} bytes read)",
            ) from None
        except ssl.SSLError as error:
            if isinstance(error, ssl.SSLEOFError) or "EOF" in str(error.reason):
                self.eof = True  # TLS peers often close without close_notify; treat as a plain close
                return False
            alert = received_alert(error.reason, str(error))  # TLS 1.3 asks for a client certificate late
            if alert is not None:
                sent = describe_alert(alert, "the server ended the connection")
                raise ProbeFailure(
                    Failure.RECV_ERROR, f"{what}: the server sent TLS alert {sent}", alert=alert
                ) from None
            raise ProbeFailure(Failure.RECV_ERROR, f"{what}: TLS error {error.reason or error}") from None
        except OSError as error:
            hint = ""
            if self.total == 0 and not isinstance(self.sock, ssl.SSLSocket):
                hint = " (a TLS-only port resets plain HTTP like this: try https://)"
            raise ProbeFailure(
                Failure.RECV_ERROR, f"{what}: {describe_os_error(error)} after {self.total} bytes{hint}"
            ) from None
        if not chunk:
            self.eof = True
            return False
        if self.total == 0:
            self.first_byte_at = time.perf_counter()
        self.total += len(chunk)
        self.buffer += chunk
        return True

    def take(self, count: int) -> bytes:
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data

    def line(
        self, what: str, limit: int = MAX_HEADER_LINE, too_long: Failure = Failure.HEADERS_TOO_LARGE
    ) -> bytes | None:
        """One CRLF-terminated line without its ending; None at EOF before a full line."""
        searched = 0  # bytes already known to hold no newline: a line arriving in many pieces is scanned once
        while True:
            end = self.buffer.find(b"\n", searched)
            if 0 <= end <= limit:
                return self.take(end + 1).rstrip(b"\r\n")
            searched = len(self.buffer)
            if end > limit or len(self.buffer) > limit:
                raise ProbeFailure(too_long, f"{what}: a line longer than {limit // 1024} kB")
            if not self.fill(what):
                return None


def _read_response(reader: _Reader, body_cap: int, phases: dict[str, float], sent: float) -> _Response:
    first_byte: float | None = None
    for _interim in range(MAX_INTERIM_RESPONSES + 1):  # skip interim 1xx answers
        head = _read_head(reader)
        if first_byte is None:
            first_byte = reader.first_byte_at
            phases["ttfb"] += (first_byte - sent) * 1000
        if not (100 <= head.status < 200) or head.status == 101:
            break
    else:
        raise ProbeFailure(Failure.BAD_RESPONSE, f"more than {MAX_INTERIM_RESPONSES} interim 1xx responses")
    status, protocol = head.status, head.protocol
    if status in (204, 304) or 100 <= status < 200:
        body, truncated = b"", False
    elif "chunked" in protocol.get("transfer-encoding", "").lower():
        body, truncated = _read_chunked(reader, body_cap)
    elif "content-length" in protocol:
        body, truncated = _read_length(reader, protocol["content-length"], body_cap)
    else:
        body, truncated = _read_until_close(reader, body_cap)
    phases["transfer"] += (time.perf_counter() - first_byte) * 1000
    return _Response(
        status=status,
        reason=head.reason,
        headers=head.kept,
        body=body,
        truncated=truncated,
        bytes_read=reader.total,
        location=protocol.get("location"),
        headers_dropped=head.dropped,
    )


@dataclass
class _Head:
    status: int
    reason: str
    kept: dict[str, str]  # what evidence keeps: KEPT_HEADERS names, values cut at KEPT_HEADER_VALUE
    protocol: dict[str, str]  # the headers the probe itself acts on, whole
    dropped: int = 0


# Headers the probe acts on; read whole wherever they stand among the others.
_PROTOCOL_HEADERS = ("location", "content-length", "transfer-encoding")


def _read_head(reader: _Reader) -> _Head:
    _check_http_start(reader)
    status_line = reader.line("reading the status line")
    if status_line is None:
        raise ProbeFailure(
            Failure.BAD_RESPONSE, f"closed inside the status line: {bytes(reader.buffer[:40])!r}"
        )
    words = status_line.decode("latin-1").split(" ", 2)
    if (
        len(words) < 2
        or not words[0].startswith("HTTP/1.")
        or not (words[1].isdigit() and len(words[1]) == 3)
    ):
        raise ProbeFailure(Failure.BAD_RESPONSE, f"malformed status line {status_line[:60]!r}")
    status, reason = int(words[1]), (words[2] if len(words) > 2 else "")[:KEPT_HEADER_VALUE]
    kept: dict[str, list[str]] = {}
    protocol: dict[str, list[str]] = {}
    dropped = 0
    for key, value in _header_lines(reader, status, len(status_line) + 2):
        if key in _PROTOCOL_HEADERS:
            protocol.setdefault(key, []).append(value)
        if key in kept:
            if sum(map(len, kept[key])) < KEPT_HEADER_VALUE:
                kept[key].append(value)
        elif len(kept) < KEPT_HEADERS:
            kept[key] = [value]
        else:
            dropped += 1
    lengths = set(protocol.get("content-length", []))
    if len(lengths) > 1:
        raise ProbeFailure(Failure.BAD_RESPONSE, f"conflicting Content-Length headers {sorted(lengths)[:3]}")
    return _Head(
        status,
        reason,
        {key: _cut(", ".join(values)) for key, values in kept.items()},
        {
            key: values[0] if key != "transfer-encoding" else ", ".join(values)
            for key, values in protocol.items()
        },
        dropped,
    )


def _check_http_start(reader: _Reader) -> None:
    """The first bytes are an HTTP/1 status line, not nothing (curl 52), a TLS record or other protocol."""
    what = "waiting for the response"
    while len(reader.buffer) < 5 and b"\n" not in reader.buffer:
        if not reader.fill(what):
            break
        what = "reading the response headers"
    if reader.total == 0:
        raise ProbeFailure(
            Failure.EMPTY_REPLY, "connected and sent the request; the server closed without a byte"
        )
    start = bytes(reader.buffer[:5])
    if start[:1] in (b"\x15", b"\x16") and start[1:2] == b"\x03":
        raise ProbeFailure(
            Failure.BAD_RESPONSE,
            f"server answered with a TLS record on a plain-HTTP port ({start[:3].hex()}...): use https://",
        )
    if not b"HTTP/".startswith(start) and not start.startswith(b"HTTP/"):
        raise ProbeFailure(Failure.BAD_RESPONSE, f"not HTTP: first bytes {bytes(reader.buffer[:24])!r}")


def _header_lines(reader: _Reader, status: int, size: int) -> Iterator[tuple[str, str]]:
    """(lower-case name, value) of each header line up to the blank line, bounded in total size."""
    while True:
        line = reader.line("reading the response headers")
        if line is None:
            raise ProbeFailure(Failure.BAD_RESPONSE, f"closed inside the headers after status {status}")
        if not line:
            return
        size += len(line) + 2
        if size > MAX_HEADER_TOTAL:
            raise ProbeFailure(
                Failure.HEADERS_TOO_LARGE, f"response headers larger than {MAX_HEADER_TOTAL // 1024} kB"
            )
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon or not name.strip():
            raise ProbeFailure(Failure.BAD_RESPONSE, f"malformed header line {line[:60]!r}")
        yield name.strip().lower()[:128], value.strip()


def _cut(value: str) -> str:
    return value if len(value) <= KEPT_HEADER_VALUE else value[:KEPT_HEADER_VALUE] + "..."


def _read_length(reader: _Reader, value: str, body_cap: int) -> tuple[bytes, bool]:
    if not value.strip().isdigit():
        raise ProbeFailure(Failure.BAD_RESPONSE, f"bad Content-Length {value!r}")
    length = int(value)
    wanted = min(length, body_cap)
    while len(reader.buffer) < wanted:
        if not reader.fill("reading the body"):
            raise ProbeFailure(
                Failure.PARTIAL_BODY, f"closed after {len(reader.buffer)} of {length} body bytes"
            )
    return reader.take(wanted), length > body_cap


def _read_until_close(reader: _Reader, body_cap: int) -> tuple[bytes, bool]:
    while len(reader.buffer) <= body_cap:
        if not reader.fill("reading the body"):
            return reader.take(len(reader.buffer)), False
    return reader.take(body_cap), True


def _read_chunked(reader: _Reader, body_cap: int) -> tuple[bytes, bool]:
    body = bytearray()
    while True:
        line = reader.line("reading a chunk size", limit=4096, too_long=Failure.BAD_RESPONSE)
        if line is None:
            raise ProbeFailure(
                Failure.PARTIAL_BODY, f"closed inside the chunked body after {len(body)} bytes"
            )
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ProbeFailure(Failure.BAD_RESPONSE, f"bad chunk size {line[:20]!r}") from None
        if size == 0:
            for _trailer in range(100):
                trailer = reader.line("reading the trailers")
                if not trailer:  # empty line ends the message; EOF here is tolerated like curl does
                    break
            return bytes(body), False
        room = body_cap - len(body)
        while len(reader.buffer) < min(size, room) + (2 if size <= room else 0):
            if not reader.fill("reading a chunk"):
                raise ProbeFailure(Failure.PARTIAL_BODY, f"closed inside a chunk after {len(body)} bytes")
        if size > room:
            body += reader.take(room)
            return bytes(body), True
        body += reader.take(size)
        reader.take(2)


# --- checks and small pieces ---------------------------------------------------------------------------


def _check_answer(result: ProbeResult, expect_status: Container[int], expect_body: BodyExpectation) -> None:
    if result.status not in expect_status:
        raise ProbeFailure(
            Failure.HTTP_STATUS,
            f"status {result.status} {result.reason}".rstrip() + f"; body {result.body_text(80)!r}",
        )
    if expect_body is None:
        return
    problem = body_problem(result.body, expect_body, truncated=result.body_truncated)
    if problem:
        raise ProbeFailure(Failure.BODY_MISMATCH, problem)


def body_problem(body: bytes, expected: BodyExpectation, *, truncated: bool = False) -> str | None:
    """None when ``body`` meets ``expected``, else one line saying why not.

    ``expected`` is a callable, a JSON subset dict, or a substring."""
    excerpt = body[:80].decode("utf-8", "replace")
    if callable(expected):
        try:
            verdict = expected(body)
        except Exception as error:  # the user's check raising is a mismatch, reported with its message
            return f"body check raised {type(error).__name__}: {error}; body {excerpt!r}"
        return (
            None
            if verdict
            else f"body check {getattr(expected, '__name__', 'callable')} rejected {excerpt!r}"
        )
    if isinstance(expected, Mapping):
        try:
            document = jsontext.loads(body)
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
        f"{answer.resolver}: {answer.rcode}{' ' + answer.error if answer.error else ''}"
        for answer in (report.answers if report else [])
    )
    url = _strip_credentials(target.url(path))
    return ProbeResult(
        address="",
        port=target.port,
        scheme=target.scheme,
        host=target.host,
        path=_request_target(urlsplit(url)),
        failure=failure or Failure.DNS_NO_ANSWER,
        detail=f"{target.host} did not resolve ({reasons or 'no resolver'})",
        phases={"dns": dns_ms, "total": dns_ms},
        curl=f"curl -v {shlex.quote(url)}",
    )


_SLASHES_AFTER_SCHEME = re.compile(r"^(https?):[/\\]{2,}", re.IGNORECASE)


def redirect_url(current: str, location: str) -> str:
    """The absolute URL a ``Location`` names, read as browsers and curl read it.

    For http(s) any run of slashes or backslashes after the scheme introduces the host
    (``http:///x`` and ``http:\\\\x`` name host ``x``); a Location that names no host is not HTTP.
    """
    text = location.strip()
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in text):
        raise ProbeFailure(
            Failure.BAD_RESPONSE, f"redirect Location holds control characters: {_shown_url(text)!r}"
        )
    text = _SLASHES_AFTER_SCHEME.sub(lambda m: m.group(1) + "://", text)
    try:
        joined = urljoin(current, text)
        parts = urlsplit(joined)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as error:
        raise ProbeFailure(
            Failure.BAD_RESPONSE, f"redirect Location {_shown_url(text)!r} is not a URL: {error}"
        ) from None
    if parts.scheme.lower() in REDIRECT_SCHEMES and not parts.hostname:
        raise ProbeFailure(Failure.BAD_RESPONSE, f"redirect Location {_shown_url(text)!r} names no host")
    return _strip_credentials(joined)


def check_redirect(target: TargetLike, current: str, next_url: str) -> None:
    """Raise the finding for a redirect the probe must not follow; return for one it may follow.

    Followed: http and https to the target's own host (another port or http -> https included), never
    with credentials beyond the original scheme, host and port. Refused (``redirect_unsafe``): any other
    scheme (``file:``, ``gopher:``, ``ftp:``, ...) and https -> http. Reported and not followed
    (``redirect_elsewhere``): another host, named or an address, private ones said so.
    """
    scheme = urlsplit(next_url).scheme.lower()
    if scheme not in REDIRECT_SCHEMES:
        raise ProbeFailure(
            Failure.REDIRECT_UNSAFE,
            f"redirect to {_shown_url(next_url)} refused: only http and https are followed",
            protocols="=https" if urlsplit(current).scheme == "https" else "=http,https",
        )
    if urlsplit(current).scheme == "https" and scheme == "http":
        raise ProbeFailure(
            Failure.REDIRECT_UNSAFE,
            f"redirect from https down to {_shown_url(next_url)} refused: it would send the request "
            "(and any credentials) in clear",
            protocols="=https",
        )
    host = (urlsplit(next_url).hostname or "").lower()
    if host != target.host.lower():
        raise ProbeFailure(
            Failure.REDIRECT_ELSEWHERE,
            f"redirect to {_shown_url(next_url)}: {describe_other_host(host)}, not {target.host}; "
            "not followed",
        )


def describe_other_host(host: str) -> str:
    """``another host``, or what kind of address it is when the address says something."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "another host"
    if address.is_link_local:
        return f"link-local address {address} (cloud metadata services live at 169.254.169.254)"
    if address.is_loopback:
        return f"loopback address {address}"
    if address.is_private:
        return f"private address {address}"
    return f"address {address}"


def _shown_url(url: str, limit: int = 200) -> str:
    return url if len(url) <= limit else url[:limit] + "..."


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
