"""pytest hooks of pytest-reachability (entry point ``pytest11: reachability``).

Hooks only: the logic lives in ``config`` (settings), ``gating`` (sections, gates, BLOCKED),
``results`` (run model) and ``report`` (outputs).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import gc
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from . import evidence as evidence_mod
from . import fixtures, fleet, watchdog
from . import state as state_mod
from .gating import (
    PASSED,
    SKIPPED,
    GatePlan,
    GateStore,
    GraphError,
    order_items,
)
from .options import add_options, refuse_misread_path_options
from .report import hooks as report_hooks
from .roles import (
    CONTROLLER_INPUT_KEY,
    SANDBOX_INPUT_KEY,
    STORE_INPUT_KEY,
    TARGETS_INPUT_KEY,
    USAGE_ERROR_OUTPUT_KEY,
    ControllerPlugin,
    WorkerPlugin,
)
from .selection import collect_gates_elsewhere
from .state import ITEM_BLOCKED, ITEM_EVIDENCE, STATE, RunState, is_controller, state_of  # noqa: F401 - public via plugin

MARKERS = (
    "section(name, requires=()): the report section of a test; requires= gates every test of that section "
    "needs",
    "gate(name): the test (class, module) is part of gate NAME; dependents run only if all of it passed",
    "requires(*gates, test=NAME): the test runs only if every named gate (and test NAME of the same module, "
    "whose observation it reads) passed; otherwise it is BLOCKED",
)

# A conftest.py setting this names its folder as the built-in suite (the checkout's suites/, the installed
# pytest_reachability.suites, or a copy of either).
BUILTIN_SUITE_FLAG = "REACHABILITY_BUILTIN_SUITE"
NO_TARGET = (
    "no target: the built-in suite needs one; give --target HOST[:PORT] or URL, REACHABILITY_TARGET, "
    'target = "..." in [tool.reachability], or --sandbox SCENARIO'
)


# --------------------------------------------------------------------------- options, configure


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from .diagnosis import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, args: list[str]) -> None:
    """Before any conftest or test is collected: refuse a root folder chosen from a path option's value."""
    refuse_misread_path_options(early_config, args)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised as pytest's own interruption so that the normal teardown runs: the sandbox
    stops, reports are written and the exit status says the run was interrupted (2)."""


SIGTERM_HANDLER = pytest.StashKey[Any]()


def _stop_on_sigterm(config: pytest.Config) -> None:
    """CI runners stop a job with SIGTERM, whose default action skips every teardown."""
    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread may set handlers (pytest run from a thread)
    previous = signal.getsignal(signal.SIGTERM)

    def terminate(signum: int, frame: Any) -> None:
        # A second SIGTERM while tearing down ends the process at once; the watchdog removes what is left.
        signal.signal(signal.SIGTERM, config.stash.get(SIGTERM_HANDLER, signal.SIG_DFL))
        state = config.stash.get(STATE, None)
        # xdist workers would finish their current test before obeying the controller: they end now (their
        # watchdogs remove their folders), so the controller's teardown is not kept waiting.
        for pid in state.worker_pids if state is not None else ():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
        raise Terminated("terminated by SIGTERM")

    signal.signal(signal.SIGTERM, terminate)
    # None from getsignal means a handler not set from Python: the default action is restored then.
    config.stash[SIGTERM_HANDLER] = previous if previous is not None else signal.SIG_DFL


def _restore_sigterm(config: pytest.Config) -> None:
    previous = config.stash.get(SIGTERM_HANDLER, None)
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)
        del config.stash[SIGTERM_HANDLER]


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    from .config import load_settings

    settings = load_settings(config)
    if config.stash.get(_CAPTURE_SWITCHED, False):
        config.option.capture = "sys"  # as the capture manager was started (pytest_load_initial_conftests)
    worker_input = None if is_controller(config) else config.workerinput  # type: ignore[attr-defined]
    if worker_input is None:
        _stop_on_sigterm(config)
    elif worker_input.get(CONTROLLER_INPUT_KEY):
        # A worker ends with its controller instead of finishing its current test first.
        watchdog.end_with_parent(int(worker_input[CONTROLLER_INPUT_KEY]))
    sandbox, sandbox_info = _start_sandbox(settings, worker_input)
    try:
        _configure_run(config, settings, worker_input, sandbox, sandbox_info)
    except BaseException:
        # Nothing else would stop it: pytest_unconfigure finds no run state.
        if sandbox is not None:
            sandbox.stop()
        _restore_sigterm(config)
        raise


def _configure_run(
    config: pytest.Config, settings: Any, worker_input: dict | None, sandbox: Any, sandbox_info: Any
) -> None:
    environment_set: list[str] = []
    if sandbox_info is not None:
        settings, environment_set = _point_at_sandbox(settings, sandbox_info)
    settings = _settle_targets(settings, sandbox_info, worker_input)
    from .appconfig import AppConfigError, load_app_config

    try:
        app_config = load_app_config(settings.tables)
    except AppConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    state = RunState(settings=settings, store=GateStore(), sandbox=sandbox, sandbox_info=sandbox_info)
    state.app_config = app_config
    state.environment_set = environment_set
    if worker_input is not None:
        state.worker = True
        if worker_input.get(STORE_INPUT_KEY):
            state.store = GateStore(worker_input[STORE_INPUT_KEY])
    elif _xdist_active(config):
        state.xdist_controller = True
        state.store_dir = Path(tempfile.mkdtemp(prefix="reachability-gates-"))
        watchdog.guard_directory(state.store_dir)
        state.store = GateStore(state.store_dir)
    state.shared = fixtures.SharedResults(state.store.directory)
    config.stash[STATE] = state
    state_mod.enter(config, state)
    if state.worker:
        config.pluginmanager.register(WorkerPlugin(state, config), "reachability-worker")
    else:
        config.pluginmanager.register(ControllerPlugin(state), "reachability-controller")
    config.pluginmanager.register(fixtures, "reachability-fixtures")
    config.pluginmanager.register(fleet, "reachability-fleet")
    config.pluginmanager.register(report_hooks, "reachability-report-hooks")
    from . import wait_hooks

    config.pluginmanager.register(wait_hooks, "reachability-wait-hooks")


def _point_at_sandbox(settings: Any, info: Any) -> tuple[Any, list[str]]:
    """Settings aimed at the sandbox where the user gave none, and the variables set for its database."""
    settings = settings.with_overrides(
        target=info.target,
        kubeconfig=info.kubeconfig,
        kube_context=info.context,
        namespace=info.namespace,
        resolvers=info.resolvers,
        ca_bundle=info.ca_bundle,
    )
    # The scenario describes its application unless the user describes one: then theirs is the whole
    # application (tables are not mixed: a section the user left out stays unconfigured).
    if not any(name != "cluster" for name in settings.tables):
        settings = dataclasses.replace(settings, tables={**info.application, **settings.tables})
    environment_set = []
    for name, value in info.application_environment().items():
        if name not in os.environ:
            environment_set.append(name)
            os.environ[name] = value
    return settings, environment_set


def _settle_targets(settings: Any, sandbox_info: Any, worker_input: dict | None) -> Any:
    """The run's targets: given, discovered and sharded on the controller; a worker takes the controller's."""
    from .config import SettingsError, TargetSpec
    from .targets import resolve_targets, sandbox_port

    if worker_input is not None and TARGETS_INPUT_KEY in worker_input:
        targets = [TargetSpec.from_dict(data) for data in worker_input[TARGETS_INPUT_KEY]]
    else:
        given = list(settings.targets)
        if settings.discover and settings.sources.get("target") == "override":
            given = []  # the sandbox's own target only stood in for a target nobody gave
        port = None
        if sandbox_info is not None:
            from .config import parse_target

            sandbox_target = parse_target(sandbox_info.target)
            port = sandbox_info.edge_port
            given = [sandbox_port(spec, port, sandbox_target.scheme) for spec in given]
        settings = dataclasses.replace(settings, targets=given)
        try:
            targets = resolve_targets(
                settings, discover=_discovery(settings) if settings.discover else None, port=port
            )
        except SettingsError as exc:
            raise pytest.UsageError(str(exc)) from None
    return dataclasses.replace(settings, targets=targets, target=targets[0].target if targets else None)


def _discovery(settings: Any) -> Any:
    """What ``--discover`` reads: the cluster's public hosts (one line and exit 4 when it cannot)."""

    def read() -> list[Any]:
        from .cluster import Cluster, ClusterError
        from .discover import discover

        namespace_given = settings.sources.get("namespace") in ("cli", "env", "file")
        try:
            view = Cluster.from_settings(settings)
            try:
                return discover(
                    view,
                    namespaces=[settings.namespace] if namespace_given and settings.namespace else None,
                    selector=settings.discover_selector,
                )
            finally:
                view.close()
        except (ClusterError, ValueError) as exc:
            raise pytest.UsageError(f"--discover: {getattr(exc, 'message', None) or exc}") from None

    return read


