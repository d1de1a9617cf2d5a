"""The scenario corpus: every bundled scenario with an ``expect`` block, run through the built-in suite as a user
runs it (``pytest --pyargs pytest_reachability.suites --sandbox NAME`` in a fresh process), must end with the
expected top theory (none above 50 % for a healthy world) and exactly the expected failing sections.

``python -m pytest_reachability.sandbox --evaluate`` prints the same judgement as a table with the top-1 rate.
Scenarios are independent processes; under ``-n 2`` xdist runs two at a time.
"""

from __future__ import annotations

import os

import pytest

from pytest_reachability.sandbox import postgres
from pytest_reachability.sandbox.edges import syn_drop_unavailable_reason
from pytest_reachability.sandbox.evaluate import Row, corpus, format_table, judge, run_scenario
from pytest_reachability.sandbox.scenario import load_scenario

NAMES = corpus()


def require(reason: str | None) -> None:
    """Skip a scenario this machine cannot run, saying why; CI must run every one."""
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI runs the whole corpus")
    pytest.skip(reason)


def test_the_corpus_is_large_and_covers_healthy_worlds():
    assert len(NAMES) >= 50
    healthy = [name for name in NAMES if load_scenario(name).expect.top is None]
    assert len(healthy) >= 3, healthy
    assert len({load_scenario(name).expect.top for name in NAMES}) >= 40


@pytest.mark.parametrize("name", NAMES)
def test_the_top_theory_names_the_scenario_fault(name, tmp_path):
    scenario = load_scenario(name)
    if any(edge.behaviour.kind == "blackhole" for edge in scenario.edges):
        require(syn_drop_unavailable_reason())
    if scenario.postgres and scenario.database.state != "running":
        require(postgres.unavailable_reason())
    row = run_scenario(name, workdir=tmp_path)
    assert row.hit, row.problem()


def document(theories, failing=("api-health",)):
    sections = {name: {"status": "FAIL" if name in failing else "PASS"} for name in ("dns", "api-health", "cluster")}
    return {"theories": [{"rule": r, "confidence": c, "title": f"{r} title", "confirm": list(confirm), "fix": []}
                         for r, c, confirm in theories], "sections": sections}


@pytest.mark.parametrize("expected, cluster, theories, failing, hit", [
    ("tcp-refused", True, [("tcp-refused", 0.7, ["curl ..."])], ("api-health",), True),
    ("tcp-refused", True, [("http-5xx", 0.8, []), ("tcp-refused", 0.7, [])], ("api-health",), False),
    ("tcp-refused", True, [("tcp-refused", 0.7, [])], ("api-health", "dns"), False),
    (None, True, [], (), True),
    (None, True, [("duplicate-loadbalancers", 0.28, [])], (), True),
    (None, True, [("duplicate-loadbalancers", 0.55, [])], (), False),
    ("edge-empty-reply", False, [("edge-empty-reply", 0.45, ["kubectl -n p get svc  # needs cluster access (run with --kubeconfig)"])],
     ("api-health",), True),
    ("edge-empty-reply", False, [("edge-empty-reply", 0.45, ["kubectl -n p get svc"])], ("api-health",), False),
])
def test_a_row_hits_only_with_the_expected_top_theory_sections_and_honest_commands(expected, cluster, theories, failing, hit):
    row = judge(Row("world", expected, expected_failing=["api-health"] if expected else [], cluster=cluster),
                document(theories, failing))
    assert row.hit is hit
    assert bool(row.problem()) is not hit
    table = format_table([row])
    assert ("with the failing sections as expected too: 1/1" in table) is hit
    if not hit:
        assert row.problem() in table
