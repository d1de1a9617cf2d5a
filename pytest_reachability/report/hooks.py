"""pytest hooks for the outputs: pytest-html columns and extras, theories in the terminal,
the incident report and the JSON results, and redaction of everything written."""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import shlex
import time
from html import escape
from pathlib import Path
from typing import Any

import pytest

from ..atomic import write_atomically
from ..redact import Redactor, collect_secrets
from ..results import failure_line
from ..state import find_state as _state
from . import html as html_report
from . import terminal
from .verdict import verdict

REDACTOR = pytest.StashKey[Redactor]()
STARTED = pytest.StashKey[float]()
DIAGNOSED = pytest.StashKey[bool]()
WRITTEN = pytest.StashKey[list]()
PENDING_EVIDENCE = pytest.StashKey[list]()  # a passing setup's evidence, drawn with the call phase
HTML_PAGE = pytest.StashKey[Any]()  # pytest-html's report data, whose outcome counts get a Blocked entry
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
            from ..diagnosis.hookspecs import user_rules

            rules = user_rules(config)
            if len(state.settings.targets) > 1:
                from ..fleet import build_fleet

                state.fleet = build_fleet(
                    state.results, state.settings, lambda part, settings: diagnose(part, settings, rules)
                )
                state.theories = [cause.theory for cause in state.fleet.causes if cause.theory is not None]
            else:
                state.theories = diagnose(state.results, state.settings, extra_rules=rules)
        elif len(state.settings.targets) > 1:
            from ..fleet import build_fleet

            state.fleet = build_fleet(state.results, state.settings, lambda part, settings: [])
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
    # Live logs (--log-cli-level) and --log-file are written as they happen, not from reports:
    # mask them at the handler.
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
        # logger.exception(): the traceback is formatted after the filters, from exc_info, unless
        # exc_text is set.
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def add_junit_properties(config: pytest.Config, state: Any) -> None:
    """Suite-level ``<property>`` elements (blocked and skipped counts), the place pytest's schema allows."""
    try:
        from _pytest.junitxml import xml_key  # the stash key record_testsuite_property uses
    except ImportError:
        return
    xml = config.stash.get(xml_key, None)
    if xml is None:
        return
    from .junit import suite_properties

    target = getattr(state.settings, "target", None)
    redact = redactor_of(config)
    for name, value in suite_properties(state.results, target.display if target is not None else None):
        xml.add_global_property(name, redact(value))


def write_reports(config: pytest.Config, state: Any) -> None:
    """Diagnose once, then write the JSON results and the incident report; remember what was written."""
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
            path = write_results_json(
                settings.results_json,
                state.results,
                settings,
                theories,
                started=started,
                duration=duration,
                secrets=secrets,
                fleet=getattr(state, "fleet", None),
            )
            written.append(f"results JSON: {path}")
        except OSError as error:
            problems.append(f"results JSON {settings.results_json}: {error.strerror or error}")
    if getattr(settings, "incident_report", None):
        from .incident import write_incident_report

        try:
            path, incident_id = write_incident_report(
                settings.incident_report,
                state.results,
                settings,
                theories,
                started=started,
                duration=duration,
                rerun_command=rerun_command(config),
                history=state.history_summary,
                secrets=secrets,
                fleet=getattr(state, "fleet", None),
            )
            written.append(f"incident report {incident_id}: {path}")
        except OSError as error:
            problems.append(f"incident report {settings.incident_report}: {error.strerror or error}")
    config.stash[WRITTEN] = written + [f"could not write {p}" for p in problems]


def finish_html_page(config: pytest.Config, state: Any) -> None:
    """Give the page pytest-html wrote the Blocked result and a run count covering every test."""
    option = config.getoption("htmlpath", None)
    if not option or not html_report.blocked_result_supported():
        return
    path = Path.cwd() / Path(os.path.expandvars(option)).expanduser()  # as pytest-html resolves it
    try:
        page = path.read_text(encoding="utf-8")
    except OSError:
        return  # pytest-html says why it wrote nothing
    counts = {
        outcome: len(state.results.by_outcome(outcome))
        for outcome in ("passed", "failed", "blocked", "skipped")
    }
    counts["failed"] += len(state.results.by_outcome("error"))
    write_atomically(path, html_report.add_blocked_result(page, counts))


def write_terminal_summary(reporter: Any, config: pytest.Config) -> None:
    """The verdict, the BLOCKED sections, the section table and the health score (secrets masked)."""
    state = _state(config)
    if state is None or state.worker:
        return
    redact = redactor_of(config)
    target = getattr(state.settings, "target", None)
    theories = [_redacted_theory(t, redact) for t in theories_of(config)] if state.results.tests else []
    fleet = getattr(state, "fleet", None)
    if fleet is not None and state.results.tests:
        from ..fleet import fleet_lines

        reporter.write_sep("=", "reachability: fleet")
        for index, line in enumerate(fleet_lines(fleet)):
            reporter.write_line(redact(line), bold=index == 0, red=index == 0 and bool(fleet.failing))
    terminal.write_summary(
        _MaskingWriter(reporter, redact),
        state.results,
        pulled=state.pulled,
        theories=theories,
        target=target.display if target is not None else None,
        show_verdict=fleet is None,
    )