def _start_sandbox(settings: Any, worker_input: dict | None) -> tuple[Any, Any]:
    """Start ``--sandbox`` once per session: on the controller, whose workers get its addresses."""
    if worker_input is not None:
        data = worker_input.get(SANDBOX_INPUT_KEY)
        if not data:
            return None, None
        from .sandbox import SandboxInfo

        return None, SandboxInfo.from_dict(data)
    if not settings.sandbox:
        return None, None
    from .sandbox import Sandbox, ScenarioError

    try:
        sandbox = Sandbox(settings.sandbox, apiserver=settings.sandbox_apiserver)
        return sandbox, sandbox.start()
    except ScenarioError as exc:
        raise pytest.UsageError(f"--sandbox: {exc}") from None
    except OSError as exc:
        raise pytest.UsageError(f"--sandbox {settings.sandbox}: could not start: {exc}") from None


def _xdist_active(config: pytest.Config) -> bool:
    return bool(getattr(config.option, "numprocesses", None)) or bool(getattr(config.option, "tx", None))


def pytest_unconfigure(config: pytest.Config) -> None:
    state_mod.leave(config)
    # Before pytest's own last collections, which look for objects whose finalizers raise.
    if config.stash.get(_FROZEN, False):
        del config.stash[_FROZEN]
        gc.unfreeze()
    state = config.stash.get(STATE, None)
    if state is None:
        _restore_sigterm(config)
        return
    try:
        if state.sandbox is not None:
            state.sandbox.stop()
            state.sandbox = None
    finally:
        for name in state.environment_set:
            os.environ.pop(name, None)
        if state.store_dir is not None:
            shutil.rmtree(state.store_dir, ignore_errors=True)
            watchdog.release_directory(state.store_dir)
        _restore_sigterm(config)


