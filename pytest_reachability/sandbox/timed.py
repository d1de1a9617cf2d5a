"""Timed scenarios: an authoritative DNS server, caching resolvers that honour TTLs, and scheduled changes.

A scenario may describe its zone's authoritative servers and resolvers that cache their answers::

    dns:
      authoritative:
        zone: 97v.test
        nameservers: {ns1.97v.test: 127.0.20.1, ns2.97v.test: 127.0.20.2}
        records: {97v.test: {A: [127.0.10.57], ttl: 5}}
      primary: {cache: true}          # asks the authoritative servers, keeps each answer for its TTL

and changes applied while the sandbox runs, counted from its start::

    changes:
      - after: 6s
        dns: {authoritative: {records: {97v.test: {A: [127.0.10.53], ttl: 5}}}}   # the SOA serial goes up
        edges: [{address: 127.0.10.57, behaviour: healthy}]
        kubernetes: {objects: [...], remove: [Service/production/api-service]}

Caching resolvers start with the target's addresses already cached (a busy name always is), so a change
landing after the start waits out the TTL. The authoritative servers share one port of loopback
(``SandboxInfo.authoritative_port``; port 53 in the real world). A caching resolver answers from its
cache with the TTL left, as real resolvers do, and asks the authoritative servers again only once that TTL
has run out, so a change at the source reaches the clients of each resolver no earlier than the TTL it
cached allows.
"""

from __future__ import annotations

import copy
import datetime
import ipaddress
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset

from .dns_server import DnsServer
from .scenario import EdgeSpec, RecordSpec

AUTHORITATIVE_KEY = "authoritative"
MAX_CHANGE_DELAY = 3600.0
UPSTREAM_TIMEOUT = 2.0  # a caching resolver's wait for the authoritative servers, as resolvers bound theirs
NEGATIVE_TTL = 5  # the SOA minimum: how long a cache keeps "no such name"
SOA_TTL = 60  # how long a cache keeps the SOA itself (and so the serial it reports)


@dataclass(frozen=True)
class AuthoritativeSpec:
    zone: str
    nameservers: dict[str, str]  # NS name -> IPv4 address on loopback
    records: dict[str, RecordSpec]
    serial: int = 1


@dataclass(frozen=True)
class ChangeSpec:
    """What changes ``after`` seconds from the sandbox's start."""

    after: float
    dns: dict[str, dict[str, RecordSpec]] = field(
        default_factory=dict
    )  # resolver (or "authoritative") -> records
    edges: list[Any] = field(
        default_factory=list
    )  # EdgeSpec, behaviour (and hosts) replacing a running edge's
    objects: list[dict[str, Any]] = field(
        default_factory=list
    )  # manifests added or replacing the same identity
    remove: list[str] = field(default_factory=list)  # Kind/namespace/name


# --------------------------------------------------------------------------- validation


def parse_authoritative(validator: Any, value: Any) -> AuthoritativeSpec:
    path = f"dns.{AUTHORITATIVE_KEY}"
    validator.mapping(
        value, path, ("zone", "nameservers", "records", "serial"), ("zone", "nameservers", "records")
    )
    from .scenario import is_hostname

    zone = value["zone"]
    if not is_hostname(zone):
        raise validator.fail(f"{path}.zone", "a zone name such as 97v.test", zone)
    zone = zone.lower().rstrip(".")
    nameservers = value["nameservers"]
    if not isinstance(nameservers, dict) or not nameservers:
        raise validator.fail(
            f"{path}.nameservers", "a mapping of NS names to loopback addresses", nameservers
        )
    parsed_ns = {}
    for ns_name, address in nameservers.items():
        if not is_hostname(ns_name):
            raise validator.fail(f"{path}.nameservers", "NS host names as keys", ns_name)
        try:
            ip = ipaddress.ip_address(address) if isinstance(address, str) else None
        except ValueError:
            ip = None
        if ip is None or ip.version != 4 or not ip.is_loopback:
            raise validator.fail(f"{path}.nameservers.{ns_name}", "an IPv4 address in 127.0.0.0/8", address)
        parsed_ns[ns_name.lower().rstrip(".")] = str(ip)
    serial = value.get("serial", 1)
    if isinstance(serial, bool) or not isinstance(serial, int) or not 0 < serial < 2**32:
        raise validator.fail(f"{path}.serial", "an SOA serial (a positive 32-bit integer)", serial)
    return AuthoritativeSpec(
        zone=zone,
        nameservers=parsed_ns,
        records=_records(validator, value["records"], f"{path}.records"),
        serial=serial,
    )


