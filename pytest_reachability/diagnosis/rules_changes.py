"""Rules about change over time: a DNS change still cached, a LoadBalancer that moved under a DNS record.

* ``dns-still-cached`` reads ``dns_propagation`` evidence: the zone's authoritative servers already answer
  the new record (a newer SOA serial) while resolvers still serve the old one from their caches. The fix is
  time (the cached TTL) or a cache flush; the theory says when the last cache expires, in UTC.
* ``loadbalancer-moved`` reads ``address_history`` (what earlier runs saw, from the history database) and
  ``cluster_changes`` evidence: a Service's LoadBalancer address changed since an earlier run (typically the
  Service was re-created) and DNS still answers the old address.
"""

from __future__ import annotations

from typing import Any

from ..changes import describe_move
from .facts import Facts, probe_ok
from .theory import Theory, curl, dig, kubectl
from .wording import describe_failure, probe_line


def _propagation(facts: Facts) -> dict[str, Any] | None:
    reports = [data for data in facts.of("dns_propagation") if data.get("source_addresses") is not None]
    host = facts.context.host
    return next((data for data in reports if data.get("name") == host), reports[0] if reports else None)


def _stale_cache(facts: Facts) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """(the propagation report, the resolvers still serving the old answer), or None when none does."""
    data = _propagation(facts)
    if data is None or data.get("agree") or not data.get("source_addresses"):
        return None
    stale = [answer for answer in data.get("resolvers") or [] if answer.get("stale")]
    return (data, stale) if stale else None


def _cached_evidence(
    name: str, data: dict[str, Any], source_answer: dict[str, Any], stale: list[dict[str, Any]]
) -> list[str]:
    """The authoritative answer, then each stale resolver's answer and when its cache expires."""
    evidence = [
        f"authoritative {source_answer.get('nameserver') or source_answer.get('server')} "
        f"({source_answer.get('server')}) answers {name} → {', '.join(data['source_addresses'])} "
        f"(SOA serial {data.get('source_serial')})"
    ]
    evidence += [
        f"resolver {answer.get('server')} answers "
        f"{', '.join(answer.get('addresses') or []) or 'nothing'} "
        f"(serial {answer.get('serial')}), cached {answer.get('ttl')} s more, until "
        f"{answer.get('expires_at')}"
        for answer in stale
    ]
    return evidence


def _cached_title(
    name: str, data: dict[str, Any], stale: list[dict[str, Any]], old: list[str], failing_old: list[dict]
) -> str:
    title = (
        f"{name} changed at the source, still cached: the authoritative servers answer "
        f"{', '.join(data['source_addresses'])} "
        f"(serial {data.get('source_serial')}) while {', '.join(a.get('server') for a in stale)} still "
        f"serve{'s' if len(stale) == 1 else ''} "
        f"{', '.join(old) or 'the old answer'}"
    )
    if failing_old:
        title += f" ({describe_failure(failing_old[0])})"
    if data.get("last_cache_expiry"):
        title += f"; the last cache expires at {data.get('last_cache_expiry')}"
    return title


def _cached_confirm(name: str, source_answer: dict[str, Any], stale: list[dict[str, Any]]) -> list[str]:
    """Ask the authoritative server without recursion, then each stale resolver for its counting TTL."""
    ns_address, _, ns_port = source_answer.get("server", "").rpartition(":")
    port = f" -p {ns_port}" if ns_port and ns_port != "53" else ""
    return [
        f"dig @{ns_address}{port} {name} +norec +noall +answer  # the source's answer",
        *[
            dig(name, a.get("server")).replace("+short", "+noall +answer")
            + "  # the TTL column counts down to the expiry"
            for a in stale
        ],
    ]