def pytest_report_header(config: pytest.Config) -> list[str]:
    from .config import describe

    redact = report_hooks.redactor_of(config)  # --mask values too, not only the forms describe() masks
    return [redact(f"reachability: {line}") for line in describe(state_of(config).settings)]


# --------------------------------------------------------------------------- collection


def pytest_deselected(items: list[pytest.Item]) -> None:
    if items:
        state_of(items[0].config).deselected.extend(items)


def _usage_error(session: pytest.Session, message: str) -> None:
    """Stop the run with a usage error (exit 4, one line).

    On an xdist worker an exception here would surface as an internal error of the controller: the
    worker runs nothing and hands the message to the controller, which reports it.
    """
    if is_controller(session.config):
        raise pytest.UsageError(message)
    session.config.workeroutput[USAGE_ERROR_OUTPUT_KEY] = message  # type: ignore[attr-defined]
    session.items[:] = []


def _builtin_suite_dirs(config: pytest.Config) -> list[Path]:
    return [
        Path(plugin.__file__).parent
        for plugin in config.pluginmanager.get_plugins()
        if getattr(plugin, BUILTIN_SUITE_FLAG, False) and getattr(plugin, "__file__", None)
    ]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Pull deselected gates back in, validate the graph, order gates first (runs on every worker)."""
    try:
        _plan_collection(session)
    except pytest.UsageError as error:
        _usage_error(session, str(error))


def _plan_collection(session: pytest.Session) -> None:
    state = state_of(session.config)
    selected = list(session.items)
    selected_set = set(selected)
    known = selected + [i for i in state.deselected if i not in selected_set]
    plan, known = _build_plan(session, known)
    state.plan = plan
    state.marks_seen = bool(plan.gate or plan.requires or any(s != "other" for s in plan.section.values()))
    pulled = _pull_required_gates(state, plan, selected, known)
    if pulled:
        selected += pulled
        _forget_deselection(session, state, set(pulled))
    session.items[:] = order_items(selected, plan)
    if state.worker and state.store.directory is not None:
        state.store.write_plan(sorted(plan.member_of))
        if len(state.settings.targets) > 1:
            state.store.write_scopes(
                {
                    nodeid: scopes[0]
                    for nodeid, scopes in plan.scopes.items()
                    if scopes and scopes[0].startswith("target:")
                }
            )
    state.builtin = _builtin_items(session)
    # Without a target every built-in check would be skipped and the run would look green.
    if state.builtin and state.settings.target is None and not session.config.option.collectonly:
        raise pytest.UsageError(NO_TARGET)


def _builtin_items(session: pytest.Session) -> set[str]:
    """The node ids of the built-in suite's items, decided once per file (a fleet's 7,000 items come from a
    few dozen files)."""
    suite_dirs = _builtin_suite_dirs(session.config)
    in_suite: dict[str, bool] = {}
    for item in session.items:
        path = str(item.path)
        if path not in in_suite:
            in_suite[path] = any(Path(path).is_relative_to(folder) for folder in suite_dirs)
    return {item.nodeid for item in session.items if in_suite[str(item.path)]}


def _build_plan(session: pytest.Session, known: list[pytest.Item]) -> tuple[GatePlan, list[pytest.Item]]:
    """The gate plan of every known item, with the gate tests of other files the selection left out."""
    try:
        plan = GatePlan.build(known)
        # A pulled-in gate may itself require gates from other files: repeat, at most once per gate.
        for _ in range(1 + len(plan.requested_by)):
            missing = set(plan.unknown_gates())
            found = collect_gates_elsewhere(session, missing, {i.nodeid for i in known}) if missing else []
            if not found:
                break
            known += found
            plan = GatePlan.build(known)
        plan.check()
    except GraphError as exc:
        raise pytest.UsageError(str(exc)) from None
    return plan, known


def _pull_required_gates(
    state: RunState, plan: GatePlan, selected: list[pytest.Item], known: list[pytest.Item]
) -> list[pytest.Item]:
    """The gate tests the selected tests need that the selection left out; counted per gate for the report."""
    selected_ids = {i.nodeid for i in selected}
    by_id = {i.nodeid: i for i in known}
    pulled = []
    for gate in sorted(plan.closure(selected_ids)):
        for nodeid in plan.members.get(gate, ()):
            if nodeid not in selected_ids:
                pulled.append(by_id[nodeid])
                shown = plan.label(gate)
                state.pulled[shown] = state.pulled.get(shown, 0) + 1
    return pulled


def _forget_deselection(session: pytest.Session, state: RunState, pulled: set[pytest.Item]) -> None:
    """Pulled-in tests are no longer deselected, for us nor for the terminal's count."""
    state.deselected[:] = [i for i in state.deselected if i not in pulled]
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and "deselected" in reporter.stats:
        reporter.stats["deselected"] = [i for i in reporter.stats["deselected"] if i not in pulled]


