"""DNS propagation: what the zone's authoritative servers answer now against what each resolver still caches.

A DNS change lands on the authoritative servers first; every caching resolver keeps serving its old answer
until that answer's TTL runs out. :func:`check_propagation` finds the zone of the name (the SOA owner, asked
of the configured resolvers), its NS names and their addresses, asks every authoritative server directly
(recursion not desired) for the name's A/AAAA records and the zone's SOA serial, asks every configured
resolver the same, and compares. A resolver whose addresses differ from the source's while the source's
serial is newer is "changed at the source, still cached": its remaining TTL says when it will expire.

Example::

    report = check_propagation("97v.ru", ["1.1.1.1", "8.8.8.8"], timeout=3)
    report.agree, report.source_addresses, [a.expires_at for a in report.stale()]

Every query is bounded by ``timeout`` as a whole (servers are asked concurrently, each query gets the time
left). Authoritative servers are asked on port 53 unless ``authoritative_port`` says otherwise (the
sandbox runs its own on another port of loopback).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

from ..results import iso_utc
from .dns import (
    _NO_EDNS_RCODES,
    EDNS_PAYLOAD,
    SYSTEM,
    _BadAnswer,
    _exchange,
    extended_errors,
    parse_resolver,
)

__all__ = [
    "DNS_PORT",
    "PropagationReport",
    "ServerAnswer",
    "authoritative_port",
    "check_propagation",
    "probe",
    "system_resolvers",
]

DNS_PORT = 53
MAX_NAMESERVERS = 4  # authoritative servers asked (zones rarely list more; each costs a query)
_FAMILIES = (dns.rdatatype.A, dns.rdatatype.AAAA)
_ANSWERS = (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)  # the name has addresses, or has none


@dataclass
class ServerAnswer:
    """What one server (authoritative or resolver) answered for the name and the zone's SOA."""

    server: str  # ADDR:PORT asked
    role: str  # "authoritative" or "resolver"
    nameserver: str = ""  # the NS name, for an authoritative server
    addresses: list[str] = field(default_factory=list)
    cnames: list[str] = field(default_factory=list)  # the CNAME chain from the name, in order
    ttl: int | None = None  # seconds left on the answer (a resolver's remaining cache time)
    serial: int | None = None  # the zone's SOA serial as this server has it
    rcode: str = "NOERROR"
    authoritative: bool = False  # the AA flag
    error: str | None = None

    @property
    def answered(self) -> bool:
        return self.error is None


