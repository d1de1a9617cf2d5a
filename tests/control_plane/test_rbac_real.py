"""deploy/rbac.yaml, applied as is to kube-apiserver, lets its ServiceAccount run the built-in suite.

kube-apiserver's own RBAC authorizer decides, and its audit log shows every answer:

* with the file applied as is, the ServiceAccount it binds gets no 403 and no test reports a missing grant;
* with any single rule removed (whatever rules the file holds), every refusal is of that rule and the
  suite names it: a test fails or skips with ``grant verb "V" on resource "R"`` for a permission of that
  rule;
* a user with no rights gets that message from every cluster section.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from pytest_reachability.sandbox.control_plane import ControlPlane
from pytest_reachability.sandbox.control_plane_load import clear_objects, load_objects

from .suite_runs import (
    ROOT,
    SuiteRun,
    admin,
    loaded_sandbox,
    rbac_documents,
    run_suite,
    service_account_kubeconfig,
)

pytestmark = pytest.mark.control_plane

RBAC_FILE = ROOT / "deploy" / "rbac.yaml"
SCENARIO = "healthy"
CLUSTER_SECTIONS = ("cluster", "workloads", "k8s-services", "endpoints", "ingress", "network-policy")


def rule_permissions(rule: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(group, resource, verb) a rule grants; nonResourceURLs as ("nonResourceURL", url, verb)."""
    granted = {("nonResourceURL", url, verb) for url in rule.get("nonResourceURLs", []) for verb in rule["verbs"]}
    granted |= {(group, resource, verb) for group in rule.get("apiGroups", [])
                for resource in rule.get("resources", []) for verb in rule["verbs"]}
    return granted


def rules_of(documents: list[dict[str, Any]]) -> list[tuple[int, int, dict[str, Any]]]:
    """(document index, rule index, rule) of every rule of every Role and ClusterRole in the file."""
    return [(d, r, rule) for d, doc in enumerate(documents) if doc.get("kind") in ("Role", "ClusterRole")
            for r, rule in enumerate(doc.get("rules") or [])]


def service_account(documents: list[dict[str, Any]]) -> tuple[str, str]:
    """The ServiceAccount the file's bindings name."""
    for doc in documents:
        for subject in doc.get("subjects") or []:
            if subject.get("kind") == "ServiceAccount":
                return subject["namespace"], subject["name"]
    raise AssertionError(f"{RBAC_FILE} binds no ServiceAccount")


def run_as_bound_account(plane: ControlPlane, documents: list[dict[str, Any]], tmp_path: Path) -> SuiteRun:
    """Apply ``documents``, run the suite as their ServiceAccount, remove them again."""
    client = admin(plane)
    report = load_objects(client, documents)
    try:
        with loaded_sandbox(SCENARIO, plane) as info:
            namespace, name = service_account(documents)
            kubeconfig, user = service_account_kubeconfig(plane, namespace, name, tmp_path / "kubeconfig-sa",
                                                          info.namespace)
            return run_suite(info, plane, kubeconfig, user, tmp_path)
    finally:
        clear_objects(client, report)
        client.close()


def test_bound_service_account_is_never_refused(control_plane: ControlPlane, tmp_path: Path) -> None:
    run = run_as_bound_account(control_plane, rbac_documents(RBAC_FILE), tmp_path)
    assert run.requests(), "the suite made no request as the ServiceAccount"
    assert run.refused() == set(), f"refused with rbac.yaml applied: {sorted(run.refused())}"
    assert run.grants_asked() == set(), run.reasons()
    sections = run.results["sections"]
    for section in CLUSTER_SECTIONS:
        assert sections[section]["passed"] > 0, (section, sections[section], run.output)


def rule_ids() -> list[str]:
    documents = rbac_documents(RBAC_FILE)
    return [f"{documents[d]['kind']}-{documents[d]['metadata']['name']}-rule{r}" for d, r, _ in rules_of(documents)]


@pytest.mark.parametrize("position", range(len(rule_ids())), ids=rule_ids())
def test_each_rule_is_needed_and_named_when_missing(position: int, control_plane: ControlPlane,
                                                    tmp_path: Path) -> None:
    documents = rbac_documents(RBAC_FILE)
    doc_index, rule_index, rule = rules_of(documents)[position]
    reduced = copy.deepcopy(documents)
    del reduced[doc_index]["rules"][rule_index]
    if not reduced[doc_index]["rules"]:
        reduced[doc_index]["rules"] = []
    removed = rule_permissions(rule)
    run = run_as_bound_account(control_plane, reduced, tmp_path)
    refused = {(group, resource, verb) for group, resource, verb, _namespace in run.refused()}
    assert refused, f"removing {rule} refused nothing: the rule is not needed"
    assert refused <= removed, f"refused {sorted(refused - removed)}, which the removed rule {rule} did not grant"
    asked = run.grants_asked()
    assert asked, f"removing {rule}: no test names the missing grant; reasons: {run.reasons()}"
    assert asked <= removed, f"removing {rule}: the suite asks for {sorted(asked - removed)}, not of that rule"


def test_user_without_rights_gets_the_grant_message_everywhere(control_plane: ControlPlane, tmp_path: Path) -> None:
    with loaded_sandbox(SCENARIO, control_plane) as info:
        kubeconfig = control_plane.kubeconfig("nobody")
        run = run_suite(info, control_plane, kubeconfig, "nobody", tmp_path)
    assert run.refused(), "a user without rights was never refused"
    by_section: dict[str, list[dict[str, Any]]] = {}
    for test in run.results["tests"]:
        by_section.setdefault(test["section"], []).append(test)
    for section in CLUSTER_SECTIONS:
        tests = by_section[section]
        assert not any(t["outcome"] == "passed" for t in tests), (section, tests)
        assert any("grant verb" in t["reason"] or "cluster-access" in t["reason"] for t in tests), (section, tests)
