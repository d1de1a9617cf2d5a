"""Sections 12-16 of the built-in suite run against the sandbox, through real pytest runs (pytester).

The suite files are run from the checkout, with the gates they require (api-health, cluster-access)
pulled back in from the other sections' files. ``APPLICATION_FROM_SANDBOX`` does, for these runs, what
``--sandbox`` is to do for every run: fill the application tables from the scenario when the user
configured none, and export the sandbox PostgreSQL's DSN under the database table's ``dsn-env``. It also
prints how many results the sandbox API still holds at the end, to prove the storage check cleans up.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import os
import re
import socket
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_reachability.sandbox import postgres as postgres_mod

SUITES = Path(__file__).resolve().parents[1] / "suites"
APP_FILES = (
    "test_12_database.py",
    "test_13_services.py",
    "test_14_integration.py",
    "test_15_performance.py",
    "test_16_results_storage.py",
)
APP_TESTS = {
    "test_12_database.py": (
        "test_api_reports_database_healthy",
        "test_api_reports_database_latency_within_limit",
        "test_database_answers_select_1_directly",
    ),
    "test_13_services.py": (
        "test_dependent_services_answer_through_the_target",
        "test_dependent_services_answer_inside_the_cluster",
    ),
    "test_14_integration.py": ("test_integration_flow_completes_in_order",),
    "test_15_performance.py": ("test_latency_percentiles_within_thresholds", "test_error_rate_within_limit"),
    "test_16_results_storage.py": (
        "test_result_written_reads_back_unchanged",
        "test_result_is_deleted_after_the_check",
    ),
}
ALL_APP_TESTS = [f"{file}::{test}" for file, tests in APP_TESTS.items() for test in tests]

APPLICATION_FROM_SANDBOX = """
import dataclasses
import os
import threading
import time

import pytest


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    from pytest_reachability.plugin import STATE

    state = config.stash.get(STATE, None)
    if state is None or state.sandbox_info is None:
        return
    info = state.sandbox_info
    for name, value in info.application_environment().items():
        os.environ.setdefault(name, value)
    if not state.settings.tables:
        state.settings = dataclasses.replace(state.settings, tables=dict(info.application))
    app = getattr(state.sandbox, "app", None)
    if app is not None:
        handle = app.handle

        def watched(request):
            FIRST_SEEN.setdefault(request.target, time.monotonic())
            if "from=database" in request.target:
                DATABASE_ASKED.set()
            elif HOLD_API_HEALTH and request.path == "/health":
                # api-health's answer waits (2 s at most, in all) for the database's request: when that
                # request goes out at session start it arrives meanwhile; when it waits for the gate it
                # cannot, and arrives after the gate's report whatever the machine's load.
                deadline = HOLD_UNTIL.setdefault("health", time.monotonic() + 2.0)
                DATABASE_ASKED.wait(max(0.0, deadline - time.monotonic()))
            return handle(request)

        app.handle = watched


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    from pytest_reachability.plugin import STATE

    state = session.config.stash.get(STATE, None)
    sandbox = getattr(state, "sandbox", None)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if sandbox is not None and sandbox.app is not None and reporter is not None:
        reporter.write_line(f"sandbox results left: {sandbox.app.results.count()}")
        seen = sandbox.app.requests_seen
        writes = sum(n for line, n in seen.items() if not line.startswith(("GET ", "HEAD ")))
        reporter.write_line(f"sandbox writes received: {writes}")
        for line, n in sorted(seen.items()):
            if line.startswith(("POST ", "DELETE ")):
                reporter.write_line(f"sandbox write {line.split('/results/')[0]}: {n}")
        for target, seen in sorted(FIRST_SEEN.items()):
            if "from=database" in target and API_HEALTH_GATE:
                when = "after" if seen > API_HEALTH_GATE[0] else "before"
                reporter.write_line(f"{target} {when} api-health")
        written = sandbox.app.first_seen.get("POST /api/v1/results")
        if written is not None and MOMENTS:
            for name, moment in sorted(MOMENTS.items()):
                reporter.write_line(f"storage write {'after' if written > moment else 'before'} {name}")


MOMENTS = {}
FIRST_SEEN = {}  # request-target -> when the sandbox's application first received it
API_HEALTH_GATE = []  # when the api-health gate's outcome was known
DATABASE_ASKED = threading.Event()
HOLD_UNTIL = {}
HOLD_API_HEALTH = bool(os.environ.get("HOLD_API_HEALTH"))