class _MaskingWriter:
    """The terminal reporter with every line masked on its way out."""

    def __init__(self, reporter: Any, redact: Redactor) -> None:
        self._reporter = reporter
        self._redact = redact
        self.config = getattr(reporter, "config", None)

    def write_sep(self, sep: str, title: str | None = None, **markup: Any) -> None:
        self._reporter.write_sep(sep, self._redact(title) if title else title, **markup)

    def write_line(self, line: str, **markup: Any) -> None:
        self._reporter.write_line(self._redact(line), **markup)

    def write(self, text: str, **markup: Any) -> None:
        self._reporter.write(self._redact(text), **markup)


def write_causes(terminalreporter: Any, config: pytest.Config) -> None:
    """After the section table: the top causes (consequences folded in), and the reports that were written."""
    state = _state(config)
    if state is None or state.worker:
        return
    redact = redactor_of(config)
    theories = theories_of(config) if state.results.tests else []
    written = config.stash.get(WRITTEN, [])
    if theories:
        terminalreporter.write_sep("=", "reachability: most likely causes")
        failed_ids = [t.nodeid for t in state.results.tests.values() if t.outcome in ("failed", "error")]
        for index, theory in enumerate(theories[:TERMINAL_THEORIES], 1):
            for line in terminal.theory_lines(index, theory, failed_ids):
                terminalreporter.write_line(redact(line), bold=line.startswith(f"{index}. ") and index == 1)
        if len(theories) > TERMINAL_THEORIES:
            terminalreporter.write_line(
                f"   ... {terminal.more_causes_line(len(theories) - TERMINAL_THEORIES, written)}"
            )
    for line in written:
        terminalreporter.write_line(redact(f"reachability: {line}"))


# --------------------------------------------------------------------------- reports: redaction and extras


def finish_report(item: pytest.Item, report: Any) -> None:
    """Mask the report and add the HTML extras; called last by the plugin's outermost makereport wrapper,
    after every other plugin filled the report, so what it masks stays masked."""
    redact = redactor_of(item.config)
    _locate_skip_at_test(item, report)
    redact_report(report, redact)
    if not item.config.getoption("htmlpath", None):
        return
    # Workers too: pytest-html reads extras from the reports xdist sends back (plain dicts survive). It shows
    # the extras of every phase in phase order, so the probes a passing setup ran wait for the call phase:
    # a failed row then opens with its message, then every probe of the test.
    evidence = item.stash.get(PENDING_EVIDENCE, []) + list(
        getattr(report, "reachability_evidence", None) or []
    )
    if report.when == "setup" and report.passed:
        item.stash[PENDING_EVIDENCE] = evidence
        return
    item.stash[PENDING_EVIDENCE] = []
    extras = (
        [html_report.message_extra(failure_line(report))] if report.failed and failure_line(report) else []
    )
    extras += html_report.probe_extras(evidence) if evidence else []
    if extras:
        report.extras = redact(extras) + list(getattr(report, "extras", []) or [])


_PACKAGE = Path(__file__).resolve().parents[1]


def _locate_skip_at_test(item: pytest.Item, report: Any) -> None:
    """A BLOCKED (or gate-skipped) test's skip names the test's own file and line, not the plugin's.

    pytest does the same for ``skip`` marks; JUnit's ``<skipped>`` text and pytest-html's log show it.
    """
    longrepr = report.longrepr
    if not (report.skipped and report.when == "setup" and isinstance(longrepr, tuple) and len(longrepr) == 3):
        return
    path = str(longrepr[0])
    # An absolute path always resolves alike; a relative one depends on the working directory.
    if not (_raised_in_plugin_cached(path) if os.path.isabs(path) else _raised_in_plugin(path)):
        return
    filename, line = item.location[:2]  # relative to the rootdir, as pytest prints test locations
    report.longrepr = (filename, (line or 0) + 1, longrepr[2])


def _raised_in_plugin(path: str) -> bool:
    """Whether a skip raised at ``path`` was raised by the plugin rather than by a test of the suite."""
    where = Path(path).resolve()
    return _PACKAGE in where.parents and (_PACKAGE / "suites") not in where.parents


# A fleet's thousands of skips are raised at a handful of places.
_raised_in_plugin_cached = functools.lru_cache(maxsize=256)(_raised_in_plugin)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    """Collection errors print source and messages too."""
    report = yield
    redact_report(report, redactor_of(collector.config))
    return report


