"""A run of several targets: the suite instantiated per target, and what is said about the fleet.

Every test that depends on the ``reachability_target`` fixture (through ``target``, ``dns``, ``probe``,
``http``, ``target_service``, ``reachability_settings``...) is parametrized once per target, at session
scope, so pytest groups a target's tests and builds its session fixtures once; a test that reads the
cluster without a target (nodes, workloads) runs once per namespace of the run. Gates are decided per
instance (``gating.item_scopes``): a failed ``api-health`` of one host blocks that host's dependents only.

A run of one target parametrizes nothing: node ids, reports and history stay as they were.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from .gating import NAMESPACE_PARAM, TARGET_PARAM

__all__ = ["NAMESPACE_PARAM", "TARGET_PARAM", "Fleet", "build_fleet", "fleet_lines", "target_of"]
from .report.verdict import verdict
from .results import Health, RunResults, SectionCounts
from .state import find_state


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    state = find_state(metafunc.config)
    if state is None:
        return
    settings = state.settings
    targets = list(settings.targets)
    if len(targets) <= 1:
        return
    names = metafunc.fixturenames
    definition = metafunc.definition
    if TARGET_PARAM not in names and _requires_any(definition, state.target_gates):
        # A test that needs a gate decided per target runs per target too (its section may need api-health
        # without the test itself asking for the target): each instance waits for its own target's gate.
        names.append(TARGET_PARAM)
    if TARGET_PARAM in names:
        gate = definition.get_closest_marker("gate")
        if gate is not None and gate.args and isinstance(gate.args[0], str):
            state.target_gates.add(gate.args[0])
        ids = [spec.test_id for spec in targets]
        if NAMESPACE_PARAM in names:
            # The target's own namespace: its Service, pods and Ingress rules live there.
            values = [(spec, spec.namespace or settings.namespace) for spec in targets]
            metafunc.parametrize([TARGET_PARAM, NAMESPACE_PARAM], values, ids=ids, scope="session")
        else:
            metafunc.parametrize(TARGET_PARAM, targets, ids=ids, scope="session")
    elif NAMESPACE_PARAM in names:
        namespaces = list(dict.fromkeys(spec.namespace or settings.namespace for spec in targets))
        if len(namespaces) > 1:
            ids = [namespace or "default-namespace" for namespace in namespaces]
            metafunc.parametrize(NAMESPACE_PARAM, namespaces, ids=ids, scope="session")


def _requires_any(definition: Any, gates: set[str]) -> bool:
    """Whether a test requires one of ``gates``, by its own marks or its section's ``requires=``."""
    if not gates:
        return False
    for marker in definition.iter_markers():
        if marker.name == "requires":
            names = (
                marker.args[0]
                if len(marker.args) == 1 and isinstance(marker.args[0], list | tuple)
                else marker.args
            )
        elif marker.name == "section":
            names = marker.kwargs.get("requires", ())
            names = (names,) if isinstance(names, str) else names
        else:
            continue
        if any(isinstance(name, str) and name in gates for name in names):
            return True
    return False


def target_spec_of(item: Any) -> Any:
    """The target spec a test verifies in a run of several targets; None for a test run once."""
    params = getattr(getattr(item, "callspec", None), "params", None) or {}
    return params.get(TARGET_PARAM)


def target_of(item: Any) -> str | None:
    """The key of the target a test verifies in a run of several targets; None for a test run once."""
    spec = target_spec_of(item)
    return getattr(spec, "key", None) if spec is not None else None


# --------------------------------------------------------------------------- what is said about the fleet


@dataclass
class TargetVerdict:
    """One target of a fleet run: its own tests, their diagnosis and verdict."""

    key: str
    namespace: str | None
    results: RunResults
    theories: list[Any] = field(default_factory=list)

    @property
    def health(self) -> Health:
        return self.results.health()

    @property
    def sections(self) -> list[SectionCounts]:
        return self.results.sections()

    @property
    def status(self) -> str:
        """PASS, FAIL, BLOCKED or SKIPPED, as a section's status is decided from its counts."""
        return self.results.status()

    @property
    def verdict(self) -> Any:
        return verdict(self.results, self.theories, self.key)

    @property
    def healthy(self) -> bool:
        return self.status == "PASS"


@dataclass
class SharedCause:
    """One cause found for several targets (or one): the rule, its title with the host left out, the
    targets, and a representative theory explaining every one of their failed checks."""

    rule: str
    title: str
    targets: list[str]
    theory: Any


@dataclass
class Fleet:
    targets: list[TargetVerdict]
    causes: list[SharedCause]
    run_once: RunResults  # the checks run once for the whole run (nodes, workloads per namespace)

    @property
    def healthy(self) -> list[TargetVerdict]:
        return [t for t in self.targets if t.healthy]

    @property
    def failing(self) -> list[TargetVerdict]:
        return [t for t in self.targets if not t.healthy]

    def to_dict(self) -> dict[str, Any]:
        failing = len(self.failing)
        return {
            "targets": len(self.targets),
            "healthy": len(self.targets) - failing,
            "failing": failing,
            "causes": [
                {"rule": cause.rule, "title": cause.title, "targets": list(cause.targets)}
                for cause in self.causes
            ],
        }


