"""Section 16, results-storage: a result written through the API reads back unchanged, then is deleted.

Configured by ``[tool.reachability.results-storage]`` (see ``examples/reachability.toml``)::

    [tool.reachability.results-storage]
    write-path = "/api/v1/results"              # POST the payload (JSON)
    read-path = "/api/v1/results/${id}"         # GET it back; ${id} is the answer's id-field
    delete-path = "/api/v1/results/${id}"       # DELETE it (clean-up), then GET must say 404/410
    id-field = "id"
    payload = { check = "pytest-reachability" }

The payload gets a unique ``reachability_nonce`` so the record read back is the one this run wrote. The
round trip runs once per session; the clean-up runs even when reading back failed. Each request is
bounded by the probe timeout. Needs ``api-health`` and the ``database`` gate (section 12).
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from pytest_reachability import jsontext, prefetch
from pytest_reachability.appconfig import json_path_get, substitute

pytestmark = pytest.mark.section("results-storage", requires=["api-health", "database"])

BODY_EXCERPT = 160


@pytest.fixture(scope="module")
def storage_config(app_config):
    if app_config.results_storage is None:
        pytest.skip(app_config.not_configured("results-storage"))
    return app_config.results_storage


@dataclass
class Step:
    """One request of the round trip: what was asked and what came back."""

    method: str
    url: str
    status: int | None = None
    document: Any = None
    text: str = ""
    error: str | None = None
    ms: float | None = None

    def answered(self) -> str:
        if self.error is not None:
            return f"failed: {self.error}"
        text = " ".join(self.text.split())
        text = text if len(text) <= BODY_EXCERPT else text[: BODY_EXCERPT - 3] + "..."
        return f"answered {self.status}" + (f" (body: {text})" if text else "")

    def to_evidence(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "url": self.url,
            "status": self.status,
            "error": self.error,
            "ms": self.ms,
        }


@dataclass
class RoundTrip:
    payload: dict[str, Any]
    result_id: Any = None
    write: Step | None = None
    read: Step | None = None
    delete: Step | None = None
    read_after_delete: Step | None = None
    problems: list[str] = field(default_factory=list)  # why the round trip could not go on


def send(http, method: str, path: str, **kwargs: Any) -> Step:
    step = Step(method, http.base_url + path)
    started = time.perf_counter()
    try:
        response = http.request(method, path, **kwargs)
    except requests.RequestException as error:
        step.error = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    else:
        step.status, step.text = response.status_code, response.text
        try:
            step.document = jsontext.response_json(response) if response.content else None
        except ValueError:
            step.document = None
    step.ms = round((time.perf_counter() - started) * 1000, 1)
    return step


# The round trip starts as soon as its gates pass (see prefetch_for_target), not when its test's turn comes.
PREFETCH_AFTER_GATES = ("api-health", "database")


def round_trip_key(target: Any) -> str:
    return f"suite-round-trip:{target.base_url}"


def prefetch_for_target(work: Any) -> None:
    config = work.app_config.results_storage
    if config is not None:
        work.flow(round_trip_key(work.target), lambda http: run_round_trip(config, http))


@pytest.fixture(scope="module")
def round_trip(storage_config, http, target, shared_results) -> RoundTrip:
    """The write, read, delete and read-after-delete, done once per target (maybe already, by prefetch)."""
    return prefetch.flow(shared_results, round_trip_key(target), lambda: run_round_trip(storage_config, http))


def run_round_trip(config: Any, http: Any) -> RoundTrip:
    trip = RoundTrip(payload={**config.payload, "reachability_nonce": secrets.token_hex(8)})
    trip.write = send(http, "POST", config.write_path, json=trip.payload)
    if trip.write.status not in config.write_status:
        return trip
    found, trip.result_id = json_path_get(trip.write.document, config.id_field)
    if not found or trip.result_id in (None, ""):
        trip.problems.append(f"the answer has no {config.id_field} (id-field) to read the result back by")
        return trip
    saved = {"id": trip.result_id}
    try:
        trip.read = send(http, "GET", substitute(config.read_path, saved))
    finally:
        if config.delete_path is not None:
            trip.delete = send(http, "DELETE", substitute(config.delete_path, saved))
            if trip.delete.status in config.delete_status:
                trip.read_after_delete = send(http, "GET", substitute(config.read_path, saved))
    return trip


def record(evidence, check: str, ok: bool, observed: Any, expected: Any, step: Step | None) -> None:
    evidence.record(
        "app_check",
        {
            "section": "results-storage",
            "check": check,
            "ok": ok,
            "observed": observed,
            "expected": expected,
            "url": step.url if step else None,
            "ms": step.ms if step else None,
        },
    )


def statuses(values) -> str:
    return " or ".join(map(str, values))


def test_result_written_reads_back_unchanged(round_trip, storage_config, evidence):
    config, trip = storage_config, round_trip
    write = trip.write
    assert write is not None
    wrote = write.status in config.write_status
    record(evidence, "write", wrote, write.error or write.status, list(config.write_status), write)
    assert wrote, f"POST {write.url} {write.answered()}, expected {statuses(config.write_status)}"
    problems = trip.problems
    assert not problems, f"POST {write.url}: {'; '.join(problems)}"
    read = trip.read
    assert read is not None
    read_ok = read.status in config.read_status
    record(evidence, "read back", read_ok, read.error or read.status, list(config.read_status), read)
    assert read_ok, (
        f"GET {read.url} {read.answered()}, expected {statuses(config.read_status)} with the result written"
    )
    if not isinstance(read.document, dict):
        raise AssertionError(f"GET {read.url} answered a body that is not a JSON object: {read.text[:80]!r}")
    differences = []
    for key, sent in trip.payload.items():
        if key not in read.document:
            differences.append(f"{key} missing")
        elif read.document[key] != sent:
            differences.append(f"{key}={json.dumps(read.document[key])} (wrote {json.dumps(sent)})")
    record(evidence, "read back unchanged", not differences, read.document, trip.payload, read)
    assert not differences, f"GET {read.url} returned a different result: {', '.join(differences)}"


def test_result_is_deleted_after_the_check(round_trip, storage_config, evidence):
    config, trip = storage_config, round_trip
    if config.delete_path is None:
        pytest.skip(
            "no delete-path in [tool.reachability.results-storage]: results written by the check are kept"
        )
    if trip.delete is None:
        pytest.skip("nothing was written to delete (see test_result_written_reads_back_unchanged)")
    delete = trip.delete
    deleted = delete.status in config.delete_status
    record(evidence, "delete", deleted, delete.error or delete.status, list(config.delete_status), delete)
    assert deleted, f"DELETE {delete.url} {delete.answered()}, expected {statuses(config.delete_status)}"
    gone = trip.read_after_delete
    assert gone is not None
    is_gone = gone.status in config.gone_status
    record(evidence, "gone after delete", is_gone, gone.error or gone.status, list(config.gone_status), gone)
    assert is_gone, f"GET {gone.url} after DELETE {gone.answered()}, expected {statuses(config.gone_status)}"
