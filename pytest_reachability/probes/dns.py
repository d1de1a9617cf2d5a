"""DNS probe: resolve one name on several resolvers at once and say, per resolver, what it answered.

Every resolver (and each address family on it) is asked in its own thread, so the wall time is that
of the slowest resolver, not the sum; every query is bounded by the probe timeout. ``system`` is the
OS resolver (getaddrinfo: /etc/hosts, nsswitch, resolv.conf); any other resolver is a server address
(``ADDR``, ``ADDR:PORT``, ``[V6]:PORT``) asked directly over UDP, falling back to TCP when the answer
is truncated, following CNAME chains.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.wire

from .failures import Failure

log = logging.getLogger(__name__)

SYSTEM = "system"
# At most this many addresses of each family are probed per name (the first in answer order); the rest are
# reported as not probed. Answers keep at most MAX_ADDRESSES_KEPT addresses each and count the others.
MAX_ADDRESSES_PER_FAMILY = 16
MAX_ADDRESSES_KEPT = 256
# After a malformed or mismatched UDP packet, how long a valid answer is still waited for (a spoofed packet
# may come first); then the resolver has answered badly, which is not a timeout.
BAD_ANSWER_GRACE = 0.5
_MAX_UDP_PACKETS = 64
_MAX_CNAME_HOPS = 8
_RDTYPES = {"A": dns.rdatatype.A, "AAAA": dns.rdatatype.AAAA}
# Query threads stop at the deadline by themselves (every query is bounded by the time left); this is
# how long after it a server's family threads are waited for, and the whole probe waits twice as long so
# that a resolver's own answer (which may say "nothing answers there") is always ready before it gives up.
_JOIN_GRACE = 0.5
# The EDNS UDP payload size asked for (DNS flag day 2020): larger answers come over TCP.
EDNS_PAYLOAD = 1232
# Errors without an OPT record in answer to a query with one: the server does not speak EDNS.
_NO_EDNS_RCODES = frozenset({dns.rcode.FORMERR, dns.rcode.NOTIMP, dns.rcode.SERVFAIL})

# RFC 8914 and the IANA registry of extended DNS error codes.
EXTENDED_ERRORS = {
    0: "Other Error",
    1: "Unsupported DNSKEY Algorithm",
    2: "Unsupported DS Digest Type",
    3: "Stale Answer",
    4: "Forged Answer",
    5: "DNSSEC Indeterminate",
    6: "DNSSEC Bogus",
    7: "Signature Expired",
    8: "Signature Not Yet Valid",
    9: "DNSKEY Missing",
    10: "RRSIGs Missing",
    11: "No Zone Key Bit Set",
    12: "NSEC Missing",
    13: "Cached Error",
    14: "Not Ready",
    15: "Blocked",
    16: "Censored",
    17: "Filtered",
    18: "Prohibited",
    19: "Stale NXDOMAIN Answer",
    20: "Not Authoritative",
    21: "Not Supported",
    22: "No Reachable Authority",
    23: "Network Error",
    24: "Invalid Data",
    25: "Signature Expired before Valid",
    26: "Too Early",
    27: "Unsupported NSEC3 Iterations Value",
    28: "Unable to conform to policy",
    29: "Synthesized",
    30: "Invalid Query Type",
}
_EXTENDED_TEXT_MAX = 200  # characters of a resolver's free text kept
_DNSPYTHON_NAMES = {member.value: member.name for member in dns.edns.EDECode}  # unknown values: not members


def _extended_error_name(code: int) -> str:
    """The registry's name of an extended error code; codes registered later by the name dnspython gives
    them, the rest "Unassigned"."""
    if code in EXTENDED_ERRORS:
        return EXTENDED_ERRORS[code]
    return _DNSPYTHON_NAMES[code].replace("_", " ").capitalize() if code in _DNSPYTHON_NAMES else "Unassigned"


def extended_errors(response: dns.message.Message) -> list[str]:
    """The extended DNS errors (RFC 8914) an answer carries, each as "Name (EDE n)" with the resolver's
    own text after a colon: "DNSSEC Bogus (EDE 6): signature expired"."""
    found = []
    for option in response.options:
        if not isinstance(option, dns.edns.EDEOption):
            continue
        code = int(option.code)
        text = f"{_extended_error_name(code)} (EDE {code})"
        # The resolver's own words, on one line, with control characters (terminal escapes) escaped.
        words = " ".join((option.text or "").split())
        said = "".join(c if c.isprintable() else repr(c)[1:-1] for c in words)[:_EXTENDED_TEXT_MAX]
        found.append(f"{text}: {said}" if said else text)
    return found


@dataclass
class ResolverAnswer:
    """What one resolver answered for one name (both families merged)."""

    resolver: str
    name: str
    addresses: list[str] = field(default_factory=list)
    cnames: list[str] = field(default_factory=list)
    rcode: str = "NOERROR"
    ttl: int | None = None
    ms: float = 0.0
    failure: Failure | None = None
    error: str | None = None
    omitted: int = 0  # addresses answered beyond MAX_ADDRESSES_KEPT, not kept
    # What the resolver said about its answer (RFC 8914 extended DNS errors), e.g. "DNSSEC Bogus (EDE 6)"
    extended_errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failure is None

    def to_evidence(self) -> dict:
        data = asdict(self)
        data["failure"] = self.failure.value if self.failure else None
        data["ms"] = round(self.ms, 3)
        return data


@dataclass
class DnsReport:
    """All resolvers' answers for one name; ``addresses`` is their ordered union."""

    name: str
    answers: list[ResolverAnswer]
    addresses: list[str]
    ms: float
    literal: bool = False
    not_probed: list[str] = field(default_factory=list)  # beyond MAX_ADDRESSES_PER_FAMILY, set by the probes

    @property
    def agree(self) -> bool:
        """True when every resolver gave the same set of addresses (a failed one gives the empty set)."""
        return len({frozenset(answer.addresses) for answer in self.answers}) <= 1

    @property
    def failure(self) -> Failure | None:
        """The class to report when no resolver produced an address, else None."""
        if self.addresses:
            return None
        failed = [answer.failure for answer in self.answers if answer.failure is not None]
        return failed[0] if failed else Failure.DNS_NO_ANSWER

    @property
    def failed(self) -> list[ResolverAnswer]:
        return [answer for answer in self.answers if answer.failure is not None]

    def to_evidence(self) -> dict:
        return {
            "name": self.name,
            "addresses": list(self.addresses),
            "agree": self.agree,
            "literal": self.literal,
            "ms": round(self.ms, 3),
            "failure": self.failure.value if self.failure else None,
            "answers": [answer.to_evidence() for answer in self.answers],
            "not_probed": list(self.not_probed),
        }

    def addresses_to_probe(self) -> list[str]:
        """The first MAX_ADDRESSES_PER_FAMILY addresses of each family; the others go to ``not_probed``."""
        chosen: list[str] = []
        counts = {4: 0, 6: 0}
        self.not_probed = []
        for address in self.addresses:
            version = 6 if ":" in address else 4
            if counts[version] < MAX_ADDRESSES_PER_FAMILY:
                counts[version] += 1
                chosen.append(address)
            else:
                self.not_probed.append(address)
        return chosen


