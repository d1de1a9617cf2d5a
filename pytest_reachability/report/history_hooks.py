"""Run history (``--results-db``) at the end of a session, called by the controller's hooks (``roles.py``).

On the controller only (xdist workers never write): before the other session-finish hooks run, the
run is compared with the previous run of the same target and ``state.history_summary`` is set, so
the terminal, HTML and incident reports can show it; after them (when the diagnosis has ranked its
theories) the run is stored in one transaction. A database that cannot be used costs one terminal
line, never the run's exit status.

``REACHABILITY_RUN_ID`` (optional) names the run's uuid, so a caller such as the GitHub Action can
find the stored run afterwards.

A run of several targets stores one row per target (its own key, tests, sections, health and top
cause), all in one transaction, with the run group (``REACHABILITY_RUN_GROUP``, else the run's id) and
the shard (``--shard I/N``); each target's row has a uuid derived from the run's and the target's key.
The checks run once for the whole run (no target) belong to no target's row.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone
from typing import Any

import pytest

from .. import history
from ..redact import redact
from .hooks import redactor_of

RUN_ID_ENV = "REACHABILITY_RUN_ID"
INTERRUPTED = int(pytest.ExitCode.INTERRUPTED)
_STARTED = pytest.StashKey[datetime]()
_PROBLEM = pytest.StashKey[str]()
Pending = tuple[
    history.HistoryStore, list[history.RunRecord]
]  # compared at the start of session finish, stored at its end


def note_start(config: pytest.Config) -> None:
    config.stash[_STARTED] = datetime.now(timezone.utc)


def compare_run(config: pytest.Config, state: Any, exitstatus: int) -> Pending | None:
    """Compare the run with the target's previous one (``state.history_summary``).

    Unless interrupted, the run is recorded; the store stays open for :func:`store_run`. None without
    ``--results-db`` or a usable database."""
    url = getattr(getattr(state, "settings", None), "results_db", None) if state is not None else None
    if not url:
        return None
    try:
        store = history.open_history(url)
    except history.HistoryError as error:
        config.stash[_PROBLEM] = str(error)
        state.history_summary = {"error": str(error)}
        return None
    runs = build_records(config, state, exitstatus)
    try:
        if len(runs) > 1:
            state.history_summary = _compare_fleet(store, runs, stored=exitstatus != INTERRUPTED)
        elif exitstatus == INTERRUPTED:
            state.history_summary = store.compare(runs[0])
        else:  # stored and compared in one transaction: of two first runs only one is the first
            run = runs[0]
            run_id, state.history_summary = store.record_and_compare(run)
            state.history_summary["run"] = {
                "id": run_id,
                "uuid": run.run_uuid,
                "time": history.format_time(run.started_at),
            }
    except Exception as error:  # noqa: BLE001 - a broken history must not break the run
        store.close()
        config.stash[_PROBLEM] = f"history database {store.where}: {history._one_line(error)}"
        state.history_summary = {"error": config.stash[_PROBLEM]}
        return None
    return store, runs


def _compare_fleet(store: history.HistoryStore, runs: list[history.RunRecord], *, stored: bool) -> dict:
    """Every target compared with its own previous run (and stored, unless interrupted): one summary of
    the fleet, each target's own under ``targets``."""
    if stored:
        compared = store.record_and_compare_many(runs)
    else:
        compared = [(None, store.compare(run)) for run in runs]
    per_target = {run.target: summary for run, (_, summary) in zip(runs, compared, strict=True)}
    failing_since = [s["failing_since"] for s in per_target.values() if s.get("failing_since")]
    summary: dict[str, Any] = {
        "fleet": {
            "targets": len(runs),
            "first_recorded": sum(1 for s in per_target.values() if s.get("previous_run") is None),
            "failing": len(failing_since),
        },
        "failing_since": min(failing_since) if failing_since else None,
        "newly_failing": [n for s in per_target.values() for n in s.get("newly_failing") or []],
        "recovered": [n for s in per_target.values() for n in s.get("recovered") or []],
        "targets": per_target,
    }
    if stored:
        summary["run"] = {
            "group": runs[0].run_group,
            "ids": [run_id for run_id, _ in compared],
            "time": history.format_time(runs[0].started_at),
        }
    return summary


