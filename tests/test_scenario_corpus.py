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
from pytest_reachability.sandbox.evaluate import corpus, run_scenario
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