def _records(validator: Any, records: Any, path: str) -> dict[str, RecordSpec]:
    from .scenario import is_record_name

    if not isinstance(records, dict):
        raise validator.fail(path, "a mapping of names to record specs", records)
    parsed = {}
    for name, record in records.items():
        if not is_record_name(name):
            raise validator.fail(path, "host names or wildcards (*.name) as keys", name)
        parsed[name.lower().rstrip(".")] = validator.record(record, f"{path}.{name}")
    return parsed


def _change_dns(
    validator: Any, value: Any, path: str, resolver_names: set[str]
) -> dict[str, dict[str, RecordSpec]]:
    """A change's new records, per resolver the scenario has."""
    dns_changes = {}
    names = tuple(sorted(resolver_names))
    for resolver, spec in validator.mapping(value, path, names).items():
        where = f"{path}.{resolver}"
        validator.mapping(spec, where, ("records",), ("records",))
        dns_changes[resolver] = _records(validator, spec["records"], f"{where}.records")
    return dns_changes


def _change_edge(validator: Any, edge: Any, where: str, edge_addresses: set[str]) -> EdgeSpec:
    """A new behaviour for an existing edge; its server keeps listening, so it cannot refuse or drop."""
    validator.mapping(edge, where, ("address", "behaviour", "hosts"), ("address", "behaviour"))
    if edge["address"] not in edge_addresses:
        raise validator.fail(f"{where}.address", "the address of an edge of the scenario", edge["address"])
    behaviour = validator.behaviour(edge["behaviour"], f"{where}.behaviour")
    if behaviour.kind in ("refuse", "blackhole"):
        raise validator.fail(
            f"{where}.behaviour",
            "a behaviour of a listening server (not refuse or blackhole)",
            behaviour.kind,
        )
    hosts = edge.get("hosts")
    return EdgeSpec(
        address=edge["address"],
        behaviour=behaviour,
        hosts=tuple(h.lower().rstrip(".") for h in hosts) if isinstance(hosts, list) else None,
    )


def _change_kubernetes(
    validator: Any, value: Any, path: str, edge_addresses: set[str]
) -> tuple[list[Any], list[str]]:
    """A change's manifests (validated as the scenario's own) and the objects it removes."""
    validator.mapping(value, path, ("objects", "remove"))
    objects = value.get("objects") or []
    if not isinstance(objects, list):
        raise validator.fail(f"{path}.objects", "a list of manifests", objects)
    seen: set[str] = set()
    for obj_index, obj in enumerate(objects):
        validator.manifest(obj, obj_index, seen, edge_addresses)
    remove = value.get("remove") or []
    if not isinstance(remove, list) or not all(
        isinstance(item, str) and item.count("/") in (1, 2) for item in remove
    ):
        raise validator.fail(f"{path}.remove", "a list of Kind/namespace/name", remove)
    return objects, list(remove)


