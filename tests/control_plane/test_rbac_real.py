"""deploy/rbac.yaml, applied as is to kube-apiserver, lets its ServiceAccount run the built-in suite.

kube-apiserver's own RBAC authorizer decides, and its audit log shows every answer:

* with the file applied as is, the ServiceAccount it binds gets no 403 and no test reports a missing grant;
* with any single rule removed (whatever rules the file holds), every refusal is of that rule and the
  suite names it: a test fails or skips with ``grant verb "V" on resource "R"`` for a permission of that
  rule; a rule whose removal refuses nothing must grant only what every authenticated user may do by
  default (e.g. GET /version through system:public-info-viewer), so removing it changes nothing;
* a user with no rights gets that message from every cluster section (only the API server's version,
  public in every cluster, is read).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from pytest_reachability.sandbox.control_plane import ControlPlane
from pytest_reachability.sandbox.control_plane_load import LoadReport, clear_objects, load_objects

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


def allowed_to_everyone(plane: ControlPlane, permission: tuple[str, str, str]) -> bool:
    """Whether an authenticated user without any binding may do this (a SubjectAccessReview decides)."""
    group, resource, verb = permission
    if group == "nonResourceURL":
        attributes: dict[str, Any] = {"nonResourceAttributes": {"path": resource, "verb": verb}}
    else:
        name, _, subresource = resource.partition("/")
        attributes = {"resourceAttributes": {"group": group, "resource": name, "subresource": subresource,
                                             "verb": verb, "namespace": "default"}}
    client = admin(plane)
    try:
        review = client.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", {
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": "no-binding", "groups": ["system:authenticated"], **attributes}})
    finally:
        client.close()
    return bool(review["status"].get("allowed"))


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
    """Apply ``documents`` over the loaded scenario, run the suite as their ServiceAccount, remove them."""
    client = admin(plane)
    try:
        with loaded_sandbox(SCENARIO, plane) as info:
            report = LoadReport()
            try:
                load_objects(client, documents, report)
                namespace, name = service_account(documents)
                kubeconfig, user = service_account_kubeconfig(plane, namespace, name, tmp_path / "kubeconfig-sa",
                                                              info.namespace)
                return run_suite(info, plane, kubeconfig, user, tmp_path)
            finally:
                clear_objects(client, report)
    finally:
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
    if not refused:
        # Only harmless if the cluster grants it to every authenticated user anyway (bootstrap roles such
        # as system:public-info-viewer, which kube-apiserver restores at every start).
        everyone = sorted(p for p in removed if not allowed_to_everyone(control_plane, p))
        assert not everyone, f"removing {rule} refused nothing, yet {everyone} is not granted by default: not needed"
        assert run.grants_asked() == set(), run.reasons()
        return
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
    for section in (*CLUSTER_SECTIONS, "api-internal"):
        refused = [t for t in by_section[section] if t["outcome"] != "passed"]
        assert refused, f"{section}: every test passed without any rights"
        for test in refused:
            assert 'grant verb "' in test["reason"], (section, test["nodeid"], test["outcome"], test["reason"])
