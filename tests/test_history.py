"""Run history on SQLite: comparisons, migration from schema v1, concurrent writers, the pytest hooks."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from pytest_reachability import history
from pytest_reachability.history import RunRecord, SectionCounts

T0 = datetime(2026, 11, 28, 4, 0, 0, tzinfo=timezone.utc)
KEY = "97v.test|production"


def make_run(minutes: int, outcomes: dict[str, str], *, key: str = KEY) -> RunRecord:
    tests = {nodeid: ("api-health", outcome, "") for nodeid, outcome in outcomes.items()}
    counted = [o for o in outcomes.values() if o in ("passed", "failed", "error", "blocked")]
    passed = sum(1 for o in counted if o == "passed")
    return RunRecord(
        target_key=key,
        target="http://97v.test:8080",
        namespace="production",
        started_at=T0 + timedelta(minutes=minutes),
        status="passed" if passed == len(counted) else "failed",
        health_score=round(100 * passed / len(counted)) if counted else None,
        passed=passed,
        counted=len(counted),
        tests=tests,
        sections=[SectionCounts("api-health", len(outcomes), passed, len(counted) - passed, 0, 0, 0, "PASS")],
    )


GOOD = {"t::health": "passed", "t::db": "passed", "t::tls": "passed"}
BAD = {"t::health": "failed", "t::db": "blocked", "t::tls": "passed"}
WORSE = {"t::health": "failed", "t::db": "blocked", "t::tls": "error"}


def record_all(store: history.HistoryStore, runs: list[RunRecord]) -> list[dict]:
    summaries = []
    for run in runs:
        summaries.append(store.compare(run))
        store.record(run)
    return summaries


def test_first_run_then_healthy_streak_then_failing(tmp_path: Path) -> None:
    with history.open_history(str(tmp_path / "h.sqlite")) as store:
        first, second, third, fourth = record_all(
            store, [make_run(0, GOOD), make_run(5, GOOD), make_run(10, BAD), make_run(15, WORSE)]
        )
    assert first["previous_run"] is None
    assert first["healthy_since"] == "2026-11-28 04:00:00 UTC" and first["failing_since"] is None
    assert (
        second["previous_run"]["time"] == "2026-11-28 04:00:00 UTC"
        and second["previous_run"]["health"] == 100
    )
    assert (
        second["healthy_since"] == "2026-11-28 04:00:00 UTC"
        and second["last_healthy"] == "2026-11-28 04:05:00 UTC"
    )
    # The first failing run: failing since itself; the healthy streak before it began at 04:00.
    assert third["failing_since"] == "2026-11-28 04:10:00 UTC"
    assert third["healthy_since"] == "2026-11-28 04:00:00 UTC"
    assert third["last_healthy"] == "2026-11-28 04:05:00 UTC"
    assert third["newly_failing"] == ["t::health"]  # blocked is not failing
    assert fourth["failing_since"] == "2026-11-28 04:10:00 UTC"
    assert fourth["newly_failing"] == ["t::tls"] and fourth["recovered"] == []
    assert fourth["previous_run"]["health"] == 33
    line = history.describe_summary(fourth)
    assert line == (
        "History: failing since 2026-11-28 04:10:00 UTC (healthy since 2026-11-28 04:00:00 UTC before that); "
        "newly failing: 1; recovered: 0"
    )


def test_recovery_starts_a_new_healthy_streak(tmp_path: Path) -> None:
    with history.open_history(str(tmp_path / "h.sqlite")) as store:
        *_, recovered = record_all(store, [make_run(0, GOOD), make_run(5, WORSE), make_run(10, GOOD)])
        assert len(store.runs(KEY)) == 3
    assert recovered["failing_since"] is None
    assert recovered["healthy_since"] == "2026-11-28 04:10:00 UTC"
    assert recovered["recovered"] == ["t::health", "t::tls"]
    assert history.describe_summary(recovered).startswith(
        "History: healthy since 2026-11-28 04:10:00 UTC; newly failing: 0; recovered: 2"
    )


def test_never_healthy_and_other_targets_do_not_mix(tmp_path: Path) -> None:
    with history.open_history(str(tmp_path / "h.sqlite")) as store:
        store.record(make_run(0, GOOD, key="other.test|production"))
        first, second = record_all(store, [make_run(1, BAD), make_run(2, BAD)])
    assert first["previous_run"] is None and first["last_healthy"] is None
    assert second["failing_since"] == "2026-11-28 04:01:00 UTC" and second["healthy_since"] is None
    assert "no healthy run recorded" in history.describe_summary(second)


def test_stored_run_keeps_outcomes_sections_and_theory(tmp_path: Path) -> None:
    run = make_run(0, BAD)
    run.top_theory = "DNS answers 127.0.10.57, not the LoadBalancer"
    run.git_sha = "a" * 40
    with history.open_history(str(tmp_path / "h.sqlite")) as store:
        run_id = store.record(run)
        stored = store.run_by_uuid(run.run_uuid)
        assert stored is not None and stored["id"] == run_id
        assert stored["top_theory"] == run.top_theory and stored["git_sha"] == "a" * 40
        assert stored["healthy"] is False and stored["health_score"] == 33
        assert store.test_outcomes(run_id) == BAD
        assert store.sections(run_id)[0].name == "api-health"


def test_target_key_ignores_scheme_and_port_and_honours_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(history.HISTORY_KEY_ENV, raising=False)
    assert history.target_key("97V.test", "", "production") == "97v.test|production"
    assert history.target_key("97v.test", "/api", None) == "97v.test/api|"
    monkeypatch.setenv(history.HISTORY_KEY_ENV, "eu-west/97v.test")
    assert history.target_key("97v.test", "", "production") == "eu-west/97v.test"


# --------------------------------------------------------------------------- migration

LEGACY_V1 = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version VALUES (1);
CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, started_at TEXT NOT NULL, target TEXT NOT NULL,
                   health_score INTEGER, status TEXT NOT NULL);
CREATE TABLE outcomes (run_id INTEGER NOT NULL REFERENCES runs(id), nodeid TEXT NOT NULL,
                       outcome TEXT NOT NULL,
                       PRIMARY KEY (run_id, nodeid));
INSERT INTO runs (started_at, target, health_score, status)
    VALUES ('2026-11-27T22:00:00.000000Z', 'http://97v.test:8080', 100, 'passed');
INSERT INTO outcomes VALUES (1, 't::health', 'passed'), (1, 't::tls', 'passed');
INSERT INTO runs (started_at, target, health_score, status)
    VALUES ('2026-11-27T23:00:00.000000Z', 'https://***:***@97v.test/api', 50, 'failed');
INSERT INTO outcomes VALUES (2, 't::health', 'failed'), (2, 't::tls', 'passed');
"""


