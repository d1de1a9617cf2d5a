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


SCHEDULERS: dict[str, type[GatesFirst]] = {
    "loadscope": GatesFirstLoadScope,
    "loadfile": GatesFirstLoadFile,
    "loadgroup": GatesFirstLoadGroup,
}


def make_scheduler(dist: str, config: Any, log: Any, gate_tests: GateTests) -> GatesFirst | None:
    """The gates-first scheduler for ``--dist dist``, or None to keep xdist's own."""
    scheduler = SCHEDULERS.get(dist)
    return scheduler(config, log, gate_tests=gate_tests) if scheduler is not None else None
