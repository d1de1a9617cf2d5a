"""The scenario corpus: every bundled scenario with an ``expect`` block, run through the built-in suite as a
user runs it (``pytest --pyargs pytest_reachability.suites --sandbox NAME`` in a fresh process), must end
with the expected top theory (none above 50 % for a healthy world) and exactly the expected failing sections.

One test runs them all, ``CORPUS_JOBS`` at a time (default 2; the runs mostly wait on probe timeouts), so the
corpus costs the same few minutes serially and under ``-n 2``. ``python -m pytest_reachability.sandbox
--evaluate`` prints the same judgement as a table with the top-1 rate.
"""

from __future__ import annotations

import os

import pytest

from pytest_reachability.sandbox import postgres
from pytest_reachability.sandbox.edges import syn_drop_unavailable_reason
from pytest_reachability.sandbox.evaluate import Row, corpus, evaluate, format_table, judge
from pytest_reachability.sandbox.scenario import load_scenario

NAMES = corpus()
CORPUS_JOBS = max(1, int(os.environ.get("REACHABILITY_CORPUS_JOBS", "2")))


def unrunnable_reason(name: str) -> str | None:
    """Why this machine cannot run a scenario as written (None when it can)."""
    scenario = load_scenario(name)
    if any(edge.behaviour.kind == "blackhole" for edge in scenario.edges):
        reason = syn_drop_unavailable_reason()
        if reason:
            return reason
    if scenario.postgres and scenario.database.state != "running":
        return postgres.unavailable_reason()
    return None


UNRUNNABLE = {name: reason for name in NAMES if (reason := unrunnable_reason(name))}


def test_the_corpus_is_large_and_covers_healthy_worlds():
    assert len(NAMES) >= 50
    healthy = [name for name in NAMES if load_scenario(name).expect.top is None]
    assert len(healthy) >= 3, healthy
    assert len({load_scenario(name).expect.top for name in NAMES}) >= 40
    # Faults are tried in more than one world (names, namespaces, replicas, ingress-only exposure), not one
    # tuned.
    assert len({load_scenario(name).namespace for name in NAMES}) >= 2


def test_every_scenario_ends_with_its_expected_top_theory(tmp_path):
    runnable = [name for name in NAMES if name not in UNRUNNABLE]
    rows = evaluate(runnable, jobs=CORPUS_JOBS)
    misses = [row.problem() for row in rows if not row.hit]
    assert not misses, (
        f"{len(misses)} of {len(rows)} scenarios miss:\n" + "\n".join(misses) + "\n" + format_table(rows)
    )


if UNRUNNABLE:

    @pytest.mark.parametrize("name", sorted(UNRUNNABLE))
    def test_scenarios_this_machine_cannot_run(name):
        reason = f"scenario {name}: {UNRUNNABLE[name]}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI runs the whole corpus")
        pytest.skip(reason)


def document(theories, failing=("api-health",)):
    sections = {
        name: {"status": "FAIL" if name in failing else "PASS"} for name in ("dns", "api-health", "cluster")
    }
    return {
        "theories": [
            {"rule": r, "confidence": c, "title": f"{r} title", "confirm": list(confirm), "fix": []}
            for r, c, confirm in theories
        ],
        "sections": sections,
    }


@pytest.mark.parametrize(
    "expected, cluster, theories, failing, hit",
    [
        ("tcp-refused", True, [("tcp-refused", 0.7, ["curl ..."])], ("api-health",), True),
        ("tcp-refused", True, [("http-5xx", 0.8, []), ("tcp-refused", 0.7, [])], ("api-health",), False),
        ("tcp-refused", True, [("tcp-refused", 0.7, [])], ("api-health", "dns"), False),
        (None, True, [], (), True),
        (None, True, [("duplicate-loadbalancers", 0.28, [])], (), True),
        (None, True, [("duplicate-loadbalancers", 0.55, [])], (), False),
        (
            "edge-empty-reply",
            False,
            [
                (
                    "edge-empty-reply",
                    0.45,
                    ["kubectl -n p get svc  # needs cluster access (run with --kubeconfig)"],
                )
            ],
            ("api-health",),
            True,
        ),
        (
            "edge-empty-reply",
            False,
            [("edge-empty-reply", 0.45, ["kubectl -n p get svc"])],
            ("api-health",),
            False,
        ),
    ],
)
def test_a_row_hits_only_with_the_expected_top_theory_sections_and_honest_commands(
    expected, cluster, theories, failing, hit
):
    row = judge(
        Row("world", expected, expected_failing=["api-health"] if expected else [], cluster=cluster),
        document(theories, failing),
    )
    assert row.hit is hit
    assert bool(row.problem()) is not hit
    table = format_table([row])
    assert ("with the failing sections as expected too: 1/1" in table) is hit
    if not hit:
        assert row.problem() in table