def test_migration_from_schema_v1_keeps_old_runs_comparable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(history.HISTORY_KEY_ENV, raising=False)
    path = tmp_path / "old.sqlite"
    legacy = sqlite3.connect(path)
    legacy.executescript(LEGACY_V1)
    legacy.close()

    with history.open_history(str(path)) as store:
        assert store.schema_version() == history.SCHEMA_VERSION
        old = store.runs("97v.test|")
        assert [r["run_uuid"] for r in old] == ["v1-1"] and old[0]["healthy"] is True
        assert old[0]["passed"] == 2 and old[0]["counted"] == 2
        api = store.runs("97v.test/api|")
        assert api[0]["healthy"] is False and api[0]["passed"] == 1
        assert store.test_outcomes(2) == {"t::health": "failed", "t::tls": "passed"}
        # A new run of the legacy target compares with the migrated rows.
        run = make_run(0, BAD, key="97v.test|")
        summary = store.compare(run)
        store.record(run)
    assert summary["previous_run"]["id"] == 1
    assert summary["healthy_since"] == "2026-11-27 22:00:00 UTC"
    assert summary["newly_failing"] == ["t::health"]
    # Opening again is a no-op: still the current version, nothing duplicated.
    with history.open_history(str(path)) as store:
        assert store.schema_version() == history.SCHEMA_VERSION and len(store.runs()) == 3


def test_newer_schema_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite"
    connection = sqlite3.connect(path)
    connection.executescript(
        "CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (9);"
    )
    connection.close()
    with pytest.raises(history.HistoryError) as caught:
        history.open_history(str(path))
    assert "schema version 9" in str(caught.value) and "\n" not in str(caught.value)


def test_unusable_location_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(history.HistoryError) as caught:
        history.open_history(str(blocker / "sub" / "h.sqlite"))
    assert "cannot open" in str(caught.value) and "\n" not in str(caught.value)


# --------------------------------------------------------------------------- concurrency

