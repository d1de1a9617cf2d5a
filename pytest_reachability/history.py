"""Run history: every run stored in SQLite (a file path) or PostgreSQL (a ``postgresql://`` URL).

    store = open_history("reports/history.sqlite")
    summary = store.compare(run)      # what changed since the previous run of the same target
    store.record(run)                 # one transaction: the run, its tests and its sections
    describe_summary(summary)         # 'failing since 2026-11-28 04:10:03 UTC (healthy since ...) ...'

Runs are grouped by a *target key*: the target's host and base path plus the namespace
(:func:`target_key`). Scheme and port are left out on purpose, so a service that moves from port 8080
to 443, or a sandbox that listens on a random port, keeps its history; ``REACHABILITY_HISTORY_KEY``
overrides the key, e.g. for one host served from several clusters.

A run of several targets (a fleet) stores one row per target, each under its own key (the override,
when set, is appended: ``host|namespace|override``), so the history of one target reads the same
whether it was verified alone or in a fleet. The rows of one pytest run share a *run group*
(``REACHABILITY_RUN_GROUP``, e.g. the Kubernetes Job of every shard, else the run's own id) and carry
the shard (``--shard I/N``) that verified them: :meth:`HistoryStore.runs_of_group` reads them back for
``python -m pytest_reachability merge --history``.

The schema is created and migrated on first use, under a lock (SQLite ``BEGIN IMMEDIATE``,
PostgreSQL an advisory transaction lock), so several CI jobs may open a fresh database at once.
SQLite gets its busy timeout when the connection opens and WAL mode before the schema exists; the few
"database is locked" answers SQLite gives without waiting (switching a fresh file to WAL, opening it
while another connection does) are retried with a short backoff for up to the busy timeout.
:meth:`HistoryStore.record_and_compare` stores a run and compares it with the runs recorded before it
in one transaction, so of two first runs exactly one says "first recorded run". This module does not
import pytest.
"""

from __future__ import annotations

import os
import random
import re
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from .redact import redact, redact_target_text, url_passwords
from .results import SectionCounts

__all__ = [
    "RUN_GROUP_ENV",
    "SCHEMA_VERSION",
    "HistoryError",
    "HistoryStore",
    "RunRecord",
    "SectionCounts",
    "describe_summary",
    "detect_git_sha",
    "format_time",
    "open_history",
    "fleet_target_key",
    "target_key",
]

SCHEMA_VERSION = 4
HISTORY_KEY_ENV = "REACHABILITY_HISTORY_KEY"
RUN_GROUP_ENV = "REACHABILITY_RUN_GROUP"
FAILING = ("failed", "error")
BUSY_TIMEOUT_SECONDS = 30.0
_PG_LOCK_ID = 0x7265616368  # "reach": the advisory lock that serialises schema migrations
_URL_SCHEME = re.compile(r"^(postgres|postgresql)://", re.IGNORECASE)
_SQLITE_URL = re.compile(r"^sqlite://", re.IGNORECASE)
_T = TypeVar("_T")


class HistoryError(Exception):
    """The history database cannot be used; ``str()`` is one line, credentials masked."""


@dataclass
class RunRecord:
    """One run as stored: plain data, built by the pytest hooks or by hand in tests."""

    target_key: str
    target: str  # masked display form
    namespace: str | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    finished_at: datetime | None = None
    run_uuid: str = field(default_factory=lambda: uuid.uuid4().hex)
    git_sha: str | None = None
    exit_status: int | None = None
    status: str = "passed"  # passed / failed / no tests / interrupted
    health_score: int | None = None
    passed: int = 0
    counted: int = 0
    top_theory: str | None = None
    tests: dict[str, tuple[str, str, str]] = field(
        default_factory=dict
    )  # nodeid -> (section, outcome, reason)
    sections: list[SectionCounts] = field(default_factory=list)
    # What the run saw: (kind, name, source, address); kind "dns" (name: host, source: resolver) or
    # "loadbalancer" (name: namespace/Service). Later runs tell from these what moved.
    addresses: list[tuple[str, str, str, str]] = field(default_factory=list)
    seconds_to_healthy: float | None = (
        None  # --wait: seconds until the gates passed (None: did not wait or never)
    )
    wait_outcome: str | None = None  # --wait: healthy / deadline
    run_group: str | None = None  # the rows written by one run (every target) or one sharded Job
    shard_index: int | None = None  # --shard I/N: I (from 1), with shard_count N; None: not sharded
    shard_count: int | None = None

    @property
    def healthy(self) -> bool:
        """Fully healthy: the run passed and every counted check (failed, error, blocked count) passed."""
        failing = any(outcome in (*FAILING, "blocked") for _, outcome, _ in self.tests.values())
        return self.status == "passed" and self.counted > 0 and self.passed == self.counted and not failing


