"""Sandbox lifecycle: a whole world starts, answers like the scenario says, and stops without leftovers."""

from __future__ import annotations

import contextlib
import os
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import kubernetes.client
import kubernetes.config
import pytest

from pytest_reachability.sandbox import Sandbox, SandboxInfo, ScenarioError

HOST = "97v.test"


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is required in CI")
        pytest.skip(f"{name} is not installed")
    return path


def socket_inodes() -> set[str]:
    """Inodes of the sockets this process holds open."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    return inodes


def listening_ports() -> set[int]:
    """Local ports in TCP LISTEN state or bound UDP, from /proc/net (this network namespace)."""
    ports = set()
    for table, wanted_state in (("tcp", "0A"), ("tcp6", "0A"), ("udp", "07"), ("udp6", "07")):
        path = Path("/proc/net") / table
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == wanted_state:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def resolve(info: SandboxInfo, name: str, resolver_index: int = 0) -> list[str]:
    address, port = info.resolvers[resolver_index].rsplit(":", 1)
    response = dns.query.udp(dns.message.make_query(name, "A"), address, port=int(port), timeout=3)
    return [rdata.address for rrset in response.answer for rdata in rrset if rrset.rdtype == 1]


def curl(info: SandboxInfo, address: str, *extra: str) -> subprocess.CompletedProcess:
    port = info.edge_port
    return subprocess.run(
        [
            require_tool("curl"),
            "-sS",
            "-f",
            "--max-time",
            "2",
            "--cacert",
            info.ca_bundle,
            "--resolve",
            f"{HOST}:{port}:{address}",
            *extra,
            f"{info.target}/health",
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )


@contextlib.contextmanager
def kube_client(info: SandboxInfo) -> Iterator[kubernetes.client.ApiClient]:
    assert info.kubeconfig is not None
    with kubernetes.config.new_client_from_config(
        config_file=info.kubeconfig, context=info.context
    ) as client:
        yield client
        # Clients before 37 keep their connections open after close(): the last response holds one.
        client.last_response = None
        client.rest_client.pool_manager.clear()


# -- a whole world ---------------------------------------------------------------------------------


def test_healthy_sandbox_end_to_end_and_clean_stop():
    threads_before = set(threading.enumerate())
    sockets_before = socket_inodes()
    sandbox = Sandbox("healthy")
    info = sandbox.start()
    state_dir = Path(info.state_dir)
    try:
        assert info.scenario == "healthy" and info.namespace == "production" and info.context == "sandbox"
        assert info.target == f"http://{HOST}:{info.edge_port}"
        assert len(info.resolvers) == 1 and Path(info.ca_bundle).is_file() and Path(info.kubeconfig).is_file()
        [address] = resolve(info, HOST)
        assert address == "127.0.10.53"
        result = curl(info, address)
        assert result.returncode == 0 and '"status":"healthy"' in result.stdout
        with kube_client(info) as client:
            core = kubernetes.client.CoreV1Api(client)
            pods = core.list_namespaced_pod(info.namespace)
            assert "api-847495fbc4-686tk" in [pod.metadata.name for pod in pods.items]
            services = {svc.metadata.name: svc for svc in core.list_namespaced_service(info.namespace).items}
            assert services["api"].status.load_balancer.ingress[0].ip == address
            proxied = core.connect_get_namespaced_service_proxy_with_path("api:80", info.namespace, "health")
            assert '"status": "healthy"' in str(proxied) or "'status': 'healthy'" in str(proxied)
        ports = {
            info.edge_port,
            *(int(r.rsplit(":", 1)[1]) for r in info.resolvers),
            int(info.api_url.rsplit(":", 1)[1]),
        }
        assert ports <= listening_ports()
    finally:
        sandbox.stop()
    assert sandbox.info is None
    assert not state_dir.exists()
    deadline = time.monotonic() + 5
    while set(threading.enumerate()) - threads_before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert set(threading.enumerate()) <= threads_before
    assert socket_inodes() <= sockets_before
    assert not ports & listening_ports()


def test_a_component_failing_to_stop_does_not_leave_the_others_running(monkeypatch):
    sandbox = Sandbox("healthy", postgres=False)
    info = sandbox.start()
    state_dir = Path(info.state_dir)
    dns_ports = {int(r.rsplit(":", 1)[1]) for r in info.resolvers}
    in_cluster = sandbox.in_cluster
    assert in_cluster is not None
    real_stop = in_cluster.stop

    def stop_then_fail(*args: object, **kwargs: object) -> None:
        real_stop(*args, **kwargs)  # the server itself goes away; only its stop call reports a failure
        raise OSError("in-cluster backend would not stop")

    monkeypatch.setattr(in_cluster, "stop", stop_then_fail)
    try:
        with pytest.raises(OSError, match="would not stop"):
            sandbox.stop()
        # The components after the failing one were still stopped.
        assert sandbox.info is None and sandbox.dns_servers == {}
        assert not state_dir.exists()
        assert not dns_ports & listening_ports()
    finally:
        sandbox.stop()


def test_incident_sandbox_reproduces_the_incident():
    with Sandbox("incident-2025-12-08") as info:
        [address] = resolve(info, HOST)
        assert address == "127.0.10.57"
        dead = curl(info, address, "-v")
        assert dead.returncode == 52 and "Empty reply from server" in dead.stderr
        assert curl(info, "127.0.10.53").returncode == 0
        assert curl(info, "127.0.10.239").returncode == 0
        assert curl(info, "127.0.10.80").returncode == 22  # ingress-nginx without a rule for the host
        with kube_client(info) as client:
            networking = kubernetes.client.NetworkingV1Api(client)
            assert networking.list_ingress_for_all_namespaces().items == []
            logs = kubernetes.client.CoreV1Api(client).read_namespaced_pod_log(
                "api-847495fbc4-686tk", info.namespace, tail_lines=3
            )
            assert logs.count("10.108.0.39") == 3


def test_kubectl_lists_the_incident_with_real_columns():
    kubectl = require_tool("kubectl")
    with Sandbox("incident-2025-12-08") as info:
        result = subprocess.run(
            [kubectl, "get", "pods,svc", "-n", "production"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "KUBECONFIG": info.kubeconfig, "HOME": info.state_dir},
        )
    assert result.returncode == 0, result.stderr
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert "NAME READY STATUS RESTARTS AGE" in lines
    assert "pod/api-847495fbc4-686tk 1/1 Running 0 12h" in lines
    assert "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE" in lines
    assert "service/api LoadBalancer 10.109.31.2 127.0.10.53 80:32558/TCP 12h" in lines
    assert "service/api-service LoadBalancer 10.109.27.32 127.0.10.239 80:32110/TCP 2d21h" in lines


def test_tls_expired_target_fails_certificate_check():
    with Sandbox("tls-expired") as info:
        assert info.target.startswith("https://")
        result = curl(info, resolve(info, HOST)[0])
    assert result.returncode == 60 and "expired" in result.stderr


def test_service_proxy_backends_follow_the_scenario():
    sandbox = Sandbox("targetport-mismatch")
    sandbox.start()
    try:
        refused = sandbox.backend_for_service("production", "api", 80)
        assert refused is not None
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(refused, timeout=2).close()
        healthy = sandbox.backend_for_service("production", "bot-service", "http")
        assert healthy == ("127.0.0.1", sandbox.in_cluster.port)
        assert sandbox.backend_for_service("production", "no-such-service", 80) is None
        assert sandbox.backend_for_service("production", "api", 9999) is None
    finally:
        sandbox.stop()


def test_selector_without_pods_has_no_backend():
    sandbox = Sandbox("selector-no-pods")
    with sandbox:
        assert sandbox.backend_for_service("production", "api", 80) is None


def test_two_sandboxes_run_at_once():
    with Sandbox("incident-2025-12-08") as first, Sandbox("incident-2025-12-08") as second:
        assert first.edge_port != second.edge_port
        assert first.resolvers != second.resolvers and first.kubeconfig != second.kubeconfig
        for info in (first, second):
            assert resolve(info, HOST) == ["127.0.10.57"]
            assert curl(info, "127.0.10.57").returncode == 52
            assert curl(info, "127.0.10.53").returncode == 0


def test_context_manager_stops_on_error_and_unknown_scenario_is_one_line():
    sandbox = Sandbox("healthy")
    with pytest.raises(RuntimeError), sandbox as info:
        state_dir = Path(info.state_dir)
        raise RuntimeError("boom")
    assert not state_dir.exists() and sandbox.info is None
    with pytest.raises(ScenarioError, match=r"^unknown scenario 'no-such-world'; known: "):
        Sandbox("no-such-world")


def test_info_round_trips_as_plain_data():
    with Sandbox("resolvers-disagree") as info:
        assert SandboxInfo.from_dict(info.to_dict()) == info
        env = info.environment()
        assert env["REACHABILITY_RESOLVERS"] == ",".join(info.resolvers) and len(info.resolvers) == 2
        assert resolve(info, HOST, 0) == ["127.0.10.53"] and resolve(info, HOST, 1) == ["127.0.10.57"]


# -- the command line ---------------------------------------------------------------------------------


def read_exports(process: subprocess.Popen, count: int, timeout: float = 60) -> dict[str, str]:
    """The first ``count`` lines of stdout as ``export NAME=value``; raw reads so select() sees every byte."""
    buffer = b""
    deadline = time.monotonic() + timeout
    fd = process.stdout.fileno()
    while buffer.count(b"\n") < count:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"only {buffer!r} after {timeout}s"
        readable, _, _ = select.select([fd], [], [], remaining)
        if readable:
            chunk = os.read(fd, 4096)
            assert chunk, f"sandbox exited early: {process.stderr.read()!r}"
            buffer += chunk
    exports: dict[str, str] = {}
    for line in buffer.decode().splitlines()[:count]:
        words = shlex.split(line)
        assert words[0] == "export" and len(words) == 2, line
        name, _, value = words[1].partition("=")
        exports[name] = value
    return exports


def end_cli(process: subprocess.Popen) -> None:
    """The test's own cleanup of the sandbox process it started (by its PID)."""
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)
    process.stdout.close()
    process.stderr.close()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_prints_exports_runs_until_signalled_and_exits_0(stop_signal):
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest_reachability.sandbox", "incident-2025-12-08"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        exports = read_exports(process, 5)
        assert set(exports) == {
            "REACHABILITY_TARGET",
            "KUBECONFIG",
            "REACHABILITY_NAMESPACE",
            "REACHABILITY_RESOLVERS",
            "REACHABILITY_CA_BUNDLE",
        }
        assert exports["REACHABILITY_TARGET"].startswith(f"http://{HOST}:")
        assert exports["REACHABILITY_NAMESPACE"] == "production"
        address, port = exports["REACHABILITY_RESOLVERS"].split(",")[0].rsplit(":", 1)
        response = dns.query.udp(dns.message.make_query(HOST, "A"), address, port=int(port), timeout=3)
        assert response.answer[0][0].address == "127.0.10.57"
        state_dir = Path(exports["KUBECONFIG"]).parent
        assert state_dir.is_dir() and Path(exports["REACHABILITY_CA_BUNDLE"]).is_file()
        assert process.poll() is None
        process.send_signal(stop_signal)
        assert process.wait(timeout=20) == 0
        assert not state_dir.exists()
    finally:
        end_cli(process)


