"""Reading health-check bodies in the shapes services really answer, and naming the failing dependency.

Three common shapes and their mixtures are understood:

* IETF health+json (``application/health+json``, draft-inadarei-api-health-check): ``{"status": "pass" |
  "warn" | "fail", "checks": {"postgres:responseTime": [{"status": "fail", "output": "..."}]}}``;
* Spring Boot actuator: ``{"status": "UP" | "DOWN" | "OUT_OF_SERVICE", "components": {"db": {"status":
  "DOWN", "details": {"error": "..."}}}}`` (``details`` instead of ``components`` before Boot 2.2);
* flat or nested mappings: ``{"database": "down", "redis": "ok"}``, ``{"status": "ok", "dependencies":
  {"database": {"status": "error", "error": "..."}}}``, ``{"healthy": false}``.

Example::

    reading = read_health('{"status": "DOWN", "components": {"db": {"status": "DOWN"}}}')
    reading.healthy            # False
    reading.failing[0].name    # 'db'
    describe_problem(reading)  # "status 'DOWN'; failing: db (DOWN)"

A body that is not JSON (or JSON without any status) says nothing either way: ``healthy`` is None.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import jsontext

HEALTHY_WORDS = frozenset(
    {
        "ok",
        "healthy",
        "up",
        "pass",
        "passed",
        "passing",
        "green",
        "ready",
        "alive",
        "available",
        "success",
        "succeeded",
        "online",
        "serving",
        "running",
        "good",
        "true",
    }
)
UNHEALTHY_WORDS = frozenset(
    {
        "down",
        "fail",
        "failed",
        "failing",
        "failure",
        "error",
        "errored",
        "unhealthy",
        "red",
        "critical",
        "crit",
        "out_of_service",
        "outofservice",
        "unavailable",
        "offline",
        "not_serving",
        "dead",
        "false",
        "ko",
        "bad",
        "unreachable",
        "timeout",
        "timed_out",
    }
)
DEGRADED_WORDS = frozenset({"warn", "warning", "degraded", "yellow", "partial", "partially_available"})
# Keys that hold an overall or a component status.
STATUS_KEYS = ("status", "state", "health", "healthy", "ok", "up")
# Keys under which components are listed.
COMPONENT_KEYS = (
    "checks",
    "components",
    "details",
    "dependencies",
    "services",
    "subsystems",
    "backends",
    "downstream",
    "resources",
)
# Keys whose text explains a failing component.
DETAIL_KEYS = ("output", "error", "message", "reason", "detail", "description", "exception", "cause")
MAX_DEPTH = 6
MAX_COMPONENTS = 64


@dataclass
class Dependency:
    """One component of a health body: its name (path joined with '.'), status word and explanation."""

    name: str
    status: str
    verdict: str  # "healthy", "unhealthy" or "degraded"
    detail: str = ""

    def describe(self) -> str:
        return f"{self.name} ({self.status}{': ' + self.detail if self.detail else ''})"


@dataclass
class HealthReading:
    """What a health body says: the overall status, every component and which of them fail."""

    shape: str  # "health+json", "spring-actuator", "nested", "flat", "not-json", "no-status"
    status: str | None = None  # the overall status as written
    healthy: bool | None = None  # None when the body says nothing either way
    dependencies: list[Dependency] = field(default_factory=list)

    @property
    def failing(self) -> list[Dependency]:
        return [d for d in self.dependencies if d.verdict == "unhealthy"]

    @property
    def degraded(self) -> list[Dependency]:
        return [d for d in self.dependencies if d.verdict == "degraded"]

    def to_evidence(self) -> dict[str, Any]:
        return {
            "shape": self.shape,
            "status": self.status,
            "healthy": self.healthy,
            "failing": [{"name": d.name, "status": d.status, "detail": d.detail} for d in self.failing],
            "degraded": [{"name": d.name, "status": d.status, "detail": d.detail} for d in self.degraded],
            "components": [d.name for d in self.dependencies],
        }


def verdict_of(value: Any) -> str | None:
    """``healthy``, ``unhealthy`` or ``degraded`` for a status value (word or boolean), None if unknown."""
    if value is True:
        return "healthy"
    if value is False:
        return "unhealthy"
    if not isinstance(value, str):
        return None
    word = value.strip().lower().replace("-", "_").replace(" ", "_")
    if word in HEALTHY_WORDS:
        return "healthy"
    if word in UNHEALTHY_WORDS:
        return "unhealthy"
    if word in DEGRADED_WORDS:
        return "degraded"
    return None


def read_health(body: str | bytes | Any) -> HealthReading:
    """Read a health body (text, bytes or already-parsed JSON) into a :class:`HealthReading`."""
    document = body
    if isinstance(body, (bytes, bytearray)):
        body = bytes(body).decode("utf-8", "replace")
    if isinstance(body, str):
        text = body.strip()
        if text.endswith("...") and not text.endswith("}") and not text.endswith("]"):
            text = text[:-3]  # an excerpt cut by the probe: try it whole first, then as cut
        try:
            document = jsontext.loads(text)
        except ValueError:
            return HealthReading(shape="not-json")
    if not isinstance(document, dict):
        verdict = verdict_of(document)
        if verdict is None:
            return HealthReading(shape="no-status")
        return HealthReading(shape="flat", status=str(document), healthy=verdict == "healthy")
    shape = _shape(document)
    status_value = next((document[key] for key in STATUS_KEYS if key in document), None)
    overall = verdict_of(status_value)
    dependencies: list[Dependency] = []
    _collect(document, "", dependencies, 0, top=True)
    reading = HealthReading(
        shape=shape,
        status=None if status_value is None else str(status_value),
        dependencies=dependencies[:MAX_COMPONENTS],
    )
    if overall == "unhealthy" or reading.failing:
        reading.healthy = False
    elif overall == "degraded" or reading.degraded:
        reading.healthy = False
    elif overall == "healthy" or dependencies:
        reading.healthy = True
    else:
        reading.shape = "no-status" if not dependencies else reading.shape
    return reading


def describe_problem(reading: HealthReading) -> str | None:
    """One line saying why the body does not report healthy, or None when it does (or says nothing)."""
    if reading.healthy is not False:
        return None
    parts = []
    if reading.status is not None:
        parts.append(f"status {reading.status!r}")
    if reading.failing:
        parts.append("failing: " + ", ".join(d.describe() for d in reading.failing[:5]))
    if reading.degraded:
        parts.append("degraded: " + ", ".join(d.describe() for d in reading.degraded[:5]))
    return "; ".join(parts) or "the body reports unhealthy"


def _shape(document: dict[str, Any]) -> str:
    if isinstance(document.get("checks"), dict) and isinstance(document.get("status"), str):
        return "health+json"
    if isinstance(document.get("components"), dict) or (
        isinstance(document.get("details"), dict)
        and isinstance(document.get("status"), str)
        and str(document["status"]).isupper()
    ):
        return "spring-actuator"
    if any(isinstance(value, dict) for value in document.values()):
        return "nested"
    return "flat"


def _detail(mapping: dict[str, Any]) -> str:
    for key in DETAIL_KEYS:
        value = mapping.get(key)
        if isinstance(value, str) and value.strip():
            return " ".join(value.split())[:160]
    nested = mapping.get("details")
    if isinstance(nested, dict):
        return _detail(nested)
    return ""


def _join(path: str, name: Any) -> str:
    return f"{path}.{name}" if path else str(name)


def _collect(node: Any, path: str, out: list[Dependency], depth: int, *, top: bool = False) -> None:
    """Components under ``node``: mappings with a status key, and keys whose value is a status word."""
    if depth > MAX_DEPTH or len(out) >= MAX_COMPONENTS:
        return
    if isinstance(node, list):
        _collect_instances(node, path, out, depth)
    elif isinstance(node, dict):
        _collect_mapping(node, path, out, depth, top=top)


def _collect_instances(node: list[Any], path: str, out: list[Dependency], depth: int) -> None:
    # health+json lists one entry per instance of a check: {"componentId": ..., "status": ...}
    for index, item in enumerate(node[:MAX_COMPONENTS]):
        name = path
        if len(node) > 1:
            instance = item.get("componentId") if isinstance(item, dict) else None
            name = f"{path}[{instance if isinstance(instance, str) else index}]"
        _collect(item, name, out, depth + 1)


def _collect_mapping(
    node: dict[Any, Any], path: str, out: list[Dependency], depth: int, *, top: bool
) -> None:
    """The mapping itself when it carries a status (the document's own is not a component), then its keys."""
    status_key = next((key for key in STATUS_KEYS if key in node), None)
    if not top and status_key is not None and verdict_of(node[status_key]) is not None:
        value = node[status_key]
        shown = str(value).lower() if isinstance(value, bool) else str(value)
        out.append(Dependency(path, shown, verdict_of(value) or "healthy", _detail(node)))
    for key, value in node.items():
        if isinstance(key, str) and key not in DETAIL_KEYS and key not in STATUS_KEYS:
            _collect_entry(key, value, path, out, depth)


def _collect_entry(key: str, value: Any, path: str, out: list[Dependency], depth: int) -> None:
    if key in COMPONENT_KEYS:
        _collect_container(key, value, path, out, depth)
    elif isinstance(value, (dict, list)):
        _collect(value, _join(path, key), out, depth + 1)
    elif isinstance(value, str) and verdict_of(value) is not None:
        # A bare word under a key names that dependency's state ({"database": "down"}); booleans
        # under other keys are too ambiguous ({"debug": false}) to count.
        out.append(Dependency(_join(path, key), value, verdict_of(value) or "healthy"))


def _collect_container(key: str, value: Any, path: str, out: list[Dependency], depth: int) -> None:
    # The container adds no name: {"components": {"db": {...}}} names the component "db".
    if isinstance(value, dict):
        for name, item in value.items():
            _collect(item, _join(path, name), out, depth + 1)
    elif isinstance(value, list):
        _collect(value, path or key, out, depth + 1)
