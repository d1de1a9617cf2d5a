"""Section 12, database: the API says its database is healthy, and the database answers directly.

Configured by ``[tool.reachability.database]`` (see ``examples/reachability.toml``)::

    [tool.reachability.database]
    field = "dependencies.database.status"   # JSON path in the health body
    expect = "ok"
    latency-field = "dependencies.database.latency_ms"
    max-latency-ms = 500
    dsn-env = "DATABASE_DSN"                 # optional direct check: connect, SELECT 1, latency

The API's own view is the gate ``database``: integration (14) and results storage (16) need a database
that works. The direct check needs the optional driver (``pip install pytest-reachability[postgres]``);
the DSN is read from the environment variable only, and never printed (host, port and database are).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from pytest_reachability import jsontext, prefetch
from pytest_reachability.appconfig import json_path_get

pytestmark = pytest.mark.section("database", requires=["api-health"])

INSTALL_HINT = "pip install pytest-reachability[postgres]"


@dataclass
class HealthAnswer:
    """The health endpoint's answer as the database checks read it."""

    url: str
    status: int | None
    document: Any
    text: str
    ms: float
    error: str | None


@pytest.fixture(scope="module")
def database_config(app_config):
    if app_config.database is None:
        pytest.skip(app_config.not_configured("database"))
    return app_config.database


def health_answer_key(target: Any, path: str) -> str:
    return f"suite-database-health:{target.base_url}:{path}"


def prefetch_for_target(work: Any) -> None:
    """The health answer, asked at session start beside the health probes: a GET like api-health's own, it
    need not wait for that gate, and the database gate it decides is then not a round trip behind
    api-health. The work that writes (integration, results-storage) waits for the database gate."""
    config = work.app_config.database
    if config is None:
        return
    path = config.health_path or work.settings.health_path
    work.flow(health_answer_key(work.target, path), lambda http: read_health_answer(http, path))


@pytest.fixture(scope="module")
def health_answer(http, target, database_config, reachability_settings, shared_results) -> HealthAnswer:
    path = database_config.health_path or reachability_settings.health_path
    return prefetch.flow(
        shared_results, health_answer_key(target, path), lambda: read_health_answer(http, path)
    )


def read_health_answer(http: Any, path: str) -> HealthAnswer:
    """GET ``path`` (recorded as ``http`` evidence), read as the database checks read it."""
    url = http.base_url + path
    started = time.perf_counter()
    try:
        response = http.get(path)
    except requests.RequestException as error:
        return HealthAnswer(
            url,
            None,
            None,
            "",
            round((time.perf_counter() - started) * 1000, 1),
            f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}",
        )
    ms = round((time.perf_counter() - started) * 1000, 1)
    try:
        document = jsontext.response_json(response)
    except ValueError:
        document = None
    return HealthAnswer(url, response.status_code, document, response.text[:200], ms, None)


def shown(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def record(evidence, check: str, ok: bool, observed: Any, expected: Any, url: str, ms: float | None) -> None:
    evidence.record(
        "app_check",
        {
            "section": "database",
            "check": check,
            "ok": ok,
            "observed": observed,
            "expected": expected,
            "url": url,
            "ms": ms,
        },
    )


def field_of(answer: HealthAnswer, path: str, want: str) -> Any:
    """The value at ``path`` of a 2xx JSON health body; an AssertionError in one line otherwise."""
    where = f"GET {answer.url}"
    if answer.error is not None:
        raise AssertionError(f"{where} failed: {answer.error}; expected {want}")
    if answer.status is None or not 200 <= answer.status < 300:
        raise AssertionError(f"{where} answered {answer.status}; expected 200 with {want}")
    if not isinstance(answer.document, (dict, list)):
        raise AssertionError(
            f"{where} answered a body that is not JSON ({answer.text[:80]!r}); expected {want}"
        )
    found, value = json_path_get(answer.document, path)
    assert found, f"{where}: {path} is missing from the body; expected {want}"
    return value


@pytest.mark.gate("database")
def test_api_reports_database_healthy(health_answer, database_config, evidence):
    config = database_config
    want = f"{config.field} = {shown(config.expect)}"
    try:
        value = field_of(health_answer, config.field, want)
    except AssertionError:
        record(
            evidence,
            "api reports database healthy",
            False,
            health_answer.error or health_answer.status,
            config.expect,
            health_answer.url,
            health_answer.ms,
        )
        raise
    ok = value == config.expect
    record(
        evidence,
        "api reports database healthy",
        ok,
        value,
        config.expect,
        health_answer.url,
        health_answer.ms,
    )
    assert ok, f"GET {health_answer.url}: {config.field} is {shown(value)}, expected {shown(config.expect)}"


def test_api_reports_database_latency_within_limit(health_answer, database_config, evidence):
    config = database_config
    if config.latency_field is None or config.max_latency_ms is None:
        pytest.skip(
            "set latency-field and max-latency-ms in [tool.reachability.database] to check the latency the "
            "API reports"
        )
    want = f"{config.latency_field} <= {config.max_latency_ms:g} ms"
    value = field_of(health_answer, config.latency_field, want)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AssertionError(
            f"GET {health_answer.url}: {config.latency_field} is {shown(value)}, expected a number of "
            "milliseconds"
        )
    ok = value <= config.max_latency_ms
    record(
        evidence,
        "api reports database latency",
        ok,
        value,
        config.max_latency_ms,
        health_answer.url,
        health_answer.ms,
    )
    assert ok, (
        f"GET {health_answer.url}: {config.latency_field} is {value:g} ms, expected <= "
        f"{config.max_latency_ms:g} ms"
    )


def test_database_answers_select_1_directly(database_config, reachability_settings, evidence):
    config = database_config
    if config.dsn_env is None:
        pytest.skip(
            "no direct check: set dsn-env in [tool.reachability.database] to a variable holding a PostgreSQL "
            "DSN"
        )
    dsn = os.environ.get(config.dsn_env, "").strip()
    if not dsn:
        pytest.skip(
            f"environment variable {config.dsn_env} (dsn-env of [tool.reachability.database]) is not set"
        )
    try:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        pytest.skip(f"the PostgreSQL driver psycopg is not installed: {INSTALL_HINT}")
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.Error:
        raise AssertionError(
            f"{config.dsn_env} does not hold a PostgreSQL DSN (postgresql://user:password@host:port/db)"
        ) from None
    where = (
        f"postgresql://{parts.get('host', 'localhost')}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"
    )
    timeout = max(1, math.ceil(reachability_settings.probe_timeout))
    started = time.perf_counter()
    try:
        with psycopg.connect(
            dsn, connect_timeout=timeout, autocommit=True, options=f"-c statement_timeout={timeout * 1000}"
        ) as connection:
            row = connection.execute("SELECT 1").fetchone()
    except psycopg.Error as error:
        ms = round((time.perf_counter() - started) * 1000, 1)
        message = " ".join(str(error).split()) or type(error).__name__
        record(evidence, "database answers directly", False, message, "SELECT 1 = 1", where, ms)
        raise AssertionError(f"{where}: {message}; expected SELECT 1 to answer within {timeout} s") from None
    ms = round((time.perf_counter() - started) * 1000, 1)
    ok = row is not None and row[0] == 1
    within = config.max_latency_ms is None or ms <= config.max_latency_ms
    record(evidence, "database answers directly", ok and within, row[0] if row else None, 1, where, ms)
    assert ok, f"{where}: SELECT 1 returned {row!r}, expected 1"
    assert within, f"{where}: connect and SELECT 1 took {ms:g} ms, expected <= {config.max_latency_ms:g} ms"
