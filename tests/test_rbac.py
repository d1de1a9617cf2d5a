"""deploy/rbac.yaml grants exactly what the built-in suite reads; the Job and CronJob run that suite.

The suite runs (in a subprocess) against sandboxes started here, whose API servers log every
request; the (apiGroup, resource, verb) set derived from those logs, over the healthy and the
incident scenario, must equal the set the manifests grant, with cluster-wide reads covered by the
ClusterRole.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pytest_reachability.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
SCENARIOS = ("healthy", "incident-2025-12-08")
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection", "escalate", "bind", "impersonate", "*"}
# The API server's log names pod logs and the service proxy by their parent resource and a verb of their own.
SUBRESOURCE_VERBS = {"logs": ("log", "get"), "proxy": ("proxy", "get")}


def load_documents(name: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all((DEPLOY / name).read_text()) if doc]


def api_group(path: str) -> str:
    match = re.match(r"^/apis/([^/]+)/", path)
    return match.group(1) if match else ""


def permission_of(entry: dict) -> tuple[str, str, str, bool]:
    """(apiGroup or 'nonResourceURL', resource or URL, RBAC verb, cluster-wide?) of one logged request."""
    if not entry.get("resource"):
        return ("nonResourceURL", "/" + entry["path"].strip("/"), entry["verb"], True)
    verb = entry["verb"]
    resource = entry["resource"]
    if verb in SUBRESOURCE_VERBS:
        subresource, verb = SUBRESOURCE_VERBS[verb]
        resource = f"{resource}/{subresource}"
    return (api_group(entry["path"]), resource, verb, not entry.get("namespace"))


@pytest.fixture(scope="module")
def used_permissions() -> dict[str, set[tuple[str, str, str, bool]]]:
    used: dict[str, set[tuple[str, str, str, bool]]] = {}
    for scenario in SCENARIOS:
        sandbox = Sandbox(scenario)
        info = sandbox.start()
        try:
            env = dict(os.environ, **info.environment())
            done = subprocess.run(
                [sys.executable, "-m", "pytest", "--pyargs", "pytest_reachability.suites", "-q", "-p", "no:cacheprovider",
                 "--kube-context", info.context],
                env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
            )
            assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-2000:]
            log = list(sandbox.api.request_log)
        finally:
            sandbox.stop()
        assert log, f"{scenario}: the suite made no API request"
        assert all(entry["method"] in ("GET", "HEAD") for entry in log), "the suite must only read"
        used[scenario] = {permission_of(entry) for entry in log}
    return used


def granted() -> tuple[set[tuple[str, str, str]], set[tuple[str, str, str]]]:
    """(cluster-wide grants, namespaced grants) as (apiGroup, resource, verb)."""
    cluster: set[tuple[str, str, str]] = set()
    namespaced: set[tuple[str, str, str]] = set()
    for doc in load_documents("rbac.yaml"):
        if doc["kind"] not in ("ClusterRole", "Role"):
            continue
        into = cluster if doc["kind"] == "ClusterRole" else namespaced
        for rule in doc["rules"]:
            for verb in rule["verbs"]:
                for url in rule.get("nonResourceURLs", []):
                    into.add(("nonResourceURL", url, verb))
                for group in rule.get("apiGroups", []):
                    for resource in rule.get("resources", []):
                        into.add((group, resource, verb))
    return cluster, namespaced


def test_rbac_grants_exactly_what_the_suite_uses(used_permissions: dict) -> None:
    cluster, namespaced = granted()
    used = set().union(*used_permissions.values())
    needed_cluster = {p[:3] for p in used if p[3]}
    needed_any = {p[:3] for p in used}
    # Cluster-wide reads need the ClusterRole; every namespaced read is granted by the Role or the ClusterRole.
    assert needed_cluster - cluster == set(), "cluster-wide reads not granted by the ClusterRole"
    assert needed_any - (cluster | namespaced) == set(), "reads not granted"
    # Nothing granted that no run used.
    assert (cluster | namespaced) - needed_any == set(), "granted but never used"
    assert cluster - needed_cluster == set(), "ClusterRole grants more than the cluster-wide reads"
    # The subresources the issue names are among them.
    assert ("", "pods/log", "get") in namespaced and ("", "services/proxy", "get") in namespaced


def test_rbac_is_read_only_and_bound_to_the_service_account() -> None:
    docs = load_documents("rbac.yaml")
    for doc in docs:
        for rule in doc.get("rules", []):
            assert not WRITE_VERBS & set(rule["verbs"]), rule
            assert "*" not in rule.get("resources", []) and "*" not in rule.get("apiGroups", [])
    account = next(d for d in docs if d["kind"] == "ServiceAccount")["metadata"]
    roles = {(d["kind"], d["metadata"]["name"]) for d in docs if d["kind"] in ("Role", "ClusterRole")}
    bindings = [d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    assert {(b["roleRef"]["kind"], b["roleRef"]["name"]) for b in bindings} == roles
    for binding in bindings:
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}]
    role = next(d for d in docs if d["kind"] == "Role")
    binding = next(d for d in docs if d["kind"] == "RoleBinding")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"]


@pytest.mark.parametrize("name", ["job.yaml", "cronjob.yaml"])
def test_job_manifests_run_the_suite_with_the_service_account(name: str) -> None:
    (doc,) = load_documents(name)
    account = next(d for d in load_documents("rbac.yaml") if d["kind"] == "ServiceAccount")["metadata"]
    assert doc["apiVersion"] == "batch/v1" and doc["metadata"]["namespace"] == account["namespace"]
    job = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
    if doc["kind"] == "CronJob":
        assert doc["spec"]["concurrencyPolicy"] == "Forbid"
    assert job["backoffLimit"] == 0 and job["activeDeadlineSeconds"] > 0
    pod = job["template"]["spec"]
    assert pod["serviceAccountName"] == account["name"] and pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    argv = container["command"] + container["args"]
    assert argv[:3] == ["python", "-m", "pytest"] and "--pyargs" in argv
    assert argv[argv.index("--pyargs") + 1] == "pytest_reachability.suites"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/reports", "/tmp"} <= mounts
    env = {e["name"] for e in container["env"]}
    assert {"REACHABILITY_TARGET", "REACHABILITY_NAMESPACE"} <= env
    assert "KUBECONFIG" not in env  # in-cluster configuration from the ServiceAccount
