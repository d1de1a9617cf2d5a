"""The built-in suite end to end against every shipped sandbox scenario.

Each scenario runs once in a fresh pytest process, exactly as a user types it:
``python -m pytest --pyargs pytest_reachability.suites --sandbox NAME`` from an empty temporary folder
(so no project ``pyproject.toml`` is picked up: the rootdir is that folder). ``healthy`` and the incident
also run under ``-n 4``, whose per-test outcomes must equal the serial run's.

The runs are independent processes, so they are started together (a few at a time) when the first test
needs them, and each test then asserts on its scenario's run: the wall time is that of the slowest few
runs, not the sum of thirteen. Outcomes come from the verbose progress lines (one per test, also under
xdist); failure and BLOCKED messages from the full output (``-rA`` and the plugin's BLOCKED list).
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# Plugins of the machine that the suite does not use are
# left out: hypothesis alone costs a second per process.
SUITE_ARGS = (
    "--pyargs",
    "pytest_reachability.suites",
    "-rA",
    "-v",
    "-p",
    "no:cacheprovider",
    "-p",
    "no:hypothesispytest",
    "-p",
    "no:benchmark",
    "--probe-timeout",
    "3",
)
RUN_TIMEOUT = 150  # seconds for one whole suite run; a hang fails the test instead of stalling CI
CONCURRENT_RUNS = 3

INFRASTRUCTURE = (
    "cluster",
    "workloads",
    "k8s-services",
    "endpoints",
    "ingress",
    "network-policy",
    "dns",
    "tcp",
    "tls",
    "api-health",
    "api-internal",
)
SECTION_OF_FILE = {f"test_{index:02d}_": name for index, name in enumerate(INFRASTRUCTURE, start=1)}
APPLICATION_FILES = re.compile(r"test_1[2-6]_")

PROGRESS = re.compile(
    r"(?:^|\s)(?:[\w./-]*/)?(?P<file>test_\d\d_\w+\.py)::(?P<test>\w+)\s+(?P<word>PASSED|FAILED|SKIPPED|ERROR|BLOCKED)\b"
    r"|(?P<word2>PASSED|FAILED|SKIPPED|ERROR|BLOCKED)\s+(?:[\w./-]*/)?(?P<file2>test_\d\d_\w+\.py)::(?P<test2>\w+)"
)
BLOCKED_LINE = re.compile(
    r"^BLOCKED (?:[\w./-]*/)?(?P<file>test_\d\d_\w+\.py)::(?P<test>\w+) - (?P<reason>.*)$", re.M
)


@dataclass
class SuiteRun:
    outcomes: dict[str, str]  # "test_07_dns.py::test_resolvers_agree" -> PASSED/FAILED/SKIPPED/ERROR/BLOCKED
    blocked: dict[str, str]  # test -> BLOCKED reason
    text: str

    def section(self, name: str) -> dict[str, str]:
        prefix = next(p for p, section in SECTION_OF_FILE.items() if section == name)
        return {test: word for test, word in self.outcomes.items() if test.startswith(prefix)}

    def status(self, name: str) -> str:
        """failed if any test failed or errored, passed if any passed, else skipped (none ran)."""
        words = set(self.section(name).values())
        if words & {"FAILED", "ERROR"}:
            return "failed"
        if "PASSED" in words:
            return "passed"
        return "skipped" if words else "absent"

    def application(self) -> dict[str, str]:
        return {test: word for test, word in self.outcomes.items() if APPLICATION_FILES.match(test)}


def parse(text: str) -> SuiteRun:
    outcomes: dict[str, str] = {}
    for match in PROGRESS.finditer(text):
        file, test, word = (
            match["file"] or match["file2"],
            match["test"] or match["test2"],
            match["word"] or match["word2"],
        )
        key = f"{file}::{test}"
        # The first verdict a test gets is its outcome (an error in teardown comes later as ERROR).
        if key not in outcomes or word == "ERROR":
            outcomes[key] = word
    blocked = {f"{m['file']}::{m['test']}": m["reason"] for m in BLOCKED_LINE.finditer(text)}
    return SuiteRun(outcomes=outcomes, blocked=blocked, text=text)


def suite_environment(home: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("REACHABILITY_", "PYTEST_"))
        and key not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")
    }
    env["COLUMNS"] = "1000"  # summary lines are cut at the terminal width; messages are asserted whole
    env["HOME"] = str(home)  # no ~/.kube/config of the machine's user leaks into a run
    return env


def run_suite(folder: Path, *args: str) -> SuiteRun:
    """One suite run in its own process group, killed whole if it outlives RUN_TIMEOUT."""
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pytest", *SUITE_ARGS, *args]
    process = subprocess.Popen(
        command,
        cwd=folder,
        env=suite_environment(folder),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the run and its xdist workers: the group this test started
        output, _ = process.communicate()
        pytest.fail(f"suite run {' '.join(args)} did not finish within {RUN_TIMEOUT}s:\n{output[-3000:]}")
    assert process.returncode in (0, 1), (
        f"suite run {' '.join(args)} ended with exit code {process.returncode}:\n{output[-3000:]}"
    )
    run = parse(output)
    assert len(run.section("cluster")) >= 2, f"no outcomes parsed:\n{output[-3000:]}"
    return run


def closed_port() -> int:
    with socket.socket() as sock:  # bound and closed at once: nothing listens there
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Per scenario: sections that must fail, sections that must pass, and messages the output must contain.
# Everything not listed as failing must not fail.
SCENARIOS: dict[str, dict] = {
    "healthy": {
        "fail": set(),
        "pass": set(INFRASTRUCTURE) - {"tls"},
        "messages": [],
    },
    "healthy-https": {
        "fail": set(),
        "pass": set(INFRASTRUCTURE),
        "messages": [],
    },
    "incident-2025-12-08": {
        "fail": {"k8s-services", "ingress", "dns", "api-health"},
        "pass": {"cluster", "workloads", "endpoints", "network-policy", "tcp", "api-internal"},
        "messages": [
            r"DNS A 127\.0\.10\.57 is not an address of LoadBalancer api \(127\.0\.10\.53\) or api-service "
            r"\(127\.0\.10\.239\)",
            r"127\.0\.10\.57:\d+ empty_reply \(curl 52\)",
            r"duplicate LoadBalancers: api \(127\.0\.10\.53\) and api-service \(127\.0\.10\.239\) select the "
            r"same pods",
            r"no Ingress in namespace production has a rule for 97v\.test .*although an ingress controller "
            r"runs "
            r"\(ingress-nginx/ingress-nginx-controller",
        ],
    },
    "lb-pending": {
        "fail": {"k8s-services", "dns", "tcp", "api-health"},
        "pass": {"cluster", "workloads", "endpoints", "ingress", "network-policy", "api-internal"},
        "messages": [
            r"LoadBalancer without an address: api \(pending: .*quota exceeded\)",
            r"127\.0\.10\.53:\d+ tcp_refused \(curl 7\)",
        ],
    },
    "selector-no-pods": {
        "fail": {"endpoints", "api-health", "api-internal"},
        "pass": {"cluster", "workloads", "k8s-services", "ingress", "dns", "tcp"},
        "messages": [
            r"Service api selects app=api-v2, which matches no pod",
            r"Service api has no ready endpoints",
        ],
    },
    "targetport-mismatch": {
        "fail": {"endpoints", "api-health", "api-internal"},
        "pass": {"cluster", "workloads", "k8s-services", "ingress", "network-policy", "dns", "tcp"},
        "messages": [
            r"Service api port 80 forwards to targetPort 8080, but pod api-847495fbc4-686tk listens on 8000 "
            r"\(http\)"
        ],
    },
    "crashloop": {
        "fail": {"cluster", "workloads", "endpoints", "api-health", "api-internal"},
        "pass": {"k8s-services", "ingress", "network-policy", "dns", "tcp"},
        "messages": [
            r"api-847495fbc4-686tk \(CrashLoopBackOff\)",
            r"restarted 27 times",
            r"api has 0 of 1 replicas available",
            r"no endpoints available",
        ],
    },
    "ingress-backend-missing": {
        "fail": {"ingress", "api-health"},
        "pass": {
            "cluster",
            "workloads",
            "k8s-services",
            "endpoints",
            "network-policy",
            "dns",
            "tcp",
            "api-internal",
        },
        "messages": [
            r"Ingress api-ingress routes 97v\.test/ to Service api-svc:80, which does not exist in namespace "
            r"production"
        ],
    },
    "tls-expired": {
        "fail": {"tls", "api-health"},
        "pass": {
            "cluster",
            "workloads",
            "k8s-services",
            "endpoints",
            "ingress",
            "network-policy",
            "dns",
            "tcp",
            "api-internal",
        },
        "messages": [
            r"certificate expired or not yet valid: 127\.0\.10\.53:\d+",
            r"tls_cert_expired \(curl 60\)",
        ],
    },
    "resolvers-disagree": {
        "fail": {"dns", "tcp", "api-health"},
        "pass": {
            "cluster",
            "workloads",
            "k8s-services",
            "endpoints",
            "ingress",
            "network-policy",
            "api-internal",
        },
        "messages": [
            r"resolvers disagree about 97v\.test: \S+ answers 127\.0\.10\.53; \S+ answers 127\.0\.10\.57",
            r"DNS A 127\.0\.10\.57 is not an address of LoadBalancer api \(127\.0\.10\.53\)",
        ],
    },
    "netpol-deny": {
        "fail": {"network-policy", "api-health"},
        "pass": {
            "cluster",
            "workloads",
            "k8s-services",
            "endpoints",
            "ingress",
            "dns",
            "tcp",
            "api-internal",
        },
        "messages": [
            r"no NetworkPolicy admits traffic from the edge to port 8000 of pod api-847495fbc4-686tk "
            r"\(selected by NetworkPolicy default-deny-ingress\)",
            r"127\.0\.10\.53:\d+ read_timeout \(curl 28\)",
        ],
    },
}
ALSO_UNDER_XDIST = {"healthy", "incident-2025-12-08"}


def check_scenario(run: SuiteRun, scenario: str) -> None:
    expected = SCENARIOS[scenario]
    statuses = {name: run.status(name) for name in INFRASTRUCTURE}
    for name in expected["fail"]:
        assert statuses[name] == "failed", (
            f"{scenario}: section {name} should fail, got {statuses[name]}: {run.section(name)}"
        )
    for name in expected["pass"]:
        assert statuses[name] == "passed", (
            f"{scenario}: section {name} should pass, got {statuses[name]}: {run.section(name)}"
        )
    unexpected = {
        name: run.section(name)
        for name, status in statuses.items()
        if status == "failed" and name not in expected["fail"]
    }
    assert not unexpected, f"{scenario}: sections failed that should not: {unexpected}"
    for pattern in expected["messages"]:
        assert re.search(pattern, run.text), f"{scenario}: output lacks /{pattern}/"
    api_health_failed = statuses["api-health"] == "failed"
    for test, word in run.application().items():
        if api_health_failed:
            assert word == "BLOCKED", f"{scenario}: {test} should be BLOCKED by api-health, got {word}"
            assert run.blocked.get(test, "").startswith("blocked by api-health: "), run.blocked.get(test)
        else:
            assert word not in ("FAILED", "ERROR", "BLOCKED"), f"{scenario}: {test} {word}"


NO_CLUSTER = "no-cluster"
DENIED = "denied-pods"
CONFIGURED = "configured"
# [tool.reachability.cluster] in the folder the suite runs from (its rootdir): a Service name the
# namespace lacks, and the strictest restart limit (a limit that is not a number stops the run at start:
# tests/test_appconfig.py).
CONFIGURED_PYPROJECT = """\
[tool.reachability.cluster]
service = "api-v9"
max_restarts = 0
"""
# A scenario of the test's own: the healthy world, but the identity may not list pods in the namespace.
DENIED_SCENARIO = """\
name: denied-pods
description: the identity may not list pods in production
base: healthy
kubernetes:
  deny: [{verb: list, resource: pods, namespace: production}]
