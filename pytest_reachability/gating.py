"""Sections, gates and requirements: the dependency graph, its ordering and the BLOCKED decision.

A *gate* is every test carrying ``gate(name)`` (on the function, class or module). A test that
``requires`` a gate -- directly or through its section's requirements -- runs only if every test of
the gate passed. If one failed or errored the dependent is BLOCKED (pytest outcome ``skipped``); if
the gate was skipped the dependent is skipped too, saying why.

``requires(test="test_name")`` names one test of the same module instead: a check that reads an
earlier test's observation (a completed TLS handshake, an HTTP response, a resolved address) is
BLOCKED when that test failed, rather than passing on evidence nobody observed. Internally the named
test is a gate of its own, keyed ``<module>::<name>`` and shown as ``<name>``.

Under pytest-xdist the gate may run on another worker, so member outcomes are written to a
directory shared by the whole session (:class:`GateStore`) and a dependent waits for them, up to a
bounded time, before its fixtures are set up.

This module does not import pytest: items are duck-typed (``nodeid``, ``iter_markers``,
``get_closest_marker``) so the graph logic is testable on plain objects.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import write_atomically

OTHER_SECTION = "other"

# Outcomes a gate member can have, as recorded in the store.
PASSED, FAILED, ERROR, SKIPPED, BLOCKED = "passed", "failed", "error", "skipped", "blocked"


class GraphError(ValueError):
    """A gate graph a user must fix: unknown gate names, cycles, malformed markers (one line)."""


def _marker_names(marker: Any, what: str) -> tuple[str, ...]:
    names = marker.args
    if len(names) == 1 and isinstance(names[0], (list, tuple, set)):
        names = tuple(names[0])
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise GraphError(f"@pytest.mark.{what} takes gate names as strings, got {name!r}")
    return tuple(names)


def _required_tests(marker: Any, nodeid: str) -> tuple[str, ...]:
    """The test names of ``requires(test=...)`` (a name or a list of names)."""
    value = marker.kwargs.get("test", ())
    names = (value,) if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and n.strip() for n in names):
        raise GraphError(
            "@pytest.mark.requires(test=...) takes test names of the same module, e.g. "
            'test="test_handshake", '
            f"got {value!r} on {nodeid}"
        )
    unknown = set(marker.kwargs) - {"test"}
    if unknown:
        raise GraphError(
            f"@pytest.mark.requires takes gate names and test=..., not {', '.join(sorted(unknown))}= on "
            f"{nodeid}"
        )
    return tuple(n.strip() for n in names)


def test_key(module: str, name: str) -> str:
    """The gate key of test ``name`` of ``module`` (a node id without parameters)."""
    return f"{module}::{name}"


# Parameters by which a run of several targets instantiates the suite (fixtures.reachability_target and
# fixtures.reachability_namespace, parametrized by the fleet plugin).
TARGET_PARAM, NAMESPACE_PARAM = "reachability_target", "reachability_namespace"


def item_scopes(item: Any) -> tuple[str, ...]:
    """The instances a test belongs to in a run of several targets, most specific first: its target and
    its namespace; () for a test run once (every test of a run of one target)."""
    params = getattr(getattr(item, "callspec", None), "params", None) or {}
    scopes = []
    if TARGET_PARAM in params:
        spec = params[TARGET_PARAM]
        scopes.append(f"target:{getattr(spec, 'key', spec)}")
    if NAMESPACE_PARAM in params:
        scopes.append(f"namespace:{params[NAMESPACE_PARAM]}")
    return tuple(scopes)


def scoped_key(gate: str, scope: str) -> str:
    """The key of one target's (or namespace's) instance of a gate: ``api-health@target:https://a``."""
    return f"{gate}@{scope}"


def _split_nodeid(nodeid: str) -> tuple[str, str]:
    """``path.py::Class::test[param]`` -> (``path.py``, ``Class::test``)."""
    module, _, rest = nodeid.partition("::")
    return module, rest.split("[", 1)[0]


def _single_name(marker: Any, what: str, example: str, nodeid: str) -> str | None:
    if marker is None:
        return None
    if len(marker.args) != 1 or not isinstance(marker.args[0], str) or not marker.args[0].strip():
        raise GraphError(f"@pytest.mark.{what} takes one name, e.g. {example}, on {nodeid}")
    return marker.args[0]


def _scan_markers(item: Any, section_requires: dict[str, list[str]]) -> tuple[Any, Any, Any, list[Any]]:
    """(item, closest section mark, closest gate mark, every requires mark); gathers sections' requires=."""
    section_mark = gate_mark = None
    requires_marks: list[Any] = []
    for marker in item.iter_markers():
        if marker.name == "section":
            section_mark = section_mark or marker
            _gather_section_requires(marker, item.nodeid, section_requires)
        elif marker.name == "gate":
            gate_mark = gate_mark or marker
        elif marker.name == "requires":
            requires_marks.append(marker)
    return item, section_mark, gate_mark, requires_marks


