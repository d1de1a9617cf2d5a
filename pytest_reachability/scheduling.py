"""pytest-xdist schedulers that hand out the work units holding gate tests first.

``loadscope``, ``loadfile`` and ``loadgroup`` queue their work units by size (or collection order), so a
small gate file could be sent last while every worker waits on its dependents. These subclasses move the
units holding a gate test to the front of the queue before each assignment. ``load`` and ``worksteal``
follow the collection order, which already has gates first, and keep xdist's own scheduler.

Nothing here needs pytest's run: tests drive a scheduler with a stand-in node, as xdist's own tests do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from xdist.scheduler import LoadFileScheduling, LoadGroupScheduling, LoadScopeScheduling

GateTests = Callable[[], Iterable[str]]  # node ids of every gate test of the session, known after collection
Scopes = Callable[[], dict[str, str]]  # node id -> the target it verifies, for tests of one target


class GatesFirst:
    """Mixin for xdist's scope schedulers: work units holding a gate test go to workers first."""

    workqueue: Any  # OrderedDict scope -> {nodeid: done}, set by the scheduler

    def __init__(self, config: Any, log: Any = None, *, gate_tests: GateTests) -> None:
        super().__init__(config, log)  # type: ignore[call-arg]
        self._gate_tests = gate_tests

    def gates_first(self) -> None:
        """Move every queued work unit that holds a gate test to the front, keeping their order."""
        gate_ids = set(self._gate_tests())
        if not gate_ids:
            return
        first = [scope for scope, unit in self.workqueue.items() if gate_ids.intersection(unit)]
        for scope in reversed(first):
            self.workqueue.move_to_end(scope, last=False)

    def _assign_work_unit(self, node: Any) -> None:
        self.gates_first()
        super()._assign_work_unit(node)  # type: ignore[misc]


class GatesFirstLoadScope(GatesFirst, LoadScopeScheduling):
    """``--dist loadscope`` with gate scopes first."""


class GatesFirstLoadFile(GatesFirst, LoadFileScheduling):
    """``--dist loadfile`` with gate files first."""


class GatesFirstLoadGroup(GatesFirst, LoadGroupScheduling):
    """``--dist loadgroup`` with gate groups first."""


class TargetsTogether(GatesFirstLoadScope):
    """``--dist load``/``loadscope`` in a run of several targets: each target's tests are one work unit, so
    one worker builds that target's session fixtures (DNS, probes, cluster reads) once and decides its gates
    itself; tests not about one target keep their module as unit."""

    def __init__(self, config: Any, log: Any = None, *, gate_tests: GateTests, scopes: Scopes) -> None:
        super().__init__(config, log, gate_tests=gate_tests)
        self._read_scopes = scopes
        self._scopes: dict[str, str] | None = None

    def gates_first(self) -> None:
        """Gates first, and first of all the units of tests run once (cluster access per namespace): every
        target's checks wait for those, so a worker must not queue them behind a target of its own."""
        super().gates_first()
        gate_ids = set(self._gate_tests())
        shared = [
            scope
            for scope, unit in self.workqueue.items()
            if not str(scope).startswith("target:") and gate_ids.intersection(unit)
        ]
        for scope in reversed(shared):
            self.workqueue.move_to_end(scope, last=False)

    def _split_scope(self, nodeid: str) -> str:
        if self._scopes is None:
            self._scopes = dict(self._read_scopes())
        return self._scopes.get(nodeid) or super()._split_scope(nodeid)


SCHEDULERS: dict[str, type[GatesFirst]] = {
    "loadscope": GatesFirstLoadScope,
    "loadfile": GatesFirstLoadFile,
    "loadgroup": GatesFirstLoadGroup,
}


def make_scheduler(
    dist: str, config: Any, log: Any, gate_tests: GateTests, scopes: Scopes | None = None
) -> GatesFirst | None:
    """The gates-first scheduler for ``--dist dist``, or None to keep xdist's own; with ``scopes`` (a run of
    several targets) ``load`` and ``loadscope`` keep each target's tests together."""
    if scopes is not None and dist in ("load", "loadscope"):
        return TargetsTogether(config, log, gate_tests=gate_tests, scopes=scopes)
    scheduler = SCHEDULERS.get(dist)
    return scheduler(config, log, gate_tests=gate_tests) if scheduler is not None else None