WRITER = textwrap.dedent(
    """
    import sys
    from datetime import datetime, timezone
    from pytest_reachability import history

    url, writer, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    for n in range(count):
        store = history.open_history(url)   # fresh connections race on schema creation too
        run = history.RunRecord(target_key=f"key-{writer % 2}", target="http://97v.test",
                                tests={f"t::{i}": ("dns", "passed", "") for i in range(20)},
                                sections=[history.SectionCounts("dns", 20, 20)],
                                status="passed", passed=20, counted=20)
        store.compare(run)
        store.record(run)
        store.close()
    """
)


def run_processes(
    script: Path, argument_lists: list[list[str]], timeout: float = 180
) -> list[tuple[int, str, str]]:
    """Run ``script`` once per argument list, all at once; (exit
    code, stdout, stderr) of each, killed at ``timeout``."""
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), *arguments],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for arguments in argument_lists
    ]
    finished = []
    for process in processes:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate(timeout=10)
        finished.append((process.returncode, stdout, stderr))
    return finished


def run_concurrent_writers(url: str, writers: int, runs_each: int, tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    finished = run_processes(script, [[url, str(n), str(runs_each)] for n in range(writers)], timeout=120)
    failures = [
        stderr.strip().splitlines()[-1:] or [f"exit {code}"] for code, _, stderr in finished if code != 0
    ]
    assert not failures, failures


def test_concurrent_writers_on_sqlite_lose_nothing(tmp_path: Path) -> None:
    url = str(tmp_path / "shared.sqlite")
    run_concurrent_writers(url, writers=6, runs_each=8, tmp_path=tmp_path)
    with history.open_history(url) as store:
        runs = store.runs(limit=10_000)
        assert len(runs) == 48
        assert len({r["run_uuid"] for r in runs}) == 48
        assert all(len(store.test_outcomes(r["id"])) == 20 for r in runs)
        assert store.schema_version() == history.SCHEMA_VERSION


FIRST_OPENERS = textwrap.dedent(
    """
    import json, sys, time
    from pytest_reachability import history

    folder, start = sys.argv[1], float(sys.argv[5])
    writer, rounds, runs = (int(arg) for arg in sys.argv[2:5])
    report = []
    for round_ in range(rounds):
        # Every writer opens the same fresh file at the same instant, one file per round, then opens,
        # records and closes again: the last close of a WAL database checkpoints and removes the WAL,
        # a race of its own.
        while time.time() < start + round_ * 0.8:
            time.sleep(0.001)
        url = f"sqlite:///{folder}/round-{round_}.sqlite" if writer % 2 else f"{folder}/round-{round_}.sqlite"
        for n in range(runs):
            try:
                store = history.open_history(url)
                tests = {f"t::{writer}-{n}": ("dns", "passed", "")}
                run = history.RunRecord(target_key="k", target="http://97v.test", status="passed",
                                        passed=1, counted=1, tests=tests)
                _, summary = store.record_and_compare(run)
                store.close()
                report.append({"round": round_, "first": summary["previous_run"] is None})
            except Exception as error:
                report.append({"round": round_, "error": f"{type(error).__name__}: {error}"})
    print(json.dumps(report))
    """
)


def test_eight_writers_on_a_fresh_file_lose_nothing_and_one_run_is_first(tmp_path: Path) -> None:
    """Real processes: SQLite's 'database is locked' without waiting comes from separate connections racing
    to switch a fresh file to WAL, which threads of one process sharing nothing would not show as reliably."""
    import json
    import time

    script = tmp_path / "writer.py"
    script.write_text(FIRST_OPENERS)
    writers, rounds, runs = 8, 8, 5
    start = time.time() + 3  # the interpreters start first, then all open at once
    finished = run_processes(
        script, [[str(tmp_path), str(n), str(rounds), str(runs), str(start)] for n in range(writers)]
    )
    assert all(code == 0 for code, _, _ in finished), [stderr[-2000:] for code, _, stderr in finished if code]
    reports = [json.loads(stdout) for _, stdout, _ in finished]
    errors = [entry["error"] for report in reports for entry in report if "error" in entry]
    assert not errors, errors
    for round_ in range(rounds):
        firsts = [
            entry for report in reports for entry in report if entry["round"] == round_ and entry["first"]
        ]
        assert len(firsts) == 1, f"round {round_}: {len(firsts)} runs said 'first recorded run'"
        with history.open_history(str(tmp_path / f"round-{round_}.sqlite")) as store:
            assert len(store.runs(limit=100)) == writers * runs
            assert store.connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sqlite_urls_name_relative_and_absolute_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with history.open_history("sqlite:///relative/h.sqlite") as store:
        store.record(make_run(0, GOOD))
    with history.open_history(
        f"sqlite:///{tmp_path}/absolute.sqlite"
    ) as store:  # four slashes: an absolute path
        store.record(make_run(0, GOOD))
    assert (tmp_path / "relative" / "h.sqlite").is_file() and (tmp_path / "absolute.sqlite").is_file()
    with pytest.raises(history.HistoryError, match="sqlite:///relative/path"):
        history.open_history("sqlite://host/h.sqlite")


def test_the_busy_timeout_and_wal_are_set_before_the_schema(tmp_path: Path) -> None:
    statements: list[str] = []
    original = sqlite3.connect

    def traced(*args, **kwargs):
        connection = original(*args, **kwargs)
        connection.set_trace_callback(statements.append)
        return connection

    sqlite3.connect = traced
    try:
        with history.open_history(str(tmp_path / "fresh.sqlite")):
            pass
    finally:
        sqlite3.connect = original
    first_schema = next(i for i, text in enumerate(statements) if text.startswith("CREATE TABLE"))
    assert any("busy_timeout" in text for text in statements[:first_schema]), statements[:first_schema]
    assert any("journal_mode = WAL" in text for text in statements[:first_schema])
    assert statements.index("BEGIN IMMEDIATE") < first_schema  # the schema is created under the write lock


def test_record_and_compare_sees_runs_recorded_before_whatever_their_start(tmp_path: Path) -> None:
    with history.open_history(str(tmp_path / "h.sqlite")) as store:
        later_start = make_run(10, GOOD)
        earlier_start = make_run(5, BAD)  # started first, recorded second: it is not the first recorded run
        _, first = store.record_and_compare(later_start)
        run_id, second = store.record_and_compare(earlier_start)
        assert first["previous_run"] is None and second["previous_run"] is not None
        earlier_start.top_theory = "DNS answers the old address"
        store.finish_run(earlier_start)
        assert store.run_by_uuid(earlier_start.run_uuid)["top_theory"] == "DNS answers the old address"
        assert (
            store.summary_for(earlier_start.run_uuid)["previous_run"] is None
        )  # by start time, as printed later


# --------------------------------------------------------------------------- through pytest

GATE_FILE = """
import os
import pytest

pytestmark = pytest.mark.section("api-health")

@pytest.mark.gate("api-health")
def test_health():
    assert os.environ.get("FAKE_HEALTH") != "down", "empty reply from 127.0.10.57:80"

def test_tls():
    assert os.environ.get("FAKE_TLS") != "down", "certificate expired"
"""

DEPENDENT_FILE = """
import pytest

pytestmark = pytest.mark.section("database", requires=["api-health"])

def test_db():
    pass
"""


def test_two_runs_through_pytest_print_history_and_store_once_under_xdist(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(history.HISTORY_KEY_ENV, raising=False)
    pytester.makepyfile(test_gate=GATE_FILE, test_db=DEPENDENT_FILE)
    db = pytester.path / "reports" / "history.sqlite"
    common = (
        "-p",
        "no:cacheprovider",
        "--target",
        "http://user:s3cret@97v.test:8080",
        "--namespace",
        "production",
        "--results-db",
        "reports/history.sqlite",
    )

    first = pytester.runpytest(*common)
    first.assert_outcomes(passed=3)
    first.stdout.fnmatch_lines(["History: first recorded run of this target; healthy since 20*UTC"])

    monkeypatch.setenv("FAKE_HEALTH", "down")
    monkeypatch.setenv("REACHABILITY_RUN_ID", "run-two")
    monkeypatch.setenv("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567")
    # A different port, the same service: compared with the first run.
    second = pytester.runpytest(*common[:2], "--target", "http://97v.test:9090", *common[4:], "-n", "2")
    assert second.ret == 1
    second.stdout.fnmatch_lines(
        ["History: failing since 20*UTC (healthy since 20*UTC before that); newly failing: 1; recovered: 0"]
    )

    with history.open_history(str(db)) as store:
        runs = store.runs("97v.test|production")
        assert len(runs) == 2  # the xdist workers did not write
        assert runs[0]["healthy"] is True and runs[1]["healthy"] is False
        assert runs[1]["run_uuid"] == "run-two" and runs[1]["exit_status"] == 1
        assert runs[1]["git_sha"] == "0123456789abcdef0123456789abcdef01234567"
        assert all("s3cret" not in r["target"] for r in runs)
        assert runs[0]["target"] == "http://***:***@97v.test:8080"
        outcomes = store.test_outcomes(runs[1]["id"])
        assert outcomes == {
            "test_gate.py::test_health": "failed",
            "test_gate.py::test_tls": "passed",
            "test_db.py::test_db": "blocked",
        }
        assert [s.name for s in store.sections(runs[1]["id"])] == ["api-health", "database"]
    raw = (
        db.read_bytes() + (db.parent / "history.sqlite-wal").read_bytes()
        if (db.parent / "history.sqlite-wal").exists()
        else db.read_bytes()
    )
    assert b"s3cret" not in raw


def test_unusable_database_costs_a_line_not_the_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_gate=GATE_FILE)
    (pytester.path / "blocker").write_text("not a directory")
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--target", "97v.test", "--results-db", "blocker/h.sqlite"
    )
    assert result.ret == 0
    result.stdout.fnmatch_lines(["History: not available: history database *blocker/h.sqlite: cannot open*"])