def parse_changes(
    validator: Any, value: Any, resolver_names: set[str], edge_addresses: set[str]
) -> list[ChangeSpec]:
    from .scenario import parse_duration

    if not isinstance(value, list):
        raise validator.fail("changes", "a list of {after: DURATION, dns/edges/kubernetes: ...}", value)
    changes = []
    for index, entry in enumerate(value):
        path = f"changes[{index}]"
        validator.mapping(entry, path, ("after", "dns", "edges", "kubernetes"), ("after",))
        after = parse_duration(entry["after"]) if isinstance(entry["after"], str) else None
        if after is None or after > MAX_CHANGE_DELAY:
            raise validator.fail(
                f"{path}.after", "a duration such as 500ms or 20s (at most 3600s)", entry["after"]
            )
        dns_changes = _change_dns(validator, entry.get("dns") or {}, f"{path}.dns", resolver_names)
        if not isinstance(entry.get("edges") or [], list):
            raise validator.fail(f"{path}.edges", "a list of {address, behaviour}", entry["edges"])
        edges = [
            _change_edge(validator, edge, f"{path}.edges[{edge_index}]", edge_addresses)
            for edge_index, edge in enumerate(entry.get("edges") or [])
        ]
        objects, remove = _change_kubernetes(
            validator, entry.get("kubernetes") or {}, f"{path}.kubernetes", edge_addresses
        )
        changes.append(ChangeSpec(after=after, dns=dns_changes, edges=edges, objects=objects, remove=remove))
    return sorted(changes, key=lambda change: change.after)


# --------------------------------------------------------------------------- servers


class AuthoritativeServer(DnsServer):
    """A zone's authoritative server.

    SOA (with a serial that grows on every change), NS with glue, records."""

    def __init__(self, spec: AuthoritativeSpec, *, host: str, port: int = 0, io_timeout: float = 5.0) -> None:
        super().__init__(
            spec.records, host=host, port=port, name=f"authoritative {host}", io_timeout=io_timeout
        )
        self.zone = spec.zone
        self.nameservers = dict(spec.nameservers)
        self.serial = spec.serial

    def set_records(self, records: dict[str, RecordSpec], serial: int) -> None:
        self.records, self.serial = {**self.records, **records}, serial

    def _soa(self, ttl: int = NEGATIVE_TTL) -> dns.rrset.RRset:
        """The zone's SOA; in negative answers with the negative-caching time as TTL (RFC 2308)."""
        primary = next(iter(self.nameservers))
        return dns.rrset.from_text(
            self.zone + ".",
            ttl,
            "IN",
            "SOA",
            f"{primary}. hostmaster.{self.zone}. {self.serial} 3600 600 86400 {NEGATIVE_TTL}",
        )

    def answer(self, query: dns.message.Message) -> tuple[dns.message.Message, float]:
        if query.opcode() != 0 or len(query.question) != 1:
            return super().answer(query)
        question = query.question[0]
        qname = question.name.to_text(omit_final_dot=True).lower()
        in_zone = qname == self.zone or qname.endswith("." + self.zone)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if not in_zone:
            response.flags &= ~dns.flags.AA
            response.set_rcode(dns.rcode.REFUSED)
            return response, 0.0
        if qname == self.zone and question.rdtype == dns.rdatatype.SOA:
            response.answer.append(self._soa(SOA_TTL))
            return response, 0.0
        if qname == self.zone and question.rdtype == dns.rdatatype.NS:
            response.answer.append(
                dns.rrset.from_text_list(
                    self.zone + ".", 3600, "IN", "NS", [ns + "." for ns in self.nameservers]
                )
            )
            for ns, address in self.nameservers.items():
                response.additional.append(dns.rrset.from_text(ns + ".", 3600, "IN", "A", address))
            return response, 0.0
        if qname in self.nameservers:
            if question.rdtype == dns.rdatatype.A:
                response.answer.append(
                    dns.rrset.from_text(qname + ".", 3600, "IN", "A", self.nameservers[qname])
                )
            else:
                response.authority.append(self._soa())
            return response, 0.0
        response, delay = super().answer(query)
        response.flags &= ~dns.flags.RA  # an authoritative-only server does not recurse
        # Negative answers carry this zone's SOA (its serial and negative-caching time), not a generic one.
        if any(rrset.rdtype == dns.rdatatype.SOA for rrset in response.authority):
            response.authority[:] = [self._soa()]
        return response, delay


@dataclass
class _Cached:
    expires: float  # monotonic
    rcode: int
    answer: list[dns.rrset.RRset]
    authority: list[dns.rrset.RRset]