def redact_report(report: Any, redact: Redactor) -> None:
    """Mask secrets in everything of a report that outputs print.

    That is longrepr, captured sections, properties and evidence."""
    longrepr = report.longrepr
    if (
        longrepr is None
        and not report.sections
        and not getattr(report, "user_properties", None)
        and not getattr(report, "reachability_evidence", None)
        and not hasattr(report, "wasxfail")
        and not getattr(report, "extras", None)
    ):
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
    """An extra with its ``content`` (and name) masked.

    Images and other binary content are left as they are."""
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
def pytest_html_report_title(report: Any) -> None:
    """The page titled by its target; a Blocked filter box and count beside Skipped."""
    state = _state(report.config)
    target = getattr(getattr(state, "settings", None), "target", None)
    if target is not None:
        report.title = redactor_of(report.config)(f"Reachability: {target.display}")
    if html_report.blocked_result_supported():
        html_report.add_blocked_outcome(report.outcomes)
        report.config.stash[HTML_PAGE] = report


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_header(cells: list[str]) -> None:
    cells[2:2] = html_report.header_cells()


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_row(report: Any, cells: list[str]) -> None:
    blocked_by = getattr(report, "reachability_blocked_by", None)
    if blocked_by and cells and html_report.blocked_result_supported():
        cells[0] = html_report.result_cell(html_report.BLOCKED_RESULT)
    cells[2:2] = html_report.row_cells(getattr(report, "reachability_section", None), blocked_by)


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_html(report: Any, data: list[str]) -> None:
    """A skipped row's log says why in words, not as pytest's (path, line, reason) tuple."""
    longrepr = report.longrepr
    if report.skipped and isinstance(longrepr, tuple) and len(longrepr) == 3 and data:
        reason = str(longrepr[2]).removeprefix("Skipped: ")
        data[0] = escape(f"{reason}\n({longrepr[0]}:{longrepr[1]})") + "\n"


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_summary(
    prefix: list[str], summary: list[str], postfix: list[str], session: pytest.Session
) -> None:
    config = session.config
    state = _state(config)
    if state is None or state.worker:
        return
    redact = redactor_of(config)
    target = getattr(state.settings, "target", None)
    prefix.append(
        summary_block(
            state.results,
            theories_of(config),
            state.history_summary,
            redact,
            header=run_header(config, state, getattr(session, "exitstatus", None)),
            target=target.display if target is not None else None,
        )
    )
    fleet = getattr(state, "fleet", None)
    if fleet is not None:
        prefix.append(redact(fleet_html(fleet)))
    page = config.stash.get(HTML_PAGE, None)
    if page is not None:
        html_report.move_blocked_count(page.outcomes, len(state.results.by_outcome("blocked")))


def fleet_html(fleet: Any) -> str:
    """The fleet summary of the HTML page: counts, causes with their hosts, every failing target."""
    from ..fleet import fleet_lines

    lines = fleet_lines(fleet, limit=len(fleet.targets))
    items = "".join(f"<li>{escape(line.strip())}</li>" for line in lines[1:])
    return (
        f'<div class="reachability-fleet"><h2>Fleet</h2><p><strong>{escape(lines[0])}</strong></p>'
        f"<ul>{items}</ul></div>"
    )


def summary_block(
    results: Any,
    theories: list[Any],
    history: Any,
    redact: Redactor,
    *,
    header: html_report.RunHeader | None = None,
    target: str | None = None,
) -> str:
    """The HTML summary with secrets masked *before* escaping: an escaped secret (``&`` -> ``&amp;``) no
    longer matches its value, so masking the finished HTML alone would miss it."""
    theories = [_redacted_theory(theory, redact) for theory in theories]
    found = verdict(results, theories, redact(target) if target else None)
    block = html_report.summary_html(
        results, theories, redact(history) if history else history, header=header, found=found
    )
    return redact(block)


EXIT_MEANING = {
    0: "passed",
    1: "tests failed",
    2: "interrupted",
    3: "internal error",
    4: "usage error",
    5: "no tests collected",
}


def run_header(config: pytest.Config, state: Any, exitstatus: Any) -> html_report.RunHeader:
    settings = state.settings
    redact = redactor_of(config)
    target = getattr(settings, "target", None)
    started = config.stash.get(STARTED, None)
    status = int(exitstatus) if exitstatus is not None else None
    return html_report.RunHeader(
        target=redact(target.display) if target is not None else "(no target)",
        namespace=getattr(settings, "namespace", None) or "(kubeconfig default)",
        context=redact(getattr(settings, "kube_context", None) or "(current)"),
        started=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)) if started else "?",
        duration=f"{time.time() - started:.1f} s" if started else "?",
        exit_status="?" if status is None else f"{status} ({EXIT_MEANING.get(status, 'error')})",
        sandbox=getattr(settings, "sandbox", None),
    )


def _redacted_theory(theory: Any, redact: Redactor) -> Any:
    """A copy with every text masked, its symptoms too."""
    if not (dataclasses.is_dataclass(theory) and not isinstance(theory, type)):
        return theory
    changes: dict[str, Any] = {}
    for field in dataclasses.fields(theory):
        if not field.init:
            continue
        value = getattr(theory, field.name)
        if field.name == "symptoms" and isinstance(value, list):
            changes[field.name] = [_redacted_theory(symptom, redact) for symptom in value]
        elif isinstance(value, (str, list)):
            changes[field.name] = redact(value)
    return dataclasses.replace(theory, **changes)