@dataclass
class PropagationReport:
    """The source's answer, each resolver's, and where they differ."""

    name: str
    zone: str | None = None
    nameservers: list[str] = field(default_factory=list)
    authoritative_answers: list[ServerAnswer] = field(default_factory=list)
    resolver_answers: list[ServerAnswer] = field(default_factory=list)
    checked_at: float = field(default_factory=time.time)
    error: str | None = None  # why the source could not be asked

    @property
    def source(self) -> ServerAnswer | None:
        """The authoritative answer to trust: the highest serial among those that answered."""
        answered = [
            a for a in self.authoritative_answers if a.answered and a.rcode in ("NOERROR", "NXDOMAIN")
        ]
        if not answered:
            return None
        return max(answered, key=lambda a: a.serial if a.serial is not None else -1)

    @property
    def source_addresses(self) -> list[str]:
        source = self.source
        return sorted(source.addresses) if source is not None else []

    def stale(self) -> list[ServerAnswer]:
        """Resolvers answering other addresses than the source (a failed resolver is not stale: it is down).

        When the source answers with a CNAME out of its zone (and so without addresses), the first CNAME
        target is what is compared: the addresses behind it are another zone's business.
        """
        source = self.source
        if source is None:
            return []
        if source.cnames and not source.addresses:
            return [a for a in self.resolver_answers if a.answered and a.cnames[:1] != source.cnames[:1]]
        wanted = set(self.source_addresses)
        return [a for a in self.resolver_answers if a.answered and set(a.addresses) != wanted]

    @property
    def agree(self) -> bool:
        return self.source is not None and not self.stale() and all(a.answered for a in self.resolver_answers)

    def expires_at(self, answer: ServerAnswer) -> float | None:
        return None if answer.ttl is None else self.checked_at + answer.ttl

    @property
    def last_cache_expiry(self) -> float | None:
        times = [t for t in (self.expires_at(a) for a in self.stale()) if t is not None]
        return max(times) if times else None

    def disagreements(self) -> list[str]:
        """One line per resolver that does not (yet) answer what the source answers."""
        source = self.source
        if source is None:
            return []
        lines = []
        for answer in self.resolver_answers:
            if not answer.answered:
                lines.append(f"resolver {answer.server} did not answer: {answer.error}")
        for answer in self.stale():
            lines.append(
                f"resolver {answer.server} still answers {_addresses(answer.addresses)} (authoritative "
                f"{source.nameserver or source.server}: {_addresses(source.addresses)}"
                + (f", serial {source.serial} vs {answer.serial}" if answer.serial != source.serial else "")
                + ")"
                + (
                    f", cached {answer.ttl} s more (until {iso_utc(self.expires_at(answer))})"
                    if answer.ttl is not None
                    else ""
                )
            )
        return lines

    def notes(self) -> list[str]:
        expiry = self.last_cache_expiry
        return [f"the last resolver cache expires at {iso_utc(expiry)}"] if expiry is not None else []

    def to_evidence(self) -> dict[str, Any]:
        """Plain data for the ``dns_propagation`` evidence record."""
        source = self.source
        return {
            "name": self.name,
            "zone": self.zone,
            "nameservers": list(self.nameservers),
            "checked_at": iso_utc(self.checked_at),
            "error": self.error,
            "source_addresses": self.source_addresses,
            "source_serial": source.serial if source is not None else None,
            "agree": self.agree,
            "authoritative": [asdict(a) for a in self.authoritative_answers],
            "resolvers": [
                asdict(a) | {"expires_at": iso_utc(self.expires_at(a)), "stale": a in self.stale()}
                for a in self.resolver_answers
            ],
            "last_cache_expiry": iso_utc(self.last_cache_expiry),
        }


def _addresses(addresses: list[str]) -> str:
    return ", ".join(sorted(addresses)) if addresses else "no address"


def system_resolvers() -> list[str]:
    """The OS resolver's name servers (``/etc/resolv.conf``), as ``ADDR:53`` specs."""
    try:
        import dns.resolver

        return [f"[{ns}]:53" if ":" in ns else f"{ns}:53" for ns in dns.resolver.Resolver().nameservers]
    except Exception:  # noqa: BLE001 - no resolv.conf: nothing to ask
        return []


# --------------------------------------------------------------------------- queries


def _ask(
    server: tuple[str, int],
    name: str | dns.name.Name,
    rdtype: int,
    deadline: float,
    *,
    recursion: bool = True,
) -> dns.message.Message:
    """The server's answer, asked with EDNS as stub resolvers ask today (a resolver says why it failed, RFC
    8914 extended errors, only to a query carrying an OPT record); asked again without it when the server
    does not speak EDNS (FORMERR, or NOTIMP/SERVFAIL, without an OPT record: RFC 6891 section 7)."""
    response = _exchange(_query(name, rdtype, recursion, edns=True), server, deadline)
    if response.rcode() in _NO_EDNS_RCODES and response.edns < 0:
        response = _exchange(_query(name, rdtype, recursion, edns=False), server, deadline)
    return response


def _query(name: str | dns.name.Name, rdtype: int, recursion: bool, *, edns: bool) -> dns.message.Message:
    query = (
        dns.message.make_query(name, rdtype, use_edns=0, payload=EDNS_PAYLOAD)
        if edns
        else dns.message.make_query(name, rdtype)
    )
    if not recursion:
        query.flags &= ~dns.flags.RD
    return query


def _server_text(server: tuple[str, int]) -> str:
    return f"[{server[0]}]:{server[1]}" if ":" in server[0] else f"{server[0]}:{server[1]}"