"""


@pytest.fixture(scope="module")
def suite_runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[tuple[str, bool], concurrent.futures.Future]]:
    """Every run of this module, started together; a test waits for the runs it reads."""
    base = tmp_path_factory.mktemp("suite-runs")
    jobs: dict[tuple[str, bool], tuple[str, ...]] = {}
    # The xdist runs are the longest: started first so that they do not finish last.
    for scenario in sorted(ALSO_UNDER_XDIST):
        jobs[(scenario, True)] = ("--sandbox", scenario, "-n", "4")
    for scenario in SCENARIOS:
        jobs[(scenario, False)] = ("--sandbox", scenario)
    jobs[(NO_CLUSTER, False)] = ("--target", f"http://127.0.0.1:{closed_port()}")
    configured = base / CONFIGURED
    configured.mkdir()
    (configured / "pyproject.toml").write_text(CONFIGURED_PYPROJECT)
    jobs[(CONFIGURED, False)] = ("--sandbox", "healthy", "-k", "test_01_cluster or test_03_k8s_services")
    denied = base / "denied-pods.yaml"
    denied.write_text(DENIED_SCENARIO)
    jobs[(DENIED, False)] = (f"--sandbox={denied}",)  # a file outside the folder: the = form
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=CONCURRENT_RUNS, thread_name_prefix="suite-run")
    futures = {
        key: pool.submit(run_suite, base / f"{key[0]}{'-xdist' if key[1] else ''}", *args)
        for key, args in jobs.items()
    }
    yield futures
    pool.shutdown(wait=True)


def result_of(suite_runs: dict, scenario: str, parallel: bool = False) -> SuiteRun:
    # Queued runs wait for the ones before them; every run is itself bounded by RUN_TIMEOUT.
    return suite_runs[(scenario, parallel)].result(timeout=RUN_TIMEOUT * len(suite_runs))


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_suite_against_scenario(suite_runs, scenario: str) -> None:
    run = result_of(suite_runs, scenario)
    check_scenario(run, scenario)
    if scenario == "healthy":
        tls = run.section("tls")
        assert tls and set(tls.values()) == {"SKIPPED"}, tls
        assert re.search(r"is plain HTTP: TLS is checked for https:// targets", run.text)
    if scenario == "healthy-https":
        # Every one of the sixteen sections passes, and the application sections ran (not skipped).
        assert run.application() and set(run.application().values()) == {"PASSED"}, run.application()
    if scenario == "incident-2025-12-08":
        # What the incident's engineers found by hand: fine inside, LoadBalancer fine, DNS address dead.
        assert (
            run.outcomes["test_10_api_health.py::test_loadbalancers_answer_health_for_the_target_host"]
            == "PASSED"
        )
        assert run.outcomes["test_11_api_internal.py::test_health_through_the_service_proxy"] == "PASSED"
        assert run.outcomes["test_08_tcp.py::test_every_resolved_address_accepts_connections"] == "PASSED"


@pytest.mark.parametrize("scenario", sorted(ALSO_UNDER_XDIST))
def test_suite_under_xdist_matches_serial(suite_runs, scenario: str) -> None:
    serial, parallel = result_of(suite_runs, scenario), result_of(suite_runs, scenario, parallel=True)
    differences = {
        test: (serial.outcomes.get(test), parallel.outcomes.get(test))
        for test in set(serial.outcomes) | set(parallel.outcomes)
        if serial.outcomes.get(test) != parallel.outcomes.get(test)
    }
    assert not differences, f"{scenario}: -n 4 differs from serial (serial, -n 4): {differences}"
    check_scenario(parallel, scenario)


def test_suite_without_a_cluster_skips_the_cluster_sections(suite_runs) -> None:
    """No kubeconfig anywhere: sections 1-6 are skipped through the gate, not failed; the probes still run."""
    run = result_of(suite_runs, NO_CLUSTER)
    for name in (
        "cluster",
        "workloads",
        "k8s-services",
        "endpoints",
        "ingress",
        "network-policy",
        "api-internal",
    ):
        assert run.status(name) == "skipped", f"{name}: {run.section(name)}"
    assert "gate cluster-access skipped: cluster not configured" in run.text
    assert run.outcomes["test_10_api_health.py::test_health_answers_on_every_resolved_address"] == "FAILED"
    assert re.search(r"127\.0\.0\.1:\d+ tcp_refused \(curl 7\)", run.text)
    assert (
        run.outcomes["test_10_api_health.py::test_loadbalancers_answer_health_for_the_target_host"]
        == "SKIPPED"
    )
    # Application tests that also need the cluster are skipped with it; the others are BLOCKED by api-health.
    application = run.application()
    assert all(word in ("BLOCKED", "SKIPPED") for word in application.values()), application
    assert not application or "BLOCKED" in application.values(), application


def test_suite_with_a_namespace_it_may_not_read_blocks_the_cluster_sections(suite_runs) -> None:
    """The gate cluster-access fails (403 listing pods):
    sections 2-6 and the cluster comparisons are BLOCKED."""
    run = result_of(suite_runs, DENIED)
    assert run.outcomes["test_01_cluster.py::test_identity_may_read_the_namespace"] == "FAILED"
    assert run.outcomes["test_01_cluster.py::test_api_server_answers"] == "PASSED"
    for name in ("workloads", "k8s-services", "endpoints", "ingress", "network-policy", "api-internal"):
        assert set(run.section(name).values()) == {"BLOCKED"}, f"{name}: {run.section(name)}"
    for test in (
        "test_07_dns.py::test_dns_answers_are_loadbalancer_addresses",
        "test_08_tcp.py::test_every_loadbalancer_address_accepts_connections",
        "test_10_api_health.py::test_loadbalancers_answer_health_for_the_target_host",
    ):
        assert run.outcomes[test] == "BLOCKED", f"{test}: {run.outcomes[test]}"
        assert re.search(
            r"blocked by cluster-access: .*forbidden: cannot list pods in namespace production; "
            r'grant verb "list" on resource "pods"',
            run.blocked[test],
        ), run.blocked[test]
    # The probes from outside do not need the cluster: the api-health gate still passes.
    assert run.outcomes["test_10_api_health.py::test_health_answers_on_every_resolved_address"] == "PASSED"
    assert run.status("dns") == "passed" and run.status("tcp") == "passed"


def test_suite_reads_the_cluster_table_of_the_configuration(suite_runs) -> None:
    """``service`` names the target's Service; ``max_restarts`` is the limit the restart check applies."""
    run = result_of(suite_runs, CONFIGURED)
    assert run.outcomes["test_03_k8s_services.py::test_target_service_exists_in_namespace"] == "FAILED"
    assert re.search(
        r"Service api-v9 not found in namespace production; no namespace has it "
        r"\(named by service = 'api-v9' in \[tool.reachability.cluster\]\)",
        run.text,
    )
    assert (
        run.outcomes["test_01_cluster.py::test_containers_are_not_restarting"] == "PASSED"
    )  # no pod restarted
    assert run.outcomes["test_01_cluster.py::test_pods_are_running_and_ready"] == "PASSED"