def store_run(config: pytest.Config, state: Any, exitstatus: int, pending: Pending | None) -> None:
    """After the reports: the run's top theory stored and the store closed.

    An interrupted run is not kept."""
    if pending is None:
        return
    if exitstatus == INTERRUPTED:
        # Stopped by the user: says nothing about the service, so it starts no failing streak.
        pending[0].close()
        state.history_summary["not_stored"] = "run interrupted"
    else:
        _store_run(config, state, *pending)


def _store_run(
    config: pytest.Config, state: Any, store: history.HistoryStore, runs: list[history.RunRecord]
) -> None:
    theories = getattr(state, "theories", None) or []
    finished = datetime.now(timezone.utc)
    for run in runs:
        title = top_theory_title(theories if len(runs) == 1 else _theories_of(state, run, theories))
        run.top_theory = redactor_of(config)(title) if title else title
        run.finished_at = finished
    try:
        store.finish_runs(runs)
    except Exception as error:  # noqa: BLE001
        message = f"history database {store.where}: top theory not stored: {history._one_line(error)}"
        config.stash[_PROBLEM] = message
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(redactor_of(config)(f"History: {message}"), red=True)
    finally:
        store.close()


def build_record(config: pytest.Config, state: Any, exitstatus: int) -> history.RunRecord:
    """The run as stored: masked target, outcomes, sections, health, git sha."""
    settings = state.settings
    target = getattr(settings, "target", None)
    namespace = getattr(settings, "namespace", None)
    host, base_path = (target.host, target.base_path) if target is not None else (None, "")
    run = _record(
        config,
        state.results,
        exitstatus,
        key=history.target_key(host, base_path, namespace),
        display=target.display if target is not None else "(no target)",
        namespace=namespace,
    )
    run_uuid = os.environ.get(RUN_ID_ENV, "").strip()
    if run_uuid:
        run.run_uuid = run_uuid[:64]
    _mark_group_and_shard(run, settings, run.run_uuid)
    return run


def build_records(config: pytest.Config, state: Any, exitstatus: int) -> list[history.RunRecord]:
    """One record per target of a run of several targets, else the one of :func:`build_record`.

    Runs whose results cannot tell targets apart (no ``target_keys``) are stored as one."""
    results = state.results
    target_keys = getattr(results, "target_keys", None)
    subset = getattr(results, "subset", None)
    keys = target_keys() if target_keys is not None and subset is not None else []
    if len(keys) <= 1:
        return [build_record(config, state, exitstatus)]
    settings = state.settings
    batch = (os.environ.get(RUN_ID_ENV, "").strip() or uuid.uuid4().hex)[:64]
    namespaces = _namespaces(state)
    runs = []
    for key in keys:
        namespace = namespaces.get(key, getattr(settings, "namespace", None))
        run = _record(
            config,
            subset(key),
            exitstatus,
            key=history.fleet_target_key(*history.host_and_path(key), namespace),
            display=key,
            namespace=namespace,
        )
        if run.status in ("passed", "failed"):  # the run's exit status speaks for all targets; each its own
            failing = any(outcome in (*history.FAILING, "blocked") for _, outcome, _ in run.tests.values())
            run.status = "failed" if failing else "passed"
        # Stable per run and target, so a caller holding the run's id finds each target's row.
        run.run_uuid = uuid.uuid5(uuid.NAMESPACE_URL, f"{batch}/{key}").hex
        _mark_group_and_shard(run, settings, batch)
        runs.append(run)
    return runs


