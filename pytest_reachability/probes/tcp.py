"""TCP probe: connect to every address of a target and classify what happened (refused, timeout, unreachable).

The connect step here is the one the TLS and HTTP probes build on, so a refused port reads the same
whichever probe met it.

Example::

    for result in probe_target(target, addresses=["138.197.254.57", "138.197.254.53"], timeout=2):
        assert result.ok, f"{result.address}: {result.failure.wording}"
"""

from __future__ import annotations

import concurrent.futures
import errno
import logging
import shlex
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .dns import SYSTEM, DnsReport, resolve_all
from .failures import Classified, Failure, ProbeFailure, log_result

log = logging.getLogger(__name__)


class Endpoint(Protocol):
    """What the connect-level probes read from ``config.Target``."""

    scheme: str
    host: str
    port: int


@dataclass
class TcpResult(Classified):
    """One address: connected or why not, with the connect time."""

    address: str
    port: int
    host: str
    failure: Failure | None = None
    detail: str = ""
    phases: dict[str, float] = field(default_factory=dict)
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
            "curl": self.curl,
        }


def connect(address: str, port: int, *, deadline: float, timeout: float) -> socket.socket:
    """An open TCP socket to ``address:port`` before ``deadline``.

    Else ProbeFailure (tcp_refused/timeout/unreachable)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        set_deadline(sock, deadline, "connect")
        sock.connect((address, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    except ConnectionRefusedError:
        close_quietly(sock)
        raise ProbeFailure(
            Failure.TCP_REFUSED, f"{hostport(address, port)} refused the connection (RST)"
        ) from None
    except TimeoutError:
        close_quietly(sock)
        raise ProbeFailure(
            Failure.TCP_TIMEOUT, f"no answer to SYN from {hostport(address, port)} within {timeout:g}s"
        ) from None
    except OSError as error:
        close_quietly(sock)
        if error.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            raise ProbeFailure(
                Failure.TCP_UNREACHABLE, f"{hostport(address, port)}: {describe_os_error(error)}"
            ) from None
        raise ProbeFailure(
            Failure.TCP_UNREACHABLE, f"connect to {hostport(address, port)}: {describe_os_error(error)}"
        ) from None


def probe_address(target: Endpoint, address: str, *, timeout: float, dns_ms: float = 0.0) -> TcpResult:
    """Connect to ``address`` on the target's port, then close; bounded by ``timeout``."""
    address = address.strip("[]")
    started = time.perf_counter()
    result = TcpResult(address=address, port=target.port, host=target.host, phases={"dns": dns_ms})
    log.debug("tcp %s: connecting (timeout %gs)", hostport(address, target.port), timeout)
    try:
        close_quietly(connect(address, target.port, deadline=started + timeout, timeout=timeout))
    except ProbeFailure as failed:
        result.failure, result.detail = failed.failure, failed.detail
    result.phases["connect"] = (time.perf_counter() - started) * 1000
    result.phases["total"] = dns_ms + result.phases["connect"]
    # curl's telnet:// only connects; --max-time ends it once connected (exit 28 then means "connected").
    pinned = f"[{address}]" if ":" in address else address
    result.curl = f"curl -v --max-time {timeout:g} {shlex.quote(f'telnet://{pinned}:{target.port}')}"
    log_result(log, f"tcp {hostport(address, target.port)}", result)
    return result


def probe_target(
    target: Endpoint,
    *,
    addresses: Iterable[str] | None = None,
    extra_addresses: Iterable[str] = (),
    resolvers: Iterable[str] = (SYSTEM,),
    timeout: float,
    dns_report: DnsReport | None = None,
) -> list[TcpResult]:
    """Connect to every resolved (or given) address plus ``extra_addresses`` concurrently."""
    found, dns_ms, report = addresses_to_probe(
        target, addresses, extra_addresses, resolvers, timeout, dns_report
    )
    unresolved = []
    if (report is not None and not report.addresses) or not found:
        failure = (report.failure if report else None) or Failure.DNS_NO_ANSWER
        unresolved = [
            TcpResult(
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
        lambda address: probe_address(target, address, timeout=timeout, dns_ms=dns_ms), found
    )


def probe(target: Endpoint, settings: Any, **options: Any) -> list[TcpResult]:
    """The uniform probe signature: ``settings`` supplies ``resolvers`` and ``probe_timeout``; ``options``
    are :func:`probe_target`'s (``addresses``, ``dns_report``, ...)."""
    return probe_target(
        target, **{"resolvers": settings.resolvers, "timeout": settings.probe_timeout, **options}
    )


# --- shared by the connection-level probes ---------------------------------------------------------------


def addresses_to_probe(
    target: Endpoint,
    addresses: Iterable[str] | None,
    extra_addresses: Iterable[str],
    resolvers: Iterable[str],
    timeout: float,
    dns_report: DnsReport | None,
) -> tuple[list[str], float, DnsReport | None]:
    """The addresses to probe (resolved unless given, then the extras, deduplicated), the DNS time and report.

    Of resolved addresses at most ``MAX_ADDRESSES_PER_FAMILY`` per family are probed; the report's
    ``not_probed`` names the others. Addresses given explicitly are all probed.
    """
    dns_ms = 0.0
    if addresses is None:
        if dns_report is None:
            dns_report = resolve_all(target.host, list(resolvers), timeout=timeout)
        dns_ms = dns_report.ms
        found = dns_report.addresses_to_probe()
    else:
        found = [address.strip("[]") for address in addresses]
    for extra in extra_addresses:
        extra = extra.strip("[]")
        if extra not in found:
            found.append(extra)
    return found, dns_ms, dns_report


def run_concurrently(probe_one, addresses: list[str]) -> list:
    """``probe_one(address)`` for every address at once; results in order.

    Each is bounded by its own timeout."""
    if len(addresses) == 1:
        return [probe_one(addresses[0])]
    with concurrent.futures.ThreadPoolExecutor(
        max_workers=min(16, len(addresses)), thread_name_prefix="probe"
    ) as pool:
        return list(pool.map(probe_one, addresses))


def set_deadline(sock: socket.socket, deadline: float, what: str) -> None:
    """Give the next socket operation whatever time is left; TimeoutError when none is."""
    remaining = deadline - time.perf_counter()
    if remaining <= 0:
        raise TimeoutError(what)
    sock.settimeout(remaining)


def hostport(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def describe_os_error(error: OSError) -> str:
    return error.strerror or type(error).__name__


def close_quietly(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass
