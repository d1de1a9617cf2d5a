"""The history of a run of several targets: one row per target, on SQLite and on a real PostgreSQL.

The pytest runs here verify three targets: the suite is parametrized by host, and a conftest gives the
run results that tell targets apart as the results contract does (``target_keys()``, ``subset()``: a
test's target is the parameter of its node id). The history must hold every target's own row, under the
key a run of that target alone uses, with the run group and the shard; a later run of one target reads
its history from the fleet's rows as from its own.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_history_postgres import database, postgres_url  # noqa: F401 - fixtures: a real PostgreSQL
from test_merge import run_cli

from pytest_reachability import history

# The PostgreSQL driver imported before pytester snapshots sys.modules: imported first inside a test,
# pytester's restore would drop its Python modules but not its C part, and later tests would catch
# exceptions of classes the driver no longer raises.
try:
    import psycopg  # noqa: F401
except ImportError:
    pass

HOSTS = ("http://a.fleet.test", "http://b.fleet.test", "http://c.fleet.test")

FLEET_FILE = f"""
import os
import pytest

pytestmark = pytest.mark.section("api-health")
HOSTS = {list(HOSTS)!r}

@pytest.mark.parametrize("host", HOSTS, ids=HOSTS)
def test_health(host):
    assert host not in os.environ.get("FAKE_DOWN", "").split(), "connection refused by " + host

@pytest.mark.parametrize("host", HOSTS, ids=HOSTS)
def test_tls(host):
    pass
"""

ONE_TARGET_FILE = """
import os
import pytest

pytestmark = pytest.mark.section("api-health")

def test_health():
    assert "http://b.fleet.test" not in os.environ.get("FAKE_DOWN", "").split(), "connection refused"
"""

FLEET_CONFTEST = r"""
import os
import re

import pytest

from pytest_reachability.results import RunResults
from pytest_reachability.state import STATE


def target_of(nodeid):
    found = re.search(r"\[(.+)\]$", nodeid)
    return found.group(1) if found else None


class FleetResults(RunResults):
    def target_keys(self):
        return list(dict.fromkeys(key for key in map(target_of, self.tests) if key))

    def subset(self, target):
        part = RunResults()
        part.tests = {nodeid: test for nodeid, test in self.tests.items() if target_of(nodeid) == target}
        return part


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    state = config.stash.get(STATE, None)
    if state is not None:
        fleet = FleetResults()
        fleet.tests = state.results.tests
        state.results = fleet
        if os.environ.get("FAKE_SHARD"):
            state.settings.shard = tuple(int(part) for part in os.environ["FAKE_SHARD"].split("/"))
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def history_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "history.sqlite")
    return request.getfixturevalue("database")


def run_fleet(pytester: pytest.Pytester, url: str, *extra: str) -> pytest.RunResult:
    return pytester.runpytest(
        "-p", "no:cacheprovider", "--target", HOSTS[0], "--namespace", "shop", f"--results-db={url}", *extra
    )


