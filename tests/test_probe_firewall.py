"""A true firewall in a network namespace: DROP gives tcp_timeout within the timeout, REJECT gives
tcp_refused.

Each test makes its own namespace (``rch-<random>``) with only a loopback, starts a healthy HTTP server
inside it, proves the probe reaches it, then adds a filter rule with ``iptables`` or ``nft`` and probes
again from inside the namespace. The namespace, and with it every rule, is deleted in teardown.
Needs root and iproute2; in CI (CI=true) a missing tool fails the test instead of skipping it.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
import servers

from pytest_reachability.probes.failures import Failure

ROOT = Path(__file__).resolve().parents[1]
PORT = 8080  # the namespace is new and empty, so a fixed port is free there
TIMEOUT = 1.0

_SERVER = """
import http.server, sys
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"status": "ok"}'
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
"""

_PROBE = """
import json, sys, time
from pytest_reachability.config import parse_target
from pytest_reachability.probes.http import probe_address
started = time.perf_counter()
result = probe_address(parse_target(sys.argv[1]), "127.0.0.1", timeout=float(sys.argv[2]))
print(json.dumps({"failure": result.failure and result.failure.value, "status": result.status,
                  "detail": result.detail, "curl": result.curl, "seconds": time.perf_counter() - started}))
"""


def _run(*command: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(list(command), capture_output=True, text=True, timeout=timeout, check=True)


class Namespace:
    """A network namespace with loopback up and a healthy server on 127.0.0.1:PORT inside."""

    def __init__(self) -> None:
        self.name = f"rch-{secrets.token_hex(4)}"
        self.server: subprocess.Popen | None = None

    def __enter__(self) -> Namespace:
        _run("ip", "netns", "add", self.name)
        try:
            _run("ip", "-n", self.name, "link", "set", "lo", "up")
            self.server = subprocess.Popen(
                ["ip", "netns", "exec", self.name, sys.executable, "-c", _SERVER, str(PORT)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _attempt in range(100):  # up to ~5 s for the interpreter to start listening
                if self.probe(0.5)["failure"] is None:
                    return self
                time.sleep(0.05)
            raise RuntimeError("health server in the namespace did not come up")
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *exc: object) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()  # `ip netns exec` execs the interpreter, so this PID is the server itself
            try:
                self.server.wait(5)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait(5)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=20, check=False)

    def exec(self, *command: str) -> subprocess.CompletedProcess:
        return _run("ip", "netns", "exec", self.name, *command)

    def probe(self, timeout: float) -> dict:
        completed = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                self.name,
                sys.executable,
                "-c",
                _PROBE,
                f"http://97v.test:{PORT}/health",
                str(timeout),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout + 20,
            check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        return json.loads(completed.stdout)

    def curl_exit(self, curl_line: str, timeout: float) -> int:
        import shlex

        words = shlex.split(curl_line)
        completed = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                self.name,
                words[0],
                "-sS",
                "-o",
                "/dev/null",
                "--max-time",
                str(timeout),
                *words[1:],
            ],
            capture_output=True,
            timeout=timeout + 20,
            check=False,
        )
        return completed.returncode


def _drop(tool: str, verdict: str) -> list[list[str]]:
    """Commands adding an INPUT rule for PORT: 'drop' (silent) or 'reset' (REJECT with a TCP RST)."""
    if tool == "iptables":
        action = ["-j", "DROP"] if verdict == "drop" else ["-j", "REJECT", "--reject-with", "tcp-reset"]
        return [["iptables", "-A", "INPUT", "-p", "tcp", "--dport", str(PORT), *action]]
    action = "drop" if verdict == "drop" else "reject with tcp reset"
    return [
        ["nft", "add", "table", "inet", "rch"],
        ["nft", "add", "chain", "inet", "rch", "input", "{ type filter hook input priority 0 ; }"],
        ["nft", "add", "rule", "inet", "rch", "input", "tcp", "dport", str(PORT), *action.split()],
    ]


@pytest.fixture
def namespace_tools(request: pytest.FixtureRequest) -> str:
    tool = request.param
    for needed in ("ip", tool):
        if servers.require_tool(needed) is None:
            pytest.skip(
                f"{needed} not installed (apt-get install iproute2 iptables nftables); required when CI=true"
            )
    if os.geteuid() != 0:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("network namespace tests need root, and CI=true requires them to run")
        pytest.skip("network namespaces need root")
    return tool


@pytest.mark.parametrize("namespace_tools", ["iptables", "nft"], indirect=True)
def test_drop_rule_gives_tcp_timeout_within_the_timeout(namespace_tools: str) -> None:
    with Namespace() as namespace:
        before = namespace.probe(TIMEOUT)
        assert before["failure"] is None and before["status"] == 200, before
        for command in _drop(namespace_tools, "drop"):
            namespace.exec(*command)
        after = namespace.probe(TIMEOUT)
        assert after["failure"] == Failure.TCP_TIMEOUT.value, after
        assert TIMEOUT * 0.9 <= after["seconds"] < TIMEOUT + 0.5, after
        assert "--max-time 1" in after["curl"]
        assert namespace.curl_exit(after["curl"], TIMEOUT) == Failure.TCP_TIMEOUT.curl_exit


@pytest.mark.parametrize("namespace_tools", ["iptables", "nft"], indirect=True)
def test_reject_rule_gives_tcp_refused(namespace_tools: str) -> None:
    with Namespace() as namespace:
        for command in _drop(namespace_tools, "reset"):
            namespace.exec(*command)
        result = namespace.probe(TIMEOUT)
        assert result["failure"] == Failure.TCP_REFUSED.value, result
        assert result["seconds"] < TIMEOUT / 2  # an RST answers at once; no waiting for the timeout
        assert namespace.curl_exit(result["curl"], TIMEOUT) == Failure.TCP_REFUSED.curl_exit


@pytest.mark.parametrize("namespace_tools", ["iptables"], indirect=True)
def test_namespace_is_removed_after_use(namespace_tools: str) -> None:
    with Namespace() as namespace:
        name = namespace.name
        assert name in _run("ip", "netns", "list").stdout
    assert name not in _run("ip", "netns", "list").stdout