def pytest_runtest_logreport(report):
    if report.when == "call" and report.nodeid.endswith("test_api_reports_database_healthy"):
        MOMENTS["the database gate"] = time.monotonic()
    if report.when == "call" and report.nodeid.endswith("test_health_answers_on_every_resolved_address"):
        API_HEALTH_GATE.append(time.monotonic())


def pytest_runtest_setup(item):
    if item.name == "test_result_written_reads_back_unchanged":
        MOMENTS["its test started"] = time.monotonic()
"""

OUTCOME_LINE = re.compile(
    r"^(?:\[gw\d+\] \[\s*\d+%\] )?(?:(PASSED|FAILED|SKIPPED|BLOCKED|ERROR) )?(\S+?\.py)::(\S+)"
    r"(?: (PASSED|FAILED|SKIPPED|BLOCKED|ERROR))?"
)


def outcomes_of(result: pytest.RunResult) -> dict[str, str]:
    """``file.py::test`` -> PASSED/FAILED/SKIPPED/BLOCKED/ERROR, from -v lines (serial and xdist)."""
    found: dict[str, str] = {}
    for line in result.outlines:
        match = OUTCOME_LINE.match(line)
        if match and (match.group(1) or match.group(4)):
            found[f"{Path(match.group(2)).name}::{match.group(3)}"] = match.group(1) or match.group(4)
    return found


def run_suite(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """The five application files (narrow with ``-k``: the gates they need are pulled back in)."""
    pytester.makepyfile(application_from_sandbox=APPLICATION_FROM_SANDBOX)
    return pytester.runpytest_subprocess(
        *[str(SUITES / name) for name in APP_FILES],
        "-v",
        "-rA",
        "-p",
        "no:cacheprovider",
        "-p",
        "application_from_sandbox",
        *args,
        timeout=300,
    )


def expect_direct_check() -> str:
    """What the direct PostgreSQL check does here: PASSED with a sandbox PostgreSQL (required in CI)."""
    reason = postgres_mod.unavailable_reason()
    if reason is not None and os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is required in CI: {reason}")
    return "PASSED" if reason is None else "SKIPPED"


def scenario_file(pytester: pytest.Pytester, name: str, body: str) -> Path:
    path = pytester.path / f"{name}.yaml"
    path.write_text(f"base: healthy\nname: {name}\ndescription: {name}\n{body}")
    return path


def test_healthy_sandbox_passes_every_application_section(pytester: pytest.Pytester):
    direct = expect_direct_check()
    result = run_suite(pytester, "--sandbox", "healthy")
    outcomes = outcomes_of(result)
    for nodeid in ALL_APP_TESTS:
        wanted = direct if nodeid.endswith("test_database_answers_select_1_directly") else "PASSED"
        assert outcomes.get(nodeid) == wanted, (nodeid, outcomes.get(nodeid), result.stdout.str()[-3000:])
    assert result.ret == 0
    text = result.stdout.str()
    # The progress line of the bounded load, and its final figures.
    assert re.search(
        r"^performance: \d+/100 requests to http://97v\.test:\d+/health at concurrency 4, 0 errors, "
        r"\d+\.\d+s$",
        text,
        re.M,
    )
    assert re.search(r"^performance: 100/100 requests .* 0 errors", text, re.M)
    for section in ("database", "services", "integration", "performance", "results-storage"):
        assert re.search(rf"^{section}\s+\d+\s+\d+\s+0\s+0\s+\d+\s+PASS", text, re.M), section
    assert "sandbox results left: 0" in text
    # Each flow that writes ran once, though prefetch starts it as soon as its gates pass and its test
    # reads the same result: one result written and deleted, one session opened.
    writes = re.findall(r"^sandbox write (\w+ \S+): (\d+)$", text, re.M)
    assert writes == [
        ("DELETE /api/v1", "1"),
        ("POST /api/v1/results", "1"),
        ("POST /api/v1/sessions", "1"),
    ], writes
    # ... after the gates it needs passed, and before its test's turn came (serial run: the tests between
    # the database gate and results-storage take longer than the write's start).
    result.stdout.fnmatch_lines(
        ["storage write before its test started", "storage write after the database gate"]
    )


def test_incident_sandbox_blocks_every_application_section_on_api_health(pytester: pytest.Pytester):
    result = run_suite(pytester, "--sandbox", "incident-2025-12-08")
    outcomes = outcomes_of(result)
    assert {nodeid: outcomes.get(nodeid) for nodeid in ALL_APP_TESTS} == dict.fromkeys(
        ALL_APP_TESTS, "BLOCKED"
    )
    assert outcomes["test_10_api_health.py::test_health_answers_on_every_resolved_address"] == "FAILED"
    blocked = [line for line in result.outlines if line.startswith("BLOCKED ") and "test_1" in line]
    assert len([line for line in blocked if any(f in line for f in APP_FILES)]) == len(ALL_APP_TESTS)
    assert all(
        "blocked by api-health: " in line and "127.0.10.57" in line
        for line in blocked
        if any(f in line for f in APP_FILES)
    )
    assert "performance: " not in result.stdout.str()  # no load is sent to a target that is down
    result.stdout.fnmatch_lines(["sandbox writes received: 0"])  # nor a write, ahead of its test or not
    result.stdout.fnmatch_lines(["*10 blocked*"])
    assert result.ret == 1


WRONG_PATHS = """
[tool.reachability.database]
field = "dependencies.database.status"
expect = "ok"