def test_cli_killed_with_sigkill_leaves_no_postgres_and_no_secrets():
    """SIGKILL runs no teardown: the watchdog stops PostgreSQL and removes the folder with keys and token."""
    from test_sandbox_postgres import require_postgres

    require_postgres()
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest_reachability.sandbox", "healthy"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        exports = read_exports(process, 5)
        state_dir = Path(exports["KUBECONFIG"]).parent
        # Children of every thread: the sandbox may start PostgreSQL from a thread other than the main one,
        # and a task's ``children`` file lists only the children that task forked.
        children = [
            int(pid)
            for task in Path(f"/proc/{process.pid}/task").iterdir()
            for pid in (task / "children").read_text().split()
        ]
        postmasters = [pid for pid in children if b"postgres" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert postmasters, "no PostgreSQL started by the sandbox"
        data_dir = Path(Path(f"/proc/{postmasters[0]}/cmdline").read_bytes().split(b"\0")[2].decode()).parent
        process.kill()
        process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
            state_dir.exists()
            or data_dir.exists()
            or any(Path(f"/proc/{pid}").exists() for pid in postmasters)
        ):
            time.sleep(0.05)
        assert not state_dir.exists(), (
            "the kubeconfig with its token and the private keys outlived the sandbox"
        )
        assert not data_dir.exists(), "PostgreSQL's folder outlived the sandbox"
        assert not any(Path(f"/proc/{pid}").exists() for pid in postmasters), (
            "PostgreSQL outlived the sandbox"
        )
    finally:
        end_cli(process)
