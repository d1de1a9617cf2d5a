"""deploy/rbac*.yaml grant exactly what the built-in suite reads; the Job and CronJob run that suite.

The suite runs (in a subprocess) against sandboxes started here, whose API servers log every request;
the (apiGroup, resource, verb) set derived from those logs, over the healthy and the incident scenario,
must equal the set the manifests grant: namespaced reads by the default Role (deploy/rbac.yaml), cluster-wide
reads by the optional ClusterRole (deploy/rbac-cluster.yaml), the TLS Secrets by name in the optional
deploy/rbac-tls-secrets.yaml. Then the suite runs with the default grants only (everything else answered 403
by the sandbox): nothing fails, and the checks that lack a grant say which.
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
WRITE_VERBS = {
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "escalate",
    "bind",
    "impersonate",
    "*",
}
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


def run_suite(
    scenario: str, extra_env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """The built-in suite against a fresh sandbox (a name or a
    scenario file); its output and the API request log."""
    sandbox = Sandbox(scenario)
    info = sandbox.start()
    try:
        env = dict(os.environ, **info.environment(), **(extra_env or {}))
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "--pyargs",
                "pytest_reachability.suites",
                "-q",
                "-rs",
                "-p",
                "no:cacheprovider",
                "--kube-context",
                info.context,
            ],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-2000:]
        log = list(sandbox.api.request_log)
    finally:
        sandbox.stop()
    assert log, f"{scenario}: the suite made no API request"
    assert all(entry["method"] in ("GET", "HEAD") for entry in log), "the suite must only read"
    return done, log


@pytest.fixture(scope="module")
def used_permissions() -> dict[str, set[tuple[str, str, str, bool]]]:
    used: dict[str, set[tuple[str, str, str, bool]]] = {}
    for scenario in SCENARIOS:
        _, log = run_suite(scenario)
        used[scenario] = {permission_of(entry) for entry in log}
        if scenario == "healthy":
            used["secret names"] = {
                ("", entry["name"], "", False) for entry in log if entry["resource"] == "secrets"
            }
    return used


def rules_of(name: str, kind: str) -> list[dict]:
    return [rule for doc in load_documents(name) if doc["kind"] == kind for rule in doc["rules"]]


def grants(rules: list[dict]) -> set[tuple[str, str, str]]:
    """(apiGroup or 'nonResourceURL', resource or URL, verb) granted by RBAC rules."""
    out: set[tuple[str, str, str]] = set()
    for rule in rules:
        for verb in rule["verbs"]:
            out |= {("nonResourceURL", url, verb) for url in rule.get("nonResourceURLs", [])}
            out |= {
                (group, resource, verb)
                for group in rule.get("apiGroups", [])
                for resource in rule.get("resources", [])
            }
    return out


def granted() -> tuple[set[tuple[str, str, str]], set[tuple[str, str, str]], set[tuple[str, str, str]]]:
    """(default namespaced grants, optional cluster-wide grants, optional TLS-secret grants)."""
    return (
        grants(rules_of("rbac.yaml", "Role")),
        grants(rules_of("rbac-cluster.yaml", "ClusterRole")),
        grants(rules_of("rbac-tls-secrets.yaml", "Role")),
    )


def test_rbac_grants_exactly_what_the_suite_uses(used_permissions: dict) -> None:
    namespaced, cluster, secrets = granted()
    used = set().union(*(used_permissions[s] for s in SCENARIOS))
    needed_cluster = {p[:3] for p in used if p[3]}
    needed_any = {p[:3] for p in used}
    # Cluster-wide reads need the ClusterRole; every namespaced read is granted by a Role.
    assert needed_cluster - cluster == set(), "cluster-wide reads not granted by the ClusterRole"
    assert {p[:3] for p in used if not p[3]} - (namespaced | secrets) == set(), "namespaced reads not granted"
    # Nothing granted that no run used.
    assert (namespaced | cluster | secrets) - needed_any == set(), "granted but never used"
    assert cluster - needed_cluster == set(), "ClusterRole grants more than the cluster-wide reads"
    assert ("", "pods/log", "get") in namespaced and ("", "services/proxy", "get") in namespaced


def test_no_secret_access_by_default_and_named_secrets_only_when_opted_in(used_permissions: dict) -> None:
    default = load_documents("rbac.yaml")
    assert {doc["kind"] for doc in default} == {
        "Namespace",
        "ServiceAccount",
        "Role",
        "RoleBinding",
    }  # namespaced only
    assert not any(
        "secrets" in rule.get("resources", [])
        for doc in load_documents("rbac-cluster.yaml") + default
        for rule in doc.get("rules", [])
    )
    (rule,) = rules_of("rbac-tls-secrets.yaml", "Role")
    assert rule["resources"] == ["secrets"] and rule["verbs"] == ["get"]
    # The names granted are the names the suite asks for (the healthy scenario's Ingress TLS secret).
    assert (
        set(rule["resourceNames"])
        == {name for _, name, _, _ in used_permissions["secret names"]}
        == {"letsencrypt-prod"}
    )


def test_each_rule_says_which_section_needs_it() -> None:
    from pytest_reachability.results import BUILTIN_SECTIONS

    for name in ("rbac.yaml", "rbac-cluster.yaml", "rbac-tls-secrets.yaml"):
        lines = (DEPLOY / name).read_text().splitlines()
        starts = [i for i, line in enumerate(lines) if re.match(r"^\s+- (apiGroups|nonResourceURLs):", line)]
        assert starts, name
        for index in starts:
            comment = []
            for line in reversed(lines[:index]):
                if not line.strip().startswith("#"):
                    break
                comment.append(line)
            text = " ".join(comment)
            assert any(re.search(rf"\b{re.escape(section)}:", text) for section in BUILTIN_SECTIONS), (
                name,
                lines[index],
            )


def deny_rules_outside(
    allowed: set[tuple[str, str, str]], used: set[tuple[str, str, str, bool]]
) -> list[dict]:
    """Sandbox deny rules refusing every read the suite makes that ``allowed`` does not grant.

    The sandbox's rule with a namespace refuses that namespace and the cluster scope: naming a namespace the
    suite never reads refuses the cluster scope alone. /version stays readable, as Kubernetes grants it to
    all.
    """
    rules = []
    for group, resource, verb, cluster_wide in sorted(used):
        if group == "nonResourceURL" or (group, resource, verb) in allowed and not cluster_wide:
            continue
        rule = {"verb": verb, "resource": resource}
        if cluster_wide and (group, resource, verb) in allowed:
            rule["namespace"] = "no-such-namespace"
        rules.append(rule)
    return rules


@pytest.mark.parametrize("with_secrets", [False, True], ids=["default", "tls-secrets-granted"])
def test_suite_runs_with_the_namespaced_default(used_permissions: dict, tmp_path, with_secrets: bool) -> None:
    """Only deploy/rbac.yaml (and the optional TLS-secret
    Role): nothing fails, checks without a grant say so."""
    namespaced, _, secrets = granted()
    allowed = namespaced | (secrets if with_secrets else set())
    deny = deny_rules_outside(allowed, used_permissions["healthy"])
    scenario = tmp_path / "healthy-least-privilege.yaml"
    scenario.write_text(
        yaml.safe_dump(
            {
                "name": "healthy-least-privilege",
                "base": "healthy",
                "description": "healthy, with deploy/rbac.yaml's grants only",
                "kubernetes": {"deny": deny},
            }
        )
    )
    done, log = run_suite(str(scenario))
    assert done.returncode == 0, done.stdout[-3000:]
    answered = {permission_of(entry)[:3] for entry in log if entry["status"] < 400 and entry.get("resource")}
    assert answered <= allowed
    assert (
        'forbidden: cannot list nodes at cluster scope; grant verb "list" on resource "nodes"' in done.stdout
    )
    secret_skip = "not checked: reading Secret production/letsencrypt-prod is not granted"
    assert (secret_skip in done.stdout) is (not with_secrets), done.stdout[-3000:]


@pytest.mark.parametrize("name", ["rbac.yaml", "rbac-cluster.yaml", "rbac-tls-secrets.yaml"])
def test_rbac_is_read_only_and_bound_to_the_service_account(name: str) -> None:
    docs = load_documents(name)
    for doc in docs:
        for rule in doc.get("rules", []):
            assert not WRITE_VERBS & set(rule["verbs"]), rule
            assert "*" not in rule.get("resources", []) and "*" not in rule.get("apiGroups", [])
    account = next(d for d in load_documents("rbac.yaml") if d["kind"] == "ServiceAccount")["metadata"]
    roles = {(d["kind"], d["metadata"]["name"]) for d in docs if d["kind"] in ("Role", "ClusterRole")}
    bindings = [d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    assert roles and {(b["roleRef"]["kind"], b["roleRef"]["name"]) for b in bindings} == roles
    for binding in bindings:
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
        ]
        role = next(d for d in docs if d["metadata"]["name"] == binding["roleRef"]["name"])
        assert role["metadata"].get("namespace") == binding["metadata"].get("namespace")


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
