"""JUnit XML checked by pytest's own schema (``junit-10.xsd`` from the installed pytest's sdist), for every
kind of outcome the plugin produces and for the built-in suite against the sandbox scenarios, serial and under
xdist; BLOCKED reasons in the skip message, blocked counts as suite properties. The same runs' results JSON is
checked against the shipped JSON Schema."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from junit_schema import junit_schema, schema_errors
from test_diagnosis_rules import run_builtin_suite
from test_report_json import schema_errors as json_schema_errors
from test_report_terminal import REASON, SUITE

# The terminal tests' suite (a failing gate, four dependents in two sections) and every other outcome.
OUTCOMES = (
    SUITE
    + """
@pytest.fixture
def broken():
    raise RuntimeError("kubeconfig unreadable")

@pytest.mark.section("cluster")
@pytest.mark.gate("cluster-access")
def test_cluster():
    pytest.skip("no kubeconfig")

@pytest.mark.section("workloads", requires=["cluster-access"])
def test_workloads():
    pass

@pytest.mark.section("dns")
def test_passes():
    pass

@pytest.mark.section("dns")
def test_errors(broken):
    pass

@pytest.mark.section("tls")
@pytest.mark.xfail(reason="known <&>")
def test_xfail():
    assert False
"""
)


def suite_of(path: Path) -> tuple[ElementTree.Element, dict[str, str]]:
    suite = ElementTree.parse(path).getroot().find("testsuite")
    properties = suite.find("properties")
    return suite, {
        p.get("name"): p.get("value") for p in (properties.iter("property") if properties is not None else [])
    }


@pytest.fixture(scope="module")
def schema():
    return junit_schema()


def test_schema_rejects_test_level_properties(schema, tmp_path):
    """The check itself can fail: the file the plugin used
    to write (a property per BLOCKED test) is refused."""
    bad = tmp_path / "old.xml"
    bad.write_text(
        '<testsuites><testsuite name="pytest" errors="0" failures="0" skipped="1" tests="1" time="0.1">'
        '<testcase classname="t" name="test_db" time="0.0"><properties><property name="blocked_by" '
        'value="api-health"/></properties><skipped type="pytest.skip" message="blocked by api-health: x"/>'
        "</testcase></testsuite></testsuites>"
    )
    assert any("properties" in error for error in schema_errors(schema, bad))


@pytest.mark.parametrize("workers", [None, "2"], ids=["serial", "xdist"])
def test_every_outcome_is_valid_junit_with_blocked_counts(
    pytester: pytest.Pytester, schema, workers: str | None
) -> None:
    pytester.makepyfile(test_outcomes=OUTCOMES)
    args = ["-p", "no:cacheprovider", "--junitxml=out.xml", "--target", "http://97v.test"]
    result = pytester.runpytest_subprocess(*args, *(["-n", workers] if workers else []), timeout=120)
    assert result.ret == 1, result.stdout.str()
    path = pytester.path / "out.xml"
    assert schema_errors(schema, path) == []
    suite, properties = suite_of(path)
    # JUnit counts BLOCKED as skipped; the suite properties split them.
    assert (
        properties["reachability.blocked"] == "4" and properties["reachability.blocked_by.api-health"] == "4"
    )
    assert properties["reachability.skipped"] == "3"  # the skipped gate, its skipped dependent, the xfail
    assert int(suite.get("skipped")) == 4 + 3
    assert properties["reachability.target"] == "http://97v.test"
    blocked = [
        case for case in suite.iter("testcase") if case.get("name").startswith(("test_db[", "test_bot"))
    ]
    assert len(blocked) == 4
    for case in blocked:
        skipped = case.find("skipped")
        assert skipped.get("message") == f"blocked by api-health: {REASON}"
        assert skipped.text.startswith("test_outcomes.py:") and "plugin.py" not in skipped.text
    assert all(case.find("properties") is None for case in suite.iter("testcase"))


@pytest.mark.parametrize(
    "scenario, args",
    [
        ("healthy-https", ()),
        ("incident-2025-12-08", ()),
        ("incident-2025-12-08", ("-n", "2")),
        ("crashloop", ()),
        ("tls-expired", ()),
    ],
    ids=["healthy-https", "incident", "incident-xdist", "crashloop", "tls-expired"],
)
def test_builtin_suite_writes_valid_junit_and_json(
    tmp_path, schema, scenario: str, args: tuple[str, ...]
) -> None:
    run = run_builtin_suite(
        tmp_path, "--sandbox", scenario, "--junitxml", "junit.xml", "--results-json", "r.json", "-q", *args
    )
    assert run.returncode in (0, 1), run.stdout[-3000:] + run.stderr[-2000:]
    path = tmp_path / "junit.xml"
    assert schema_errors(schema, path) == []
    suite, properties = suite_of(path)
    blocked = sum(
        1
        for case in suite.iter("testcase")
        if (
            case.find("skipped") is not None
            and case.find("skipped").get("message", "").startswith("blocked by ")
        )
    )
    assert properties["reachability.blocked"] == str(blocked)
    assert int(properties["reachability.blocked"]) + int(properties["reachability.skipped"]) == int(
        suite.get("skipped")
    )
    if scenario == "incident-2025-12-08":
        assert blocked == 11 and properties["reachability.blocked_by.api-health"] == "10"
        # api-health's body check, BLOCKED by the address check that got no answer.
        assert properties["reachability.blocked_by.test_health_answers_on_every_resolved_address"] == "1"
    # The same run's results JSON matches the shipped JSON Schema, and both files count alike.
    document = json.loads((tmp_path / "r.json").read_text())
    assert json_schema_errors(document) == []
    assert sum(t["outcome"] == "blocked" for t in document["tests"]) == blocked