def pytest_report_collectionfinish(config: pytest.Config) -> list[str]:
    pulled = state_of(config).pulled
    if not pulled:
        return []
    parts = ", ".join(f"{gate} ({n} test{'s' if n != 1 else ''})" for gate, n in sorted(pulled.items()))
    return [f"reachability: gates pulled back into the run because selected tests require them: {parts}"]


# --------------------------------------------------------------------------- running


PREFETCH_FOR_TARGET = "prefetch_for_target"  # a built-in suite module's reads ahead of its tests
PREFETCH_AFTER_GATES = "PREFETCH_AFTER_GATES"  # gates that work waits for (its tests require them)
_FROZEN = pytest.StashKey[bool]()
_CAPTURE_SWITCHED = pytest.StashKey[bool]()
_exit_registered = False


def _freeze_collected(config: pytest.Config) -> None:
    """Set what the collection made (items, their marks and fixture closures, the plugins' state) aside from
    the garbage collector until the session ends, which it outlives: every full collection during the
    tests then walks what the tests made, not also a fleet's 7,000 items (a quarter million objects).

    At the interpreter's exit, after every atexit handler registered later (those registered earlier, such
    as logging's, run after it), the whole heap is set aside too: the full collections the interpreter
    makes while it shuts down then skip what the run kept (a fleet's 17,000 reports and their evidence: 1.5
    of 14 seconds). The reports are written by then; Python promises no finalizer of an object alive at
    exit."""
    global _exit_registered
    if not config.stash.get(_FROZEN, False):
        config.stash[_FROZEN] = True
        gc.freeze()
    if not _exit_registered:
        _exit_registered = True
        atexit.register(gc.freeze)


