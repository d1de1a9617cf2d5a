"""The plugin's hooks by role, as pytest-xdist splits its controller from its workers.

A run without xdist has one process, the controller, which runs the tests too. Under xdist the
controller schedules and reports while workers run the tests. ``plugin.py`` registers exactly one
of these objects per process (:func:`~pytest_reachability.state.is_controller` decides):

- :class:`ControllerPlugin`: folds reports into the run's results, tells workers where gate outcomes
  are shared, orders xdist's work, and at the end writes every output in one stated order (history
  comparison, JUnit properties, JSON and incident report, HTML page, history record, terminal);
- :class:`WorkerPlugin`: records gate outcomes where the tests ran and hands the controller what
  only the worker learned (gates pulled into the run, a usage error).

Hooks every process needs (collection planning, BLOCKED decisions, report masking) stay in
``plugin.py`` and ``report/hooks.py``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest

from .atomic import DivertedJunitXml, write_html_reports_atomically
from .report import history_hooks
from .report import hooks as report_hooks
from .results import gate_member_outcome
from .state import RunState

STORE_INPUT_KEY = "reachability_gate_store"
SANDBOX_INPUT_KEY = "reachability_sandbox"
USAGE_ERROR_OUTPUT_KEY = "reachability_usage_error"
CONTROLLER_INPUT_KEY = "reachability_controller_pid"
TARGETS_INPUT_KEY = "reachability_targets"
PULLED_OUTPUT_KEY = "reachability_pulled"
MARKS_OUTPUT_KEY = "reachability_marks"


def record_gate_outcome(state: RunState, report: pytest.TestReport) -> None:
    """Share the outcome of a gate test where it ran, for dependents on every worker."""
    for gate in state.plan.member_of.get(report.nodeid, ()):
        outcome, message = gate_member_outcome(report)
        if outcome is None:
            return
        state.store.record(gate, report.nodeid, outcome, message)
        if state.prefetcher is not None:
            state.prefetcher.gate_recorded()  # work waiting for this gate (prefetch) need not poll


class ControllerPlugin:
    """Hooks of the process that reports: the only process of a serial run, the xdist controller."""

    def __init__(self, state: RunState) -> None:
        self.state = state
        self.junit: DivertedJunitXml | None = None

    # -- running -----------------------------------------------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.state.results.add_report(report)
        if getattr(report, "reachability_builtin", False):
            self.state.builtin.add(report.nodeid)
        if not self.state.xdist_controller:  # serial: the tests ran here
            record_gate_outcome(self.state, report)

    # -- xdist -------------------------------------------------------------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """Tell each worker where the session's gate outcomes are shared."""
        state = self.state
        node.workerinput[STORE_INPUT_KEY] = str(state.store_dir) if state.store_dir else ""
        node.workerinput[CONTROLLER_INPUT_KEY] = os.getpid()
        # Our own child, so its PID cannot be reused before we reap it; execnet keeps the Popen privately.
        popen = getattr(getattr(getattr(node, "gateway", None), "_io", None), "popen", None)
        if isinstance(getattr(popen, "pid", None), int):
            state.worker_pids.append(popen.pid)
        if state.sandbox_info is not None:
            node.workerinput[SANDBOX_INPUT_KEY] = state.sandbox_info.to_dict()
        # Discovery and sharding ran here once: every worker collects the same targets.
        node.workerinput[TARGETS_INPUT_KEY] = [spec.to_dict() for spec in state.settings.targets]

    @pytest.hookimpl(optionalhook=True, trylast=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        """Scope-based schedulers that hand out the scopes holding gate tests first (None: xdist's own)."""
        from .scheduling import make_scheduler

        store = self.state.store
        scopes = store.read_scopes if len(self.state.settings.targets) > 1 else None
        return make_scheduler(config.getvalue("dist"), config, log, store.read_plan, scopes)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        output = getattr(node, "workeroutput", {})
        if output.get(PULLED_OUTPUT_KEY):
            self.state.pulled = dict(output[PULLED_OUTPUT_KEY])
        if output.get(MARKS_OUTPUT_KEY):
            self.state.marks_seen = True
        if output.get(USAGE_ERROR_OUTPUT_KEY):
            self.state.usage_error = output[USAGE_ERROR_OUTPUT_KEY]

    # -- session -----------------------------------------------------------------------------------

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        history_hooks.note_start(session.config)
        # pytest-html's report and pytest's JUnit XML written like ours: atomically, with the umask's mode.
        # Before pytest-html's own (trylast) session start, which writes the report a first time.
        write_html_reports_atomically(session.config.pluginmanager.get_plugins())
        try:
            from _pytest.junitxml import xml_key
        except ImportError:  # pytest moved it: its JUnit file is then written in place, as before
            return
        log_xml = session.config.stash.get(xml_key, None)
        if log_xml is not None and getattr(log_xml, "logfile", None):
            self.junit = DivertedJunitXml(log_xml)

    @pytest.hookimpl(wrapper=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> Any:
        """Around every other session-finish hook, in this order: compare with the run history (the reports
        show it), JUnit suite properties (before pytest writes that file), the run's own verdict on what
        was verified; after them: the JUnit file settled, the JSON results and the incident report, the
        HTML page's Blocked result, and the run stored in the history."""
        config, state = session.config, self.state
        pending = history_hooks.compare_run(config, state, int(exitstatus))
        try:
            report_hooks.add_junit_properties(config, state)
            self._finish_run(session)
            result = yield
            if self.junit is not None:
                self.junit.settle()
                self.junit = None
            report_hooks.write_reports(config, state)
            report_hooks.finish_html_page(config, state)
            return result
        finally:
            history_hooks.store_run(config, state, int(exitstatus), pending)

    def _finish_run(self, session: pytest.Session) -> None:
        state = self.state
        state.results.discard_unfinished()
        if state.usage_error:
            # What a serial run raises as a UsageError, reported once for the workers that found it.
            print(f"ERROR: {state.usage_error}", file=sys.stderr)
            session.exitstatus = pytest.ExitCode.USAGE_ERROR
            return
        state.nothing_verified = nothing_verified(state)
        if (
            state.nothing_verified
            and session.exitstatus == pytest.ExitCode.OK
            and not state.settings.allow_all_skipped
        ):
            session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED

    # -- terminal ----------------------------------------------------------------------------------

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
        """The verdict, the BLOCKED sections, the section table and the health score."""
        state = self.state
        if state.marks_seen or getattr(state.settings, "target", None) or state.results.by_outcome("blocked"):
            report_hooks.write_terminal_summary(terminalreporter, config)
        if state.nothing_verified:
            accepted = state.settings.allow_all_skipped
            terminalreporter.write_line(
                f"reachability: {state.nothing_verified}; "
                + (
                    "accepted (--allow-all-skipped)"
                    if accepted
                    else "exit status 5 (pass --allow-all-skipped to accept such a run)"
                ),
                yellow=accepted,
                red=not accepted,
                bold=True,
            )

    @pytest.hookimpl(trylast=True, specname="pytest_terminal_summary")
    def pytest_terminal_summary_last(
        self, terminalreporter: Any, exitstatus: int, config: pytest.Config
    ) -> None:
        """Last, after other plugins' lines: the most likely causes, the files written, the history line."""
        report_hooks.write_causes(terminalreporter, config)
        history_hooks.write_summary_line(terminalreporter, config, self.state)


def nothing_verified(state: RunState) -> str:
    """Why no built-in check verified anything (every one of them skipped), or "" when some did."""
    tests = [test for nodeid, test in state.results.tests.items() if nodeid in state.builtin]  # in run order
    if not tests or any(test.outcome not in ("skipped", "xfailed") for test in tests):
        return ""
    first = next((test.reason for test in tests if test.reason), "")
    return f"nothing verified: all {len(tests)} built-in checks were skipped" + (
        f" (first: {first})" if first else ""
    )


class WorkerPlugin:
    """Hooks of an xdist worker: the tests run here, the controller reports."""

    def __init__(self, state: RunState, config: pytest.Config) -> None:
        self.state = state
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record_gate_outcome(self.state, report)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.state.results.discard_unfinished()
        output = self.config.workeroutput  # type: ignore[attr-defined]
        output[PULLED_OUTPUT_KEY] = dict(self.state.pulled)
        output[MARKS_OUTPUT_KEY] = self.state.marks_seen
