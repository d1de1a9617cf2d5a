"""Rules users add: a conftest contributes a rule through the pytest_reachability_rules hook (the example in
examples/ is the conftest here), and its theory is ranked with the built-in ones in the run's reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "diagnosis_rule_conftest.py"

CHECK = """
import pytest

pytestmark = pytest.mark.section("api-health")


def test_health_answers(evidence):
    evidence.record("http_probe", {
        "address": "127.0.10.53", "port": 80, "scheme": "http", "host": "shop.test", "path": "/health",
        "status": 503, "reason": "Service Unavailable", "headers": {}, "source": "dns",
        "body_excerpt": "<html><h1>Down for maintenance</h1>We will be back soon.</html>",
        "failure": "http_status", "curl_exit": 22, "detail": "", "redirects": [],
        "curl": "curl -v --resolve shop.test:80:127.0.10.53 http://shop.test/health",
    })
    assert False, "GET /health failed on 127.0.10.53:80 http_status (curl 22): 503"
"""


def run(pytester: pytest.Pytester, conftest: str) -> tuple[pytest.RunResult, dict]:
    pytester.makeconftest(conftest)
    pytester.makepyfile(test_health=CHECK)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--target", "http://shop.test", "--results-json", "out.json"
    )
    return result, json.loads((pytester.path / "out.json").read_text())


def test_the_example_rule_names_the_maintenance_page_first(pytester: pytest.Pytester) -> None:
    result, data = run(pytester, EXAMPLE.read_text())
    assert result.ret == 1
    rules = [t["rule"] for t in data["theories"]]
    assert rules[0] == "maintenance-page", rules
    assert "http-5xx" in rules  # the built-in rules still run beside it
    assert data["theories"][0]["title"].startswith("shop.test shows its maintenance page (503 ")
    result.stdout.fnmatch_lines(["*1. [[]90%[]] shop.test shows its maintenance page*"])


def test_a_rule_that_raises_is_skipped_with_a_warning_and_the_reports_still_come(
    pytester: pytest.Pytester,
) -> None:
    result, data = run(
        pytester,
        """
def broken(facts):
    raise KeyError("status")


def pytest_reachability_rules(config):
    return [broken]
""",
    )
    assert result.ret == 1
    assert data["theories"] and data["theories"][0]["rule"] == "http-5xx"
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_a_hook_returning_something_else_than_rules_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("def pytest_reachability_rules(config):\n    return ['not a rule']\n")
    pytester.makepyfile(test_health=CHECK)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--target", "http://shop.test")
    output = result.stdout.str() + result.stderr.str()
    assert "pytest_reachability_rules returned 'not a rule', which is not a callable rule" in output
