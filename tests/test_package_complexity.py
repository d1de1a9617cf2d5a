"""The whole package stays readable: no function of pytest_reachability/ is graded worse than C by radon's
cyclomatic complexity, except the ones listed below, which are still to be split. The list may only
shrink: a listed function that is split (or renamed) must leave it, so the test fails on a stale entry."""

from __future__ import annotations

from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pytest_reachability"
WORST_GRADE = "C"  # radon grades A (1-5) ... C (11-20), D (21-30), E, F (41+)

NOT_YET_SPLIT = {
    "ci.py:build_outcome",
    "cluster.py:pod_info",
    "cluster.py:deployment_info",
    "cluster.py:classify",
    "cluster.py:network_policy_info",
    "config.py:_convert_text",
    "config.py:parse_target",
    "health_body.py:_collect",
    "selection.py:collect_gates_elsewhere",
    "appconfig.py:_integration",
    "redact.py:_kubeconfig_user_secrets",
    "diagnosis/rules_dns.py:dns_not_loadbalancer",
    "diagnosis/rules_dns.py:resolvers_disagree",
    "diagnosis/fallback.py:_confirm",
    "diagnosis/rules_workloads.py:rollout_stuck",
    "diagnosis/rules_workloads.py:readiness_probe_failing",
    "diagnosis/rules_workloads.py:node_not_ready",
    "diagnosis/rules_wiring.py:duplicate_loadbalancers",
    "diagnosis/rules_wiring.py:targetport_mismatch",
    "diagnosis/rules_wiring.py:network_policy_denies",
    "diagnosis/rules_wiring.py:ingress_backend_port_missing",
    "diagnosis/rules_wiring.py:ingress_missing_rule",
    "diagnosis/rules_wiring.py:selector_matches_no_pods",
    "diagnosis/rules_wiring.py:ingress_backend_missing",
    "diagnosis/rules_wiring.py:loadbalancer_removed",
    "diagnosis/facts.py:Facts.candidate_addresses",
    "diagnosis/rules_wiring.py:_ingress_class_unserved",
    "diagnosis/rules_workloads.py:_pod_theory",
    "diagnosis/rules_workloads.py:image_pull_failed",
    "diagnosis/rules_workloads.py:pods_crashing",
    "changes.py:changes_timeline",
    "changes.py:cluster_changes",
    "diagnosis/rules_changes.py:dns_still_cached",
}


def graded_worse_than_c() -> dict[str, str]:
    complexity = pytest.importorskip(
        "radon.complexity", reason="radon is in the test extras: pip install -e '.[test]'"
    )
    worse = {}
    seen = 0
    for path in sorted(PACKAGE.rglob("*.py")):
        where = path.relative_to(PACKAGE).as_posix()
        blocks = list(complexity.cc_visit(path.read_text()))
        while (
            blocks
        ):  # methods of classes and closures of functions are graded on their own, as `radon cc` does
            block = blocks.pop()
            blocks += list(getattr(block, "methods", [])) + list(getattr(block, "closures", []))
            seen += 1
            rank = complexity.cc_rank(block.complexity)
            if rank > WORST_GRADE:
                worse[f"{where}:{block.fullname}"] = f"{rank} ({block.complexity}) at line {block.lineno}"
    assert seen > 500, f"radon graded only {seen} blocks"
    return worse


def test_no_new_function_is_graded_worse_than_c() -> None:
    worse = graded_worse_than_c()
    assert {name: grade for name, grade in worse.items() if name not in NOT_YET_SPLIT} == {}
    assert sorted(NOT_YET_SPLIT - set(worse)) == [], "split already: remove from NOT_YET_SPLIT"