[tool.reachability.services.bot-service]
path = "/bot/nowhere"

[[tool.reachability.integration.steps]]
name = "open a session"
method = "POST"
path = "/api/v1/sessions"
json = { user = "reachability-check" }
expect-status = 201
save = { token = "token" }

[[tool.reachability.integration.steps]]
name = "who am I"
path = "/api/v1/me"
headers = { Authorization = "Bearer not-${token}" }

[tool.reachability.performance]
path = "/nowhere"
requests = 40
concurrency = 4

[tool.reachability.results-storage]
write-path = "/api/v1/nowhere"
read-path = "/api/v1/nowhere/${id}"
"""


def test_wrong_paths_fail_each_check_in_one_line(pytester: pytest.Pytester):
    config = pytester.path / "wrong.toml"
    config.write_text(WRONG_PATHS)
    result = run_suite(pytester, "--sandbox", "healthy", "--reachability-config", str(config))
    outcomes = outcomes_of(result)
    assert outcomes["test_12_database.py::test_api_reports_database_healthy"] == "PASSED"
    assert outcomes["test_12_database.py::test_database_answers_select_1_directly"] == "SKIPPED"  # no dsn-env
    assert outcomes["test_13_services.py::test_dependent_services_answer_inside_the_cluster"] == "SKIPPED"
    for nodeid in (
        "test_13_services.py::test_dependent_services_answer_through_the_target",
        "test_14_integration.py::test_integration_flow_completes_in_order",
        "test_15_performance.py::test_error_rate_within_limit",
        "test_16_results_storage.py::test_result_written_reads_back_unchanged",
    ):
        assert outcomes[nodeid] == "FAILED", nodeid
    assert (
        outcomes["test_15_performance.py::test_latency_percentiles_within_thresholds"] == "PASSED"
    )  # 404s are fast
    # Each failure is one line in the report: the request, what it answered, what was expected.
    result.stdout.re_match_lines(
        [
            r"^E\s+AssertionError: bot-service: GET http://97v\.test:\d+/bot/nowhere answered 404, expected "
            r"200$",
            r"^E\s+AssertionError: step 2/2 'who am I': GET http://97v\.test:\d+/api/v1/me answered 401, "
            r"expected 200 "
            r"\(body: \{\"detail\":\"Not authenticated\"\}\)$",
            r"^E\s+AssertionError: GET http://97v\.test:\d+/nowhere: 40 of 40 requests failed \(100\.0%: "
            r"HTTP 404 x40\), expected at most 0\.0%$",
            r"^E\s+AssertionError: POST http://97v\.test:\d+/api/v1/nowhere answered 404 \(body: "
            r"\{\"detail\":\"Not Found\"\}\), "
            r"expected 200 or 201$",
        ],
        consecutive=False,
    )
    assert result.ret == 1


def test_a_failed_database_gate_blocks_integration_and_storage(pytester: pytest.Pytester):
    config = pytester.path / "wrong-database.toml"
    config.write_text(
        '[tool.reachability.database]\nfield = "dependencies.database.status"\nexpect = "healthy"\n'
        '[tool.reachability.integration]\nsteps = [{ path = "/bot/health" }]\n'
        '[tool.reachability.results-storage]\nwrite-path = "/api/v1/results"\nread-path = '
        '"/api/v1/results/${id}"\n'
        '[tool.reachability.services.bot]\npath = "/bot/health"\n'
    )
    result = run_suite(pytester, "--sandbox", "healthy", "--reachability-config", str(config))
    outcomes = outcomes_of(result)
    assert outcomes["test_12_database.py::test_api_reports_database_healthy"] == "FAILED"
    result.stdout.re_match_lines(
        [
            r"^E\s+AssertionError: GET http://97v\.test:\d+/health: dependencies\.database\.status is "
            r"\"ok\", expected \"healthy\"$"
        ]
    )
    for nodeid in (
        "test_14_integration.py::test_integration_flow_completes_in_order",
        "test_16_results_storage.py::test_result_written_reads_back_unchanged",
        "test_16_results_storage.py::test_result_is_deleted_after_the_check",
    ):
        assert outcomes[nodeid] == "BLOCKED", nodeid
    assert outcomes["test_13_services.py::test_dependent_services_answer_through_the_target"] == "PASSED"
    assert outcomes["test_15_performance.py::test_latency_percentiles_within_thresholds"] == "SKIPPED"
    blocked = [line for line in result.outlines if line.startswith("BLOCKED ")]
    assert blocked and all("blocked by database: GET http://97v.test:" in line for line in blocked)
    # The flows that write wait for the database gate even when started ahead of their tests (prefetch):
    # with the gate failed, not one write reached the API.
    result.stdout.fnmatch_lines(["sandbox writes received: 0"])


def test_unconfigured_sections_skip_naming_the_table_to_add(pytester: pytest.Pytester):
    scenario = scenario_file(
        pytester,
        "no-application",
        "postgres: false\napplication:\n"
        + "".join(
            f"  {table}: null\n"
            for table in ("database", "services", "integration", "performance", "results-storage")
        ),
    )
    result = run_suite(pytester, "--sandbox", str(scenario))
    outcomes = outcomes_of(result)
    assert {nodeid: outcomes.get(nodeid) for nodeid in ALL_APP_TESTS} == dict.fromkeys(
        ALL_APP_TESTS, "SKIPPED"
    )
    text = result.stdout.str()
    for table in ("database", "services", "performance"):
        assert f"not configured: add [tool.reachability.{table}] (see examples/reachability.toml)" in text, (
            table
        )
    # Integration and storage wait on the database gate, which says what to add.
    assert (
        "gate database skipped: not configured: add [tool.reachability.database] (see "
        "examples/reachability.toml)" in text
    )
    assert result.ret == 0


def test_performance_load_is_bounded_by_its_deadline_and_shows_progress(pytester: pytest.Pytester):
    scenario = scenario_file(
        pytester,
        "slow-api",
        (
            "postgres: false\n"
            "edges:\n  - {address: 127.0.10.53, behaviour: {slow: 250ms}, hosts: [97v.test, www.97v.test]}\n"
            "application:\n  performance: {path: /health, requests: 5000, concurrency: 2, deadline-s: 1, "
            "p95-ms: 100}\n"
            + "".join(
                f"  {table}: null\n" for table in ("database", "services", "integration", "results-storage")
            )
        ),
    )
    began = time.monotonic()
    result = run_suite(pytester, "--sandbox", str(scenario), "-k", "test_15_performance")
    assert time.monotonic() - began < 120
    outcomes = outcomes_of(result)
    assert outcomes["test_15_performance.py::test_latency_percentiles_within_thresholds"] == "FAILED"
    assert outcomes["test_15_performance.py::test_error_rate_within_limit"] == "FAILED"
    finished = [
        int(n)
        for n in re.findall(
            r"only (\d+) of 5000 requests finished within the 1s deadline \(deadline-s\)", result.stdout.str()
        )
    ]
    assert finished and all(0 < n <= 2 * 4 + 2 for n in finished), finished  # 2 at a time, 250 ms each, 1 s
    progress = re.findall(r"^performance: (\d+)/5000 requests", result.stdout.str(), re.M)
    assert progress and int(progress[-1]) == finished[0]


def test_under_xdist_the_application_sections_pass_and_workers_print_no_progress(pytester: pytest.Pytester):
    direct = expect_direct_check()
    result = run_suite(pytester, "--sandbox", "healthy", "-n", "2")
    outcomes = outcomes_of(result)
    for nodeid in ALL_APP_TESTS:
        wanted = direct if nodeid.endswith("test_database_answers_select_1_directly") else "PASSED"
        assert outcomes.get(nodeid) == wanted, (nodeid, outcomes.get(nodeid))
    assert "performance: " not in result.stdout.str()
    assert result.ret == 0


def test_invalid_application_config_is_reported_in_one_line(pytester: pytest.Pytester):
    config = pytester.path / "bad.toml"
    config.write_text('[tool.reachability.performance]\npath = "/health"\nrequests = "lots"\n')
    result = run_suite(
        pytester, "--sandbox", "healthy", "--reachability-config", str(config), "-k", "test_15_performance"
    )
    line = '[tool.reachability.performance] requests: expected a positive integer <= 100000, got "lots"'
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [entry for entry in result.errlines if entry.startswith("ERROR:")] == [f"ERROR: {line}"]
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


HIDE_PSYCOPG = """
import sys


