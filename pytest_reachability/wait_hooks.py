"""pytest hooks of ``--wait``: wait once, on the controller, before the suite (and any xdist worker) starts.

The waiting happens in ``pytest_sessionstart`` of the process that is not an xdist worker; xdist starts its
workers in its own (trylast) ``pytest_sessionstart``, so they begin only once the wait is over and the wait
is never repeated per worker. Ctrl-C and SIGTERM interrupt it like any other part of the run (exit 2).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest

from . import wait as wait_mod
from .state import find_state


def _progress(config: pytest.Config) -> wait_mod.ProgressLine:
    from .report.hooks import redactor_of

    mask = redactor_of(config)  # a reason may quote what a server sent
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    # TerminalReporter.isatty is a bool attribute up to pytest 8.0 and a method from 8.1 on.
    isatty = getattr(reporter, "isatty", False)
    redraw = bool((isatty() if callable(isatty) else isatty) and not os.environ.get("CI"))
    if reporter is None:
        return wait_mod.ProgressLine(lambda text: sys.stderr.write(mask(text)), redraw=False)
    width = getattr(getattr(reporter, "_tw", None), "fullwidth", 120)

    def write(text: str) -> None:
        reporter.write(mask(text))
        reporter.flush()

    return wait_mod.ProgressLine(write, redraw=redraw, width=width)


def propagation_check(state: Any, settings: Any = None) -> Any:
    """The propagation probe for a waited target, or None when it cannot apply (an IP literal target)."""
    from .probes import propagation

    settings = settings or state.settings
    if settings.target.is_ip:
        return None
    port = propagation.authoritative_port(state.sandbox_info)
    return lambda timeout: propagation.check_propagation(
        settings.target.host, settings.resolvers, timeout=timeout, authoritative_port=port
    )


def fleet_check(state: Any) -> Any:
    """One attempt of the wait over every target of the run (each with its own settings): healthy when all
    are."""
    from .fixtures import settings_for

    checks = []
    for spec in state.settings.targets or []:
        settings = settings_for(state.settings, spec)
        checks.append((settings, propagation_check(state, settings)))

    def check(timeout: float) -> wait_mod.CheckResult:
        return wait_mod.combine(
            [
                wait_mod.health_check(settings.target, settings, timeout, propagation=propagation)
                for settings, propagation in checks
            ]
        )

    return check


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    state = find_state(config)
    if state is None or state.worker or not state.settings.wait or config.option.collectonly:
        return
    settings = state.settings
    if settings.target is None:
        return  # the built-in suite stops on its own with one line; a user suite has nothing to wait for
    outcome = wait_mod.wait_until_healthy(
        fleet_check(state),
        budget=settings.wait,
        probe_timeout=settings.probe_timeout,
        progress=_progress(config),
    )
    state.results.wait = outcome.to_dict()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = find_state(config)
    wait = state.results.wait if state is not None and not state.worker else None
    if not wait:
        return
    from .report.hooks import redactor_of

    healthy = wait["outcome"] == "healthy"
    terminalreporter.write_line(
        redactor_of(config)(f"reachability: {wait_mod.describe_wait(wait)}"),
        green=healthy,
        red=not healthy,
        bold=True,
    )
