"""The plugin's per-session state, kept on ``config.stash`` and read by every hook module and fixture."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .evidence import Evidence
from .gating import GatePlan, GateResult, GateStore
from .results import RunResults


@dataclass
class RunState:
    """Per-session state of the plugin, kept on ``config.stash``."""

    settings: Any
    store: GateStore
    store_dir: Path | None = None  # created by this process, removed at the end
    worker: bool = False
    xdist_controller: bool = False
    plan: GatePlan = field(default_factory=GatePlan)
    deselected: list[Any] = field(default_factory=list)
    pulled: dict[str, int] = field(default_factory=dict)  # gate -> tests pulled back into the run
    results: RunResults = field(default_factory=RunResults)
    marks_seen: bool = False
    sandbox: Any = None  # the running Sandbox, on the process that started it
    shared: Any = None  # fixtures.SharedResults
    app_config: Any = None  # appconfig.AppConfig, validated at configure time
    environment_set: list[str] = field(
        default_factory=list
    )  # variables set for the session, removed at the end
    history_summary: dict | None = None  # set by report.history_hooks before the reports are written
    theories: list = field(default_factory=list)  # ranked diagnosis, set at session finish
    sandbox_info: Any = None
    gate_deadline: dict[str, float] = field(default_factory=dict)
    builtin: set[str] = field(default_factory=set)  # node ids of the built-in suite's tests in this run
    usage_error: str = ""  # a usage error an xdist worker found while planning its collection
    nothing_verified: str = ""  # why the run verified nothing (every built-in check skipped), else ""
    worker_pids: list[int] = field(default_factory=list)  # xdist workers this controller started
    prefetcher: Any = None  # prefetch.Prefetcher started for the built-in suite's targets
    fleet: Any = None  # fleet.Fleet of a run of several targets, built with the diagnosis
    target_gates: set[str] = field(default_factory=set)  # gates decided per target (runs of several targets)


STATE = pytest.StashKey[RunState]()
ITEM_EVIDENCE = pytest.StashKey[Evidence]()
ITEM_BLOCKED = pytest.StashKey[GateResult]()


def state_of(config: pytest.Config) -> RunState:
    return config.stash[STATE]


def find_state(config: pytest.Config) -> RunState | None:
    """The run state, or None before the plugin configured the session (or when it is disabled)."""
    return config.stash.get(STATE, None)


def is_controller(config: pytest.Config) -> bool:
    """This process reports the run: a serial run's only process, or the xdist controller (not a worker).

    xdist gives each worker's config a ``workerinput``; the one answer every hook and module asks.
    """
    return not hasattr(config, "workerinput")


# The states of the sessions the plugin configured in this process, the innermost last (a pytester run in
# the same process configures one inside another). Fixtures read theirs here rather than taking
# ``pytestconfig``: that fixture takes ``request``, and pytest makes a fixture definition for ``request``
# (inspecting a signature) each time a test uses a fixture that takes it -- twice per test, 14,000 times in
# a 200-target run.
_RUNNING: list[tuple[pytest.Config, RunState]] = []


def enter(config: pytest.Config, state: RunState) -> None:
    """``state`` is the running session's (at configure)."""
    _RUNNING.append((config, state))


def leave(config: pytest.Config) -> None:
    """``config``'s session ended (at unconfigure), wherever it is in the stack."""
    _RUNNING[:] = [entry for entry in _RUNNING if entry[0] is not config]


def running() -> RunState:
    """The state of the session running now (the innermost one configured)."""
    if not _RUNNING:
        raise RuntimeError("pytest-reachability has not configured a session in this process")
    return _RUNNING[-1][1]