def test_postgres_password_in_the_query_is_masked_in_errors() -> None:
    pytest.importorskip("psycopg", reason="the PostgreSQL history needs psycopg 3")
    # Port 1 on loopback refuses at once: the connection error names the database URL.
    url = "postgresql://app@127.0.0.1:1/history?password=Qry-Pw-5151&sslmode=disable"
    with pytest.raises(history.HistoryError) as caught:
        history.open_history(url, connect_timeout=2)
    message = str(caught.value)
    assert "Qry-Pw-5151" not in message and "\n" not in message
    assert "password=***" in message and "cannot connect" in message


def test_database_url_secrets_never_reach_the_terminal(pytester: pytest.Pytester) -> None:
    pytest.importorskip("psycopg", reason="the PostgreSQL history needs psycopg 3")
    pytester.makepyfile(test_gate=GATE_FILE)
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "--target",
        "97v.test",
        "--results-db",
        "postgresql://app:u-Pw/5@127.0.0.1:1/history?password=Qry-Pw-5151",
    )
    assert result.ret == 0
    text = result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(
        ["History: not available: history database postgresql://***:***@127.0.0.1:1/history?password=*** *"]
    )
    assert "Qry-Pw-5151" not in text and "u-Pw/5" not in text and "Pw/5" not in text


