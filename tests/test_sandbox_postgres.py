"""The sandbox's real PostgreSQL.

Started unprivileged on loopback, checked and written by the API, stopped by PID."""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_reachability.sandbox import Sandbox, SandboxInfo, load_scenario
from pytest_reachability.sandbox import postgres as postgres_mod
from pytest_reachability.sandbox.postgres import PostgresServer

HOST = "97v.test"
API = "127.0.10.53"


def require_postgres() -> None:
    reason = postgres_mod.unavailable_reason()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI: {reason}")
        pytest.skip(reason)


def psycopg_module():
    return pytest.importorskip("psycopg", reason="pip install pytest-reachability[postgres]")


def request(
    info: SandboxInfo, method: str, path: str, body: Any = None, headers: dict | None = None
) -> tuple[int, Any]:
    connection = http.client.HTTPConnection(API, info.edge_port, timeout=5)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        connection.request(
            method,
            path,
            body=payload,
            headers={"Host": HOST, "Content-Type": "application/json", **(headers or {})},
        )
        response = connection.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else None
    finally:
        connection.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is not a running server.
    state = (
        Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        if Path(f"/proc/{pid}/stat").exists()
        else "X"
    )
    return state not in ("Z", "X")


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_server_runs_unprivileged_on_loopback_and_stops_by_pid():
    require_postgres()
    psycopg = psycopg_module()
    server = PostgresServer()
    began = time.monotonic()
    dsn = server.start()
    elapsed = time.monotonic() - began
    pid, port, directory = server.pid, server.port, server.directory
    try:
        assert elapsed < server.start_timeout and server.started_in <= elapsed
        assert dsn.startswith("postgresql://app:") and f"@127.0.0.1:{port}/app" in dsn
        assert alive(pid) and port_open(port)
        uid = int(
            next(
                line
                for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                if line.startswith("Uid:")
            ).split()[1]
        )
        assert uid != 0, "PostgreSQL must not run as root"
        with psycopg.connect(dsn, connect_timeout=5) as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
            assert connection.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
            assert connection.execute("SELECT current_user, current_database()").fetchone() == ("app", "app")
        # The superuser has no password: it cannot log in over TCP, only through the private socket.
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(
                host="127.0.0.1",
                port=port,
                user="postgres",
                password="",
                dbname="postgres",
                connect_timeout=5,
            ).close()
        assert (directory / "socket").is_dir() and oct((directory / "socket").stat().st_mode)[-3:] == "700"
    finally:
        server.stop()
    assert not alive(pid) and not port_open(port)
    assert not directory.exists() and server.dsn is None and server.pid is None


def test_sandbox_api_checks_the_real_database_and_exports_its_dsn():
    require_postgres()
    with Sandbox("healthy") as info:
        assert info.database_dsn is not None and info.database.startswith("PostgreSQL ")
        assert info.application_environment() == {"REACHABILITY_DATABASE_DSN": info.database_dsn}
        assert "REACHABILITY_DATABASE_DSN" not in info.environment()  # the CLI's exports stay as they were
        assert SandboxInfo.from_dict(json.loads(json.dumps(info.to_dict()))) == info
        assert info.application == load_scenario("healthy").application
        status, body = request(info, "GET", "/health")
        assert status == 200 and body["status"] == "healthy"
        database = body["dependencies"]["database"]
        assert database["status"] == "ok" and database["engine"] == "postgresql"
        assert isinstance(database["latency_ms"], float) and 0 < database["latency_ms"] < 1000


