"""pytest hooks for the outputs: pytest-html columns and extras, theories in the terminal,
the incident report and the JSON results, and redaction of everything written."""

from __future__ import annotations

import dataclasses
import logging
import shlex
import time
from typing import Any

import pytest

from ..redact import Redactor, collect_secrets
from ..state import find_state as _state
from . import html as html_report

REDACTOR = pytest.StashKey[Redactor]()
STARTED = pytest.StashKey[float]()
DIAGNOSED = pytest.StashKey[bool]()
WRITTEN = pytest.StashKey[list]()
TERMINAL_THEORIES = 3


def redactor_of(config: pytest.Config) -> Redactor:
    """The run's redactor: form-based masking plus the secrets this run knows (built once per process)."""
    found = config.stash.get(REDACTOR, None)
    if found is None:
        state = _state(config)
        found = config.stash[REDACTOR] = Redactor(collect_secrets(state.settings if state else None))
    return found


def theories_of(config: pytest.Config) -> list[Any]:
    """The ranked theories of the run, computed once on the controller and kept on the run state."""
    state = _state(config)
    if state is None or state.worker:
        return []
    if not config.stash.get(DIAGNOSED, False):
        # Nothing failed, errored or was blocked: there is no fault to explain.
        if any(test.outcome in ("failed", "error", "blocked") for test in state.results.tests.values()):
            from ..diagnosis import diagnose

            state.theories = diagnose(state.results, state.settings)
        config.stash[DIAGNOSED] = True
    return state.theories


def rerun_command(config: pytest.Config) -> str:
    """The pytest command line of this run, to re-run after the fix (secrets masked by the caller)."""
    args = [str(a) for a in config.invocation_params.args]
    return "pytest " + " ".join(shlex.quote(a) for a in args) if args else "pytest"


# --------------------------------------------------------------------------- session


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    config.stash[STARTED] = time.time()
    # Live logs (--log-cli-level) and --log-file are written as they happen, not from reports: mask them at the handler.
    logging_plugin = config.pluginmanager.get_plugin("logging-plugin")
    for name in ("log_cli_handler", "log_file_handler"):
        handler = getattr(logging_plugin, name, None)
        if isinstance(handler, logging.Handler):
            handler.addFilter(RedactingLogFilter(redactor_of(config)))


