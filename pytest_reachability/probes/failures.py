"""The failure taxonomy: one enum naming why a probe failed (docs/architecture.md: the failure taxonomy).

Each member knows the phase it belongs to, the exit code ``curl`` gives for the same failure and a
one-line wording, so a report can say "curl would exit 52" and hand over a command to confirm it.
The value is the taxonomy name that evidence, JSON output and the diagnosis rules use.
"""

from __future__ import annotations

import enum
import logging
from typing import Any

# (phase, curl exit code or None, wording) per member; kept beside the enum so adding a class is one line.
_FACTS: dict[str, tuple[str, int | None, str]] = {
    "dns_nxdomain": (
        "dns",
        6,
        "name does not exist on the resolver (NXDOMAIN) (curl: (6) Could not resolve host)",
    ),
    "dns_no_answer": ("dns", 6, "name exists but has no A/AAAA records (curl: (6) Could not resolve host)"),
    "dns_timeout": ("dns", 6, "resolver did not answer in time (curl: (6) Could not resolve host)"),
    "dns_servfail": ("dns", 6, "resolver failed to answer (SERVFAIL) (curl: (6) Could not resolve host)"),
    "dns_refused": ("dns", 6, "resolver refused the query (REFUSED) (curl: (6) Could not resolve host)"),
    "dns_bad_answer": (
        "dns",
        6,
        "resolver answered with a malformed, mismatched or truncated message (curl: (6) Could not resolve "
        "host)",
    ),
    "tcp_refused": (
        "connect",
        7,
        "connection refused: RST on connect, nothing listens (curl: (7) Failed to connect)",
    ),
    "tcp_timeout": (
        "connect",
        28,
        "SYN unanswered: firewall drop or wrong address (curl: (28) Connection timed out)",
    ),
    "tcp_unreachable": (
        "connect",
        7,
        "no route to the address (curl: (7) Failed to connect: No route to host)",
    ),
    "tls_handshake": ("tls", 35, "TLS handshake failed (curl: (35) SSL connect error)"),
    "tls_timeout": (
        "tls",
        28,
        "TCP connected but the TLS handshake got no answer in time (curl: (28) SSL connection timeout)",
    ),
    "tls_cert_expired": (
        "tls",
        60,
        "server certificate expired or not yet valid (curl: (60) SSL certificate problem)",
    ),
    "tls_hostname": (
        "tls",
        60,
        "server certificate does not name the host (curl: (60) no alternative certificate subject name "
        "matches)",
    ),
    "tls_untrusted": (
        "tls",
        60,
        "server certificate not issued by a trusted CA (curl: (60) SSL certificate problem)",
    ),
    "empty_reply": (
        "http",
        52,
        "TCP connected, request sent, closed with zero bytes (curl: (52) Empty reply from server)",
    ),
    "recv_error": (
        "http",
        56,
        "connection reset mid-response (curl: (56) Recv failure: Connection reset by peer)",
    ),
    "read_timeout": ("http", 28, "connected, no complete response in time (curl: (28) Operation timed out)"),
    "partial_body": (
        "http",
        18,
        "connection closed before the announced body ended (curl: (18) transfer closed with bytes remaining)",
    ),
    "bad_response": (
        "http",
        1,
        "server answered, but not with HTTP (curl: (1) Received HTTP/0.9 when not allowed, or (8) Weird "
        "server reply)",
    ),
    "too_many_redirects": (
        "http",
        47,
        "redirects loop or exceed the bound (curl -L: (47) Maximum redirects followed)",
    ),
    "redirect_unsafe": (
        "http",
        1,
        "redirect to a scheme other than http/https, or from https down to http: not followed "
        "(curl -L --proto-redir: (1) Protocol not supported or disabled)",
    ),
    "redirect_elsewhere": (
        "http",
        None,
        "redirect to another host or a private address: reported, not followed (curl -L would follow it)",
    ),
    "headers_too_large": (
        "http",
        56,
        "response headers larger than curl accepts: 100 kB a line, 300 kB in all "
        "(curl: (56) Too large response headers)",
    ),
    "http_status": (
        "http",
        22,
        "HTTP status outside the expected set (curl -f: (22) The requested URL returned error)",
    ),
    "body_mismatch": ("http", None, "status fine, body not as expected"),
}