def _answer_for(
    server: tuple[str, int], role: str, name: str, zone: str, deadline: float, *, nameserver: str = ""
) -> ServerAnswer:
    """Ask ``server`` for the name's addresses and the zone's serial (three queries, concurrently)."""
    answer = ServerAnswer(server=_server_text(server), role=role, nameserver=nameserver)
    recursion = role == "resolver"
    replies: dict[int, Any] = {}

    def ask(rdtype: int, qname: str) -> None:
        try:
            replies[rdtype] = _ask(server, qname, rdtype, deadline, recursion=recursion)
        except (_BadAnswer, dns.exception.DNSException, OSError) as error:
            replies[rdtype] = error

    threads = [threading.Thread(target=ask, args=(rdtype, name), daemon=True) for rdtype in _FAMILIES]
    threads.append(threading.Thread(target=ask, args=(dns.rdatatype.SOA, zone), daemon=True))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.perf_counter()) + 0.5)
    ttls = [ttl for rdtype in _FAMILIES for ttl in _read_family(answer, rdtype, replies.get(rdtype))]
    answer.ttl = min(ttls) if ttls else None
    if not answer.addresses and not answer.cnames and answer.error is None:
        answer.error = _failed_rcode(replies.get(rdtype) for rdtype in _FAMILIES)
    soa = replies.get(dns.rdatatype.SOA)
    if isinstance(soa, dns.message.Message):
        for rrset in soa.answer + soa.authority:
            if rrset.rdtype == dns.rdatatype.SOA:
                answer.serial = rrset[0].serial
                break
    if answer.error and answer.addresses:
        answer.error = None  # one family answered: the other's silence is not the server's failure
    return answer


def _read_family(answer: ServerAnswer, rdtype: int, reply: Any) -> list[int]:
    """Fold one family's reply (or the error raised asking for it) into ``answer``; the TTLs it carried."""
    if not isinstance(reply, dns.message.Message):
        answer.error = answer.error or _error_text(reply)
        return []
    ttls = []
    answer.rcode = dns.rcode.to_text(reply.rcode())
    answer.authoritative = answer.authoritative or bool(reply.flags & dns.flags.AA)
    for rrset in reply.answer:
        if rrset.rdtype == rdtype:
            answer.addresses += [item.address for item in rrset if item.address not in answer.addresses]
            ttls.append(rrset.ttl)
        elif rrset.rdtype == dns.rdatatype.CNAME:
            target = rrset[0].target.to_text(omit_final_dot=True)
            if target not in answer.cnames:
                answer.cnames.append(target)
            ttls.append(rrset.ttl)
    return ttls


def _failed_rcode(replies: Iterable[Any]) -> str | None:
    """Why a server that answered gave no address, when it said it failed (SERVFAIL, REFUSED, ...) rather
    than that the name has none (NOERROR, NXDOMAIN): the rcode with its extended errors. Such a resolver is
    failing, not holding an old answer in its cache."""
    for reply in replies:
        if isinstance(reply, dns.message.Message) and reply.rcode() not in _ANSWERS:
            said = extended_errors(reply)
            return dns.rcode.to_text(reply.rcode()) + (f" ({'; '.join(said)})" if said else "")
    return None


def _error_text(error: Any) -> str:
    if error is None or isinstance(error, dns.exception.Timeout):
        return "no answer in time"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def find_zone(server: tuple[str, int], name: str, deadline: float) -> tuple[str, int | None]:
    """The zone holding ``name`` (the SOA's owner) and its serial, as ``server`` sees them."""
    candidate = dns.name.from_text(name)
    for _ in range(len(candidate.labels)):
        reply = _ask(server, candidate, dns.rdatatype.SOA, deadline)
        for rrset in reply.answer + reply.authority:
            if rrset.rdtype == dns.rdatatype.SOA:
                return rrset.name.to_text(), rrset[0].serial
        if candidate == dns.name.root:
            break
        candidate = candidate.parent()
    raise LookupError(f"no SOA record found for {name} or its parents")