class RedactingLogFilter(logging.Filter):
    """Masks the formatted message of every record a handler writes."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is logging's problem to report, not ours
            return True
        masked = self.redact(message)
        if masked != message:
            record.msg, record.args = masked, ()
        # logger.exception(): the traceback is formatted after the filters, from exc_info, unless exc_text is set.
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """On the controller: diagnose once, then write the JSON results and the incident report."""
    config = session.config
    state = _state(config)
    if state is None or state.worker or hasattr(config, "workerinput"):
        return
    theories = theories_of(config)
    settings = state.settings
    started = config.stash.get(STARTED, None)
    duration = time.time() - started if started is not None else None
    secrets = redactor_of(config).secrets
    written: list[str] = []
    problems: list[str] = []
    if getattr(settings, "results_json", None):
        from .json import write_results_json

        try:
            path = write_results_json(settings.results_json, state.results, settings, theories,
                                      started=started, duration=duration, secrets=secrets)
            written.append(f"results JSON: {path}")
        except OSError as error:
            problems.append(f"results JSON {settings.results_json}: {error.strerror or error}")
    if getattr(settings, "incident_report", None):
        from .incident import write_incident_report

        try:
            path, incident_id = write_incident_report(
                settings.incident_report, state.results, settings, theories, started=started, duration=duration,
                rerun_command=rerun_command(config), history=state.history_summary, secrets=secrets,
            )
            written.append(f"incident report {incident_id}: {path}")
        except OSError as error:
            problems.append(f"incident report {settings.incident_report}: {error.strerror or error}")
    config.stash[WRITTEN] = written + [f"could not write {p}" for p in problems]


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """After the section table: the top theories, the history in brief, where the reports went."""
    state = _state(config)
    if state is None or state.worker:
        return
    redact = redactor_of(config)
    theories = theories_of(config) if state.results.tests else []
    if theories:
        terminalreporter.write_sep("=", "reachability: most likely causes")
        for index, theory in enumerate(theories[:TERMINAL_THEORIES], 1):
            terminalreporter.write_line(redact(f"{index}. [{theory.confidence:.0%}] {theory.title}"), bold=index == 1)
            if theory.evidence:
                terminalreporter.write_line(redact(f"   evidence: {theory.evidence[0]}"))
            if theory.confirm:
                terminalreporter.write_line(redact(f"   confirm:  {theory.confirm[0].splitlines()[0]}"))
        if len(theories) > TERMINAL_THEORIES:
            terminalreporter.write_line(f"   ... {len(theories) - TERMINAL_THEORIES} more in the incident report / JSON results")
    for line in config.stash.get(WRITTEN, []):
        terminalreporter.write_line(redact(f"reachability: {line}"))


# --------------------------------------------------------------------------- reports: redaction and extras


def finish_report(item: pytest.Item, report: Any) -> None:
    """Mask the report and add the HTML extras; called last by the plugin's outermost makereport wrapper,
    after every other plugin filled the report, so what it masks stays masked."""
    redact = redactor_of(item.config)
    redact_report(report, redact)
    evidence = getattr(report, "reachability_evidence", None)
    # Workers too: pytest-html reads extras from the reports xdist sends back (plain dicts survive).
    if evidence and item.config.getoption("htmlpath", None):
        extras = html_report.probe_extras(evidence)
        if extras:
            report.extras = list(getattr(report, "extras", []) or []) + redact(extras)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    """Collection errors print source and messages too."""
    report = yield
    redact_report(report, redactor_of(collector.config))
    return report


def redact_report(report: Any, redact: Redactor) -> None:
    """Mask secrets in everything of a report that outputs print: longrepr, captured sections, properties, evidence."""
    longrepr = report.longrepr
    if (longrepr is None and not report.sections and not getattr(report, "user_properties", None)
            and not getattr(report, "reachability_evidence", None) and not hasattr(report, "wasxfail")
            and not getattr(report, "extras", None)):
        return  # a passing phase with nothing captured: the common case, kept cheap
    if isinstance(longrepr, tuple):
        report.longrepr = tuple(redact(part) if isinstance(part, str) else part for part in longrepr)
    elif isinstance(longrepr, str):
        report.longrepr = redact(longrepr)
    elif longrepr is not None:
        _scrub(longrepr, redact, 0)
    report.sections = [(title, redact(content)) for title, content in report.sections]
    if hasattr(report, "user_properties"):
        report.user_properties = [(name, redact(value)) for name, value in report.user_properties]
    if getattr(report, "reachability_evidence", None):
        report.reachability_evidence = redact(report.reachability_evidence)
    if isinstance(getattr(report, "wasxfail", None), str):
        report.wasxfail = redact(report.wasxfail)
    if getattr(report, "extras", None):
        # pytest-html extras added by the test or other plugins (text, html, json, urls) print as they are.
        report.extras = [_redact_extra(extra, redact) for extra in report.extras]


def _redact_extra(extra: Any, redact: Redactor) -> Any:
    """An extra with its ``content`` (and name) masked; images and other binary content are left as they are."""
    if not isinstance(extra, dict):
        return extra
    masked = dict(extra)
    for key in ("content", "name"):
        if isinstance(masked.get(key), (str, dict, list)) and not _is_binary_extra(masked):
            masked[key] = redact(masked[key])  # a json extra holds data, which pytest-html encodes later
    return masked


def _is_binary_extra(extra: dict) -> bool:
    return extra.get("format_type") in ("image", "video")


def _scrub(obj: Any, redact: Redactor, depth: int) -> Any:
    """Mask strings inside pytest's failure representation objects in place (they are dataclasses)."""
    if depth > 12:
        return obj
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, list):
        obj[:] = [_scrub(item, redact, depth + 1) for item in obj]
        return obj
    if isinstance(obj, tuple):
        return tuple(_scrub(item, redact, depth + 1) for item in obj)
    if isinstance(obj, dict):
        for key in list(obj):
            obj[key] = _scrub(obj[key], redact, depth + 1)
        return obj
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for field in dataclasses.fields(obj):
            value = getattr(obj, field.name, None)
            new = _scrub(value, redact, depth + 1)
            if new is not value:
                object.__setattr__(obj, field.name, new)
        return obj
    return obj


# --------------------------------------------------------------------------- pytest-html


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_header(cells: list[str]) -> None:
    cells[2:2] = html_report.header_cells()


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_row(report: Any, cells: list[str]) -> None:
    cells[2:2] = html_report.row_cells(getattr(report, "reachability_section", None), getattr(report, "reachability_blocked_by", None))


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_summary(prefix: list[str], summary: list[str], postfix: list[str], session: pytest.Session) -> None:
    config = session.config
    state = _state(config)
    if state is None or state.worker:
        return
    prefix.append(summary_block(state.results, theories_of(config), state.history_summary, redactor_of(config)))


def summary_block(results: Any, theories: list[Any], history: Any, redact: Redactor) -> str:
    """The HTML summary with secrets masked *before* escaping: an escaped secret (``&`` -> ``&amp;``) no
    longer matches its value, so masking the finished HTML alone would miss it."""
    theories = [_redacted_theory(theory, redact) for theory in theories]
    block = html_report.summary_html(results, theories, redact(history) if history else history)
    return redact(block)


def _redacted_theory(theory: Any, redact: Redactor) -> Any:
    if not (dataclasses.is_dataclass(theory) and not isinstance(theory, type)):
        return theory
    return dataclasses.replace(theory, title=redact(theory.title), evidence=redact(list(theory.evidence)),
                               confirm=redact(list(theory.confirm)), fix=redact(list(theory.fix)))