# Failure values of a resolver saying a name has no address (as opposed to one that failed to answer).
NO_SUCH_NAME = frozenset({Failure.DNS_NXDOMAIN.value, Failure.DNS_NO_ANSWER.value})


def parse_resolver(spec: str) -> tuple[str, int]:
    """``ADDR``, ``ADDR:PORT``, ``[V6]:PORT`` or a bare IPv6 address -> (address, port); ValueError otherwise.

    The one resolver parser of the project (:func:`pytest_reachability.config.parse_resolver`), so the
    plugin and ``python -m pytest_reachability probe`` accept and refuse the same spellings.
    """
    from ..config import resolver_endpoint

    endpoint = resolver_endpoint(spec)
    if endpoint is None:
        raise ValueError(f"resolver {spec!r}: 'system' is the OS resolver, not a server address")
    return endpoint


def is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def resolve_all(
    name: str,
    resolvers: list[str] | tuple[str, ...] = (SYSTEM,),
    *,
    timeout: float,
    families: tuple[str, ...] = ("A", "AAAA"),
) -> DnsReport:
    """Ask every resolver for ``name`` concurrently; the wall time is bounded by ``timeout``.

    Example::

        report = resolve_all("97v.ru", ["system", "1.1.1.1", "8.8.8.8"], timeout=2)
        assert report.agree, [(a.resolver, a.addresses) for a in report.answers]
    """
    started = time.perf_counter()
    if is_ip_literal(name):
        literal = name.strip("[]")
        return DnsReport(name=name, answers=[], addresses=[literal], ms=0.0, literal=True)
    unknown = [family for family in families if family not in _RDTYPES]
    if unknown:
        raise ValueError(f"unknown address family {unknown[0]!r} (use A and/or AAAA)")
    targets = [(spec, None if spec == SYSTEM else parse_resolver(spec)) for spec in (resolvers or [SYSTEM])]
    deadline = started + timeout
    log.debug(
        "dns %s: asking %s for %s (timeout %gs)",
        name,
        ", ".join(spec for spec, _ in targets),
        "/".join(families),
        timeout,
    )

    slots: list[ResolverAnswer | None] = [None] * len(targets)
    threads = []
    for index, (spec, server) in enumerate(targets):
        thread = threading.Thread(
            target=_fill_slot,
            args=(slots, index, spec, server, name, families, deadline),
            name=f"dns-{spec}",
            daemon=True,  # a stuck getaddrinfo must not keep the interpreter alive
        )
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(max(0.0, deadline - time.perf_counter()) + 2 * _JOIN_GRACE)

    answers = []
    for index, (spec, _server) in enumerate(targets):
        answer = slots[index]
        if answer is None:  # only getaddrinfo can outlive the deadline: it takes no timeout
            answer = ResolverAnswer(
                resolver=spec,
                name=name,
                rcode="TIMEOUT",
                ms=timeout * 1000,
                failure=Failure.DNS_TIMEOUT,
                error=f"no answer within {timeout:g}s",
            )
        answers.append(answer)
        log.debug(
            "dns %s: %s answered %s in %.1f ms: %s%s",
            name,
            answer.resolver,
            answer.rcode or "-",
            answer.ms,
            ", ".join(answer.addresses) or "no address",
            f" ({answer.failure.value}: {answer.error})" if answer.failure else "",
        )
    union: list[str] = []
    for answer in answers:
        union.extend(address for address in answer.addresses if address not in union)
    return DnsReport(name=name, answers=answers, addresses=union, ms=(time.perf_counter() - started) * 1000)


