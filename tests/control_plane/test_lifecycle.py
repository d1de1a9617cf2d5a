"""The control plane's build script, start, stop, credentials, egress guard, and the real sandbox mode."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import requests

from pytest_reachability.sandbox import Sandbox
from pytest_reachability.sandbox import control_plane as control_plane_module
from pytest_reachability.sandbox.control_plane import (
    ADMIN,
    BINARIES_ENV,
    ControlPlane,
    ControlPlaneUnavailable,
)
from pytest_reachability.sandbox.control_plane_load import ApiError, LoadReport, clear_objects, load_objects

from .suite_runs import ROOT, admin

pytestmark = pytest.mark.control_plane

BUILD = ROOT / "tools" / "control-plane" / "build"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose; its parent (the killed script) is gone, init reaps it.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_build_script_and_module_name_the_same_versions(tmp_path: Path) -> None:
    versions = dict(
        line.split("=", 1)
        for line in (BUILD.parent / "versions").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert versions == {
        "KUBERNETES_VERSION": control_plane_module.KUBERNETES_VERSION,
        "ETCD_VERSION": control_plane_module.ETCD_VERSION,
    }
    env = {
        k: v for k, v in os.environ.items() if k not in ("KUBERNETES_VERSION", "ETCD_VERSION", BINARIES_ENV)
    }
    env["XDG_CACHE_HOME"] = str(tmp_path)
    done = subprocess.run(
        [str(BUILD), "--path"], env=env, capture_output=True, text=True, timeout=30, check=True
    )
    expected = (
        tmp_path
        / "pytest-reachability"
        / "control-plane"
        / (f"{versions['KUBERNETES_VERSION']}-{versions['ETCD_VERSION']}")
    )
    assert done.stdout.strip() == str(expected)


def test_without_binaries_the_real_sandbox_is_a_one_line_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = dict(os.environ, **{BINARIES_ENV: str(tmp_path / "empty")})
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--sandbox",
            "healthy",
            "--sandbox-apiserver=real",
            "-p",
            "no:cacheprovider",
            "suites/test_01_cluster.py",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 4, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "tools/control-plane/build" in lines[0], done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    monkeypatch.setenv(BINARIES_ENV, str(tmp_path / "empty"))
    with pytest.raises(ControlPlaneUnavailable, match="tools/control-plane/build"):
        Sandbox("healthy", apiserver="real")


def test_an_unknown_api_server_kind_is_a_one_line_usage_error() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--sandbox",
            "healthy",
            "--sandbox-apiserver=kind",
            "-p",
            "no:cacheprovider",
            "suites/test_01_cluster.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("REACHABILITY_")},
    )
    assert done.returncode == 4, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == [
        "ERROR: --sandbox-apiserver: 'kind' is not an API server kind; expected embedded or real"
    ]


def test_credentials_rbac_and_version(control_plane: ControlPlane) -> None:
    session = requests.Session()
    session.trust_env = False
    session.verify = control_plane.ca_file

    def get(path: str, token: str) -> requests.Response:
        return session.get(control_plane.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    version = get("/version", control_plane.users[ADMIN].token).json()
    assert version["gitVersion"] == control_plane_module.KUBERNETES_VERSION
    assert get("/api/v1/pods", "not-a-token").status_code == 401
    refused = get("/api/v1/namespaces/default/pods", control_plane.users["nobody"].token)
    assert refused.status_code == 403
    assert (
        'User "nobody" cannot list resource "pods" in API group "" in the namespace "default"'
        in refused.json()["message"]
    )
    assert get("/api/v1/namespaces/default/pods", control_plane.users[ADMIN].token).status_code == 200
    session.close()


def test_killed_parent_leaves_no_control_plane_behind(control_plane_binaries: Path, tmp_path: Path) -> None:
    script = tmp_path / "start.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys, time
        from pytest_reachability.sandbox.control_plane import ControlPlane
        plane = ControlPlane({str(control_plane_binaries)!r}).start()
        print(plane.pids[0], plane.pids[1], plane.directory, flush=True)
        time.sleep(600)
    """)
    )
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = process.stdout.readline() if process.stdout else ""
        etcd, apiserver, directory = line.split()
        pids = [int(etcd), int(apiserver)]
        assert all(_alive(pid) for pid in pids)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in pids), "etcd or kube-apiserver outlived the killed parent"
    # The killed parent could not remove its folder; a clean stop does (next test).
    shutil.rmtree(directory, ignore_errors=True)


