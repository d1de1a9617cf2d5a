"""Terminal output: the verdict first, one BLOCKED line per section with the gate's reason once, and mentions
of reports only when they were written -- through real pytest runs (pytester) and on plain results."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from test_diagnosis_rules import http_probe

from pytest_reachability.diagnosis import Theory
from pytest_reachability.report import terminal
from pytest_reachability.report.verdict import explains_text, failing_path, verdict
from pytest_reachability.results import RunResults, TestResult

REASON = (
    "GET /health failed on 127.0.10.57:80 empty_reply (curl 52): connected and sent the request; "
    "the server closed"
)
SUITE = f'''
import pytest

@pytest.mark.section("api-health")
@pytest.mark.gate("api-health")
def test_health():
    assert False, "{REASON}"

@pytest.mark.section("database", requires=["api-health"])
@pytest.mark.parametrize("n", range(3))
def test_db(n):
    pass

@pytest.mark.section("services", requires=["api-health"])
def test_bot():
    pass
'''


def summary_of(result: pytest.RunResult) -> list[str]:
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if "= reachability =" in line)
    # pytest's own short summary follows; under CI=true it prints failure messages untruncated.
    end = next(
        (i for i, line in enumerate(lines) if "short test summary info" in line and i > start), len(lines)
    )
    return lines[start:end]


def test_blocked_sections_are_one_line_each_with_the_reason_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider", "--target", "http://97v.test")
    lines = summary_of(result)
    assert lines[1].startswith("UNREACHABLE from outside: "), lines[:3]  # the verdict first
    assert sum(REASON in line for line in lines) == 1  # once for four blocked tests
    blocked = [line for line in lines if line.startswith("BLOCKED ")]
    assert [line.split()[1:4] for line in blocked] == [["database", "3", "tests"], ["services", "1", "test"]]
    assert all(line.endswith("by api-health") for line in blocked)
    assert f"blocked by api-health: {REASON}" in lines
    assert any(" BLOCKED: 4 tests in 2 sections " in line for line in lines)
    assert not any("::" in line for line in blocked)  # no test by test list unless asked


@pytest.mark.parametrize("switch", ["-v", "-rs", "-rA"])
def test_each_blocked_test_is_listed_on_request(pytester: pytest.Pytester, switch: str) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider", switch)
    result.stdout.fnmatch_lines(
        [
            f"BLOCKED test_suite.py::test_db[[]0[]] - blocked by api-health: {REASON}",
            f"BLOCKED test_suite.py::test_bot - blocked by api-health: {REASON}",
        ]
    )


def test_more_causes_name_only_reports_that_were_written() -> None:
    assert (
        terminal.more_causes_line(2, [])
        == "2 more causes: no report was written; --incident-report PATH lists them all"
    )
    written = ["results JSON: r.json", "incident report INC-2025-12-08-001: i.md"]
    assert (
        terminal.more_causes_line(1, written)
        == "1 more cause in the results JSON and the incident report INC-2025-12-08-001"
    )
    assert terminal.more_causes_line(3, written[:1]) == "3 more causes in the results JSON"


def test_terminal_mentions_no_report_that_was_not_written(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert not any("incident report" in line or "JSON results" in line for line in result.outlines)


# --------------------------------------------------------------------------- the verdict on plain results


@dataclass
class ExplainingTheory(Theory):
    explains: list[str] = field(default_factory=list)


def results_of(*tests: TestResult) -> RunResults:
    results = RunResults()
    for test in tests:
        results.tests[test.nodeid] = test
    return results


def test_verdict_names_the_failing_path_inside_view_and_cause() -> None:
    bare = http_probe("127.0.10.57", "empty_reply")
    sourced = {**bare, "source": "dns"}
    results = results_of(
        TestResult(
            "t10::health",
            section="api-health",
            outcome="failed",
            gate="api-health",
            reason="empty reply",
            evidence=[{"kind": "http_probe", "data": bare}, {"kind": "http_probe", "data": sourced}],
        ),
        TestResult("t07::dns", section="dns", outcome="failed", reason="DNS A 127.0.10.57 is not an address"),
        TestResult("t11::inside", section="api-internal", outcome="passed"),
        TestResult(
            "t12::db",
            section="database",
            outcome="blocked",
            blocked_by="api-health",
            reason="blocked by api-health: x",
        ),
    )
    theory = ExplainingTheory(
        "dns-not-loadbalancer",
        "the DNS A record points at a dead edge",
        0.95,
        explains=["t10::health", "t07::dns", "not-a-failed-test"],
    )
    found = verdict(results, [theory], "http://97v.test")
    assert found.state == "UNREACHABLE"
    assert found.line == (
        "UNREACHABLE from outside: DNS 97v.test → 127.0.10.57 → empty reply (curl 52); healthy inside the "
        "cluster; likely cause (95%): the DNS A record points at a dead edge — explains 2 of 2 failed checks"
    )
    assert (
        explains_text(Theory("r", "t", 0.5), ["t10::health"]) == ""
    )  # a theory naming no checks claims none


def test_verdict_states() -> None:
    healthy = results_of(
        TestResult("a", section="dns", outcome="passed"), TestResult("b", section="tls", outcome="skipped")
    )
    assert (
        verdict(healthy, [], "http://97v.test").line
        == "HEALTHY: http://97v.test reachable from outside; 1 of 1 checks passed"
    )
    degraded = results_of(
        TestResult("a", section="api-health", outcome="passed"),
        TestResult("b", section="k8s-services", outcome="failed", reason="duplicate LoadBalancers"),
    )
    assert verdict(degraded, []).line == "DEGRADED: reachable from outside: 1 check failed in k8s-services"
    skipped = results_of(TestResult("a", section="dns", outcome="skipped"))
    assert verdict(skipped, []).line == "NOT VERIFIED: no check ran (every test was skipped)"
    assert verdict(RunResults(), []) is None
    # Without a probe to show, the failure's own line stands in for the path.
    plain = results_of(
        TestResult("h", section="api-health", outcome="failed", reason="HTTP 503 from 10.0.0.1")
    )
    assert verdict(plain, []).line == "UNREACHABLE from outside: HTTP 503 from 10.0.0.1"
    assert failing_path([]) == ""
