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
    """``value`` as JSON-compatible built-in types (dataclasses and objects with to_evidence() too).

    Each call returns new containers: a record never shares a list or dict with another."""
    if not _is_fixed(value):
        return json.loads(_json_text(value))
    # The cluster's snapshots are shared by the tests of every target of a fleet, which record the same
    # Service, pod and Ingress objects again and again: each one's text is made once, decoded every time.
    cached = _fixed_texts.get(id(value))
    if cached is None or cached[0] is not value:
        if len(_fixed_texts) >= _FIXED_TEXTS_LIMIT:
            _fixed_texts.clear()
        cached = _fixed_texts[id(value)] = (value, _json_text(value))
    return json.loads(cached[1])


def _json_text(value: Any) -> str:
    if hasattr(value, "to_evidence"):
        value = value.to_evidence()
    return json.dumps(value, default=_fallback)


# id -> (the object, its JSON text); holding the object keeps its id from being reused.
_fixed_texts: dict[int, tuple[Any, str]] = {}
_FIXED_TEXTS_LIMIT = 4096
_SNAPSHOT_MODULE = "pytest_reachability.cluster"


def _is_fixed(value: Any) -> bool:
    """Whether ``value``'s evidence is fixed by its fields, which cannot change: a frozen dataclass whose
    evidence is its fields (the cluster's snapshots, or no to_evidence() of its own)."""
    params = getattr(type(value), "__dataclass_params__", None)
    if params is None or not params.frozen:
        return False
    to_evidence = getattr(type(value), "to_evidence", None)
    return to_evidence is None or getattr(to_evidence, "__module__", None) == _SNAPSHOT_MODULE


def forget_texts() -> None:
    """Drop the texts kept for the session's snapshots (at its end: the objects may then go)."""
    _fixed_texts.clear()


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


def current() -> Evidence | None:
    """The running test's evidence (None between tests)."""
    return _current


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