def dns_still_cached(facts: Facts) -> Theory | None:
    """Changed at the source, still cached: resolvers serve what the authoritative servers no longer
    answer."""
    found = _stale_cache(facts)
    if found is None:
        return None
    data, stale = found
    name, source = data.get("name") or facts.context.host, data["source_addresses"]
    source_answer = next(
        (a for a in data.get("authoritative") or [] if sorted(a.get("addresses") or []) == source), {}
    )
    old = sorted({address for answer in stale for address in answer.get("addresses") or []})
    probes = {p.get("address"): p for p in facts.http_probes("dns")}
    old_probes = [probes[address] for address in old if address in probes]
    evidence = _cached_evidence(name, data, source_answer, stale) + [probe_line(p) for p in old_probes]
    failing_old = [probe for probe in old_probes if not probe_ok(probe)]
    # A failing old address is what breaks the clients of those resolvers.
    confidence = 0.9 if failing_old else 0.7
    expiry = data.get("last_cache_expiry")
    fix = [
        f"Nothing to change in the zone: wait until {expiry or 'the cached TTL runs out'} "
        "(pytest --wait lets a gate wait for it), or flush the stale resolvers' caches:",
        f"resolvectl flush-caches; unbound-control flush {name}; rndc flushname {name}",
        "Before the next change: lower the record's TTL a TTL ahead of time, change it, raise it again",
    ]
    verify = [f"{dig(name, a.get('server'))}  # expect {', '.join(source)}" for a in stale]
    theory = Theory(
        "dns-still-cached",
        _cached_title(name, data, stale, old, failing_old),
        confidence,
        evidence,
        _cached_confirm(name, source_answer, stale),
        fix,
        subjects=old,
        verify=verify,
    )
    theory.explains = facts.explain(("dns",), ["still cached", "changed at the source"]) + facts.explain(
        ("tcp", "tls", "api-health"), old
    )
    return theory


def loadbalancer_moved(facts: Facts) -> Theory | None:
    """A Service's LoadBalancer moved (seen by an earlier run) and DNS still answers its old address."""
    moves = [
        move
        for data in facts.of("address_history")
        for move in data.get("moves") or []
        if move.get("dns_still_answers")
    ]
    if not moves:
        return None
    move = moves[0]
    name = move["service"].split("/", 1)[-1]
    namespace = move["service"].split("/", 1)[0] or facts.context.namespace
    probes = {p.get("address"): p for p in facts.http_probes("dns")}
    evidence = [describe_move(move)]
    confidence = 0.8
    for address in move["dns_still_answers"]:
        if address in probes:
            evidence.append(probe_line(probes[address]))
            if not probe_ok(probes[address]):
                confidence = 0.93
    for data in facts.of("cluster_changes"):
        for event in data.get("events") or []:
            if event.get("object") == f"Service/{name}":
                evidence.append(
                    f"event {event.get('reason')} on Service/{name} at {event.get('last_seen')}: "
                    f"{event.get('message')}"
                )
    host = facts.context.host
    new = ", ".join(move["to"])
    title = f"{describe_move(move)} — update the DNS record of {host} to {new}"
    confirm = [
        f"{kubectl(facts.context, f'get service {name} -o wide', namespace)}  # its EXTERNAL-IP is {new}",
        kubectl(facts.context, f"get service {name} -o jsonpath={{.metadata.creationTimestamp}}", namespace),
        *[dig(host, resolver) for resolver in facts.context.resolvers[:2] or ["system"]],
        curl(facts.context, move["to"][0]),
    ]
    fix = [
        f"Point the A record of {host} at {new} (the LoadBalancer's address now)",
        "or manage the record from the Service (external-dns), so a re-created Service takes its record "
        "along",
    ]
    theory = Theory(
        "loadbalancer-moved",
        title,
        confidence,
        evidence,
        confirm,
        fix,
        subjects=list(move["dns_still_answers"]),
        verify=[f"{dig(host, None)}  # expect {new}"],
    )
    theory.explains = facts.explain(
        ("dns",), move["dns_still_answers"] + ["LoadBalancer moved"]
    ) + facts.explain(("tcp", "tls", "api-health"), move["dns_still_answers"])
    return theory


RULES = (dns_still_cached, loadbalancer_moved)