def test_stop_ends_both_processes_and_removes_the_folder(control_plane_binaries: Path) -> None:
    plane = ControlPlane(control_plane_binaries).start()
    pids, directory = plane.pids, plane.directory
    assert directory is not None and directory.is_dir()
    plane.stop()
    assert not any(_alive(pid) for pid in pids)
    assert not directory.exists()


def test_cluster_connections_stay_on_loopback(control_plane: ControlPlane) -> None:
    """kube-apiserver's service proxy and pod logs reach the sandbox through the egress guard.

    Nothing else does."""
    sandbox = Sandbox("healthy", control_plane=control_plane, postgres=False)
    info = sandbox.start()
    client = admin(control_plane)
    assert control_plane.egress is not None
    before = len(control_plane.egress.requests)
    try:
        namespace, pod = info.namespace, "api-847495fbc4-686tk"
        health = client.session.get(
            f"{control_plane.url}/api/v1/namespaces/{namespace}/services/api:80/proxy/health", timeout=30
        )
        assert health.status_code == 200, health.text
        assert health.json().get("status") == "healthy", health.text
        log = client.session.get(
            f"{control_plane.url}/api/v1/namespaces/{namespace}/pods/{pod}/log",
            params={"tailLines": "2"},
            timeout=30,
        )
        assert log.status_code == 200
        assert log.text == "".join(sandbox.scenario.logs[f"{namespace}/{pod}"].splitlines(keepends=True)[-2:])
        # A port the pod does not declare is refused, as the pod itself would refuse it.
        closed = client.session.get(
            f"{control_plane.url}/api/v1/namespaces/{namespace}/pods/{pod}:9999/proxy/", timeout=30
        )
        assert closed.status_code >= 500
        attempts = control_plane.egress.requests[before:]
        assert ("10.244.0.45", 8000, "tunnelled") in attempts
        assert ("pool-prod-k8s-x1a2b", 10250, "tunnelled") in attempts
        assert ("10.244.0.45", 9999, "refused") in attempts  # the refusing socket on loopback refused it
    finally:
        client.close()
        sandbox.stop()
    assert control_plane.egress.route is None


def test_real_sandbox_serves_the_scenario_to_the_suite(control_plane_binaries: Path, tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--sandbox",
            "healthy",
            "--sandbox-apiserver=real",
            "-p",
            "no:cacheprovider",
            "suites/test_01_cluster.py",
            "suites/test_02_workloads.py",
            "suites/test_03_k8s_services.py",
            "suites/test_04_endpoints.py",
            "suites/test_05_ingress.py",
            "suites/test_06_network_policy.py",
            f"--results-json={results}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("REACHABILITY_") or k == BINARIES_ENV},
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "sandbox: healthy (real kube-apiserver)" in done.stdout


def test_any_kind_loads_with_its_status_and_clears(control_plane: ControlPlane) -> None:
    """Kinds the sandbox's own server does not serve load too: a CRD and its objects, a Job, a ConfigMap."""
    manifests = [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "migrate", "namespace": "loader-test"},
            "spec": {
                "template": {
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "m:1"}]}
                }
            },
            "status": {
                "failed": 2,
                "conditions": [{"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"}],
            },
        },
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": {"name": "web", "namespace": "loader-test"},
            "spec": {"secretName": "web-tls"},
            "status": {"conditions": [{"type": "Ready", "status": "False"}]},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": "loader-test"},
            "data": {"mode": "strict"},
        },
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "certificates.cert-manager.io"},
            "spec": {
                "group": "cert-manager.io",
                "scope": "Namespaced",
                "names": {"plural": "certificates", "singular": "certificate", "kind": "Certificate"},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "subresources": {"status": {}},
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            }
                        },
                    }
                ],
            },
        },
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "loader-test"}},
    ]
    client = admin(control_plane)
    report = LoadReport()
    try:
        load_objects(client, manifests, report)
        certificate = client.get("/apis/cert-manager.io/v1/namespaces/loader-test/certificates/web")
        assert certificate["status"]["conditions"][0]["status"] == "False"
        job = client.get("/apis/batch/v1/namespaces/loader-test/jobs/migrate")
        assert job["status"]["failed"] == 2
        assert client.get("/api/v1/namespaces/loader-test/configmaps/settings")["data"] == {"mode": "strict"}
    finally:
        clear_objects(client, report)
    with pytest.raises(ApiError) as gone:
        client.get("/api/v1/namespaces/loader-test")
    assert gone.value.code == 404
    with pytest.raises(ApiError):
        client.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/certificates.cert-manager.io")
    client.close()
