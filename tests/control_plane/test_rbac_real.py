"""deploy/rbac*.yaml, applied as they are to kube-apiserver, let their ServiceAccount run the built-in suite.

``deploy/rbac.yaml`` is what every install applies; ``deploy/rbac-*.yaml`` are optional extras.
kube-apiserver's own RBAC authorizer decides, and its audit log shows every answer:

* with every file applied, the ServiceAccount they bind gets no 403 and no test reports a missing grant;
* with ``rbac.yaml`` alone, every refusal is of a permission an optional file grants, and the tests that
  needed it skip naming it: none fails for lack of it;
* with any single rule removed (whatever rules the files hold), every refusal is of that rule and the
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
OPTIONAL_FILES = sorted((ROOT / "deploy").glob("rbac-*.yaml"))
SCENARIO = "healthy"
CLUSTER_SECTIONS = ("cluster", "workloads", "k8s-services", "endpoints", "ingress", "network-policy")


def rule_permissions(rule: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(group, resource, verb) a rule grants; nonResourceURLs as ("nonResourceURL", url, verb)."""
    granted = {
        ("nonResourceURL", url, verb) for url in rule.get("nonResourceURLs", []) for verb in rule["verbs"]
    }
    granted |= {
        (group, resource, verb)
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule["verbs"]
    }
    return granted


Grant = tuple[str, str, str, str]  # (group, resource, verb, namespace or "*" for a ClusterRole's)


def grants_of(documents: list[dict[str, Any]], skip: tuple[int, int] | None = None) -> set[Grant]:
    """Every permission the Roles and ClusterRoles grant, with where (a rule at ``skip`` left out)."""
    granted = set()
    for doc_index, rule_index, rule in rules_of(documents):
        if (doc_index, rule_index) == skip:
            continue
        doc = documents[doc_index]
        scope = "*" if doc["kind"] == "ClusterRole" else doc["metadata"]["namespace"]
        granted |= {(*permission, scope) for permission in rule_permissions(rule)}
    return granted


def explained(request: tuple[str, str, str, str], grants: set[Grant]) -> bool:
    """Whether one of ``grants`` covers the request (group, resource, verb, namespace or "" cluster-wide)."""
    group, resource, verb, namespace = request
    return any((group, resource, verb) == grant[:3] and grant[3] in ("*", namespace) for grant in grants)


def allowed_to_everyone(plane: ControlPlane, permission: tuple[str, str, str]) -> bool:
    """Whether an authenticated user without any binding may do this (a SubjectAccessReview decides)."""
    group, resource, verb = permission
    if group == "nonResourceURL":
        attributes: dict[str, Any] = {"nonResourceAttributes": {"path": resource, "verb": verb}}
    else:
        name, _, subresource = resource.partition("/")
        attributes = {
            "resourceAttributes": {
                "group": group,
                "resource": name,
                "subresource": subresource,
                "verb": verb,
                "namespace": "default",
            }
        }
    client = admin(plane)
    try:
        review = client.request(
            "POST",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {"user": "no-binding", "groups": ["system:authenticated"], **attributes},
            },
        )
    finally:
        client.close()
    return bool(review["status"].get("allowed"))


def rules_of(documents: list[dict[str, Any]]) -> list[tuple[int, int, dict[str, Any]]]:
    """(document index, rule index, rule) of every rule of every Role and ClusterRole in the file."""
    return [
        (d, r, rule)
        for d, doc in enumerate(documents)
        if doc.get("kind") in ("Role", "ClusterRole")
        for r, rule in enumerate(doc.get("rules") or [])
    ]


def service_account(documents: list[dict[str, Any]]) -> tuple[str, str]:
    """The ServiceAccount the file's bindings name."""
    for doc in documents:
        for subject in doc.get("subjects") or []:
            if subject.get("kind") == "ServiceAccount":
                return subject["namespace"], subject["name"]
    raise AssertionError("the RBAC files bind no ServiceAccount")


def all_documents() -> list[dict[str, Any]]:
    return rbac_documents(RBAC_FILE) + [doc for path in OPTIONAL_FILES for doc in rbac_documents(path)]


def run_as_bound_account(plane: ControlPlane, documents: list[dict[str, Any]], tmp_path: Path) -> SuiteRun:
    """Apply ``documents`` over the loaded scenario, run the suite as their ServiceAccount, remove them."""
    client = admin(plane)
    try:
        with loaded_sandbox(SCENARIO, plane) as info:
            report = LoadReport()
            try:
                load_objects(client, documents, report)
                namespace, name = service_account(documents)
                kubeconfig, user = service_account_kubeconfig(
                    plane, namespace, name, tmp_path / "kubeconfig-sa", info.namespace
                )
                return run_suite(info, plane, kubeconfig, user, tmp_path)
            finally:
                clear_objects(client, report)
    finally:
        client.close()


