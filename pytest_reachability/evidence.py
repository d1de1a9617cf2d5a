"""Evidence: facts a test records for the diagnosis and the reports.

Evidence is plain data (dicts, lists, strings, numbers, booleans, None) so that it travels on the
test report itself -- pytest-xdist serialises report attributes of built-in types to the controller.
There is no side channel: what a test saw reaches the reports exactly as its pass/fail does.

Example::

    def test_health_answers(http, evidence):
        response = http.get("/health")
        evidence.record("health", {"status": response.status_code})
        assert response.status_code == 200
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator, Mapping
from typing import Any

REPORT_ATTRIBUTE = "reachability_evidence"


def plain(value: Any) -> Any:
    """``value`` as JSON-compatible built-in types (dataclasses and objects with to_evidence() too)."""
    if hasattr(value, "to_evidence"):
        value = value.to_evidence()
    return json.loads(json.dumps(value, default=_fallback))


def _fallback(value: Any) -> Any:
    if hasattr(value, "to_evidence"):
        return value.to_evidence()
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class Evidence:
    """The facts recorded during one test, in the order they were recorded."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def record(self, kind: str, data: Mapping[str, Any] | Any, **fields: Any) -> None:
        """Attach ``data`` (converted to plain data) under ``kind`` to the running test's report.

        ``fields`` are added to it: where the observation came from, for instance, which the diagnosis
        reads (``source="dns"`` for an address the target's name resolved to, ``source="loadbalancer"``
        and ``service=...`` for a LoadBalancer's)::

            for result in probe.health():
                evidence.record("http_probe", result, source="dns")
        """
        if not isinstance(kind, str) or not kind:
            raise ValueError("evidence kind must be a non-empty string")
        value = plain(data)
        if fields:
            if not isinstance(value, dict):
                raise TypeError(
                    f"evidence {kind!r}: fields={sorted(fields)} need data that is a mapping, not "
                    f"{type(value).__name__}"
                )
            value = {**value, **plain(fields)}
        self.records.append({"kind": kind, "data": value})

    def of_kind(self, kind: str) -> list[Any]:
        return [r["data"] for r in self.records if r["kind"] == kind]

    def __len__(self) -> int:
        return len(self.records)


# The running test's evidence, so session-scoped fixtures (shared probes) record against the test
# that first needed them. Set and cleared by the plugin around each test.
_current: Evidence | None = None
_thread = (
    threading.local()
)  # .suppressed: this thread works ahead of the tests (prefetch) and records nothing


def set_current(evidence: Evidence | None) -> None:
    global _current
    _current = evidence


def record(kind: str, data: Mapping[str, Any] | Any, **fields: Any) -> None:
    """Record on the running test, if any (outside a test the fact is dropped).

    See :meth:`Evidence.record`."""
    captured = getattr(_thread, "captured", None)
    if captured is not None:
        captured.append((kind, data, fields))
    elif _current is not None and not getattr(_thread, "suppressed", False):
        _current.record(kind, data, **fields)


@contextlib.contextmanager
def captured() -> Iterator[list[tuple[str, Any, dict[str, Any]]]]:
    """Keep what this thread records meanwhile, as ``(kind, data, fields)``, instead of recording it: work
    done ahead of its test (``prefetch.flow``) hands its evidence to the test that reads its result."""
    before = getattr(_thread, "captured", None)
    records: list[tuple[str, Any, dict[str, Any]]] = []
    _thread.captured = records
    try:
        yield records
    finally:
        _thread.captured = before


@contextlib.contextmanager
def suppressed() -> Iterator[None]:
    """Record nothing from this thread meanwhile: its work is not the running test's observation."""
    before = getattr(_thread, "suppressed", False)
    _thread.suppressed = True
    try:
        yield
    finally:
        _thread.suppressed = before