def _gather_section_requires(marker: Any, nodeid: str, section_requires: dict[str, list[str]]) -> None:
    required = marker.kwargs.get("requires", ())
    if isinstance(required, str):
        required = (required,)
    if not isinstance(required, (list, tuple, set, frozenset)) or not all(
        isinstance(g, str) and g.strip() for g in required
    ):
        raise GraphError(
            f'@pytest.mark.section(..., requires=...) takes gate names, e.g. requires=["api-health"], '
            f"got {required!r} on {nodeid}"
        )
    if required and marker.args:
        bucket = section_requires.setdefault(marker.args[0], [])
        bucket.extend(g for g in required if g not in bucket)


@dataclass
class GatePlan:
    """The dependency graph of one session's items (selected and deselected)."""

    section: dict[str, str] = field(default_factory=dict)  # nodeid -> section name
    gate: dict[str, str] = field(default_factory=dict)  # nodeid -> gate it belongs to
    members: dict[str, list[str]] = field(default_factory=dict)  # gate -> member nodeids
    requires: dict[str, tuple[str, ...]] = field(default_factory=dict)  # nodeid -> required gates
    section_requires: dict[str, tuple[str, ...]] = field(default_factory=dict)
    requested_by: dict[str, str] = field(default_factory=dict)  # gate -> a nodeid that requires it
    labels: dict[str, str] = field(default_factory=dict)  # gate key -> name shown, for required tests
    member_of: dict[str, tuple[str, ...]] = field(default_factory=dict)  # nodeid -> every gate key it decides
    # nodeid -> the instances it belongs to, most specific first: ("target:<key>", "namespace:<ns>")
    scopes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    scoped: dict[str, str] = field(default_factory=dict)  # scoped gate key -> the gate's name

    @classmethod
    def build(cls, items: Iterable[Any]) -> GatePlan:
        plan = cls()
        section_requires: dict[str, list[str]] = {}
        # One walk over each item's markers (closest first): section, gate, requires.
        scanned = [_scan_markers(item, section_requires) for item in items]
        plan.section_requires = {name: tuple(gates) for name, gates in section_requires.items()}
        by_module: dict[str, dict[str, list[str]]] = {}  # module -> test name (no parameters) -> nodeids
        for item, *_ in scanned:
            module, name = _split_nodeid(item.nodeid)
            by_module.setdefault(module, {}).setdefault(name, []).append(item.nodeid)
            plan.scopes[item.nodeid] = item_scopes(item)
        wanted: dict[str, list[str]] = {}  # nodeid -> gate names required, before scoping
        for item, section_mark, gate_mark, requires_marks in scanned:
            wanted[item.nodeid] = plan._place(item.nodeid, section_mark, gate_mark, requires_marks, by_module)
        for nodeid, names in wanted.items():
            plan._require(nodeid, names)
        for gate, nodeids in plan.members.items():
            for member in nodeids:
                plan.member_of[member] = (*plan.member_of.get(member, ()), gate)
        return plan

    def _place(
        self,
        nodeid: str,
        section_mark: Any,
        gate_mark: Any,
        requires_marks: list[Any],
        by_module: dict[str, dict[str, list[str]]],
    ) -> list[str]:
        """Record one test's section, the gate it belongs to and the tests it requires; return the gate
        names it requires (scoped once every gate is known)."""
        section = _single_name(section_mark, "section", 'section("database")', nodeid)
        self.section[nodeid] = section or OTHER_SECTION
        own_gate = _single_name(gate_mark, "gate", 'gate("api-health")', nodeid)
        scopes = self.scopes.get(nodeid, ())
        if own_gate is not None:
            key = scoped_key(own_gate, scopes[0]) if scopes else own_gate
            if scopes:
                self.scoped[key] = own_gate
            self.gate[nodeid] = own_gate
            self.members.setdefault(key, []).append(nodeid)
        required: list[str] = []
        for marker in requires_marks:
            required.extend(g for g in _marker_names(marker, "requires") if g not in required)
            for name in _required_tests(marker, nodeid):
                key = self._require_test(nodeid, name, by_module)
                if key not in required:
                    required.append(key)
        required.extend(g for g in self.section_requires.get(section or "", ()) if g not in required)
        # A gate's own tests never wait for the gate itself (a section may require its own gate).
        return [g for g in required if g != own_gate]

    def _require(self, nodeid: str, names: list[str]) -> None:
        """A test's required gates, each the instance of its own target or namespace when there is one."""
        required: list[str] = []
        for name in names:
            own = [scoped_key(name, scope) for scope in self.scopes.get(nodeid, ())]
            keys = [key for key in own if key in self.members][:1]
            if not keys and name not in self.members:
                # A test run once needing a gate decided per target: every instance must pass.
                keys = [key for key, gate in self.scoped.items() if gate == name]
            for key in keys or [name]:
                if key not in required:
                    required.append(key)
        if required:
            self.requires[nodeid] = tuple(required)
            for g in required:
                self.requested_by.setdefault(g, nodeid)

    def _require_test(self, nodeid: str, name: str, by_module: dict[str, dict[str, list[str]]]) -> str:
        """The gate key of test ``name`` required by ``nodeid``; its members are that test's node ids.

        ``name`` is a function of the module (``test_handshake``), a method of the dependent's class or
        ``Class::test_method``; every parametrization of it is a member -- of the dependent's own target
        (or namespace) when the run has several.
        """
        module, own = _split_nodeid(nodeid)
        tests = by_module.get(module, {})
        own_class = own.rpartition("::")[0]
        resolved = (
            name
            if name in tests
            else f"{own_class}::{name}"
            if own_class and f"{own_class}::{name}" in tests
            else name
        )
        if resolved == own:
            raise GraphError(f"{nodeid} requires itself (requires(test={name!r}))")
        scopes = self.scopes.get(nodeid, ())
        key = test_key(module, resolved)
        if scopes:
            key = scoped_key(key, scopes[0])
        self.labels[key] = resolved
        if key not in self.members and resolved in tests:
            members = list(tests[resolved])
            if scopes:
                members = [n for n in members if self.scopes.get(n, (None,))[0] == scopes[0]]
            self.members[key] = members
        return key

    def label(self, gate: str) -> str:
        """The name a reason shows for a gate key: the gate's name, or the required test's name (the
        target is in the dependent's node id already)."""
        return self.labels.get(gate) or self.scoped.get(gate, gate)

    def is_test_requirement(self, gate: str) -> bool:
        return gate in self.labels

    def unknown_gates(self) -> dict[str, str]:
        """Required gate names that no collected test declares -> a nodeid requiring it."""
        return {g: nodeid for g, nodeid in self.requested_by.items() if g not in self.members}

    def gate_requires(self, gate: str) -> tuple[str, ...]:
        """Gates that the tests of ``gate`` require."""
        out: list[str] = []
        for nodeid in self.members.get(gate, ()):
            out.extend(g for g in self.requires.get(nodeid, ()) if g not in out)
        return tuple(out)

    def check(self) -> None:
        unknown = self.unknown_gates()
        if unknown:
            gate, nodeid = sorted(unknown.items())[0]
            if self.is_test_requirement(gate):
                module = gate.partition("::")[0]
                raise GraphError(
                    f"unknown test {self.label(gate)!r} required by {nodeid} (no such test in {module})"
                )
            known = ", ".join(sorted(g for g in self.members if not self.is_test_requirement(g))) or "none"
            raise GraphError(f"unknown gate {gate!r} required by {nodeid} (known gates: {known})")
        cycle = self.find_cycle()
        if cycle:
            raise GraphError("gate dependency cycle: " + " -> ".join(cycle))

    def find_cycle(self) -> list[str] | None:
        state: dict[str, int] = {}  # 1 = on the stack, 2 = done
        stack: list[str] = []

        def visit(gate: str) -> list[str] | None:
            state[gate] = 1
            stack.append(gate)
            for nxt in self.gate_requires(gate):
                if state.get(nxt) == 1:
                    return stack[stack.index(nxt) :] + [nxt]
                if nxt not in state:
                    found = visit(nxt)
                    if found:
                        return found
            stack.pop()
            state[gate] = 2
            return None

        for gate in sorted(self.members):
            if gate not in state:
                found = visit(gate)
                if found:
                    return [self.label(g) for g in found]
        return None

    def closure(self, nodeids: Iterable[str]) -> set[str]:
        """Every gate needed, directly or through other gates, by ``nodeids``."""
        needed: set[str] = set()
        todo = [g for n in nodeids for g in self.requires.get(n, ())]
        while todo:
            gate = todo.pop()
            if gate in needed:
                continue
            needed.add(gate)
            todo.extend(self.gate_requires(gate))
        return needed


