"""The outcome of a run, test by test and section by section, built from pytest's reports.

Reports arrive per phase (setup, call, teardown) and, under xdist, from several workers; this model
folds them into one outcome per test. Every output (terminal table, HTML, JSON, incident report)
reads this model, so they agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .gating import BLOCKED, ERROR, FAILED, OTHER_SECTION, PASSED, SKIPPED, first_line


def iso_utc(timestamp: float | None, timespec: str = "seconds") -> str | None:
    """A Unix time as RFC 3339 UTC (``2025-12-08T10:00:12Z``), or None; ``timespec`` as isoformat takes it."""
    if timestamp is None:
        return None
    return (
        datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat(timespec=timespec).replace("+00:00", "Z")
    )


# The built-in suite's sixteen sections, in order (README.md); any other section follows them in
# first-seen order.
BUILTIN_SECTIONS = (
    "cluster",
    "workloads",
    "k8s-services",
    "endpoints",
    "ingress",
    "network-policy",
    "dns",
    "tcp",
    "tls",
    "api-health",
    "api-internal",
    "database",
    "services",
    "integration",
    "performance",
    "results-storage",
)

NOT_RUN = "not run"  # started but no outcome reported (interrupted, --setup-only): counted nowhere


@dataclass
class TestResult:
    nodeid: str
    section: str = OTHER_SECTION
    outcome: str = NOT_RUN  # until a phase report says otherwise (a setup alone is no pass)
    reason: str = ""  # one line: failure, skip or blocked reason
    blocked_by: str | None = None
    gate: str | None = None
    duration: float = 0.0
    evidence: list[dict[str, Any]] = field(default_factory=list)
    longrepr: str = ""
    target: str | None = None  # the target's key in a run of several targets; None: run once

    __test__ = False  # not a pytest test class


COUNTED_OUTCOMES = ("passed", "failed", "error", "blocked", "skipped")


@dataclass
class SectionCounts:
    """How the tests of one section ended.

    It is the row of the terminal table, the reports, the history and the merge.

    Positional order is the history's stored column order (name, tests, counts, status).
    """

    name: str
    tests: int = 0
    passed: int = 0
    failed: int = 0
    error: int = 0
    blocked: int = 0
    skipped: int = 0
    recorded_status: str | None = None  # as a stored run recorded it; else derived from the counts
    blocked_by: tuple[str, ...] = ()

    @property
    def status(self) -> str:
        return self.recorded_status or section_status(self.passed, self.failed, self.error, self.blocked)

    def count(self, outcome: str | None, blocked_by: str | None = None, times: int = 1) -> None:
        """Count ``times`` tests ending in ``outcome`` (xfailed counts as skipped, xpassed as passed)."""
        outcome = {"xfailed": "skipped", "xpassed": "passed"}.get(str(outcome), outcome)
        if outcome in COUNTED_OUTCOMES:
            self.tests += times
            setattr(self, outcome, getattr(self, outcome) + times)
        if blocked_by and blocked_by not in self.blocked_by:
            self.blocked_by += (blocked_by,)


def section_status(passed: int, failed: int, error: int, blocked: int) -> str:
    """A section's status: any failure or error fails it; else anything blocked blocks it."""
    if failed or error:
        return "FAIL"
    if blocked:
        return "BLOCKED"
    if passed:
        return "PASS"
    return "SKIPPED"


@dataclass(frozen=True)
class Health:
    passed: int
    counted: int  # passed + failed + errors + blocked
    blocked_by: dict[str, int]

    @property
    def score(self) -> int | None:
        return None if self.counted == 0 else round(100 * self.passed / self.counted)

    def describe(self) -> str:
        if self.score is None:
            return "Health score: n/a (no checks ran)"
        text = f"Health score: {self.score}% ({self.passed} of {self.counted} checks passed"
        if self.blocked_by:
            parts = [
                f"{n} blocked by {gate}" for gate, n in sorted(self.blocked_by.items(), key=lambda kv: -kv[1])
            ]
            text += "; " + ", ".join(parts)
        return text + ")"


def failure_line(report: Any) -> str:
    """The one line that best says why a report failed or was skipped."""
    longrepr = report.longrepr
    if longrepr is None:
        return ""
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # skip: (path, lineno, "Skipped: reason")
        text = str(longrepr[2])
        return first_line(text.removeprefix("Skipped: "))
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None and getattr(crash, "message", None):
        message = str(crash.message)
        for prefix in ("AssertionError: ", "Failed: "):
            message = message.removeprefix(prefix)
        return first_line(message)
    return first_line(str(longrepr).splitlines()[-1] if str(longrepr) else "")


def gate_member_outcome(report: Any) -> tuple[str | None, str]:
    """What one phase report says about a gate test.

    (outcome, one-line message), or (None, "") if nothing yet."""
    if report.failed:
        if report.when == "call":
            return FAILED, failure_line(report) or f"{report.nodeid} failed"
        return ERROR, f"error in {report.when}: {failure_line(report)}"
    if report.skipped:
        if hasattr(report, "wasxfail"):
            return FAILED, f"{report.nodeid} xfailed"
        if getattr(report, "reachability_blocked_by", None):
            return BLOCKED, failure_line(report)
        return SKIPPED, failure_line(report)
    if report.when == "call":
        return PASSED, ""
    return None, ""