def target_key(host: str | None, base_path: str = "", namespace: str | None = None) -> str:
    """The identity runs are compared under: ``host[/base-path]|namespace`` (no scheme, no port).

    ``REACHABILITY_HISTORY_KEY`` in the environment replaces it.
    """
    override = os.environ.get(HISTORY_KEY_ENV, "").strip()
    if override:
        return override
    return _plain_key(host, base_path, namespace)


def fleet_target_key(host: str | None, base_path: str = "", namespace: str | None = None) -> str:
    """The key of one target of a run of several: :func:`target_key` without the override replacing it
    (every target would share it); ``REACHABILITY_HISTORY_KEY``, when set, is appended instead."""
    key = _plain_key(host, base_path, namespace)
    override = os.environ.get(HISTORY_KEY_ENV, "").strip()
    return f"{key}|{override}" if override else key


def _plain_key(host: str | None, base_path: str, namespace: str | None) -> str:
    return f"{(host or '(no target)').lower()}{base_path or ''}|{namespace or ''}"


def host_and_path(display: str) -> tuple[str, str]:
    """Host and base path of a target's display form (``https://user:***@Host:8443/base`` -> host, /base)."""
    text = re.sub(r"^[A-Za-z][A-Za-z0-9+.-]*://", "", display.strip())
    text = text.rsplit("@", 1)[-1]
    authority, slash, path = text.partition("/")
    if authority.startswith("["):
        host = authority[1:].split("]", 1)[0]
    else:
        host = authority.split(":", 1)[0]
    return host, ("/" + path.rstrip("/")) if slash and path.strip("/") else ""


def format_time(value: datetime | str | None) -> str | None:
    """``2026-11-28 04:10:03 UTC``: the form every report shows."""
    if value is None:
        return None
    moment = _parse_time(value) if isinstance(value, str) else value
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def detect_git_sha(cwd: str | Path | None = None, timeout: float = 2.0) -> str | None:
    """``GITHUB_SHA`` when set, else ``git rev-parse HEAD`` (bounded in time), else None."""
    sha = os.environ.get("GITHUB_SHA", "").strip()
    if sha:
        return sha
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = done.stdout.strip()
    return text if done.returncode == 0 and re.fullmatch(r"[0-9a-f]{40,64}", text) else None


def describe_summary(summary: dict | None) -> str:
    """One line for the terminal and the step summary, e.g.

    ``History: failing since 2026-11-28 04:10:03 UTC (healthy since 2026-11-28 04:09:58 UTC before that);
    newly failing: 3; recovered: 0``
    """
    if not summary:
        return "History: not recorded"
    if summary.get("error"):
        return f"History: not available: {summary['error']}"
    if isinstance(summary.get("fleet"), dict):
        return _describe_fleet(summary)
    counts = (
        f"newly failing: {len(summary.get('newly_failing') or [])}; "
        f"recovered: {len(summary.get('recovered') or [])}"
    )
    if summary.get("previous_run") is None:
        state = (
            f"failing since {summary['failing_since']}"
            if summary.get("failing_since")
            else f"healthy since {summary.get('healthy_since')}"
        )
        return f"History: first recorded run of this target; {state}"
    if summary.get("failing_since"):
        if summary.get("healthy_since"):
            state = (
                f"failing since {summary['failing_since']} "
                f"(healthy since {summary['healthy_since']} before that)"
            )
        elif summary.get("last_healthy"):
            state = f"failing since {summary['failing_since']} (last healthy {summary['last_healthy']})"
        else:
            state = f"failing since {summary['failing_since']} (no healthy run recorded)"
    else:
        state = f"healthy since {summary.get('healthy_since')}"
    return f"History: {state}; {counts}"


