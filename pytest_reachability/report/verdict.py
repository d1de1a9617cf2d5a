"""The answer first: one line saying whether the target is reachable, the path that fails, and why.

Every output leads with it (terminal, HTML summary, incident report), so an on-call reader who reads
one line knows the state: ``UNREACHABLE from outside: DNS 97v.test → 127.0.10.57 → empty reply (curl 52);
healthy inside the cluster; likely cause (95%): the DNS A record … — explains 4 of 4 failed checks``.

Plain data in, text out: no pytest import.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..results import RunResults, TestResult
from .evidence_view import distinct_records

FAILED_OUTCOMES = ("failed", "error")
# The section whose failure means "not reachable from outside" (the health gate), and the inside view.
OUTSIDE_SECTION = "api-health"
INSIDE_SECTION = "api-internal"
TITLE_LIMIT = 110


@dataclass(frozen=True)
class Verdict:
    """The state in one word, and the line that explains it."""

    state: str  # HEALTHY | UNREACHABLE | DEGRADED | NOT VERIFIED
    line: str

    @property
    def ok(self) -> bool:
        return self.state == "HEALTHY"


def failed_tests(results: RunResults) -> list[TestResult]:
    return [t for t in results.tests.values() if t.outcome in FAILED_OUTCOMES]


def explained(theory: Any, failed_ids: Iterable[str]) -> tuple[int, int]:
    """(failed checks this theory accounts for, failed checks in all); (0, M) when it names none."""
    failed = set(failed_ids)
    names = set(_field(theory, "explains"))
    return len(names & failed), len(failed)


def explains_text(theory: Any, failed_ids: Iterable[str]) -> str:
    """``explains N of M failed checks`` when the theory names the checks it accounts for, else ""."""
    count, total = explained(theory, failed_ids)
    if not count:
        return ""
    return f"explains {count} of {total} failed check{'s' if total != 1 else ''}"


def _field(theory: Any, name: str) -> list:
    """A list attribute of a theory object or dict; empty when the theory does not carry it."""
    value = theory.get(name) if isinstance(theory, Mapping) else getattr(theory, name, None)
    return list(value or [])


def shorten(text: str, limit: int = TITLE_LIMIT) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def failing_path(tests: Sequence[TestResult]) -> str:
    """``DNS host → address → empty reply (curl 52)`` for the first failed probe of an address DNS gave."""
    probes = [data for kind, data in distinct_records(tests) if kind == "http_probe" and data.get("failure")]
    probes.sort(key=lambda data: data.get("source") != "dns")  # what users reach first: DNS answers
    for data in probes:
        failure = str(data["failure"]).replace("_", " ")
        exit_code = data.get("curl_exit")
        outcome = f"{failure} (curl {exit_code})" if exit_code not in (None, 0) else failure
        address = f"{data.get('address')}"
        if data.get("source") == "dns" and data.get("host"):
            return f"DNS {data['host']} → {address} → {outcome}"
        return f"{address}:{data.get('port')} → {outcome}"
    return ""


def _inside(results: RunResults) -> str:
    row = next((r for r in results.sections() if r.name == INSIDE_SECTION), None)
    if row is None or row.status in ("SKIPPED", "BLOCKED"):
        return ""
    return "healthy inside the cluster" if row.status == "PASS" else "failing inside the cluster too"


def _cause(theories: Sequence[Any], failed_ids: list[str]) -> str:
    if not theories:
        return ""
    top = theories[0]
    title = shorten(_value(top, "title"))
    confidence = _value(top, "confidence")
    shown = f" ({float(confidence):.0%})" if isinstance(confidence, (int, float)) else ""
    explains = explains_text(top, failed_ids)
    return f"likely cause{shown}: {title}" + (f" — {explains}" if explains else "")


def _value(theory: Any, name: str) -> Any:
    return theory.get(name) if isinstance(theory, Mapping) else getattr(theory, name, None)


def _state(results: RunResults) -> str:
    rows = {row.name: row for row in results.sections()}
    failed = failed_tests(results)
    outside = rows.get(OUTSIDE_SECTION)
    if outside is not None and outside.status == "FAIL":
        return "UNREACHABLE"
    if failed:
        return "DEGRADED"
    if results.by_outcome("blocked") or results.health().counted == 0:
        return "NOT VERIFIED"
    return "HEALTHY"


def verdict(results: RunResults, theories: Sequence[Any] = (), target: str | None = None) -> Verdict | None:
    """The verdict of a run, or None when no test reported an outcome."""
    if not results.tests:
        return None
    state = _state(results)
    failed = failed_tests(results)
    failed_ids = [t.nodeid for t in failed]
    health = results.health()
    if state == "HEALTHY":
        where = f"{target} " if target else ""
        return Verdict(
            state,
            f"HEALTHY: {where}reachable from outside; {health.passed} of {health.counted} checks passed",
        )
    if state == "NOT VERIFIED":
        blocked = len(results.by_outcome("blocked"))
        why = f"{blocked} checks blocked" if blocked else "no check ran (every test was skipped)"
        return Verdict(state, f"NOT VERIFIED: {why}")
    if state == "UNREACHABLE":
        outside = [t for t in failed if t.section == OUTSIDE_SECTION]
        head = "UNREACHABLE from outside"
        path = failing_path(outside) or shorten(outside[0].reason if outside else "", 80)
    else:
        sections = ", ".join(dict.fromkeys(t.section for t in failed))
        head = "DEGRADED: reachable from outside"
        path = f"{len(failed)} check{'s' if len(failed) != 1 else ''} failed in {sections}"
    parts = [part for part in (path, _inside(results), _cause(theories, failed_ids)) if part]
    return Verdict(state, f"{head}: {'; '.join(parts)}" if parts else head)
