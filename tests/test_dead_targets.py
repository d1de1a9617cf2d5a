"""Against a dead target no check passes without the observation it reads, and the health score shows it.

The whole built-in suite runs, as a user types it, against targets that cannot answer: a refused port
(http and https), a name a real DNS server (dnsmasq) answers NXDOMAIN for, TLS spoken to a plain-HTTP
server, and a port black-holed by a real iptables DROP rule inside a network namespace made for the
test. The cluster sections and the application tables come from the sandbox (``base: healthy``), so
every section takes part. From the JSON results:

- a passed DNS check recorded a resolved address, a passed TCP check only successful connections, a
  passed TLS check only certificates it saw, a passed api-health check only HTTP responses;
- no application check (sections 12-16) passed: the API never answered;
- the health score is the passed checks over the counted ones (passed, failed, errors, blocked), so
  with every pass observed it counts observed checks only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import servers

CHECKS_NEEDING = {
    "dns": "resolved address",
    "tcp": "connection",
    "tls": "certificate",
    "api-health": "HTTP response",
}
APPLICATION_SECTIONS = ("database", "services", "integration", "performance", "results-storage")
TLS_CERTIFICATE_FAILURES = (None, "tls_cert_expired", "tls_hostname", "tls_untrusted")
SCENARIO = "name: dead-targets\nbase: healthy\npostgres: false\n"
RUN_TIMEOUT = 180


def observed(section: str, evidence: list[dict]) -> bool:
    """Whether a test's evidence holds the observation a pass in ``section`` rests on."""

    def kind(name: str) -> list[dict]:
        return [record["data"] for record in evidence if record.get("kind") == name]

    if section == "dns":
        return any(data.get("addresses") for data in kind("dns"))
    if section == "tcp":
        connections = kind("tcp")
        return bool(connections) and all(data.get("failure") is None for data in connections)
    if section == "tls":
        handshakes = kind("tls")
        return bool(handshakes) and all(
            data.get("failure") in TLS_CERTIFICATE_FAILURES and (data.get("tls") or {}).get("subject_names")
            for data in handshakes
        )
    if section == "api-health":
        responses = kind("http_probe")
        return bool(responses) and all(data.get("status") is not None for data in responses)
    return True