def order_items(items: Sequence[Any], plan: GatePlan) -> list[Any]:
    """Move each gate's tests just before the first test that needs them; keep every other order.

    A stable topological order: the minimum movement that lets a dependent find its gate decided.
    """
    by_id = {item.nodeid: item for item in items}
    emitted: set[str] = set()
    out: list[Any] = []

    def emit(nodeid: str) -> None:
        if nodeid in emitted:
            return
        emitted.add(nodeid)
        for gate in plan.requires.get(nodeid, ()):
            for member in plan.members.get(gate, ()):
                if member in by_id:
                    emit(member)
        out.append(by_id[nodeid])

    for item in items:
        emit(item.nodeid)
    return out


@dataclass(frozen=True)
class GateResult:
    """What a dependent learns about one gate."""

    gate: str
    state: str  # PASSED | FAILED | SKIPPED | "unknown"
    message: str = ""
    noun: str = "gate "  # how a skip names it: "gate api-health skipped", "test_handshake skipped"

    @property
    def reason(self) -> str:
        if self.state == FAILED:
            return f"blocked by {self.gate}: {self.message}"
        if self.state == SKIPPED:
            return f"{self.noun}{self.gate} skipped: {self.message}"
        if self.state == "unknown":
            return f"blocked by {self.gate}: {self.message}"
        return ""