def _capture_chosen(args: Sequence[str]) -> bool:
    """Whether the command line (with PYTEST_ADDOPTS and the ini addopts) names a capture method: ``-s``,
    ``--capture=...``, or a cluster of short options holding ``s`` (read generously: a value glued to a
    short option, ``-kfoo_s``, also counts, and then nothing is changed)."""
    for arg in args:
        if arg == "--":
            break
        if arg.startswith("--capture") or (arg.startswith("-") and not arg.startswith("--") and "s" in arg):
            return True
    return False


def _fleet_requested(namespace: Any) -> bool:
    return bool(getattr(namespace, "reachability_discover", None)) or (
        len(getattr(namespace, "reachability_target", None) or []) > 1
    )


@pytest.hookimpl(wrapper=True, tryfirst=True, specname="pytest_load_initial_conftests")
def pytest_load_initial_conftests_of_fleets(early_config: pytest.Config, args: list[str]) -> Any:
    """A fleet run (``--discover`` or several ``--target``) captures output at the ``sys`` level unless the
    command line chose a method: descriptor capture costs two ``dup2`` and an ``fstat`` per phase of every
    test, about a tenth of a 200-target run, and the built-in suite's tests write to no descriptor.
    ``--capture=fd`` keeps descriptor capture (for a user's own tests whose subprocesses print)."""
    namespace = early_config.known_args_namespace
    if (
        getattr(namespace, "capture", None) == "fd"
        and _fleet_requested(namespace)
        and not _capture_chosen(args)
    ):
        namespace.capture = "sys"
        early_config.stash[_CAPTURE_SWITCHED] = True
    return (yield)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> Any:
    """Start the built-in suite's network work for every target at once (``prefetch``), in the order the
    tests will read it; under xdist each worker does (a result one computes, the others read).

    In a fleet run of the built-in suite only, what the collection made is set aside from the garbage
    collector (``_freeze_collected``): a run of one target or of the user's own tests keeps Python's
    collector as it is, since a test may count on a cycle made at import being collected."""
    state = state_of(session.config)
    fleet_run = (
        bool(state.builtin) and len(state.settings.targets) > 1 and not session.config.option.collectonly
    )
    if fleet_run:
        _freeze_collected(session.config)
    _start_prefetch(session)
    try:
        return (yield)
    finally:
        if fleet_run:
            # The tests' reports and evidence live until the session ends too: the full collections that
            # writing the reports sets off skip them (a fleet's 17,000 reports: 0.2 s each).
            gc.freeze()


def _start_prefetch(session: pytest.Session) -> None:
    state = state_of(session.config)
    if session.config.option.collectonly or not state.builtin or state.settings.concurrency < 1:
        return
    from .fixtures import settings_for
    from .prefetch import GateWatch, Prefetcher

    specs: dict[str, Any] = {}
    modules: dict[Any, None] = {}
    gate_keys: dict[str, dict[str, str]] = {}  # target -> gate name -> the gate key its tests require
    for item in session.items:
        if item.nodeid not in state.builtin:
            continue
        modules.setdefault(getattr(item, "module", None))
        spec = fleet.target_spec_of(item) or (state.settings.targets or [None])[0]
        if spec is not None:
            specs.setdefault(spec.key, spec)
            for key in state.plan.requires.get(item.nodeid, ()):
                gate_keys.setdefault(spec.key, {})[state.plan.scoped.get(key, key)] = key
    if not specs:
        return
    from .probes.propagation import authoritative_port

    per_target, after_gates = [], []
    for module in modules:
        read = getattr(module, PREFETCH_FOR_TARGET, None)
        if callable(read):
            gates = tuple(getattr(module, PREFETCH_AFTER_GATES, ()))
            (after_gates.append((read, gates)) if gates else per_target.append(read))
    state.prefetcher = Prefetcher(
        state.shared,
        state.settings.concurrency,
        authoritative_port=authoritative_port(state.sandbox_info),
        per_target=per_target,
        app_config=state.app_config,
        after_gates=after_gates,
        gates=GateWatch(state.plan, state.store, gate_keys, bound=state.settings.gate_timeout),
    )
    namespaces = list(dict.fromkeys(spec.namespace or state.settings.namespace for spec in specs.values()))
    cluster = (
        (state.settings, namespaces) if state.settings.kubeconfig or os.environ.get("KUBECONFIG") else None
    )
    state.prefetcher.start(
        ((spec.target, settings_for(state.settings, spec)) for spec in specs.values()), cluster=cluster
    )


