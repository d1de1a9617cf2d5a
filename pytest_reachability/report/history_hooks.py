"""Run history (``--results-db``) at the end of a session, called by the controller's hooks (``roles.py``).

On the controller only (xdist workers never write): before the other session-finish hooks run, the
run is compared with the previous run of the same target and ``state.history_summary`` is set, so
the terminal, HTML and incident reports can show it; after them (when the diagnosis has ranked its
theories) the run is stored in one transaction. A database that cannot be used costs one terminal
line, never the run's exit status.

``REACHABILITY_RUN_ID`` (optional) names the run's uuid, so a caller such as the GitHub Action can
find the stored run afterwards.
"""

from __future__ import annotations

import os
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
    history.HistoryStore, history.RunRecord
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
    run = build_record(config, state, exitstatus)
    try:
        if exitstatus == INTERRUPTED:
            state.history_summary = store.compare(run)
        else:  # stored and compared in one transaction: of two first runs only one is the first
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
    return store, run


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
    config: pytest.Config, state: Any, store: history.HistoryStore, run: history.RunRecord
) -> None:
    title = top_theory_title(getattr(state, "theories", None) or [])
    run.top_theory = redactor_of(config)(title) if title else title
    run.finished_at = datetime.now(timezone.utc)
    try:
        store.finish_run(run)
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
    results = state.results
    mask = redactor_of(config)  # the run's known secrets (target password, tokens) too, not only their forms
    health = results.health()
    status = {0: "passed", 1: "failed", 2: "interrupted", 5: "no tests"}.get(exitstatus, "error")
    run = history.RunRecord(
        target_key=history.target_key(
            target.host if target else None, target.base_path if target else "", namespace
        ),
        target=target.display if target is not None else "(no target)",
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
    run_uuid = os.environ.get(RUN_ID_ENV, "").strip()
    if run_uuid:
        run.run_uuid = run_uuid[:64]
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