def _fill_slot(slots, index, spec, server, name, families, deadline) -> None:
    if server is None:
        slots[index] = _ask_system(name, families, deadline)
    else:
        slots[index] = _ask_server(spec, server, name, families, deadline)


def _ask_system(name: str, families: tuple[str, ...], deadline: float) -> ResolverAnswer:
    started = time.perf_counter()
    wanted = {"A": socket.AF_INET, "AAAA": socket.AF_INET6}
    answer = ResolverAnswer(resolver=SYSTEM, name=name)
    try:
        infos = socket.getaddrinfo(name, None, socket.AF_UNSPEC, socket.SOCK_STREAM)
    except socket.gaierror as error:
        answer.error = f"getaddrinfo: {error.strerror or error}"
        if error.errno == socket.EAI_NONAME:
            answer.rcode, answer.failure = "NXDOMAIN", Failure.DNS_NXDOMAIN
        elif error.errno == getattr(socket, "EAI_NODATA", -5):
            answer.rcode, answer.failure = "NOERROR", Failure.DNS_NO_ANSWER
        else:  # EAI_AGAIN / EAI_FAIL: the stub resolver got SERVFAIL or no answer from upstream
            answer.rcode, answer.failure = "SERVFAIL", Failure.DNS_SERVFAIL
    else:
        families_wanted = {wanted[family] for family in families}
        for family, _type, _proto, _canon, sockaddr in infos:
            if family in families_wanted and sockaddr[0] not in answer.addresses:
                answer.addresses.append(sockaddr[0])
        if not answer.addresses:
            answer.failure = Failure.DNS_NO_ANSWER
    answer.ms = (time.perf_counter() - started) * 1000
    if time.perf_counter() > deadline and answer.failure is None:
        answer.error = "answered after the probe timeout"
    return answer