def run_suite(folder: Path, target: str, *extra: str, prefix: tuple[str, ...] = ()) -> dict:
    scenario = folder / "dead-targets.yaml"
    scenario.write_text(SCENARIO)
    results = folder / "results.json"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("REACHABILITY_", "PYTEST_"))
        and key not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")
    }
    env["HOME"] = str(folder)
    command = [
        *prefix,
        sys.executable,
        "-m",
        "pytest",
        "--pyargs",
        "pytest_reachability.suites",
        f"--sandbox={scenario}",
        "--target",
        target,
        "--probe-timeout",
        "1",
        f"--results-json={results}",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:hypothesispytest",
        "-p",
        "no:benchmark",
        "-q",
        *extra,
    ]
    completed = subprocess.run(
        command, cwd=folder, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 1, (
        f"exit {completed.returncode}, expected 1 (checks failed):\n{output[-3000:]}"
    )
    return json.loads(results.read_text())


def assert_verdicts_observed(document: dict) -> None:
    tests = document["tests"]
    sections = {test["section"] for test in tests}
    assert {"cluster", "dns", "tcp", "tls", "api-health", *APPLICATION_SECTIONS} <= sections, sections
    unobserved = [
        f"{test['nodeid']} ({CHECKS_NEEDING[test['section']]} missing)"
        for test in tests
        if test["outcome"] == "passed"
        and test["section"] in CHECKS_NEEDING
        and not observed(test["section"], test["evidence"])
    ]
    assert not unobserved, "passed without the observation they read:\n" + "\n".join(unobserved)
    application_passes = [
        test["nodeid"]
        for test in tests
        if test["section"] in APPLICATION_SECTIONS and test["outcome"] == "passed"
    ]
    assert not application_passes, application_passes
    counted = [test for test in tests if test["outcome"] in ("passed", "failed", "error", "blocked")]
    passed = [test for test in counted if test["outcome"] == "passed"]
    assert document["health_score"] == round(100 * len(passed) / len(counted))
    # Something in the target's own sections failed or was blocked: the score reflects the dead target.
    assert any(
        test["outcome"] in ("failed", "blocked") for test in tests if test["section"] in CHECKS_NEEDING
    )


@pytest.fixture(scope="module")
def dnsmasq() -> servers.Dnsmasq:
    if servers.require_tool("dnsmasq") is None:
        pytest.skip("dnsmasq is not installed")
    with servers.Dnsmasq("--address=/refused.test/127.0.0.1", "--address=/plain.test/127.0.0.1") as running:
        yield running


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_refused_target(tmp_path: Path, dnsmasq: servers.Dnsmasq, scheme: str) -> None:
    document = run_suite(
        tmp_path, f"{scheme}://refused.test:{servers.refused_port()}", "--resolver", dnsmasq.resolver
    )
    assert_verdicts_observed(document)


def test_nxdomain_target(tmp_path: Path, dnsmasq: servers.Dnsmasq) -> None:
    document = run_suite(tmp_path, "https://missing.test", "--resolver", dnsmasq.resolver)
    assert_verdicts_observed(document)
    outcomes = {test["nodeid"].rsplit("::", 1)[1]: test for test in document["tests"]}
    assert outcomes["test_target_resolves"]["outcome"] == "failed"
    assert outcomes["test_resolvers_agree"]["outcome"] == "blocked"
    assert outcomes["test_resolvers_agree"]["reason"].startswith("blocked by test_target_resolves: ")


def test_tls_spoken_to_a_plain_http_port(tmp_path: Path, dnsmasq: servers.Dnsmasq) -> None:
    with servers.LoopbackServer(servers.healthy()) as plain:
        document = run_suite(tmp_path, f"https://plain.test:{plain.port}", "--resolver", dnsmasq.resolver)
    assert_verdicts_observed(document)
    outcomes = {test["nodeid"].rsplit("::", 1)[1]: test for test in document["tests"]}
    assert (
        outcomes["test_every_resolved_address_accepts_connections"]["outcome"] == "passed"
    )  # TCP does answer
    assert outcomes["test_tls_handshake_completes"]["outcome"] == "failed"
    for check in (
        "test_certificate_is_trusted",
        "test_certificate_names_the_target",
        "test_certificate_has_not_expired",
    ):
        assert outcomes[check]["outcome"] == "blocked", outcomes[check]
        assert outcomes[check]["reason"].startswith("blocked by test_tls_handshake_completes: ")


@pytest.fixture
def namespace() -> str:
    if os.geteuid() != 0 or servers.require_tool("ip") is None or servers.require_tool("iptables") is None:
        pytest.skip("network namespaces and iptables need root, iproute2 and iptables")
    with servers.network_namespace("rch-dead") as name:
        yield name


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_black_holed_target(tmp_path: Path, namespace: str, scheme: str) -> None:
    port = 8443
    # Inside the namespace made for this test only: SYNs to the port are dropped, nothing answers.
    subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            namespace,
            "iptables",
            "-A",
            "INPUT",
            "-p",
            "tcp",
            "--dport",
            str(port),
            "-j",
            "DROP",
        ],
        check=True,
        timeout=20,
    )
    document = run_suite(tmp_path, f"{scheme}://127.0.0.1:{port}", prefix=("ip", "netns", "exec", namespace))
    assert_verdicts_observed(document)
    connects = [
        test
        for test in document["tests"]
        if test["nodeid"].endswith("::test_every_resolved_address_accepts_connections")
    ]
    assert connects[0]["outcome"] == "failed" and "tcp_timeout" in connects[0]["reason"], connects