def aggregate(gate: str, expected: Sequence[str], recorded: dict[str, tuple[str, str]]) -> GateResult:
    """A gate passes only if every one of its tests passed; the first failure names the cause."""
    missing = [n for n in expected if n not in recorded]
    for nodeid in expected:
        outcome, message = recorded.get(nodeid, ("", ""))
        if outcome in (FAILED, ERROR, BLOCKED):
            return GateResult(gate, FAILED, message or f"{nodeid} {outcome}")
    if missing:
        return GateResult(
            gate, "unknown", f"result unknown ({len(missing)} of {len(expected)} gate tests not finished)"
        )
    for nodeid in expected:
        outcome, message = recorded[nodeid]
        if outcome == SKIPPED:
            return GateResult(gate, SKIPPED, message)
    return GateResult(gate, PASSED)


class GateStore:
    """Outcomes of gate tests, shared by every process of one session through a directory.

    One small JSON file per gate test, written atomically (temp file + rename) so a reader never
    sees half a record. Without a directory (a serial run) the store lives in memory only.
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory) if directory is not None else None
        self._memory: dict[str, dict[str, tuple[str, str]]] = {}
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha1(text.encode()).hexdigest()[:20]

    def record(self, gate: str, nodeid: str, outcome: str, message: str) -> None:
        """Record one gate test's outcome; its first failure, error, block or skip stays (a teardown
        error after a failed call does not replace the cause)."""
        previous = self._memory.get(gate, {}).get(nodeid)
        if previous is not None and previous[0] != PASSED:
            return
        self._memory.setdefault(gate, {})[nodeid] = (outcome, message)
        if self.directory is None:
            return
        folder = self.directory / self._key(gate)
        folder.mkdir(exist_ok=True)
        payload = json.dumps({"nodeid": nodeid, "outcome": outcome, "message": message})
        write_atomically(folder / f"{self._key(nodeid)}.json", payload)

    def results(self, gate: str) -> dict[str, tuple[str, str]]:
        found = dict(self._memory.get(gate, {}))
        if self.directory is not None:
            folder = self.directory / self._key(gate)
            if folder.is_dir():
                for path in folder.glob("*.json"):
                    try:
                        data = json.loads(path.read_text())
                    except (OSError, ValueError):
                        continue  # vanished or being replaced; the next poll sees it
                    found[data["nodeid"]] = (data["outcome"], data["message"])
        return found

    def write_plan(self, gate_nodeids: Sequence[str]) -> None:
        """Publish which tests are gate tests, for the xdist controller's scheduling."""
        if self.directory is None:
            return
        write_atomically(self.directory / "plan.json", json.dumps(list(gate_nodeids)))

    def read_plan(self) -> list[str]:
        if self.directory is None:
            return []
        try:
            return json.loads((self.directory / "plan.json").read_text())
        except (OSError, ValueError):
            return []

    def wait_for(
        self, gate: str, expected: Sequence[str], timeout: float, *, waited: float | None = None
    ) -> GateResult:
        """The gate's result, waiting at most ``timeout`` seconds for tests run elsewhere.

        ``waited`` is the whole bound to name in the reason when the result stays unknown.
        """
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            result = aggregate(gate, expected, self.results(gate))
            # A failure is final as soon as it is seen: no need to wait for the other members.
            if result.state != "unknown" or time.monotonic() >= deadline:
                break
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 1.5, 0.25)
        bound = timeout if waited is None else waited
        if result.state == "unknown" and bound > 0:
            detail = result.message.split("(")[-1].rstrip(")")
            return GateResult(gate, "unknown", f"result unknown after waiting {bound:g}s ({detail})")
        return result


def first_line(text: str, limit: int = 300) -> str:
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return ""