def _ask_server(
    spec: str, server: tuple[str, int], name: str, families: tuple[str, ...], deadline: float
) -> ResolverAnswer:
    started = time.perf_counter()
    answer = ResolverAnswer(resolver=spec, name=name)
    # Both families asked at once: a resolver that drops AAAA must not double the wall time.
    results: dict[str, _FamilyResult] = {}
    threads = [
        threading.Thread(
            target=lambda f=family: results.__setitem__(f, _query_family(server, name, f, deadline)),
            daemon=True,
        )
        for family in families
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.perf_counter()) + _JOIN_GRACE)
    _merge_families(answer, results, families)
    answer.ms = (time.perf_counter() - started) * 1000
    rcodes = [results[family].rcode for family in families]
    errors = [results[family].error for family in families if results[family].error]
    answer.error = "; ".join(dict.fromkeys(errors)) or None
    if answer.addresses:
        answer.rcode = "NOERROR"
        return answer
    answer.rcode, answer.failure = _most_telling_failure(rcodes)
    if answer.failure is Failure.DNS_BAD_ANSWER and answer.rcode != "BADANSWER":
        answer.error = answer.error or f"the resolver answered {answer.rcode}"
    return answer


def _merge_families(
    answer: ResolverAnswer, results: dict[str, _FamilyResult], families: tuple[str, ...]
) -> None:
    """Both families' results into one answer (a family whose thread did not end counts as a timeout)."""
    ttls = []
    for family in families:
        result = results.get(family) or _FamilyResult(rcode="TIMEOUT", error="no answer within the timeout")
        answer.addresses.extend(a for a in result.addresses if a not in answer.addresses)
        answer.omitted += result.omitted
        # The first chain as it came (a loop ends on a name it holds already); the other family's new names.
        if answer.cnames:
            answer.cnames.extend(c for c in result.cnames if c not in answer.cnames)
        else:
            answer.cnames.extend(result.cnames)
        answer.extended_errors.extend(e for e in result.extended if e not in answer.extended_errors)
        if result.ttl is not None:
            ttls.append(result.ttl)
        results[family] = result
    answer.ttl = min(ttls) if ttls else None


# No address: the answer's rcode is the most telling failure among the families. An answer that arrived
# says more than a family that got none, so answers rank first.
_FAILURE_RANK = (
    ("BADANSWER", Failure.DNS_BAD_ANSWER),
    ("SERVFAIL", Failure.DNS_SERVFAIL),
    ("REFUSED", Failure.DNS_REFUSED),
    ("NXDOMAIN", Failure.DNS_NXDOMAIN),
    ("TIMEOUT", Failure.DNS_TIMEOUT),
    # Nothing serves DNS at the address: to a client that is no answer, as a timeout is.
    ("UNREACHABLE", Failure.DNS_TIMEOUT),
)


def _most_telling_failure(rcodes: list[str]) -> tuple[str, Failure]:
    """(rcode, failure) of an answer without addresses, from the rcodes of its families."""
    for rcode, failure in _FAILURE_RANK:
        if rcode in rcodes:
            return rcode, failure
    # FORMERR, NOTIMP and other error codes: the resolver answered, but not with an answer.
    other = next((rcode for rcode in rcodes if rcode != "NOERROR"), None)
    if other is not None:
        return other, Failure.DNS_BAD_ANSWER
    return "NOERROR", Failure.DNS_NO_ANSWER


@dataclass
class _FamilyResult:
    addresses: list[str] = field(default_factory=list)
    cnames: list[str] = field(default_factory=list)
    rcode: str = "NOERROR"
    ttl: int | None = None
    error: str | None = None
    omitted: int = 0
    extended: list[str] = field(default_factory=list)


