"""Probes log every phase through ``logging``: shown per test under "captured log" and live with
``--log-cli-level=DEBUG``, with secrets of the target masked in both."""

from __future__ import annotations

import logging

import pytest
import servers

from pytest_reachability.config import parse_target
from pytest_reachability.probes import PROBES, run_probe
from pytest_reachability.probes.http import probe_target

PASSWORD = "Pw9sEcretValue"
TENANT = "Tenant7sEcretPath"

USER_TEST = """
def test_health_answers(probe):
    for result in probe.health():
        assert result.ok, result.detail
"""


def test_http_probe_logs_each_phase_under_its_module_logger(caplog):
    target = parse_target("http://127.0.0.1:1")
    with (
        servers.LoopbackServer(servers.healthy()) as server,
        caplog.at_level(logging.DEBUG, "pytest_reachability"),
    ):
        target = parse_target(f"http://127.0.0.1:{server.port}")
        (result,) = probe_target(target, timeout=5)
    assert result.ok
    http_lines = [r.getMessage() for r in caplog.records if r.name == "pytest_reachability.probes.http"]
    where = f"http 127.0.0.1:{server.port}"
    assert f"{where}: GET http://127.0.0.1:{server.port}/health (timeout 5s)" in http_lines
    for phase in ("connect", "ttfb", "transfer", "total"):
        assert any(line.startswith(f"{where}: phase {phase} ") for line in http_lines), (phase, http_lines)
    assert f"{where}: HTTP 200 OK, {result.bytes_read} bytes read" in http_lines
    assert http_lines[-1] == f"{where}: ok"


def test_failures_are_logged_with_their_class_and_curl_exit(caplog):
    refused = servers.refused_port()
    target = parse_target(f"http://127.0.0.1:{refused}")
    with caplog.at_level(logging.DEBUG, "pytest_reachability"):
        (result,) = probe_target(target, timeout=5)
    assert result.failure is not None
    lines = [r.getMessage() for r in caplog.records if r.name == "pytest_reachability.probes.http"]
    assert lines[-1].startswith(f"http 127.0.0.1:{refused}: tcp_refused (curl 7): ")


def test_registry_runs_each_protocol(caplog):
    assert set(PROBES) == {"dns", "tcp", "tls", "http"}
    with (
        servers.LoopbackServer(servers.healthy()) as server,
        caplog.at_level(logging.DEBUG, "pytest_reachability"),
    ):
        target = parse_target(f"http://127.0.0.1:{server.port}")

        class Settings:
            resolvers, probe_timeout, ca_bundle, health_path = ["system"], 5.0, None, "/health"

        assert run_probe("dns", target, Settings).addresses == ["127.0.0.1"]
        (tcp,) = run_probe("tcp", target, Settings)
        (http,) = run_probe("http", target, Settings, addresses=["127.0.0.1"])
    assert tcp.ok and http.ok
    assert {r.name for r in caplog.records} >= {
        "pytest_reachability.probes.tcp",
        "pytest_reachability.probes.http",
    }
    with pytest.raises(ValueError, match="unknown probe 'ftp'"):
        run_probe("ftp", target, Settings)


@pytest.mark.parametrize("live", [False, True], ids=["captured-log", "log-cli"])
def test_probe_logs_reach_pytest_output_with_secrets_masked(pytester, live):
    pytester.makepyfile(test_user=USER_TEST)
    with servers.LoopbackServer(servers.healthy()) as server:
        target = f"http://admin:{PASSWORD}@127.0.0.1:{server.port}/{TENANT}"
        args = [f"--target={target}", f"--mask={TENANT}", "-p", "no:cacheprovider", "--log-level=DEBUG"]
        # -rP prints a passing test's captured log; a failing one prints it anyway.
        args += ["--log-cli-level=DEBUG"] if live else ["-rP"]
        result = pytester.runpytest_subprocess(*args, timeout=120)
    output = result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=1)
    assert ("live log call" if live else "Captured log call") in output
    assert "pytest_reachability.probes.http" in output or "http.py" in output
    assert f"http 127.0.0.1:{server.port}: phase connect" in output
    assert f"http 127.0.0.1:{server.port}: ok" in output
    assert PASSWORD not in output
    assert TENANT not in output
