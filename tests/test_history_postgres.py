"""Run history on a real PostgreSQL started for this module: migration, concurrent writers, pytest runs.

The server is initialised into a temporary directory as the ``postgres`` user (the tests run as
root, which PostgreSQL refuses), listens on 127.0.0.1 on a free port and is stopped by its PID.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_history import BAD, GATE_FILE, GOOD, make_run, record_all, run_concurrent_writers, run_processes

from pytest_reachability import history

PG_USER = "postgres"


def _find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_postgres(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    setpriv = shutil.which("setpriv")
    prefix = [setpriv, "--reuid", PG_USER, "--regid", PG_USER, "--init-groups"] if os.geteuid() == 0 else []
    return subprocess.run(prefix + command, capture_output=True, text=True, check=False, **kwargs)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    initdb, postgres = _find_binary("initdb"), _find_binary("postgres")
    missing = [name for name, path in (("initdb", initdb), ("postgres", postgres)) if path is None]
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(PG_USER)
        except KeyError:
            missing.append("user postgres")
        if shutil.which("setpriv") is None:
            missing.append("setpriv")
    if missing:
        message = f"PostgreSQL server tools missing: {', '.join(missing)} (apt-get install postgresql)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    pytest.importorskip(
        "psycopg", reason="psycopg 3 is the PostgreSQL driver (pip install 'pytest-reachability[postgres]')"
    )

    base = Path(tempfile.mkdtemp(prefix="reachability-pg-"))
    data, sockets = base / "data", base / "run"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, PG_USER, PG_USER)
        shutil.chown(sockets, PG_USER, PG_USER)
    process = None
    try:
        done = _as_postgres(
            [initdb, "-D", str(data), "-U", PG_USER, "--auth=trust", "--locale=C.UTF-8", "--encoding=UTF8"],
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        port = _free_port()
        setpriv = shutil.which("setpriv")
        prefix = (
            [setpriv, "--reuid", PG_USER, "--regid", PG_USER, "--init-groups"] if os.geteuid() == 0 else []
        )
        log = open(base / "server.log", "w")  # noqa: SIM115 - closed below, after the server stops
        process = subprocess.Popen(
            prefix
            + [
                postgres,
                "-D",
                str(data),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-k",
                str(sockets),
                "-c",
                "max_connections=50",
                "-c",
                "fsync=off",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"postgresql://{PG_USER}@127.0.0.1:{port}/postgres"
        deadline = time.monotonic() + 30
        import psycopg

        while True:
            try:
                psycopg.connect(url, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        "PostgreSQL did not start: " + (base / "server.log").read_text()[-2000:]
                    ) from None
                time.sleep(0.2)
        yield url
    finally:
        if process is not None:
            process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            log.close()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def database(postgres_url: str) -> Iterator[str]:
    """A fresh database per test, dropped afterwards."""
    import psycopg

    name = f"history_{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(postgres_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield postgres_url.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(postgres_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_comparisons_on_postgres(database: str) -> None:
    with history.open_history(database) as store:
        assert store.dialect == "postgresql" and store.schema_version() == history.SCHEMA_VERSION
        first, second, third = record_all(store, [make_run(0, GOOD), make_run(5, GOOD), make_run(10, BAD)])
        assert len(store.runs("97v.test|production")) == 3
    assert first["previous_run"] is None
    assert second["healthy_since"] == "2026-11-28 04:00:00 UTC"
    assert third["failing_since"] == "2026-11-28 04:10:00 UTC"
    assert third["healthy_since"] == "2026-11-28 04:00:00 UTC"
    assert third["newly_failing"] == ["t::health"]


def test_migration_from_schema_v1_on_postgres(database: str) -> None:
    import psycopg

    with psycopg.connect(database, autocommit=True) as legacy:
        legacy.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        legacy.execute("INSERT INTO schema_version VALUES (1)")
        legacy.execute(
            "CREATE TABLE runs (id BIGSERIAL PRIMARY KEY, started_at TEXT NOT NULL, target TEXT NOT NULL,"
            " health_score INTEGER, status TEXT NOT NULL)"
        )
        legacy.execute(
            "CREATE TABLE outcomes (run_id INTEGER NOT NULL REFERENCES runs(id), nodeid TEXT NOT NULL,"
            " outcome TEXT NOT NULL, PRIMARY KEY (run_id, nodeid))"
        )
        legacy.execute(
            "INSERT INTO runs (started_at, target, health_score, status)"
            " VALUES ('2026-11-27T22:00:00.000000Z', 'http://97v.test:8080', 100, 'passed')"
        )
        legacy.execute("INSERT INTO outcomes VALUES (1, 't::health', 'passed')")
    with history.open_history(database) as store:
        assert store.schema_version() == history.SCHEMA_VERSION
        migrated = store.runs("97v.test|")
        assert migrated[0]["run_uuid"] == "v1-1" and migrated[0]["healthy"] is True
        run = make_run(0, BAD, key="97v.test|")
        summary = store.compare(run)
        store.record(run)
        assert summary["healthy_since"] == "2026-11-27 22:00:00 UTC"
        assert summary["failing_since"] == "2026-11-28 04:00:00 UTC"


def test_concurrent_writers_on_postgres_lose_nothing(database: str, tmp_path: Path) -> None:
    # Fresh database: the writers also race to create the schema.
    run_concurrent_writers(database, writers=6, runs_each=8, tmp_path=tmp_path)
    with history.open_history(database) as store:
        runs = store.runs(limit=10_000)
        assert len(runs) == 48 and len({r["run_uuid"] for r in runs}) == 48
        assert all(len(store.test_outcomes(r["id"])) == 20 for r in runs)
        assert store.schema_version() == history.SCHEMA_VERSION


def test_pytest_run_writes_to_postgres(pytester: pytest.Pytester, database: str) -> None:
    pytester.makepyfile(test_gate=GATE_FILE)
    result = pytester.runpytest("-p", "no:cacheprovider", "--target", "97v.test", "--results-db", database)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["History: first recorded run of this target; healthy since *"])
    with history.open_history(database) as store:
        assert [r["healthy"] for r in store.runs()] == [True]


def test_unreachable_postgres_is_one_line_with_password_masked() -> None:
    port = _free_port()  # nothing listens there
    with pytest.raises(history.HistoryError) as caught:
        history.open_history(f"postgresql://app:hunter2@127.0.0.1:{port}/db", connect_timeout=2)
    message = str(caught.value)
    assert "hunter2" not in message and "cannot connect" in message and "\n" not in message


FIRST_RUNS = """
import json, sys, time
from pytest_reachability import history