def _describe_fleet(summary: dict) -> str:
    """``History: 200 targets (3 first recorded); 5 failing, the longest since ...; newly failing: 2; ...``"""
    fleet = summary["fleet"]
    first = f" ({fleet['first_recorded']} first recorded)" if fleet.get("first_recorded") else ""
    state = f"{fleet.get('failing', 0)} failing"
    if summary.get("failing_since"):
        state += f", the longest since {summary['failing_since']}"
    return (
        f"History: {fleet.get('targets', 0)} targets{first}; {state}; "
        f"newly failing: {len(summary.get('newly_failing') or [])}; "
        f"recovered: {len(summary.get('recovered') or [])}"
    )


# --------------------------------------------------------------------------- schema

# Every database goes through the same steps in order, a fresh one too, so the migration path is
# the one always taken. Version 1 is the schema of the first release; keep its text unchanged.
_MIGRATIONS: dict[int, list[str]] = {
    1: [
        "CREATE TABLE runs (id {serial}, started_at TEXT NOT NULL, target TEXT NOT NULL, health_score "
        "INTEGER, status TEXT NOT NULL)",
        "CREATE TABLE outcomes (run_id INTEGER NOT NULL REFERENCES runs(id), nodeid TEXT NOT NULL, outcome "
        "TEXT NOT NULL, PRIMARY KEY (run_id, nodeid))",
    ],
    2: [
        "ALTER TABLE runs ADD COLUMN run_uuid TEXT",
        "ALTER TABLE runs ADD COLUMN target_key TEXT",
        "ALTER TABLE runs ADD COLUMN namespace TEXT",
        "ALTER TABLE runs ADD COLUMN finished_at TEXT",
        "ALTER TABLE runs ADD COLUMN git_sha TEXT",
        "ALTER TABLE runs ADD COLUMN exit_status INTEGER",
        "ALTER TABLE runs ADD COLUMN healthy INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE runs ADD COLUMN passed INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE runs ADD COLUMN counted INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE runs ADD COLUMN top_theory TEXT",
        "ALTER TABLE outcomes RENAME TO test_outcomes",
        "ALTER TABLE test_outcomes ADD COLUMN section TEXT NOT NULL DEFAULT 'other'",
        "ALTER TABLE test_outcomes ADD COLUMN reason TEXT NOT NULL DEFAULT ''",
        "CREATE TABLE section_health (run_id INTEGER NOT NULL REFERENCES runs(id), position INTEGER NOT NULL,"
        " section TEXT NOT NULL, tests INTEGER NOT NULL, passed INTEGER NOT NULL, failed INTEGER NOT NULL,"
        " error INTEGER NOT NULL, blocked INTEGER NOT NULL, skipped INTEGER NOT NULL, status TEXT NOT NULL,"
        " PRIMARY KEY (run_id, section))",
        "@backfill_v2",
        "CREATE UNIQUE INDEX runs_run_uuid ON runs (run_uuid)",
        "CREATE INDEX runs_target_time ON runs (target_key, started_at)",
    ],
    3: [
        "ALTER TABLE runs ADD COLUMN seconds_to_healthy REAL",
        "ALTER TABLE runs ADD COLUMN wait_outcome TEXT",
        "CREATE TABLE run_addresses (run_id INTEGER NOT NULL REFERENCES runs(id), kind TEXT NOT NULL, name "
        "TEXT NOT NULL,"
        " source TEXT NOT NULL, address TEXT NOT NULL, PRIMARY KEY (run_id, kind, name, source, address))",
    ],
    4: [
        "ALTER TABLE runs ADD COLUMN run_group TEXT",
        "ALTER TABLE runs ADD COLUMN shard_index INTEGER",
        "ALTER TABLE runs ADD COLUMN shard_count INTEGER",
        "CREATE INDEX runs_run_group ON runs (run_group)",
    ],
}


def _legacy_target_key(target: str) -> str:
    """Version 1 stored only the display target: derive the key the same way as for new runs."""
    return target_key(*host_and_path(target), None)


# --------------------------------------------------------------------------- store