class CachingResolver(DnsServer):
    """A recursive resolver in miniature: asks the authoritative servers, caches each answer for its TTL."""

    def __init__(
        self,
        upstreams: list[tuple[str, int]],
        *,
        name: str,
        io_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__({}, name=f"dns {name}", io_timeout=io_timeout)
        self.upstreams = upstreams
        self.clock = clock
        self.cache: dict[tuple[str, int], _Cached] = {}
        self._cache_lock = threading.Lock()

    def answer(self, query: dns.message.Message) -> tuple[dns.message.Message, float]:
        if query.opcode() != 0 or len(query.question) != 1:
            return super().answer(query)
        question = query.question[0]
        key = (question.name.to_text().lower(), question.rdtype)
        now = self.clock()
        with self._cache_lock:
            entry = self.cache.get(key)
        if entry is None or entry.expires <= now:
            entry = self._fetch(question.name, question.rdtype, now)
            if entry is None:
                response = dns.message.make_response(query)
                response.flags |= dns.flags.RA
                response.set_rcode(dns.rcode.SERVFAIL)
                return response, 0.0
            with self._cache_lock:
                self.cache[key] = entry
        remaining = max(0, math.ceil(entry.expires - now))
        response = dns.message.make_response(query)
        response.flags |= dns.flags.RA  # a cache's answer is never authoritative
        response.set_rcode(entry.rcode)
        for section, rrsets in ((response.answer, entry.answer), (response.authority, entry.authority)):
            for rrset in rrsets:
                section.append(dns.rrset.from_rdata_list(rrset.name, min(rrset.ttl, remaining), list(rrset)))
        self.query_log.append(
            {
                "name": key[0],
                "type": dns.rdatatype.to_text(key[1]),
                "time": time.time(),
                "server": self.name,
                "ttl_left": remaining,
            }
        )
        return response, 0.0

    def prime(self, names: list[str], zone: str | None = None) -> None:
        """Cache the addresses of ``names`` (and the ``zone``'s SOA) now.

        As the clients of a busy name keep a real resolver's cache warm."""
        now = self.clock()
        wanted = [(name, rdtype) for name in names for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)]
        for name, rdtype in wanted + ([(zone, dns.rdatatype.SOA)] if zone else []):
            qname = dns.name.from_text(name)
            entry = self._fetch(qname, rdtype, now)
            if entry is not None:
                with self._cache_lock:
                    self.cache[(qname.to_text().lower(), rdtype)] = entry

    def _fetch(self, name: dns.name.Name, rdtype: int, now: float) -> _Cached | None:
        query = dns.message.make_query(name, rdtype)
        query.flags &= ~dns.flags.RD
        for address, port in self.upstreams:
            try:
                reply = dns.query.udp(query, address, port=port, timeout=UPSTREAM_TIMEOUT)
            except (dns.exception.DNSException, OSError):
                continue
            ttls = [rrset.ttl for rrset in reply.answer]
            if not ttls:  # negative answer: kept for the SOA's minimum (RFC 2308)
                ttls = [
                    min(rrset.ttl, rrset[0].minimum)
                    for rrset in reply.authority
                    if rrset.rdtype == dns.rdatatype.SOA
                ]
            ttl = min(ttls) if ttls else 0
            return _Cached(
                expires=now + ttl,
                rcode=reply.rcode(),
                answer=list(reply.answer),
                authority=list(reply.authority),
            )
        return None


# --------------------------------------------------------------------------- the schedule