def pytest_sessionfinish(session: pytest.Session) -> None:
    prefetcher = (
        getattr(state_of(session.config), "prefetcher", None) if STATE in session.config.stash else None
    )
    if prefetcher is not None:
        prefetcher.stop()
    evidence_mod.forget_texts()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Decide a dependent before any of its fixtures is set up: no setup cost when blocked."""
    state = state_of(item.config)
    evidence = evidence_mod.Evidence()
    item.stash[ITEM_EVIDENCE] = evidence
    evidence_mod.set_current(evidence)
    timeout = float(getattr(state.settings, "gate_timeout", 300.0) or 0.0) if state.worker else 0.0
    skipped_gate = None
    for gate in state.plan.requires.get(item.nodeid, ()):
        # The wait for one gate is bounded once per worker, not once per dependent.
        deadline = state.gate_deadline.setdefault(gate, time.monotonic() + timeout)
        remaining = max(0.0, deadline - time.monotonic())
        result = state.store.wait_for(gate, state.plan.members.get(gate, ()), remaining, waited=timeout)
        if state.plan.is_test_requirement(gate):
            result = dataclasses.replace(result, gate=state.plan.label(gate), noun="")
        elif state.plan.label(gate) != gate:  # one target's instance of the gate: named as the gate
            result = dataclasses.replace(result, gate=state.plan.label(gate))
        if result.state == SKIPPED:
            skipped_gate = skipped_gate or result
        elif result.state != PASSED:
            # A failed gate outweighs a skipped one: the test is BLOCKED whatever the order of its gates.
            item.stash[ITEM_BLOCKED] = result
            pytest.skip(result.reason)
    if skipped_gate is not None:
        pytest.skip(skipped_gate.reason)
    if item.nodeid in state.builtin:
        _skip_unconfigured(item, state.app_config)


def _skip_unconfigured(item: pytest.Item, app_config: Any) -> None:
    """A built-in test whose section's table is missing is skipped here, with the reason its table's fixture
    gives, before its other fixtures are set up: the same outcome at half the cost (a fleet's 1,300 such
    tests). The fixture still skips when it is reached some other way."""
    from .appconfig import TABLE_FIXTURES

    if app_config is None:
        return
    for name in getattr(item, "fixturenames", ()):
        table = TABLE_FIXTURES.get(name)
        if table is not None and not app_config.configured(table):
            pytest.skip(app_config.not_configured(table))


# What every phase report of a test is labelled with, worked out at its first report: a fleet's 7,000 tests
# make 17,000 reports.
_ITEM_LABELS = pytest.StashKey[dict[str, Any]]()


def _labels(item: pytest.Item) -> dict[str, Any]:
    """The report attributes naming the test's section, gate, suite and target."""
    state = state_of(item.config)
    nodeid = item.nodeid
    labels: dict[str, Any] = {"reachability_section": state.plan.section.get(nodeid, "other")}
    gate = state.plan.gate.get(nodeid)
    if gate:
        labels["reachability_gate"] = gate
    if nodeid in state.builtin:
        labels["reachability_builtin"] = True
    target = fleet.target_of(item)
    if target is not None:
        labels["reachability_target"] = target
    return labels


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Outermost: label the report (section, gate, BLOCKED, evidence), then mask it for every output."""
    report = yield
    labels = item.stash.get(_ITEM_LABELS, None)
    if labels is None:
        labels = item.stash[_ITEM_LABELS] = _labels(item)
    report.__dict__.update(labels)
    blocked = item.stash.get(ITEM_BLOCKED, None)
    if blocked is not None and report.when == "setup" and report.skipped:
        report.reachability_blocked_by = blocked.gate
    evidence = item.stash.get(ITEM_EVIDENCE, None)
    if evidence is not None and evidence.records:
        # Each phase report carries what was recorded since the previous one.
        report.reachability_evidence = list(evidence.records)
        evidence.records.clear()
    if report.when == "teardown":
        evidence_mod.set_current(None)
    report_hooks.finish_report(item, report)
    return report


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> Any:
    if report.skipped and getattr(report, "reachability_blocked_by", None):
        return "blocked", "B", ("BLOCKED", {"yellow": True})
    return None
