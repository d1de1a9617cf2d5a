"""Evidence of change over time for the diagnosis tests: a propagation report and an address history,
built with the project's own types (``PropagationReport``, ``moved_loadbalancers``) so their shape is the
real one."""

from __future__ import annotations

from typing import Any

import diagnosis_evidence as E

from pytest_reachability.changes import moved_loadbalancers
from pytest_reachability.diagnosis import rules_changes as C
from pytest_reachability.probes.propagation import PropagationReport, ServerAnswer

NOW = 1_765_190_000.0  # 2025-12-08 10:33:20 UTC


def propagation(cached=("127.0.10.57",), source=("127.0.10.53",), ttl=42) -> dict[str, Any]:
    report = PropagationReport(
        name="97v.test", zone="97v.test.", nameservers=["ns1.97v.test"], checked_at=NOW
    )
    report.authoritative_answers = [
        ServerAnswer(
            "127.0.20.1:53",
            "authoritative",
            "ns1.97v.test",
            addresses=list(source),
            ttl=10,
            serial=2,
            authoritative=True,
        )
    ]
    report.resolver_answers = [
        ServerAnswer("127.0.0.1:5353", "resolver", addresses=list(cached), ttl=ttl, serial=1),
        ServerAnswer("127.0.0.1:5354", "resolver", addresses=list(source), ttl=10, serial=2),
    ]
    return report.to_evidence()


def history_rows(old="127.0.10.57") -> list[dict[str, Any]]:
    return [
        {
            "run_uuid": "a1b2c3d4e5f6",
            "started_at": "2025-12-07T22:00:00+00:00",
            "kind": kind,
            "name": name,
            "source": source,
            "address": old,
        }
        for kind, name, source in (
            ("loadbalancer", "production/api", ""),
            ("dns", "97v.test", "127.0.0.1:5353"),
        )
    ]


def address_history(old="127.0.10.57", now="127.0.10.53", dns=("127.0.10.57",)) -> dict[str, Any]:
    rows = history_rows(old)
    services = [
        {
            "kind": "Service",
            "name": "api",
            "namespace": "production",
            "uid": "9e8d7c6b",
            "created": "2025-12-07T22:30:00Z",
        }
    ]
    return {
        "key": "97v.test|production",
        "rows": rows,
        "read_at": "2025-12-08T10:30:00Z",
        "moves": moved_loadbalancers(rows, {"production/api": [now]}, list(dns), services),
    }


STALE_CACHE = [("dns_propagation", propagation()), ("http_probe", E.http_probe("127.0.10.57", "empty_reply"))]
AGREEING = [
    ("dns_propagation", propagation(cached=("127.0.10.53",))),
    ("http_probe", E.http_probe("127.0.10.53", status=200)),
]
MOVED = [("address_history", address_history()), ("http_probe", E.http_probe("127.0.10.57", "empty_reply"))]
FOLLOWED = [("address_history", address_history(dns=("127.0.10.53",)))]

# (rule, records that make it fire, records that must not), as the rule tests take them.
CHANGE_CASES = [
    (C.dns_still_cached, STALE_CACHE, AGREEING),
    (C.loadbalancer_moved, MOVED, FOLLOWED),
]