class Failure(enum.Enum):
    """Why a probe failed; the value is the taxonomy name (``Failure("empty_reply")`` works)."""

    DNS_NXDOMAIN = "dns_nxdomain"
    DNS_NO_ANSWER = "dns_no_answer"
    DNS_TIMEOUT = "dns_timeout"
    DNS_SERVFAIL = "dns_servfail"
    DNS_REFUSED = "dns_refused"
    DNS_BAD_ANSWER = "dns_bad_answer"
    TCP_REFUSED = "tcp_refused"
    TCP_TIMEOUT = "tcp_timeout"
    TCP_UNREACHABLE = "tcp_unreachable"
    TLS_HANDSHAKE = "tls_handshake"
    TLS_TIMEOUT = "tls_timeout"
    TLS_CERT_EXPIRED = "tls_cert_expired"
    TLS_HOSTNAME = "tls_hostname"
    TLS_UNTRUSTED = "tls_untrusted"
    EMPTY_REPLY = "empty_reply"
    RECV_ERROR = "recv_error"
    READ_TIMEOUT = "read_timeout"
    PARTIAL_BODY = "partial_body"
    BAD_RESPONSE = "bad_response"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    REDIRECT_UNSAFE = "redirect_unsafe"
    REDIRECT_ELSEWHERE = "redirect_elsewhere"
    HEADERS_TOO_LARGE = "headers_too_large"
    HTTP_STATUS = "http_status"
    BODY_MISMATCH = "body_mismatch"

    @property
    def phase(self) -> str:
        """The probe phase the failure belongs to: ``dns``, ``connect``, ``tls`` or ``http``."""
        return _FACTS[self.value][0]

    @property
    def curl_exit(self) -> int | None:
        """Exit code of ``curl -v --resolve ...`` for the same failure.

        With ``-f`` for http_status, ``-L`` for redirects."""
        return _FACTS[self.value][1]

    @property
    def curl_exits(self) -> tuple[int, ...]:
        """Every exit code curl may give for this class.

        Non-HTTP answers give 1 or 8 depending on the bytes."""
        if self is Failure.BAD_RESPONSE:
            return (1, 8)
        if self is Failure.HEADERS_TOO_LARGE:
            return (56, 27)  # curl 7.88 reports one line over 100 kB as (27) Out of memory
        code = self.curl_exit
        return () if code is None else (code,)

    @property
    def wording(self) -> str:
        """One line for people: what happened, with the curl message it corresponds to."""
        return _FACTS[self.value][2]

    def __str__(self) -> str:
        return self.value


def failure_from_name(name: str) -> Failure:
    """The member for a taxonomy name; ValueError with one line for an unknown name."""
    try:
        return Failure(name)
    except ValueError:
        known = ", ".join(member.value for member in Failure)
        raise ValueError(f"unknown failure class {name!r} (known: {known})") from None


class Classified:
    """What every probe result shares: ``ok`` and the exit code its ``curl`` line would give.

    A mixin for the result dataclasses of ``tcp``, ``tls`` and ``http``, which declare ``failure``.
    """

    failure: Failure | None

    @property
    def ok(self) -> bool:
        return self.failure is None

    @property
    def curl_exit(self) -> int | None:
        """0 when fine, the failure's curl exit code otherwise (None when curl cannot tell: body mismatch)."""
        return 0 if self.failure is None else self.failure.curl_exit


def log_result(logger: logging.Logger, what: str, result: Any) -> None:
    """Log a probe result at DEBUG, phase by phase, then its outcome (failure class, curl exit, detail).

    ``what`` names the step (``tcp 127.0.0.1:443``); records reach pytest's captured log of the test and
    ``--log-cli-level=DEBUG``, masked there like every output.
    """
    if not logger.isEnabledFor(logging.DEBUG):
        return
    for phase, ms in (getattr(result, "phases", None) or {}).items():
        logger.debug("%s: phase %s %.1f ms", what, phase, ms, stacklevel=2)
    failure = getattr(result, "failure", None)
    if failure is None:
        logger.debug("%s: ok", what, stacklevel=2)
    else:
        logger.debug(
            "%s: %s (curl %s): %s",
            what,
            failure.value,
            failure.curl_exit,
            getattr(result, "detail", ""),
            stacklevel=2,
        )


class ProbeFailure(Exception):
    """Raised inside a probe when a step ends in a taxonomy class; ``detail`` is one line for people."""

    def __init__(self, failure: Failure, detail: str, **facts: object) -> None:
        super().__init__(detail)
        self.failure = failure
        self.detail = detail
        self.facts = facts  # what the step saw before failing (e.g. tls=TlsInfo), for the result