def pytest_configure(config):
    sys.modules["psycopg"] = None  # as if the optional driver were not installed
"""


def test_direct_database_check_names_the_extra_when_the_driver_is_missing(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("REACHABILITY_DATABASE_DSN", "postgresql://app:secret@127.0.0.1:1/app")
    scenario = scenario_file(pytester, "simulated-database", "postgres: false\n")
    pytester.makepyfile(hide_psycopg=HIDE_PSYCOPG)
    result = run_suite(pytester, "--sandbox", str(scenario), "-p", "hide_psycopg", "-k", "test_12_database")
    assert outcomes_of(result)["test_12_database.py::test_database_answers_select_1_directly"] == "SKIPPED"
    assert "the PostgreSQL driver psycopg is not installed: pip install pytest-reachability[postgres]" in (
        result.stdout.str()
    )


def test_direct_database_check_failure_is_one_line_without_the_password(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
):
    pytest.importorskip("psycopg", reason="pip install pytest-reachability[postgres]")
    with refusing_port() as port:
        monkeypatch.setenv("REACHABILITY_DATABASE_DSN", f"postgresql://app:s3cret-pw@127.0.0.1:{port}/app")
        scenario = scenario_file(pytester, "simulated-database", "postgres: false\n")
        result = run_suite(pytester, "--sandbox", str(scenario), "-k", "test_12_database")
    outcomes = outcomes_of(result)
    assert outcomes["test_12_database.py::test_api_reports_database_healthy"] == "PASSED"
    assert outcomes["test_12_database.py::test_database_answers_select_1_directly"] == "FAILED"
    result.stdout.re_match_lines(
        [
            rf"^E\s+AssertionError: postgresql://127\.0\.0\.1:{port}/app: .*(refused|failed).*; expected "
            r"SELECT 1 to answer within 5 s$"
        ]
    )
    assert "s3cret-pw" not in result.stdout.str() + result.stderr.str()


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port that refuses connections (bound, never listening) for as long as it is held."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


class _BasicAuthHealth(http.server.BaseHTTPRequestHandler):
    """/health behind basic auth (user "load", password "s3cret"), as a protected target answers."""

    expected = "Basic " + base64.b64encode(b"load:s3cret").decode()

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        status = 200 if self.headers.get("Authorization") == self.expected else 401
        body = b'{"status":"healthy"}' if status == 200 else b'{"detail":"Not authenticated"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        pass


class _ProgressRecorder:
    """Where run_load reports its progress; keeps the last figures."""

    def __init__(self) -> None:
        self.updates = 0

    def update(self, result: object, final: bool = False) -> None:
        self.updates += 1


def test_performance_load_sends_the_target_credentials():
    from pytest_reachability.appconfig import PerformanceConfig
    from pytest_reachability.config import parse_target
    from suites.test_15_performance import run_load

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _BasicAuthHealth)
    server.daemon_threads = True
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    serving.start()
    try:
        target = parse_target(f"http://load:s3cret@127.0.0.1:{server.server_address[1]}")
        config = PerformanceConfig(path="/health", requests=12, concurrency=3, deadline_s=10.0)
        settings = types.SimpleNamespace(ca_bundle=None, probe_timeout=2.0)
        result = run_load(config, target, settings, None, _ProgressRecorder())
    finally:
        server.shutdown()
        server.server_close()
        serving.join(5)
    assert result.completed == 12
    assert result.errors == 0, result.error_kinds  # without the credentials: 12 x "HTTP 401"


def test_the_database_health_request_does_not_wait_for_api_health(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
):
    """A GET like api-health's own goes out at session start: the database gate it decides is then not a
    round trip behind api-health, on the chain that ends with the storage round trip."""
    scenario = scenario_file(
        pytester,
        "database-path",
        "application:\n  database: {health-path: '/health?from=database', "
        "field: dependencies.database.status, expect: ok}\n",
    )
    monkeypatch.setenv("HOLD_API_HEALTH", "1")
    result = run_suite(pytester, "--sandbox", str(scenario), "-k", "test_12_database")
    outcomes = outcomes_of(result)
    assert outcomes["test_12_database.py::test_api_reports_database_healthy"] == "PASSED", result.stdout.str()
    result.stdout.fnmatch_lines(["/health?from=database before api-health"])
