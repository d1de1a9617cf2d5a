"""Running the built-in suite against a scenario loaded into the real control plane, as a given identity."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pytest_reachability.sandbox import Sandbox, SandboxInfo
from pytest_reachability.sandbox.control_plane import ADMIN, ControlPlane
from pytest_reachability.sandbox.control_plane_load import RestClient

ROOT = Path(__file__).resolve().parents[2]
SUITE_TIMEOUT = 600
GRANT = re.compile(
    r"(?:in namespace (?P<namespace>[a-z0-9.-]+)|at cluster scope); "
    r'grant verb "(?P<verb>[^"]+)" on resource "(?P<resource>[^"]+)" \(group "(?P<group>[^"]*)"\)'
)


@dataclass
class SuiteRun:
    returncode: int
    results: dict[str, Any]
    output: str
    audit: list[dict[str, Any]]  # the API server's audit events of this run's user

    def reasons(self) -> list[str]:
        return [test["reason"] for test in self.results.get("tests", []) if test.get("reason")]

    def grants_asked(self) -> set[tuple[str, str, str, str]]:
        """(group, resource, verb, namespace or "") of every "grant verb ... on resource ..." message.

        The messages of the run: in a test's reason, or in a warning (a read that only adds evidence fails
        nothing when refused)."""
        texts = [*self.reasons(), self.output]
        return {
            (m["group"], m["resource"], m["verb"], m["namespace"] or "")
            for text in texts
            for m in GRANT.finditer(text)
        }

    def refused(self) -> set[tuple[str, str, str, str]]:
        """(group, resource, verb, namespace) of every request the API server answered 403."""
        return {
            _permission(event)
            for event in self.audit
            if (event.get("responseStatus") or {}).get("code") == 403
        }

    def requests(self) -> set[tuple[str, str, str, str]]:
        return {_permission(event) for event in self.audit}


def _permission(event: dict[str, Any]) -> tuple[str, str, str, str]:
    ref = event.get("objectRef") or {}
    if not ref:
        return ("nonResourceURL", event.get("requestURI", "").split("?")[0], event.get("verb", ""), "")
    resource = ref.get("resource", "") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
    return (ref.get("apiGroup", ""), resource, event.get("verb", ""), ref.get("namespace", ""))


@contextlib.contextmanager
def loaded_sandbox(scenario: str, plane: ControlPlane) -> Iterator[SandboxInfo]:
    """The scenario's DNS, edges and database as usual, its objects in the real control plane."""
    sandbox = Sandbox(scenario, control_plane=plane)
    info = sandbox.start()
    try:
        yield info
    finally:
        sandbox.stop()


def admin(plane: ControlPlane) -> RestClient:
    return RestClient(plane.url, plane.users[ADMIN].token, plane.ca_file)


def service_account_kubeconfig(
    plane: ControlPlane, namespace: str, name: str, path: Path, default_namespace: str
) -> tuple[str, str]:
    """A kubeconfig holding a token of ServiceAccount namespace/name (TokenRequest API).

    Returns (path, user)."""
    client = admin(plane)
    try:
        answer = client.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": 3600},
            },
        )
    finally:
        client.close()
    user = f"system:serviceaccount:{namespace}:{name}"
    plane.write_kubeconfig(path, user=user, token=answer["status"]["token"], namespace=default_namespace)
    return str(path), user


def run_suite(
    info: SandboxInfo, plane: ControlPlane, kubeconfig: str, user: str, directory: Path, *args: str
) -> SuiteRun:
    """The built-in suite against the sandbox, reading the cluster through ``kubeconfig`` (as ``user``)."""
    directory.mkdir(parents=True, exist_ok=True)
    results = directory / "results.json"
    env = {key: value for key, value in os.environ.items() if not key.startswith("REACHABILITY_")}
    env.update(info.environment())
    env.update(info.application_environment())
    env["KUBECONFIG"] = kubeconfig
    before = plane.audit_offset()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--pyargs",
            "pytest_reachability.suites",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--results-json={results}",
            *args,
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SUITE_TIMEOUT,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode in (0, 1), f"exit code {done.returncode}:\n{output[-6000:]}"
    audit = [
        event for event in plane.audit_events(before) if (event.get("user") or {}).get("username") == user
    ]
    return SuiteRun(done.returncode, json.loads(results.read_text()), output, audit)


def rbac_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