url, writer, start = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
while time.time() < start:
    time.sleep(0.001)
store = history.open_history(url)
run = history.RunRecord(target_key="k", target="http://97v.test", status="passed", passed=1, counted=1,
                        tests={f"t::{writer}": ("dns", "passed", "")})
_, summary = store.record_and_compare(run)
store.close()
print(json.dumps(summary["previous_run"] is None))
"""


def test_concurrent_first_runs_on_postgres_have_one_first(database: str, tmp_path: Path) -> None:
    import json

    script = tmp_path / "first.py"
    script.write_text(FIRST_RUNS)
    start = time.time() + 3
    finished = run_processes(script, [[database, str(n), str(start)] for n in range(8)], timeout=120)
    assert all(code == 0 for code, _, _ in finished), [stderr[-2000:] for code, _, stderr in finished if code]
    firsts = [json.loads(stdout) for _, stdout, _ in finished]
    assert firsts.count(True) == 1, firsts
    with history.open_history(database) as store:
        assert len(store.runs("k")) == 8


def test_record_and_compare_is_one_transaction_on_postgres(database: str) -> None:
    with history.open_history(database) as store:
        run = make_run(0, BAD)
        run_id, summary = store.record_and_compare(run)
        assert (
            summary["previous_run"] is None and store.connection.info.transaction_status == 0
        )  # idle: committed
        run.top_theory = "the API answers 503"
        store.finish_run(run)
        assert store.run_by_uuid(run.run_uuid)["top_theory"] == "the API answers 503"
        assert store.test_outcomes(run_id) == BAD


def test_libpq_host_text_of_a_password_holding_at_is_masked() -> None:
    port = _free_port()
    with pytest.raises(history.HistoryError) as caught:
        history.open_history(f"postgresql://app:se@cr@et-9@127.0.0.1:{port}/db", connect_timeout=2)
    message = str(caught.value)
    # libpq splits at the first "@" and reports host "cr@et-9@127.0.0.1": no part of the password may show.
    assert "cr@et-9" not in message and "se@cr" not in message and "\n" not in message, message