def find_nameservers(
    server: tuple[str, int], zone: str, deadline: float, port: int
) -> list[tuple[str, tuple[str, int]]]:
    """``(NS name, (address, port))`` of the zone's authoritative servers, looked up through ``server``."""
    reply = _ask(server, zone, dns.rdatatype.NS, deadline)
    names = sorted(
        {
            item.target.to_text()
            for rrset in reply.answer
            if rrset.rdtype == dns.rdatatype.NS
            for item in rrset
        }
    )
    if not names:
        raise LookupError(f"no NS records for zone {zone}")
    glue = {
        rrset.name.to_text(): [item.address for item in rrset]
        for rrset in reply.additional
        if rrset.rdtype in _FAMILIES
    }
    found = []
    for ns_name in names[:MAX_NAMESERVERS]:
        addresses = glue.get(ns_name)
        if not addresses:
            answer = _ask(server, ns_name, dns.rdatatype.A, deadline)
            addresses = [
                item.address for rrset in answer.answer if rrset.rdtype == dns.rdatatype.A for item in rrset
            ]
        found += [(ns_name.rstrip("."), (address, port)) for address in addresses[:1]]
    if not found:
        raise LookupError(f"the NS names of zone {zone} ({', '.join(names)}) have no addresses")
    return found


def check_propagation(
    name: str, resolvers: list[str] | tuple[str, ...], *, timeout: float, authoritative_port: int = DNS_PORT
) -> PropagationReport:
    """Compare every resolver's answer for ``name`` with the authoritative servers'.

    Bounded by ``timeout``."""
    deadline = time.perf_counter() + timeout
    report = PropagationReport(name=name.rstrip("."))
    specs = [spec for item in resolvers for spec in (system_resolvers() if item == SYSTEM else [item])]
    servers = []
    for spec in dict.fromkeys(specs):
        try:
            servers.append(parse_resolver(spec))
        except ValueError:
            continue
    if not servers:
        report.error = "no resolver address to ask"
        return report
    walk_error = None
    for server in servers:  # the first resolver that can walk SOA and NS answers for all
        try:
            report.zone, _serial = find_zone(server, name, deadline)
            nameservers = find_nameservers(server, report.zone, deadline, authoritative_port)
            break
        except (LookupError, _BadAnswer, dns.exception.DNSException, OSError) as error:
            walk_error = f"via {_server_text(server)}: {_error_text(error)}"
    else:
        report.error = f"the authoritative servers of {name} were not found ({walk_error})"
        return report
    report.nameservers = [ns for ns, _ in nameservers]
    answers: list[ServerAnswer | None] = [None] * (len(nameservers) + len(servers))
    jobs = [(i, address, "authoritative", ns) for i, (ns, address) in enumerate(nameservers)]
    jobs += [(len(nameservers) + i, server, "resolver", "") for i, server in enumerate(servers)]

    def fill(index: int, server: tuple[str, int], role: str, ns: str) -> None:
        answers[index] = _answer_for(server, role, report.name, report.zone or name, deadline, nameserver=ns)

    threads = [threading.Thread(target=fill, args=job, daemon=True) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.perf_counter()) + 1.0)
    report.checked_at = time.time()
    for index, server, role, ns in jobs:
        answer = answers[index] or ServerAnswer(
            server=_server_text(server), role=role, nameserver=ns, error="no answer in time"
        )
        (report.authoritative_answers if role == "authoritative" else report.resolver_answers).append(answer)
    return report


def authoritative_port(sandbox_info: Any = None) -> int:
    """Where authoritative servers listen: port 53, or the sandbox's own port on loopback."""
    return getattr(sandbox_info, "authoritative_port", None) or DNS_PORT


def probe(target: Any, settings: Any, *, port: int = DNS_PORT) -> PropagationReport:
    """The uniform probe signature.

    ``target.host`` on ``settings.resolvers`` within ``settings.probe_timeout``."""
    return check_propagation(
        target.host,
        list(settings.resolvers or [SYSTEM]),
        timeout=settings.probe_timeout,
        authoritative_port=port,
    )
