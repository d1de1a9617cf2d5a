"""The evidence of tests as reports show it: each observation once.

A probe shared by several tests is recorded once without a source by the fixture that ran it and again
by the test that knows where its address came from (``source``: ``dns``, ``loadbalancer``); reports
keep the sourced record and drop the bare copy, so each probe is drawn and listed once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

# Kinds whose records describe one connection; two records of the same place are the same probe.
PROBE_KINDS = ("http_probe", "tcp", "tls")


def _place(kind: Any, data: Mapping[str, Any]) -> tuple:
    return (kind, data.get("address"), data.get("port"), data.get("path"))


def records_of(tests: Iterable[Any]) -> Iterator[tuple[Any, Mapping[str, Any]]]:
    """(kind, data) of every record of ``tests`` (TestResult objects or plain evidence lists)."""
    for test in tests:
        evidence = test if isinstance(test, list) else getattr(test, "evidence", None) or []
        for record in evidence:
            data = record.get("data") if isinstance(record, Mapping) else None
            if isinstance(data, Mapping):
                yield record.get("kind"), data


def distinct_records(tests: Iterable[Any]) -> list[tuple[Any, Mapping[str, Any]]]:
    """Every record once: bare copies of sourced probes dropped, exact repeats dropped, order kept."""
    records = list(records_of(tests))
    sourced = {_place(kind, data) for kind, data in records if kind in PROBE_KINDS and data.get("source")}
    seen: set[str] = set()
    out = []
    for kind, data in records:
        if kind in PROBE_KINDS and not data.get("source") and _place(kind, data) in sourced:
            continue
        key = repr((kind, sorted(data.items(), key=lambda item: str(item[0]))))
        if key in seen:
            continue
        seen.add(key)
        out.append((kind, data))
    return out