def test_storage_endpoint_really_stores_in_postgres_and_delete_really_deletes():
    require_postgres()
    psycopg = psycopg_module()
    with (
        Sandbox("healthy") as info,
        psycopg.connect(info.database_dsn, connect_timeout=5, autocommit=True) as sql,
    ):
        status, written = request(info, "POST", "/api/v1/results", {"check": "storage", "n": 1})
        assert status == 201 and written["check"] == "storage"
        result_id = written["id"]
        [(stored,)] = sql.execute("SELECT body FROM results WHERE id = %s", (result_id,)).fetchall()
        assert stored == {"check": "storage", "n": 1, "id": result_id}
        assert request(info, "GET", f"/api/v1/results/{result_id}") == (200, stored)
        assert request(info, "DELETE", f"/api/v1/results/{result_id}") == (204, None)
        assert sql.execute("SELECT count(*) FROM results WHERE id = %s", (result_id,)).fetchone() == (0,)
        assert request(info, "GET", f"/api/v1/results/{result_id}")[0] == 404
        assert request(info, "DELETE", f"/api/v1/results/{result_id}")[0] == 404


def test_health_reports_the_database_down_when_postgres_stops():
    require_postgres()
    sandbox = Sandbox("healthy")
    info = sandbox.start()
    try:
        assert request(info, "GET", "/health")[1]["dependencies"]["database"]["status"] == "ok"
        pid = sandbox.postgres.pid
        sandbox.postgres.stop()
        assert not alive(pid)
        status, body = request(info, "GET", "/health")
        assert status == 200 and body["status"] == "degraded"
        assert (
            body["dependencies"]["database"]["status"] == "error"
            and body["dependencies"]["database"]["error"]
        )
        assert request(info, "POST", "/api/v1/results", {"check": "x"})[0] == 503
    finally:
        sandbox.stop()


def test_scenario_flag_or_argument_keeps_the_database_simulated(tmp_path: Path):
    scenario = tmp_path / "no-postgres.yaml"
    scenario.write_text("base: healthy\nname: no-postgres\npostgres: false\n")
    for sandbox in (Sandbox(scenario), Sandbox("healthy", postgres=False)):
        with sandbox as info:
            assert sandbox.postgres is None and info.database_dsn is None
            assert info.database.startswith("simulated:") and info.application_environment() == {}
            status, body = request(info, "GET", "/health")
            assert status == 200 and body["dependencies"]["database"] == {"status": "ok", "latency_ms": 3}
            status, written = request(info, "POST", "/api/v1/results", {"check": "memory"})
            assert status == 201
            assert request(info, "GET", f"/api/v1/results/{written['id']}") == (200, written)


def test_without_postgresql_binaries_the_sandbox_still_runs_simulated(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(postgres_mod, "find_bindir", lambda: None)
    with Sandbox("healthy") as info:
        assert info.database_dsn is None
        assert (
            info.database
            == "simulated: no PostgreSQL server binaries (looked in /usr/lib/postgresql/*/bin and PATH)"
        )
        assert request(info, "GET", "/health")[1]["dependencies"]["database"]["status"] == "ok"


def test_health_checks_of_a_slow_database_answer_side_by_side_not_in_a_queue():
    """db-timeout: each check gives up after 2 s. Four health requests sent together must each get their
    answer after one check's timeout, as an application's pool serves them, not one after another (the
    fourth would wait 8 s, past a client's read timeout, and whether a probe "answers" would depend only
    on how many probes arrived together)."""
    require_postgres()
    import concurrent.futures

    with Sandbox("db-timeout") as info:

        def timed_health() -> tuple[float, Any]:
            started = time.monotonic()
            status, body = request_with_timeout(info, "/health", timeout=30)
            return time.monotonic() - started, (status, body["status"], body["dependencies"]["database"])

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: timed_health(), range(4)))
    for _elapsed, (status, overall, database) in answers:
        assert status == 200 and overall == "degraded", (status, overall)
        assert database["status"] == "error" and "timeout" in database["error"].lower(), database
    slowest = max(elapsed for elapsed, _ in answers)
    # One check's 2 s timeout plus scheduling; four in a queue would take at least 8 s.
    assert slowest < 7, f"slowest of 4 concurrent health answers took {slowest:.1f}s: {answers}"


def request_with_timeout(info: SandboxInfo, path: str, *, timeout: float) -> tuple[int, Any]:
    connection = http.client.HTTPConnection(API, info.edge_port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Host": HOST})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()