def test_a_fleet_run_stores_a_row_per_target_and_one_target_reads_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, history_url: str
) -> None:
    pytester.makepyfile(test_fleet=FLEET_FILE)
    pytester.makeconftest(FLEET_CONFTEST)
    monkeypatch.setenv("FAKE_DOWN", "http://b.fleet.test")
    monkeypatch.setenv("FAKE_SHARD", "2/3")
    monkeypatch.setenv(history.RUN_GROUP_ENV, "reachability-fleet-29012345")
    monkeypatch.delenv(history.HISTORY_KEY_ENV, raising=False)
    first = run_fleet(pytester, history_url)
    assert first.ret == 1
    first.stdout.fnmatch_lines(
        ["History: 3 targets (3 first recorded); 1 failing, the longest since *; newly failing: 0; *"]
    )

    with history.open_history(history_url) as store:
        assert store.schema_version() == history.SCHEMA_VERSION == 4
        rows = store.runs()
        assert sorted(r["target_key"] for r in rows) == [
            "a.fleet.test|shop",
            "b.fleet.test|shop",
            "c.fleet.test|shop",
        ]
        assert {(r["run_group"], r["shard_index"], r["shard_count"]) for r in rows} == {
            ("reachability-fleet-29012345", 2, 3)
        }
        by_target = {r["target"]: r for r in rows}
        assert by_target["http://b.fleet.test"]["healthy"] is False
        assert by_target["http://b.fleet.test"]["health_score"] == 50
        assert by_target["http://a.fleet.test"]["healthy"] is True
        b = store.load_run(by_target["http://b.fleet.test"]["run_uuid"])
        assert b is not None and set(b.tests) == {
            "test_fleet.py::test_health[http://b.fleet.test]",
            "test_fleet.py::test_tls[http://b.fleet.test]",
        }
        assert [(s.name, s.tests, s.failed) for s in b.sections] == [("api-health", 2, 1)]
        grouped = store.runs_of_group("reachability-fleet-29012345")
        assert sorted(run.target for run in grouped) == list(HOSTS)

    # The follow-up merge of a sharded Job reads every shard's rows back from the history.
    merged = run_cli("merge", "--history", history_url, "--run-group", "reachability-fleet-29012345")
    assert merged.returncode == 1, merged.stderr
    assert "**3 target(s): 2 healthy, 1 failing**" in merged.stdout
    assert "(no-cause-found): 1 target: http://b.fleet.test" in merged.stdout
    assert "| http://b.fleet.test (shop) | 50% | ❌ FAIL |" in merged.stdout
    assert "reachability-fleet-29012345 (shard 2/3)" in merged.stdout
    assert merged.stdout.count("| Section | Tests |") == 3
    missing = run_cli("merge", "--history", history_url, "--run-group", "no-such-job")
    assert missing.returncode == 2 and "no runs of run group 'no-such-job'" in missing.stderr

    # The next fleet run: b recovered, a fails; each target compared with its own previous row.
    monkeypatch.setenv("FAKE_DOWN", "http://a.fleet.test")
    monkeypatch.setenv(history.RUN_GROUP_ENV, "reachability-fleet-29012360")
    second = run_fleet(pytester, history_url)
    assert second.ret == 1
    second.stdout.fnmatch_lines(
        ["History: 3 targets; 1 failing, the longest since *; newly failing: 1; recovered: 1"]
    )

    # b verified alone (no conftest: a run of one target) finds the history the fleet wrote for it.
    (pytester.path / "conftest.py").unlink()
    (pytester.path / "test_fleet.py").unlink()
    pytester.makepyfile(test_one=ONE_TARGET_FILE)
    monkeypatch.setenv("FAKE_DOWN", "http://b.fleet.test")
    monkeypatch.delenv("FAKE_SHARD")
    monkeypatch.delenv(history.RUN_GROUP_ENV)
    alone = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "--target",
        "http://b.fleet.test:8080",
        "--namespace",
        "shop",
        f"--results-db={history_url}",
    )
    assert alone.ret == 1
    alone.stdout.fnmatch_lines(
        ["History: failing since * (healthy since * before that); newly failing: 1; *"]
    )
    with history.open_history(history_url) as store:
        runs_of_b = store.runs("b.fleet.test|shop")
        assert [r["healthy"] for r in runs_of_b] == [False, True, False]
        assert (
            runs_of_b[-1]["shard_index"] is None and runs_of_b[-1]["run_group"] == runs_of_b[-1]["run_uuid"]
        )


def test_the_history_key_override_is_appended_per_target(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """One override shared by every target would mix their histories: in a fleet it names where from."""
    pytester.makepyfile(test_fleet=FLEET_FILE)
    pytester.makeconftest(FLEET_CONFTEST)
    monkeypatch.setenv(history.HISTORY_KEY_ENV, "in-cluster")
    url = str(tmp_path / "h.sqlite")
    assert run_fleet(pytester, url).ret == 0
    with history.open_history(url) as store:
        assert sorted(r["target_key"] for r in store.runs()) == [
            f"{name}.fleet.test|shop|in-cluster" for name in "abc"
        ]
        assert all(r["shard_index"] is None for r in store.runs())


def test_a_schema_3_database_migrates_to_4_keeping_its_rows(tmp_path: Path) -> None:
    """Schema 3 databases migrate to 4 in place: the old rows stay, the new columns are empty."""
    url = str(tmp_path / "h.sqlite")
    with history.open_history(url, migrate=False) as store:
        assert store.migrate(3) == 3
        store.connection.execute(
            "INSERT INTO runs (started_at, target, status, run_uuid, target_key) VALUES (?, ?, ?, ?, ?)",
            ["2026-11-28T04:00:00.000000Z", "http://a.fleet.test", "passed", "old", "a.fleet.test|shop"],
        )
    with history.open_history(url) as store:
        assert store.schema_version() == 4
        (row,) = store.runs("a.fleet.test|shop")
        assert row["run_uuid"] == "old" and row["run_group"] is None and row["shard_count"] is None
