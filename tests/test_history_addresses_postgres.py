"""History schema 3 on a real PostgreSQL: a version 2 database migrated in place, the addresses a run saw and
its time to healthy stored and read back (the server is the one tests/test_history_postgres.py starts)."""

from __future__ import annotations

from test_history_postgres import database, postgres_url  # noqa: F401 - fixtures: a server for this module, a fresh database

from pytest_reachability import history


def test_a_version_2_database_gains_addresses_and_time_to_healthy(database: str) -> None:  # noqa: F811
    with history.open_history(database, migrate=False) as store:
        store.migrate(2)
        store.connection.execute(
            "INSERT INTO runs (started_at, target, status, run_uuid, target_key, healthy)"
            " VALUES ('2025-12-07T10:00:00Z', 'http://97v.test', 'passed', 'old', '97v.test|production', 1)"
        )
        store.connection.commit()
    with history.open_history(database) as store:
        assert store.schema_version() == history.SCHEMA_VERSION >= 3
        run = history.RunRecord(
            target_key="97v.test|production",
            target="http://97v.test",
            seconds_to_healthy=7.25,
            wait_outcome="healthy",
            addresses=[
                ("dns", "97v.test", "127.0.0.1:5353", "127.0.10.57"),
                ("loadbalancer", "production/api", "", "127.0.10.53"),
            ],
        )
        store.record(run)
        older, newest = store.runs("97v.test|production")
        assert older["seconds_to_healthy"] is None and newest["seconds_to_healthy"] == 7.25
        assert newest["wait_outcome"] == "healthy"
        rows = store.addresses_seen("97v.test|production")
        assert [(r["kind"], r["name"], r["source"], r["address"]) for r in rows] == [
            ("dns", "97v.test", "127.0.0.1:5353", "127.0.10.57"),
            ("loadbalancer", "production/api", "", "127.0.10.53"),
        ]
        assert store.addresses_seen("97v.test|production", before=run.run_uuid) == []