class _BadAnswer(Exception):
    """The resolver answered, but not usably.

    The answer is malformed, mismatched, or truncated with no working TCP retry."""

    def __init__(self, detail: str, partial: dns.message.Message | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.partial = partial  # a truncated answer whose records may still be read


def _query_family(server: tuple[str, int], name: str, family: str, deadline: float) -> _FamilyResult:
    result = _FamilyResult()
    rdtype = _RDTYPES[family]
    qname = dns.name.from_text(name)
    for _hop in range(_MAX_CNAME_HOPS):
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            result.rcode, result.error = "TIMEOUT", f"{family}: no answer within the timeout"
            return result
        response = _ask(server, qname, rdtype, family, deadline, result)
        if response is None:
            return result
        result.rcode = dns.rcode.to_text(response.rcode())
        result.extended += [text for text in extended_errors(response) if text not in result.extended]
        if response.rcode() != dns.rcode.NOERROR:
            if result.extended:
                said = "; ".join(result.extended)
                result.error = f"{family}: {result.rcode}, the resolver says: {said}"
            return result
        target, found = _follow_chain(response, qname, rdtype, result)
        if found or target == qname:
            return result
        qname = target  # the chain left this answer unfinished: ask for its end
    result.error = f"{family}: CNAME chain longer than {_MAX_CNAME_HOPS}"
    return result


def _ask(
    server: tuple[str, int],
    qname: dns.name.Name,
    rdtype: Any,
    family: str,
    deadline: float,
    result: _FamilyResult,
) -> dns.message.Message | None:
    """The server's answer, or None with ``result``'s rcode and error saying why there is none."""
    try:
        # With EDNS, as stub resolvers ask today: a resolver says why it failed (extended DNS errors) only
        # to a query that carries an OPT record.
        query = dns.message.make_query(qname, rdtype, use_edns=0, payload=EDNS_PAYLOAD)
        response = _exchange(query, server, deadline)
        if response.rcode() in _NO_EDNS_RCODES and response.edns < 0:
            # A server that does not speak EDNS answers FORMERR without an OPT record (RFC 6891 section
            # 7; older ones NOTIMP or SERVFAIL): asked again without it, as resolvers do.
            response = _exchange(dns.message.make_query(qname, rdtype), server, deadline)
        return response
    except _BadAnswer as bad:
        if bad.partial is None or not bad.partial.answer:
            result.rcode, result.error = "BADANSWER", f"{family}: {bad.detail}"
            return None
        result.error = f"{family}: {bad.detail}; the addresses are those of the truncated answer"
        return bad.partial  # read what the truncated answer holds, and say it is partial
    except dns.exception.Timeout:
        result.rcode, result.error = "TIMEOUT", f"{family}: no answer within the timeout"
    except ConnectionRefusedError:
        # ICMP port unreachable on UDP (the socket is connected) or a TCP RST: nothing serves DNS there.
        result.rcode = "UNREACHABLE"
        result.error = f"{family}: nothing answers on {_server_text(server)} (connection refused)"
    except OSError as error:
        result.rcode, result.error = (
            "UNREACHABLE",
            f"{family}: {_server_text(server)}: {type(error).__name__}: {error}",
        )
    except dns.exception.DNSException as error:
        result.rcode, result.error = "BADANSWER", f"{family}: {type(error).__name__}: {error}"
    return None


def _follow_chain(
    response: dns.message.Message, qname: dns.name.Name, rdtype: Any, result: _FamilyResult
) -> tuple[dns.name.Name, bool]:
    """Walk the CNAME chain inside this answer (a resolver usually returns CNAMEs and the final records
    together), adding addresses, names and the lowest TTL to ``result``; (last name, records found)."""
    target = qname
    seen = {qname}
    for _step in range(_MAX_CNAME_HOPS):
        cname = response.get_rrset(response.answer, target, dns.rdataclass.IN, dns.rdatatype.CNAME)
        records = response.get_rrset(response.answer, target, dns.rdataclass.IN, rdtype)
        if records is not None:
            for record in records:
                if record.address in result.addresses:
                    continue
                if len(result.addresses) < MAX_ADDRESSES_KEPT:
                    result.addresses.append(record.address)
                else:
                    result.omitted += 1
            result.ttl = records.ttl if result.ttl is None else min(result.ttl, records.ttl)
            return target, True
        if cname is None:
            break
        target = cname[0].target
        result.cnames.append(target.to_text(omit_final_dot=True))
        result.ttl = cname.ttl if result.ttl is None else min(result.ttl, cname.ttl)
        if target in seen:
            break  # a loop: the chain ends on the name it came back to
        seen.add(target)
    return target, False


def _server_text(server: tuple[str, int]) -> str:
    address, port = server
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _exchange(query: dns.message.Message, server: tuple[str, int], deadline: float) -> dns.message.Message:
    """Ask over UDP, and over TCP when the answer is truncated (TC), all before ``deadline``.

    Packets that do not parse or do not answer this query (another id, another question) are set aside
    as a resolver does; when only such packets came, :class:`_BadAnswer` says so -- they are answers,
    not a timeout. A truncated answer whose TCP retry fails is a bad answer too.
    """
    address, port = server
    family = (
        socket.AF_INET6 if ipaddress.ip_address(address.partition("%")[0]).version == 6 else socket.AF_INET
    )
    # A link-local resolver's scope (fe80::1%eth0) goes into the socket address; a plain (host, port) pair
    # would drop it and the connect would fail (EINVAL).
    sockaddr = socket.getaddrinfo(address, port, family, socket.SOCK_DGRAM, 0, socket.AI_NUMERICHOST)[0][4]
    wire_query = query.to_wire()
    bad: str | None = None
    truncated: dns.message.Message | None = None
    # A connected UDP socket: an ICMP port unreachable then fails the read at once (ConnectionRefusedError)
    # instead of leaving it to wait out the timeout.
    with socket.socket(family, socket.SOCK_DGRAM) as udp_socket:
        udp_socket.connect(sockaddr)
        udp_socket.send(wire_query)
        wait_until = deadline
        for _packet in range(_MAX_UDP_PACKETS):
            remaining = wait_until - time.perf_counter()
            if remaining <= 0:
                break
            udp_socket.settimeout(remaining)
            try:
                wire = udp_socket.recv(65535)
            except TimeoutError:
                break
            problem, response = _read_answer(query, wire)
            if problem is not None:
                bad = bad or problem
                wait_until = min(deadline, time.perf_counter() + BAD_ANSWER_GRACE)
                continue
            assert response is not None
            if not response.flags & dns.flags.TC:
                return response
            truncated = response
            break
    if truncated is None:
        if bad is not None:
            raise _BadAnswer(bad)
        raise dns.exception.Timeout
    remaining = deadline - time.perf_counter()
    if remaining <= 0:
        raise _BadAnswer("truncated over UDP (TC) and no time left to ask over TCP", truncated)
    try:
        return _tcp_exchange(query, sockaddr, family, deadline)
    except dns.exception.Timeout:
        raise _BadAnswer(
            "truncated over UDP (TC); the TCP retry got no complete answer in time", truncated
        ) from None
    except (OSError, EOFError, dns.exception.DNSException) as error:
        reason = (
            error.strerror
            if isinstance(error, OSError) and error.strerror
            else f"{type(error).__name__}: {error}"
        )
        raise _BadAnswer(f"truncated over UDP (TC); the TCP retry failed: {reason}", truncated) from None


def _tcp_exchange(
    query: dns.message.Message, server: tuple[Any, ...], family: int, deadline: float
) -> dns.message.Message:
    """Ask over TCP (RFC 1035 4.2.2: two bytes of length, then the message), read by :func:`_read_answer`
    as an answer over UDP is; every step bounded by ``deadline``."""
    wire = query.to_wire()
    with socket.socket(family, socket.SOCK_STREAM) as tcp_socket:

        def bounded() -> None:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise dns.exception.Timeout
            tcp_socket.settimeout(remaining)

        def read(size: int) -> bytes:
            data = b""
            while len(data) < size:
                bounded()
                try:
                    chunk = tcp_socket.recv(size - len(data))
                except TimeoutError:
                    raise dns.exception.Timeout from None
                if not chunk:
                    raise EOFError("the server closed the connection")
                data += chunk
            return data

        bounded()
        try:
            tcp_socket.connect(server)
            bounded()
            tcp_socket.sendall(len(wire).to_bytes(2, "big") + wire)
        except TimeoutError:
            raise dns.exception.Timeout from None
        answer = read(int.from_bytes(read(2), "big"))
    problem, response = _read_answer(query, answer)
    if problem is not None:
        raise dns.exception.FormError(problem)
    assert response is not None
    return response


def _read_answer(query: dns.message.Message, wire: bytes) -> tuple[str | None, dns.message.Message | None]:
    """``(None, message)`` for an answer to ``query``, else ``(why it is not one, None)``."""
    try:
        response = dns.message.from_wire(wire, ignore_trailing=True)
    except dns.message.Truncated as cut:
        response = cut.message()  # the header with TC and the question parsed; the records cut off
    except (dns.exception.DNSException, ValueError, IndexError, UnicodeError) as error:
        # Stub resolvers read no EDNS option: one that is malformed (an extended error's text that is not
        # UTF-8, a client-subnet option of the wrong length) does not make the records unreadable.
        response = _read_without_bad_options(wire)
        if response is None:
            return f"malformed answer ({len(wire)} bytes: {type(error).__name__})", None
    if not response.flags & dns.flags.QR:
        return "a query, not an answer, came back", None
    if response.id != query.id:
        return (
            f"answer with query id {response.id}, not {query.id} "
            "(spoofed, or a broken resolver or middlebox)",
            None,
        )
    if not query.is_response(response):
        return "answer to another question than the one asked", None
    return None, response


_OPT = 41
_EDE = 15


def _read_without_bad_options(wire: bytes) -> dns.message.Message | None:
    """The answer read again with its OPT record's options repaired: an extended error whose text is not
    UTF-8 keeps its code and its text with the bad bytes replaced (U+FFFD), any other option that does not
    parse is left out. None when there is nothing to repair or the rest does not parse either."""
    try:
        repaired = _repair_options(wire)
    except (IndexError, ValueError, OverflowError):
        return None
    if repaired is None:
        return None
    try:
        return dns.message.from_wire(repaired, ignore_trailing=True)
    except (dns.exception.DNSException, ValueError, IndexError, UnicodeError):
        return None


def _skip_name(wire: bytes, offset: int) -> int:
    """The offset after the (possibly compressed) name at ``offset``; IndexError/ValueError if cut."""
    for _label in range(128):  # a name has at most 127 labels
        length = wire[offset]
        if length & 0xC0 == 0xC0:
            wire[offset + 1]  # noqa: B018 - the pointer's second byte must be there
            return offset + 2
        if length & 0xC0:
            raise ValueError("unknown label type")
        offset += 1 + length
        if length == 0:
            return offset
    raise ValueError("name too long")


def _repair_options(wire: bytes) -> bytes | None:
    """``wire`` with the options of its OPT record repaired (see above); None if none needed it."""
    if len(wire) < 12:
        raise ValueError("short header")
    counts = [int.from_bytes(wire[at : at + 2], "big") for at in (4, 6, 8, 10)]
    offset = 12
    for _question in range(counts[0]):
        offset = _skip_name(wire, offset) + 4
    records = counts[1] + counts[2] + counts[3]
    for index in range(records):
        start = _skip_name(wire, offset)
        rdtype = int.from_bytes(wire[start : start + 2], "big")
        rdlength = int.from_bytes(wire[start + 8 : start + 10], "big")
        rdata_at = start + 10
        if rdata_at + rdlength > len(wire):
            raise ValueError("record cut off")
        if rdtype == _OPT and index >= counts[1] + counts[2]:
            if index != records - 1:
                # A record after it (TSIG, SIG(0)) may point into what follows: its offsets would move.
                return None
            options = _repaired_option_data(wire[rdata_at : rdata_at + rdlength])
            if options is None or len(options) > 0xFFFF:
                return None
            head = wire[: start + 8] + len(options).to_bytes(2, "big")
            return head + options + wire[rdata_at + rdlength :]
        offset = rdata_at + rdlength
    return None


def _repaired_option_data(data: bytes) -> bytes | None:
    """The OPT record's RDATA with each option that does not parse repaired or left out; None if every
    option parses as it is."""
    kept, changed, at = [], False, 0
    while at + 4 <= len(data):
        code = int.from_bytes(data[at : at + 2], "big")
        size = int.from_bytes(data[at + 2 : at + 4], "big")
        value = data[at + 4 : at + 4 + size]
        at += 4 + size
        if len(value) < size:
            changed = True  # cut off: left out
            break
        try:
            parser = dns.wire.Parser(value)
            dns.edns.option_from_wire_parser(code, parser)
            if parser.remaining():  # inside the OPT record, dnspython refuses bytes an option left over
                raise ValueError("bytes left over")
        except Exception:  # noqa: BLE001 - whatever the option's own parser raises on it
            changed = True
            if code == _EDE and size >= 2:
                # Only so much of the text is shown (_EXTENDED_TEXT_MAX): the rest is not kept.
                text = value[2:].decode("utf-8", "replace")[: 4 * _EXTENDED_TEXT_MAX]
                value = value[:2] + text.encode("utf-8")
            else:
                continue
        kept.append(code.to_bytes(2, "big") + len(value).to_bytes(2, "big") + value)
    changed = changed or at != len(data)
    return b"".join(kept) if changed else None


def probe(target: Any, settings: Any, **options: Any) -> DnsReport:
    """The uniform probe signature.

    Resolves ``target.host`` on ``settings.resolvers`` within ``settings.probe_timeout``
    (``options``: :func:`resolve_all`'s ``families``)."""
    return resolve_all(
        target.host, list(settings.resolvers or [SYSTEM]), timeout=settings.probe_timeout, **options
    )