def _fold_failure(test: TestResult, report: Any) -> None:
    if report.when == "call":
        test.outcome = "failed"  # a strict XPASS fails too
    elif test.outcome not in ("failed",):
        test.outcome = "error"
    test.reason = failure_line(report)
    test.longrepr = getattr(report, "longreprtext", "") or ""


def _fold_skip(test: TestResult, report: Any) -> None:
    blocked_by = getattr(report, "reachability_blocked_by", None)
    if hasattr(report, "wasxfail"):
        test.outcome, test.reason = "xfailed", first_line(str(report.wasxfail))
    elif blocked_by:
        test.outcome, test.blocked_by, test.reason = "blocked", blocked_by, failure_line(report)
    else:
        test.outcome, test.reason = "skipped", failure_line(report)


class RunResults:
    """Per-test outcomes folded from phase reports."""

    def __init__(self) -> None:
        self.tests: dict[str, TestResult] = {}
        self.wait: dict | None = None  # how --wait ended (wait.WaitOutcome.to_dict()), when it ran

    def add_report(self, report: Any) -> None:
        nodeid = report.nodeid
        test = self.tests.get(nodeid)
        if test is None:
            test = self.tests[nodeid] = TestResult(nodeid)
        elif (
            report.passed and report.when == "teardown" and not getattr(report, "reachability_evidence", None)
        ):
            test.duration += report.duration or 0.0  # the common case, kept cheap
            return
        test.section = getattr(report, "reachability_section", None) or test.section
        test.target = getattr(report, "reachability_target", None) or test.target
        test.gate = getattr(report, "reachability_gate", None) or test.gate
        test.evidence.extend(getattr(report, "reachability_evidence", None) or [])
        test.duration += getattr(report, "duration", 0.0) or 0.0
        if report.failed:
            _fold_failure(test, report)
        elif report.skipped:
            _fold_skip(test, report)
        elif report.when == "call" and test.outcome not in ("error", "failed"):
            test.outcome = "xpassed" if hasattr(report, "wasxfail") else "passed"

    def discard_unfinished(self) -> None:
        """Forget tests that never reported an outcome (interrupted, ``--setup-only``).

        No output counts them."""
        self.tests = {nodeid: test for nodeid, test in self.tests.items() if test.outcome != NOT_RUN}

    def extend(self, reports: Iterable[Any]) -> None:
        for report in reports:
            self.add_report(report)

    def target_keys(self) -> list[str]:
        """The targets of a run of several targets, in the order their first test reported."""
        return list(dict.fromkeys(t.target for t in self.tests.values() if t.target is not None))

    def subset(self, target: str | None) -> RunResults:
        """The tests of one target (None: the tests run once for the whole run), as a run of their own."""
        return self.by_target().get(target) or self._part({})

    def by_target(self) -> dict[str | None, RunResults]:
        """Every target's :meth:`subset` (None: the tests run once), in the order their first test
        reported: one pass over the tests, however many targets."""
        parts: dict[str | None, dict[str, TestResult]] = {}
        for nodeid, test in self.tests.items():
            parts.setdefault(test.target, {})[nodeid] = test
        return {target: self._part(tests) for target, tests in parts.items()}

    def _part(self, tests: dict[str, TestResult]) -> RunResults:
        part = RunResults()
        part.tests = tests
        part.wait = self.wait
        return part

    def status(self) -> str:
        """The run's (or one target's) status, decided from all its tests as a section's is."""
        rows = self.sections()
        return section_status(
            sum(r.passed for r in rows),
            sum(r.failed for r in rows),
            sum(r.error for r in rows),
            sum(r.blocked for r in rows),
        )

    def by_outcome(self, outcome: str) -> list[TestResult]:
        return [t for t in self.tests.values() if t.outcome == outcome]

    def sections(self) -> list[SectionCounts]:
        rows: dict[str, SectionCounts] = {}
        for test in self.tests.values():
            if test.outcome == NOT_RUN:
                continue
            rows.setdefault(test.section, SectionCounts(test.section)).count(test.outcome, test.blocked_by)
        order = {name: i for i, name in enumerate(BUILTIN_SECTIONS)}
        first_seen = {name: i for i, name in enumerate(rows)}

        def key(name: str) -> tuple[int, int]:
            if name == OTHER_SECTION:
                return (2, 0)
            return (0, order[name]) if name in order else (1, first_seen[name])

        return [rows[name] for name in sorted(rows, key=key)]

    def health(self) -> Health:
        passed = counted = 0
        blocked_by: dict[str, int] = {}
        for test in self.tests.values():
            if test.outcome in ("passed", "xpassed"):
                passed += 1
                counted += 1
            elif test.outcome in ("failed", "error"):
                counted += 1
            elif test.outcome == "blocked":
                counted += 1
                blocked_by[test.blocked_by or "?"] = blocked_by.get(test.blocked_by or "?", 0) + 1
        return Health(passed, counted, blocked_by)