def test_bound_service_account_is_never_refused(control_plane: ControlPlane, tmp_path: Path) -> None:
    run = run_as_bound_account(control_plane, all_documents(), tmp_path)
    assert run.requests(), "the suite made no request as the ServiceAccount"
    assert run.refused() == set(), f"refused with every RBAC file applied: {sorted(run.refused())}"
    assert run.grants_asked() == set(), run.reasons()
    sections = run.results["sections"]
    for section in CLUSTER_SECTIONS:
        assert sections[section]["passed"] > 0, (section, sections[section], run.output)


def test_required_file_alone_skips_only_what_the_optional_files_grant(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    optional = grants_of(all_documents()) - grants_of(rbac_documents(RBAC_FILE))
    run = run_as_bound_account(control_plane, rbac_documents(RBAC_FILE), tmp_path)
    unexplained = sorted(request for request in run.refused() if not explained(request, optional))
    assert not unexplained, f"rbac.yaml alone is refused {unexplained}, which no optional file grants"
    assert all(explained(request, optional) for request in run.grants_asked()), run.reasons()
    failed = [
        t
        for t in run.results["tests"]
        if t["outcome"] in ("failed", "error") and 'grant verb "' in t["reason"]
    ]
    assert not failed, f"failed for lack of an optional grant: {failed}"
    sections = run.results["sections"]
    for section in CLUSTER_SECTIONS:
        assert sections[section]["passed"] > 0, (section, sections[section], run.output)


def rule_cases() -> list[tuple[str, list[dict[str, Any]], int, int]]:
    """(id, documents, document index, rule index): a rule of rbac.yaml with rbac.yaml alone, a rule of an
    optional file with rbac.yaml and that file, as each is meant to be applied."""
    cases = []
    base = rbac_documents(RBAC_FILE)
    for path, documents in [(RBAC_FILE, base)] + [(p, base + rbac_documents(p)) for p in OPTIONAL_FILES]:
        own = range(0 if path == RBAC_FILE else len(base), len(documents))
        for doc_index, rule_index, _rule in rules_of(documents):
            if doc_index in own:
                doc = documents[doc_index]
                cases.append(
                    (
                        f"{path.stem}:{doc['kind']}-{doc['metadata']['name']}-rule{rule_index}",
                        documents,
                        doc_index,
                        rule_index,
                    )
                )
    return cases


@pytest.mark.parametrize("case", rule_cases(), ids=[case[0] for case in rule_cases()])
def test_each_rule_is_needed_and_named_when_missing(
    case: tuple[str, list[dict[str, Any]], int, int], control_plane: ControlPlane, tmp_path: Path
) -> None:
    _name, documents, doc_index, rule_index = case
    rule = documents[doc_index]["rules"][rule_index]
    removed = grants_of(documents) - grants_of(documents, skip=(doc_index, rule_index))
    reduced = copy.deepcopy(documents)
    del reduced[doc_index]["rules"][rule_index]
    # Only what the case's files grant counts: the rest is refused in any case (see the required-file test).
    granted = grants_of(documents)
    run = run_as_bound_account(control_plane, reduced, tmp_path)
    refused = {request for request in run.refused() if explained(request, granted)}
    asked = {request for request in run.grants_asked() if explained(request, granted)}
    if not refused:
        # Harmless only if the cluster grants it to every authenticated user anyway (bootstrap roles such as
        # system:public-info-viewer, which kube-apiserver restores at every start), or another rule still
        # does.
        needed = sorted(p for p in rule_permissions(rule) if not allowed_to_everyone(control_plane, p))
        assert not needed or not removed, (
            f"removing {rule} refused nothing, yet {needed} is not granted by default"
        )
        assert not asked, run.reasons()
        return
    assert all(explained(request, removed) for request in refused), (
        f"refused {sorted(refused)}, not all of which the removed rule {rule} granted"
    )
    assert asked, f"removing {rule}: no test or warning names the missing grant; reasons: {run.reasons()}"
    assert all(explained(request, removed) for request in asked), (
        f"removing {rule}: the suite asks for {sorted(asked)}, not all of that rule"
    )


def test_user_without_rights_gets_the_grant_message_everywhere(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
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
            assert 'grant verb "' in test["reason"], (
                section,
                test["nodeid"],
                test["outcome"],
                test["reason"],
            )