NO_CAUSE = "no-cause-found"


def generic_title(title: str, hosts: list[str]) -> str:
    """A theory's title with the target's own names replaced by ``<host>``: equal for every target
    failing for one shared reason (a dead LoadBalancer, an expired certificate, a wildcard record)."""
    for host in sorted(hosts, key=len, reverse=True):
        if host:
            title = re.sub(re.escape(host), "<host>", title, flags=re.IGNORECASE)
    return title


def group_causes(verdicts: list[TargetVerdict], hosts: dict[str, list[str]]) -> list[SharedCause]:
    """The top theory of every failing target, grouped by (rule, title without the host); the causes
    shared by most targets first. A failing target without a theory joins the ``no-cause-found`` group."""
    groups: dict[tuple[str, str], SharedCause] = {}
    for target in verdicts:
        if target.healthy:
            continue
        top = target.theories[0] if target.theories else None
        if top is None:
            key = (NO_CAUSE, "no rule found a cause: see the target's failed checks")
        else:
            key = (top.rule, generic_title(top.title, hosts.get(target.key, [])))
        cause = groups.get(key)
        if cause is None:
            theory = copy.deepcopy(top) if top is not None else None
            groups[key] = SharedCause(key[0], key[1], [target.key], theory)
            continue
        cause.targets.append(target.key)
        if top is not None and cause.theory is not None:
            cause.theory.explains = list(dict.fromkeys([*cause.theory.explains, *top.explains]))
    causes = sorted(
        groups.values(),
        key=lambda c: (c.rule == NO_CAUSE, -len(c.targets), -(getattr(c.theory, "confidence", 0) or 0)),
    )
    for cause in causes:
        if cause.theory is not None and len(cause.targets) > 1:
            cause.theory.title = f"{len(cause.targets)} targets: {cause.title}"
    return causes


def build_fleet(
    results: RunResults,
    settings: Any,
    diagnose: Callable[[RunResults, Any], list[Any]],
) -> Fleet:
    """Each target's verdict, diagnosed on its own tests plus the checks run once (nodes, workloads),
    with the settings of that target; then the causes grouped across targets."""
    from .fixtures import settings_for

    specs = {spec.key: spec for spec in settings.targets}
    parts = results.by_target()
    run_once = parts.get(None) or results.subset(None)
    verdicts = []
    for key in [*specs, *(k for k in parts if k is not None and k not in specs)]:
        own = parts.get(key)
        if own is None:
            continue
        spec = specs.get(key)
        target_settings = settings_for(settings, spec) if spec is not None else settings
        theories: list[Any] = []
        if any(t.outcome in ("failed", "error", "blocked") for t in own.tests.values()):
            both = RunResults()
            both.tests = {**run_once.tests, **own.tests}
            theories = diagnose(both, target_settings)
        namespace = target_settings.namespace
        verdicts.append(TargetVerdict(key, namespace, own, theories))
    hosts = {key: [spec.target.host, spec.test_id, spec.target.display] for key, spec in specs.items()}
    return Fleet(verdicts, group_causes(verdicts, hosts), run_once)


def fleet_lines(fleet: Fleet, limit: int = 20) -> list[str]:
    """The fleet summary of the terminal: counts, causes with their hosts, then the failing targets."""
    failing = fleet.failing  # each target's status is decided from its tests: once here
    lines = [
        f"{len(fleet.targets)} targets: {len(fleet.targets) - len(failing)} healthy, {len(failing)} failing"
        + (f" ({len(fleet.causes)} causes)" if fleet.causes else "")
    ]
    for index, cause in enumerate(fleet.causes[:limit], 1):
        shown = ", ".join(cause.targets[:6]) + (
            f", … (+{len(cause.targets) - 6})" if len(cause.targets) > 6 else ""
        )
        lines.append(f"  {index}. {cause.title} [{cause.rule}] — {len(cause.targets)}: {shown}")
    if len(fleet.causes) > limit:
        lines.append(f"  … {len(fleet.causes) - limit} more causes in the reports")
    for target in failing[:limit]:
        health = target.health.score
        top = target.theories[0].title if target.theories else "no cause found"
        failing = [row.name for row in target.sections if row.status in ("FAIL", "BLOCKED")]
        lines.append(
            f"  {target.status:<7} {target.key}  health {health if health is not None else 'n/a'}%"
            f"  sections {', '.join(failing) or '-'}  cause: {top}"
        )
    if len(failing) > limit:
        lines.append(f"  … {len(failing) - limit} more failing targets in the reports")
    return lines