class HistoryStore:
    """A history database; use :func:`open_history`. Each public method is one transaction."""

    dialect = "sqlite"

    def __init__(self, connection: Any, where: str) -> None:
        self.connection = connection
        self.where = where  # masked: safe to print
        self._in_write = False  # inside record_and_compare: reads must not end the transaction

    # -- dialect -----------------------------------------------------------------------------

    def _sql(self, text: str) -> str:
        return text

    def _begin_write(self) -> None:
        self.connection.execute("BEGIN IMMEDIATE")

    def _commit(self) -> None:
        self.connection.execute("COMMIT")

    def _rollback(self) -> None:
        try:
            self.connection.execute("ROLLBACK")
        except Exception:  # noqa: BLE001 - nothing left to undo
            pass

    def _lock_schema(self) -> None:
        """Held until commit: BEGIN IMMEDIATE already serialises writers in SQLite."""

    def _lock_runs(self) -> None:
        """Held until commit: BEGIN IMMEDIATE already serialises writers in SQLite."""

    def _retrying(self, action: Callable[[], _T]) -> _T:
        return _retry_busy(action)

    def _serial(self) -> str:
        return "INTEGER PRIMARY KEY AUTOINCREMENT"

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.connection.execute(self._sql(sql), tuple(params))

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return list(self._execute(sql, params).fetchall())

    def _insert_run(self, values: dict[str, Any]) -> int:
        names = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        cursor = self._execute(
            f"INSERT INTO runs ({names}) VALUES ({marks}) RETURNING id", list(values.values())
        )
        return int(cursor.fetchone()[0])

    def _table_exists(self, name: str) -> bool:
        return bool(self._rows("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [name]))

    # -- schema ------------------------------------------------------------------------------

    def schema_version(self) -> int:
        if not self._table_exists("schema_version"):
            return 0
        rows = self._rows("SELECT MAX(version) FROM schema_version")
        return int(rows[0][0] or 0) if rows else 0

    def migrate(self, target_version: int = SCHEMA_VERSION) -> int:
        """Bring the schema to ``target_version`` (the current one by default); returns the version."""
        return self._retrying(lambda: self._migrate(target_version))

    def _migrate(self, target_version: int) -> int:
        self._begin_write()
        try:
            self._lock_schema()
            self._execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            current = self.schema_version()
            if current > SCHEMA_VERSION:
                raise HistoryError(
                    f"history database {self.where} has schema version {current}, newer than this "
                    f"pytest-reachability understands ({SCHEMA_VERSION}); upgrade the plugin"
                )
            for version in range(current + 1, target_version + 1):
                for statement in _MIGRATIONS[version]:
                    if statement == "@backfill_v2":
                        self._backfill_v2()
                    else:
                        self._execute(statement.format(serial=self._serial()))
                self._execute("DELETE FROM schema_version")
                self._execute("INSERT INTO schema_version (version) VALUES (?)", [version])
                current = version
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return current

    def _backfill_v2(self) -> None:
        for run_id, target, status in self._rows("SELECT id, target, status FROM runs"):
            self._execute(
                "UPDATE runs SET run_uuid = ?, target_key = ?, healthy = ? WHERE id = ?",
                [f"v1-{run_id}", _legacy_target_key(target), 1 if status == "passed" else 0, run_id],
            )
        # v1 counted nothing but the score; a run that passed counted all it had.
        for run_id, passed in self._rows(
            "SELECT run_id, SUM(CASE WHEN outcome = 'passed' THEN 1 ELSE 0 END) FROM test_outcomes GROUP BY "
            "run_id"
        ):
            self._execute("UPDATE runs SET passed = ? WHERE id = ?", [int(passed or 0), run_id])
        for run_id, counted in self._rows(
            "SELECT run_id, COUNT(*) FROM test_outcomes WHERE outcome IN ('passed', 'failed', 'error', "
            "'blocked') GROUP BY run_id"
        ):
            self._execute("UPDATE runs SET counted = ? WHERE id = ?", [int(counted or 0), run_id])

    # -- writing -----------------------------------------------------------------------------

    def record(self, run: RunRecord) -> int:
        """Store ``run`` with its tests and sections in one transaction; returns its id."""
        return self._retrying(lambda: self._record(run))

    def _record(self, run: RunRecord) -> int:
        self._begin_write()
        try:
            run_id = self._insert(run)
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return run_id

    def record_and_compare(self, run: RunRecord) -> tuple[int, dict[str, Any]]:
        """Compare ``run`` with the runs recorded before it and store it, in one transaction.

        Writers are serialised (SQLite ``BEGIN IMMEDIATE``, a PostgreSQL advisory lock), so what counts
        as earlier is what was recorded before this run -- whatever the start times of runs that ran at
        once -- and of two first runs exactly one is the first.
        """
        ((run_id, summary),) = self.record_and_compare_many([run])
        return run_id, summary

    def record_and_compare_many(self, runs: Sequence[RunRecord]) -> list[tuple[int, dict[str, Any]]]:
        """:meth:`record_and_compare` for every target of a fleet run, all in one transaction."""
        return self._retrying(lambda: self._record_and_compare_many(runs))

    def _record_and_compare_many(self, runs: Sequence[RunRecord]) -> list[tuple[int, dict[str, Any]]]:
        self._begin_write()
        self._in_write = True
        done = []
        try:
            self._lock_runs()
            for run in runs:
                summary = self.compare(run, recorded_before=True)
                done.append((self._insert(run), summary))
            self._commit()
        except BaseException:
            self._rollback()
            raise
        finally:
            self._in_write = False
        return done

    def finish_run(self, run: RunRecord) -> None:
        """Add what is known only at the very end (top theory, finish time) to a stored run."""
        self.finish_runs([run])

    def finish_runs(self, runs: Sequence[RunRecord]) -> None:
        """:meth:`finish_run` for every target of a fleet run, in one transaction."""

        def update() -> None:
            self._begin_write()
            try:
                for run in runs:
                    self._execute(
                        "UPDATE runs SET top_theory = ?, finished_at = ? WHERE run_uuid = ?",
                        [run.top_theory, _iso(run.finished_at) if run.finished_at else None, run.run_uuid],
                    )
                self._commit()
            except BaseException:
                self._rollback()
                raise

        self._retrying(update)

    def _insert(self, run: RunRecord) -> int:
        run_id = self._insert_run(
            {
                "run_uuid": run.run_uuid,
                "target_key": run.target_key,
                "target": run.target,
                "namespace": run.namespace,
                "started_at": _iso(run.started_at),
                "finished_at": _iso(run.finished_at) if run.finished_at else None,
                "git_sha": run.git_sha,
                "exit_status": run.exit_status,
                "status": run.status,
                "healthy": 1 if run.healthy else 0,
                "health_score": run.health_score,
                "passed": run.passed,
                "counted": run.counted,
                "top_theory": run.top_theory,
                "seconds_to_healthy": run.seconds_to_healthy,
                "wait_outcome": run.wait_outcome,
                "run_group": run.run_group,
                "shard_index": run.shard_index,
                "shard_count": run.shard_count,
            }
        )
        for kind, name, source, address in dict.fromkeys(run.addresses):
            self._execute(
                "INSERT INTO run_addresses (run_id, kind, name, source, address) VALUES (?, ?, ?, ?, ?)",
                [run_id, kind, name[:255], source[:255], address[:255]],
            )
        for nodeid, (section, outcome, reason) in run.tests.items():
            self._execute(
                "INSERT INTO test_outcomes (run_id, nodeid, section, outcome, reason) VALUES (?, ?, ?, ?, ?)",
                [run_id, nodeid, section, outcome, reason[:1000]],
            )
        for position, row in enumerate(run.sections):
            self._execute(
                "INSERT INTO section_health (run_id, position, section, tests, passed, failed, error, "
                "blocked, skipped, status)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    run_id,
                    position,
                    row.name,
                    row.tests,
                    row.passed,
                    row.failed,
                    row.error,
                    row.blocked,
                    row.skipped,
                    row.status,
                ],
            )
        return run_id

    # -- reading -----------------------------------------------------------------------------

    def runs(self, key: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Stored runs, oldest first (at most ``limit``, the newest ones), optionally of one target key."""
        where, params = ("WHERE target_key = ?", [key]) if key is not None else ("", [])
        rows = self._rows(
            "SELECT id, run_uuid, target_key, target, namespace, started_at, git_sha, exit_status, status, "
            "healthy,"
            " health_score, passed, counted, top_theory, seconds_to_healthy, wait_outcome, run_group,"
            " shard_index, shard_count"
            f" FROM runs {where} ORDER BY started_at DESC, id DESC LIMIT ?",
            [*params, int(limit)],
        )
        names = (
            "id",
            "run_uuid",
            "target_key",
            "target",
            "namespace",
            "started_at",
            "git_sha",
            "exit_status",
            "status",
            "healthy",
            "health_score",
            "passed",
            "counted",
            "top_theory",
            "seconds_to_healthy",
            "wait_outcome",
            "run_group",
            "shard_index",
            "shard_count",
        )
        found = [dict(zip(names, row, strict=True)) for row in rows]
        for run in found:
            run["healthy"] = bool(run["healthy"])
        self._end_read()
        return list(reversed(found))

    def addresses_seen(self, key: str, *, before: str | None = None, runs: int = 50) -> list[dict[str, Any]]:
        """The addresses the last ``runs`` runs of ``key`` saw (oldest first).

        Each comes with its run's uuid and start.

        ``before``: only runs other than this uuid (the current run, if stored already).
        """
        rows = self._rows(
            "SELECT r.run_uuid, r.started_at, a.kind, a.name, a.source, a.address FROM run_addresses a"
            " JOIN runs r ON r.id = a.run_id WHERE r.id IN (SELECT id FROM runs WHERE target_key = ? AND "
            "run_uuid <> ?"
            " ORDER BY started_at DESC, id DESC LIMIT ?) ORDER BY r.started_at, r.id, a.kind, a.name, "
            "a.address",
            [key, before or "", int(runs)],
        )
        self._end_read()
        names = ("run_uuid", "started_at", "kind", "name", "source", "address")
        return [dict(zip(names, row, strict=True)) for row in rows]

    def test_outcomes(self, run_id: int) -> dict[str, str]:
        rows = self._rows("SELECT nodeid, outcome FROM test_outcomes WHERE run_id = ?", [run_id])
        self._end_read()
        return dict(rows)

    def sections(self, run_id: int) -> list[SectionCounts]:
        rows = self._rows(
            "SELECT section, tests, passed, failed, error, blocked, skipped, status FROM section_health"
            " WHERE run_id = ? ORDER BY position",
            [run_id],
        )
        self._end_read()
        return [SectionCounts(*row) for row in rows]

    def run_by_uuid(self, run_uuid: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT id, target_key FROM runs WHERE run_uuid = ?", [run_uuid])
        self._end_read()
        if not rows:
            return None
        run_id, key = rows[0]
        return next((run for run in self.runs(key, limit=1_000_000) if run["id"] == run_id), None)

    def load_run(self, run_uuid: str) -> RunRecord | None:
        """A stored run as a RunRecord (tests and sections included), or None."""
        rows = self._rows(
            "SELECT id, target_key, target, namespace, started_at, finished_at, git_sha, exit_status, status,"
            " health_score, passed, counted, top_theory, run_group, shard_index, shard_count"
            " FROM runs WHERE run_uuid = ?",
            [run_uuid],
        )
        if not rows:
            self._end_read()
            return None
        (
            run_id,
            key,
            target,
            namespace,
            started,
            finished,
            sha,
            exit_status,
            status,
            score,
            passed,
            counted,
            theory,
            group,
            shard_index,
            shard_count,
        ) = rows[0]
        tests = {
            nodeid: (section, outcome, reason)
            for nodeid, section, outcome, reason in self._rows(
                "SELECT nodeid, section, outcome, reason FROM test_outcomes WHERE run_id = ?", [run_id]
            )
        }
        self._end_read()
        return RunRecord(
            target_key=key,
            target=target,
            namespace=namespace,
            started_at=_parse_time(started),
            finished_at=_parse_time(finished) if finished else None,
            run_uuid=run_uuid,
            git_sha=sha,
            exit_status=exit_status,
            status=status,
            health_score=score,
            passed=int(passed or 0),
            counted=int(counted or 0),
            top_theory=theory,
            tests=tests,
            sections=self.sections(int(run_id)),
            run_group=group,
            shard_index=shard_index,
            shard_count=shard_count,
        )

    def runs_of_group(self, group: str) -> list[RunRecord]:
        """Every row a run group wrote (each target of each shard), by shard and start."""
        rows = self._rows(
            "SELECT run_uuid FROM runs WHERE run_group = ? ORDER BY shard_index, started_at, id", [group]
        )
        self._end_read()
        found = [self.load_run(run_uuid) for (run_uuid,) in rows]
        return [run for run in found if run is not None]

    def summary_for(self, run_uuid: str) -> dict[str, Any] | None:
        """The comparison of a stored run with the runs before it (what the run itself printed)."""
        run = self.load_run(run_uuid)
        return None if run is None else self.compare(run)

    def _end_read(self) -> None:
        """SQLite autocommit reads need nothing; PostgreSQL ends the implicit transaction (see there)."""

    def compare(self, run: RunRecord, *, recorded_before: bool = False) -> dict[str, Any]:
        """What changed since the previous run of ``run.target_key`` (``run`` itself stored or not).

        Only runs that started no later than ``run`` count as earlier (with ``recorded_before``: every
        run recorded so far, which is what :meth:`record_and_compare` asks inside its transaction);
        ``run`` is excluded by its uuid.
        """
        if recorded_before:
            params = [run.target_key, run.run_uuid]
            earlier = "target_key = ? AND run_uuid <> ?"
        else:
            params = [run.target_key, run.run_uuid, _iso(run.started_at)]
            earlier = "target_key = ? AND run_uuid <> ? AND started_at <= ?"
        previous = self._rows(
            f"SELECT id, started_at, health_score, healthy, status FROM runs WHERE {earlier}"
            " ORDER BY started_at DESC, id DESC LIMIT 1",
            params,
        )
        last_healthy = self._scalar(
            f"SELECT MAX(started_at) FROM runs WHERE {earlier} AND healthy = 1", params
        )
        last_unhealthy = self._scalar(
            f"SELECT MAX(started_at) FROM runs WHERE {earlier} AND healthy = 0", params
        )

        def first_after(healthy: int, after: str | None, before: str | None = None) -> str | None:
            sql = f"SELECT MIN(started_at) FROM runs WHERE {earlier} AND healthy = ?"
            extra: list[Any] = [healthy]
            if after is not None:
                sql += " AND started_at > ?"
                extra.append(after)
            if before is not None:
                sql += " AND started_at < ?"
                extra.append(before)
            return self._scalar(sql, params + extra)

        now = _iso(run.started_at)
        summary: dict[str, Any] = {
            "target_key": run.target_key,
            "previous_run": None,
            "newly_failing": [],
            "recovered": [],
        }
        if run.healthy:
            summary["last_healthy"] = format_time(now)
            summary["healthy_since"] = format_time(first_after(1, last_unhealthy) or now)
            summary["failing_since"] = None
        else:
            summary["last_healthy"] = format_time(last_healthy)
            summary["failing_since"] = format_time(first_after(0, last_healthy) or now)
            if last_healthy is None:
                summary["healthy_since"] = None
            else:
                unhealthy_before = self._scalar(
                    f"SELECT MAX(started_at) FROM runs WHERE {earlier} AND healthy = 0 AND started_at < ?",
                    params + [last_healthy],
                )
                summary["healthy_since"] = format_time(
                    first_after(1, unhealthy_before, None) if unhealthy_before else first_after(1, None)
                )
        if previous:
            previous_id, started, score, _healthy, status = previous[0]
            summary["previous_run"] = {
                "id": int(previous_id),
                "time": format_time(started),
                "health": score,
                "status": status,
            }
            before = self.test_outcomes(int(previous_id))
            now_failing = {nodeid for nodeid, (_, outcome, _) in run.tests.items() if outcome in FAILING}
            was_failing = {nodeid for nodeid, outcome in before.items() if outcome in FAILING}
            summary["newly_failing"] = sorted(now_failing - was_failing)
            summary["recovered"] = sorted(
                nodeid
                for nodeid in was_failing
                if run.tests.get(nodeid, ("", "", ""))[1] in ("passed", "xpassed")
            )
        self._end_read()
        return summary

    def _scalar(self, sql: str, params: Sequence[Any]) -> Any:
        rows = self._rows(sql, params)
        return rows[0][0] if rows else None

    def close(self) -> None:
        try:
            self.connection.close()
        except Exception:  # noqa: BLE001 - closing a broken connection
            pass

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class PostgresHistoryStore(HistoryStore):
    dialect = "postgresql"

    def _sql(self, text: str) -> str:
        return text.replace("?", "%s")

    def _begin_write(self) -> None:
        self.connection.execute("BEGIN")

    def _lock_schema(self) -> None:
        # Two jobs opening a fresh database at once: the second waits, then sees the new version.
        self.connection.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_LOCK_ID,))

    def _lock_runs(self) -> None:
        # Two runs recording at once: the second waits, then compares with the first.
        self.connection.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_LOCK_ID + 1,))

    def _retrying(self, action: Callable[[], _T]) -> _T:
        return action()  # PostgreSQL waits for its locks (lock_timeout bounds the wait)

    def _serial(self) -> str:
        return "BIGSERIAL PRIMARY KEY"

    def _table_exists(self, name: str) -> bool:
        return bool(
            self._rows(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND "
                "table_name = ?",
                [name],
            )
        )

    def _end_read(self) -> None:
        if self._in_write:
            return  # the reads of record_and_compare belong to its transaction
        if self.connection.info.transaction_status != 0:  # not idle: close the implicit read transaction
            self.connection.execute("COMMIT")


def open_history(url: str, *, migrate: bool = True, connect_timeout: float = 10.0) -> HistoryStore:
    """Open (and by default create or migrate) the history at ``url``: a file path or ``postgresql://``."""
    text = str(url).strip()
    if not text:
        raise HistoryError(
            "history database: empty location; expected an SQLite file path or a postgresql:// URL"
        )
    if _URL_SCHEME.match(text):
        store: HistoryStore = _open_postgres(text, connect_timeout)
    else:
        store = _open_sqlite(text)
    if migrate:
        try:
            store.migrate()
        except HistoryError:
            store.close()
            raise
        except Exception as error:
            store.close()
            raise HistoryError(
                f"history database {store.where}: cannot create or migrate the schema: {_one_line(error)}"
            ) from None
    return store


def sqlite_path(location: str) -> Path:
    """The file of an SQLite location: a path, ``sqlite:///relative/path`` or ``sqlite:////absolute/path``."""
    text = location.strip()
    if _SQLITE_URL.match(text):
        rest = text[len("sqlite://") :]
        if not rest.startswith("/") or len(rest) < 2:
            raise HistoryError(
                f"history database {text!r}: expected sqlite:///relative/path or sqlite:////absolute/path"
            )
        text = rest[1:]
    return Path(text).expanduser()


def _open_sqlite(path_text: str) -> HistoryStore:
    path = sqlite_path(path_text)

    def connect() -> sqlite3.Connection:
        # timeout= installs the busy handler as the connection opens, before any statement;
        # isolation_level=None: transactions are begun explicitly (BEGIN IMMEDIATE takes the write lock
        # up front).
        connection = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
        try:
            connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
            connection.execute(
                "PRAGMA journal_mode = WAL"
            )  # before the schema: every writer finds WAL in force
            connection.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            connection.close()
            raise
        return connection

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = _retry_busy(connect)
    except (OSError, sqlite3.Error) as error:
        raise HistoryError(f"history database {path}: cannot open: {_one_line(error)}") from None
    return HistoryStore(connection, str(path))


def _retry_busy(action: Callable[[], _T], budget: float = BUSY_TIMEOUT_SECONDS) -> _T:
    """``action()``, again after a short random pause while SQLite answers "locked"/"busy" without waiting.

    SQLite does so when the busy handler cannot help: a fresh file switching to WAL, a read upgrading
    to a write."""
    deadline = time.monotonic() + budget
    pause = 0.005
    while True:
        try:
            return action()
        except sqlite3.OperationalError as error:
            text = str(error).lower()
            if not ("locked" in text or "busy" in text) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause * random.uniform(0.5, 1.5))
        pause = min(pause * 2, 0.2)


def _open_postgres(url: str, connect_timeout: float) -> HistoryStore:
    # Passwords can sit in the userinfo or in the query (?password=...): both masked.
    shown = redact_target_text(url)
    try:
        import psycopg
    except ImportError:
        raise HistoryError(
            f"history database {shown}: PostgreSQL needs psycopg 3: pip install "
            "'pytest-reachability[postgres]'"
        ) from None
    try:
        connection = psycopg.connect(
            url,
            connect_timeout=max(1, int(connect_timeout)),
            autocommit=True,
            options="-c statement_timeout=60000 -c lock_timeout=60000",
        )
    except psycopg.Error as error:
        message = str(redact(_one_line(error), url_passwords(url)))
        raise HistoryError(f"history database {shown}: cannot connect: {message}") from None
    # autocommit: every transaction is begun explicitly, like in SQLite.
    return PostgresHistoryStore(connection, shown)


def _iso(moment: datetime) -> str:
    """Fixed-width UTC ISO text: sorts as time in both databases."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


def sections_from_rows(rows: Iterable[Any]) -> list[SectionCounts]:
    """SectionCounts from ``RunResults.sections()`` rows (or anything with the same attributes)."""
    return [
        SectionCounts(
            row.name, row.tests, row.passed, row.failed, row.error, row.blocked, row.skipped, row.status
        )
        for row in rows
    ]