def _namespaces(state: Any) -> dict[str, str | None]:
    """Each target's namespace, as the fleet verdicts or the target list of the settings name it."""
    found: dict[str, str | None] = {}
    for spec in getattr(state.settings, "targets", None) or []:
        key = getattr(spec, "key", None)
        if key is not None and getattr(spec, "namespace", None) is not None:
            found[key] = spec.namespace
    fleet = getattr(state, "fleet", None)
    for verdict in getattr(fleet, "targets", None) or []:
        key = getattr(verdict, "key", None)
        if key is not None and getattr(verdict, "namespace", None) is not None:
            found[key] = verdict.namespace
    return found


def _theories_of(state: Any, run: history.RunRecord, theories: list) -> list:
    """A target's theories: its fleet verdict's, else the run's theories that explain its tests."""
    fleet = getattr(state, "fleet", None)
    for verdict in getattr(fleet, "targets", None) or []:
        if getattr(verdict, "key", None) == run.target:
            return list(getattr(verdict, "theories", None) or [])
    own = set(run.tests)

    def explains(theory: Any) -> set[str]:
        found = theory.get("explains") if isinstance(theory, dict) else getattr(theory, "explains", None)
        return {str(nodeid) for nodeid in found or []}

    return [theory for theory in theories if explains(theory) & own]


def _mark_group_and_shard(run: history.RunRecord, settings: Any, batch: str) -> None:
    run.run_group = (os.environ.get(history.RUN_GROUP_ENV, "").strip() or batch)[:200]
    shard = getattr(settings, "shard", None)
    if shard:
        run.shard_index, run.shard_count = int(shard[0]), int(shard[1])


def _record(
    config: pytest.Config, results: Any, exitstatus: int, *, key: str, display: str, namespace: str | None
) -> history.RunRecord:
    """One target's results as stored: outcomes (reasons masked), sections, health, addresses seen."""
    mask = redactor_of(config)  # the run's known secrets (target password, tokens) too, not only their forms
    health = results.health()
    status = {0: "passed", 1: "failed", 2: "interrupted", 5: "no tests"}.get(exitstatus, "error")
    run = history.RunRecord(
        target_key=key,
        target=display,
        namespace=namespace,
        started_at=config.stash.get(_STARTED, None) or datetime.now(timezone.utc),
        git_sha=history.detect_git_sha(config.invocation_params.dir),
        exit_status=exitstatus,
        status=status,
        health_score=health.score,
        passed=health.passed,
        counted=health.counted,
        tests={
            nodeid: (test.section, test.outcome, mask(test.reason or ""))
            for nodeid, test in results.tests.items()
        },
        sections=history.sections_from_rows(results.sections()),
    )
    from ..changes import addresses_seen

    run.addresses = addresses_seen(record for test in results.tests.values() for record in test.evidence)
    wait = getattr(results, "wait", None) or {}
    run.seconds_to_healthy, run.wait_outcome = wait.get("seconds_to_healthy"), wait.get("outcome")
    return run


def _masked(text: str) -> str:
    """Theory titles can quote URLs and headers: stored only after redaction."""
    return str(redact(text))


def top_theory_title(theories: list) -> str | None:
    """The first theory's title, whether theories are objects or dicts."""
    if not theories:
        return None
    first = theories[0]
    title = first.get("title") if isinstance(first, dict) else getattr(first, "title", None)
    return _masked(str(title) if title else str(first)[:300])


def write_summary_line(terminalreporter: Any, config: pytest.Config, state: Any) -> None:
    """One line after the section table and the health score."""
    if state is None or not getattr(state.settings, "results_db", None):
        return
    summary = state.history_summary
    if summary is None:
        return
    line = history.describe_summary(summary)
    if summary.get("not_stored"):
        line += f" ({summary['not_stored']}: not stored)"
    failing = bool(summary.get("error") or summary.get("failing_since"))
    terminalreporter.write_line(redactor_of(config)(line), red=failing, green=not failing)