class ChangeScheduler:
    """Applies a scenario's changes at their times (a daemon thread; ``stop`` ends it at once)."""

    def __init__(
        self,
        changes: list[ChangeSpec],
        apply: Callable[[ChangeSpec], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.changes = sorted(changes, key=lambda change: change.after)
        self.apply = apply
        self.clock = clock
        self.applied: list[tuple[float, ChangeSpec]] = []  # (wall-clock time, change)
        self.errors: list[str] = []
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.started: float | None = None

    def start(self) -> None:
        if not self.changes:
            return
        self.started = self.clock()
        self._thread = threading.Thread(target=self._run, name="sandbox changes", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self.started is not None
        for change in self.changes:
            if self._stopping.wait(max(0.0, self.started + change.after - self.clock())):
                return
            try:
                self.apply(change)
            except Exception as error:  # noqa: BLE001 - a failed change is recorded; the sandbox keeps running
                self.errors.append(f"change after {change.after:g}s: {error}")
            self.applied.append((time.time(), change))

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None


def start_authoritative(
    spec: AuthoritativeSpec, io_timeout: float, attempts: int = 25
) -> list[AuthoritativeServer]:
    """One server per NS address, all on one port (the kernel picks it on the first)."""
    last_error: OSError | None = None
    for _ in range(attempts):
        servers: list[AuthoritativeServer] = []
        port = 0
        try:
            for address in dict.fromkeys(spec.nameservers.values()):
                server = AuthoritativeServer(spec, host=address, port=port, io_timeout=io_timeout)
                server.start(attempts=1)
                servers.append(server)
                port = server.port
            return servers
        except OSError as error:
            last_error = error
            for server in servers:
                server.stop()
    raise OSError(f"no port free on every authoritative address after {attempts} attempts: {last_error}")


def apply_change(
    change: ChangeSpec,
    *,
    authoritative: list[AuthoritativeServer],
    resolvers: dict[str, DnsServer],
    edges: list[Any],
    on_objects: Callable[[list[dict], list[str]], None] | None,
) -> None:
    """Apply one change to the running servers (the caller's thread is the scheduler's)."""
    for resolver, records in change.dns.items():
        if resolver == AUTHORITATIVE_KEY:
            serial = max((server.serial for server in authoritative), default=0) + 1
            for server in authoritative:
                server.set_records(records, serial)
        elif resolver in resolvers:
            server = resolvers[resolver]
            server.records = {**server.records, **records}
    by_address = {edge.address: edge for edge in edges}
    for spec in change.edges:
        edge = by_address[spec.address]
        edge.behaviour = spec.behaviour
        if spec.hosts is not None:
            edge.hosts = set(spec.hosts)
    if (change.objects or change.remove) and on_objects is not None:
        on_objects(change.objects, change.remove)


def replace_objects(
    objects: list[dict[str, Any]], added: list[dict[str, Any]], removed: list[str]
) -> list[dict[str, Any]]:
    """``objects`` with ``removed`` identities gone and ``added`` manifests in.

    An added manifest replaces the object of the same identity."""
    from .scenario import object_identity, resolve_relative_times

    # Relative times in a change (creationTimestamp: -1m) count from the moment it is applied.
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    fresh = []
    for manifest in added:
        obj = resolve_relative_times(copy.deepcopy(manifest), now)
        # An object a change brings is created then, with a UID of its own (a re-created Service gets a
        # new one).
        obj["metadata"].setdefault("creationTimestamp", now.strftime("%Y-%m-%dT%H:%M:%SZ"))
        obj["metadata"].setdefault("uid", str(uuid.uuid4()))
        fresh.append(obj)
    gone = set(removed) | {object_identity(obj) for obj in added}
    return [obj for obj in objects if object_identity(obj) not in gone] + fresh


def serve_objects(api: Any, objects: list[dict[str, Any]]) -> None:
    """Have the embedded API server serve ``objects`` from now on, its resourceVersion still growing."""
    from .apiserver import ObjectStore

    previous = int(api.store.resource_version)
    store = ObjectStore(objects)
    store.resource_version = str(previous + int(store.resource_version))
    api.store = store


__all__ = [
    "AUTHORITATIVE_KEY",
    "AuthoritativeServer",
    "AuthoritativeSpec",
    "CachingResolver",
    "ChangeScheduler",
    "ChangeSpec",
    "apply_change",
    "parse_authoritative",
    "parse_changes",
    "replace_objects",
    "start_authoritative",
]