def test_git_sha_from_github_sha_else_from_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_SHA", raising=False)
    assert history.detect_git_sha(tmp_path) is None  # not a repository
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, timeout=30)
    subprocess.run(
        [*git, "-C", str(tmp_path), "commit", "-q", "--allow-empty", "-m", "x"], check=True, timeout=30
    )
    head = subprocess.run(
        ["git", "-C", str(tmp_path), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    assert history.detect_git_sha(tmp_path) == head
    monkeypatch.setenv("GITHUB_SHA", "f" * 40)
    assert history.detect_git_sha(tmp_path) == "f" * 40


def test_interrupted_run_is_compared_but_not_stored(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_stop="def test_stop():\n    raise KeyboardInterrupt\n")
    # In a subprocess: an in-process run would pass the KeyboardInterrupt on to this session.
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--target", "97v.test", "--results-db", "h.sqlite", timeout=120
    )
    assert result.ret == 2
    result.stdout.fnmatch_lines(
        ["History: first recorded run of this target; * (run interrupted: not stored)"]
    )
    with history.open_history(str(pytester.path / "h.sqlite")) as store:
        assert store.runs() == []


def test_results_db_setting_takes_sqlite_urls(tmp_path: Path) -> None:
    from pytest_reachability.config import SettingsError, resolve_settings

    assert resolve_settings({"results_db": "sqlite:///reports/h.sqlite"}, {}).results_db == "reports/h.sqlite"
    assert (
        resolve_settings({"results_db": f"sqlite:///{tmp_path}/h.sqlite"}, {}).results_db
        == f"{tmp_path}/h.sqlite"
    )
    with pytest.raises(SettingsError, match="names no file; expected sqlite:///relative/path"):
        resolve_settings({"results_db": "sqlite://host"}, {})
