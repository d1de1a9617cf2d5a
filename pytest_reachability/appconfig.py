"""The application sections' configuration: ``[tool.reachability.<table>]`` tables, validated.

Sections 12-16 of the built-in suite (database, services, integration, performance, results-storage)
check the application behind the target, so what they request and expect comes from the user's
configuration (or a sandbox scenario's ``application:`` block, which has the same shape)::

    [tool.reachability.database]
    field = "dependencies.database.status"
    expect = "ok"

    config = load_app_config(settings.tables)
    config.database.field            # 'dependencies.database.status'
    config.performance               # None: not configured, the section's tests skip
    config.not_configured("performance")
    # 'not configured: add [tool.reachability.performance] (see examples/reachability.toml)'

A bad value raises :class:`AppConfigError` with one line naming the table and the key, e.g.
``[tool.reachability.performance] requests: expected a positive integer <= 100000, got "lots"``.
The complete, documented example is ``examples/reachability.toml``.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .redact import redact, secrets_in_value

APP_TABLES = ("database", "services", "integration", "performance", "results-storage")
# Tables under [tool.reachability] that sections 1-11 read: validated here too, with the others.
TABLES_READ_ELSEWHERE = ("cluster",)
DEFAULT_MAX_RESTARTS = 5
MAX_RESTARTS_LIMIT = 1_000_000
EXAMPLE = "examples/reachability.toml"

MAX_REQUESTS = 100_000
MAX_CONCURRENCY = 256
MAX_DEADLINE_S = 600.0
MAX_STEPS = 50
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_-]*)\}")
_SAVE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SERVICE_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_PORT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$")


class AppConfigError(ValueError):
    """An application table that cannot be used; the message is one line naming table and key."""

    def __init__(self, table: str, key: str, expected: str, got: str) -> None:
        self.table, self.key, self.expected, self.got = table, key, expected, got
        where = f"[tool.reachability.{shown_key(table)}]" + (f" {shown_key(key)}" if key else "")
        super().__init__(" ".join(f"{where}: expected {expected}, got {got}".split()))


_PRINTABLE_KEY = re.compile(r"[^\x00-\x1f\x7f-\x9f\u2028\u2029]{1,80}")


def shown_key(key: str) -> str:
    """A key (or table name) as printed: as it is when printable, else quoted.

    A TOML key may hold anything."""
    return key if _PRINTABLE_KEY.fullmatch(key) else json.dumps(key[:60])


def describe_value(value: Any) -> str:
    """A value as a TOML user would recognise it: ``"lots"``, ``0``, ``true``, ``a table``; secrets masked
    (a DSN pasted where a variable name belongs is not printed back)."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, str):
        masked = str(redact(value, secrets_in_value(value)))
        text = masked if len(masked) <= 60 else masked[:57] + "..."
        return json.dumps(text, ensure_ascii=False)
    if isinstance(value, (int, float)):
        return str(value)
    return f"a {type(value).__name__} ({value})"  # TOML dates and times


# -- the validated model ------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterConfig:
    """``[tool.reachability.cluster]``: the target's Service by name, and the restarts tolerated per pod."""

    service: str | None = None
    max_restarts: int = DEFAULT_MAX_RESTARTS


@dataclass(frozen=True)
class DatabaseConfig:
    """The API's view of its database (a JSON field of the health body), optionally a direct check."""

    field: str
    expect: Any
    health_path: str | None = None  # None: the health path setting (--health-path)
    latency_field: str | None = None
    max_latency_ms: float | None = None
    dsn_env: str | None = None


@dataclass(frozen=True)
class ServiceConfig:
    """A dependent service: ``path`` through the target, ``service``:``port`` through the service proxy."""

    name: str
    path: str | None = None
    service: str | None = None
    port: int | str | None = None
    internal_path: str | None = None  # path inside the cluster; default ``path`` or /health
    expect_status: tuple[int, ...] = (200,)
    namespace: str | None = None

    @property
    def inside_path(self) -> str:
        return self.internal_path or self.path or "/health"


@dataclass(frozen=True)
class IntegrationStep:
    name: str
    method: str
    path: str
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    expect_status: tuple[int, ...] = (200,)
    expect: dict[str, Any] = field(default_factory=dict)  # JSON path -> value
    save: dict[str, str] = field(default_factory=dict)  # name -> JSON path


@dataclass(frozen=True)
class IntegrationConfig:
    steps: tuple[IntegrationStep, ...]


@dataclass(frozen=True)
class PerformanceConfig:
    path: str
    requests: int
    concurrency: int
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_error_rate: float = 0.0
    deadline_s: float = 30.0
    expect_status: tuple[int, ...] = (200,)

    def thresholds(self) -> dict[str, Any]:
        return {
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
            "max_error_rate": self.max_error_rate,
            "deadline_s": self.deadline_s,
        }


@dataclass(frozen=True)
class ResultsStorageConfig:
    """Write ``payload`` to ``write_path``, read it back at ``read_path``, delete it at ``delete_path``.

    ``read_path`` and ``delete_path`` may use ``${id}``: the value at ``id_field`` of the write's answer.
    """

    write_path: str
    read_path: str
    delete_path: str | None = None
    id_field: str = "id"
    payload: dict[str, Any] = field(default_factory=lambda: {"check": "pytest-reachability"})
    write_status: tuple[int, ...] = (200, 201)
    read_status: tuple[int, ...] = (200,)
    delete_status: tuple[int, ...] = (200, 202, 204)
    gone_status: tuple[int, ...] = (404, 410)


@dataclass(frozen=True)
class AppConfig:
    """Every application table; None (or empty services) where the user configured nothing."""

    database: DatabaseConfig | None = None
    services: tuple[ServiceConfig, ...] = ()
    integration: IntegrationConfig | None = None
    performance: PerformanceConfig | None = None
    results_storage: ResultsStorageConfig | None = None
    cluster: ClusterConfig = field(default_factory=ClusterConfig)

    @staticmethod
    def not_configured(table: str) -> str:
        """The skip reason of a section whose table is missing."""
        return f"not configured: add [tool.reachability.{table}] (see {EXAMPLE})"

    def configured(self, table: str) -> bool:
        """Whether ``[tool.reachability.<table>]`` was given (``results-storage`` for its dashed name)."""
        return bool(getattr(self, table.replace("-", "_")))


# The built-in suite's fixtures giving each table's settings; each skips its tests when the table is missing
# (``AppConfig.not_configured``), which the plugin decides before any fixture is set up.
TABLE_FIXTURES = {
    "database_config": "database",
    "services_config": "services",
    "integration_config": "integration",
    "performance_config": "performance",
    "storage_config": "results-storage",
}


# -- JSON paths and ${name} substitution -------------------------------------------------------------

_MISSING = object()


def json_path_get(document: Any, path: str) -> tuple[bool, Any]:
    """``(found, value)`` of a dotted path (``dependencies.database.status``, ``items.0.id``)."""
    current = document
    for part in path.split("."):
        if isinstance(current, Mapping):
            current = current.get(part, _MISSING)
        elif isinstance(current, list) and part.lstrip("-").isdigit():
            index = int(part)
            current = current[index] if -len(current) <= index < len(current) else _MISSING
        else:
            return False, None
        if current is _MISSING:
            return False, None
    return True, current


def placeholders(value: Any) -> set[str]:
    """Names used as ``${name}`` anywhere in a string, list or table."""
    if isinstance(value, str):
        return set(_PLACEHOLDER.findall(value))
    if isinstance(value, Mapping):
        return set().union(*(placeholders(v) for v in value.values())) if value else set()
    if isinstance(value, (list, tuple)):
        return set().union(*(placeholders(v) for v in value)) if value else set()
    return set()


def substitute(value: Any, saved: Mapping[str, Any]) -> Any:
    """``value`` with ``${name}`` replaced by ``saved[name]``.

    A string that is only a placeholder keeps the type of the saved value."""
    if isinstance(value, str):
        whole = _PLACEHOLDER.fullmatch(value)
        if whole and whole.group(1) in saved:
            return saved[whole.group(1)]
        return _PLACEHOLDER.sub(
            lambda m: str(saved[m.group(1)]) if m.group(1) in saved else m.group(0), value
        )
    if isinstance(value, Mapping):
        return {key: substitute(item, saved) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [substitute(item, saved) for item in value]
    return value


# -- validation ---------------------------------------------------------------------------------


class _Table:
    """Typed reads from one table, each failure an :class:`AppConfigError` naming table and key."""

    def __init__(self, table: str, data: Any, prefix: str = "") -> None:
        self.table = table
        self.prefix = prefix
        if not isinstance(data, Mapping):
            raise AppConfigError(table, prefix.rstrip("."), "a table", describe_value(data))
        self.data = data

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def fail(self, name: str, expected: str, value: Any) -> AppConfigError:
        return AppConfigError(self.table, self.key(name), expected, describe_value(value))

    def only(self, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> None:
        for name in self.data:
            if name not in allowed:
                close = difflib.get_close_matches(str(name), allowed, n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise AppConfigError(
                    self.table,
                    self.key(str(name)),
                    f"one of the keys {', '.join(allowed)}",
                    f"an unknown key{hint}",
                )
        for name in required:
            if name not in self.data:
                raise AppConfigError(self.table, self.key(name), "a value (required)", "nothing")

    def path(self, name: str, default: str | None = None) -> str | None:
        value = self.data.get(name, default)
        if value is None:
            return None
        if not is_url_path(value):
            raise self.fail(name, 'a URL path starting with "/" (no spaces)', value)
        return value

    def json_value(self, name: str, default: Any = None) -> Any:
        value = self.data.get(name, default)
        problem = json_problem(value)
        if problem:
            raise self.fail(name, f"a value JSON can carry ({problem})", value)
        return value

    def text(
        self, name: str, expected: str = "a non-empty string", pattern: re.Pattern[str] | None = None
    ) -> str | None:
        value = self.data.get(name)
        if value is None:
            return None
        if (
            not isinstance(value, str)
            or not value.strip()
            or (pattern is not None and not pattern.match(value))
        ):
            raise self.fail(name, expected, value)
        return value

    def json_path(self, name: str) -> str | None:
        return self.text(
            name, 'a JSON path such as "dependencies.database.status"', re.compile(r"^[^.\s]+(\.[^.\s]+)*$")
        )

    def positive_int(self, name: str, maximum: int, default: int | None = None) -> int | None:
        value = self.data.get(name, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
            raise self.fail(name, f"a positive integer <= {maximum}", value)
        return value

    def positive_number(self, name: str, maximum: float, default: float | None = None) -> float | None:
        value = self.data.get(name, default)
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or not 0 < value <= maximum
        ):
            raise self.fail(name, f"a number > 0 and <= {maximum:g}", value)
        return float(value)

    def fraction(self, name: str, default: float) -> float:
        value = self.data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise self.fail(name, "a fraction from 0 to 1 (0.01 is 1%)", value)
        return float(value)

    def statuses(self, name: str, default: tuple[int, ...]) -> tuple[int, ...]:
        value = self.data.get(name)
        if value is None:
            return default
        items = value if isinstance(value, list) else [value]
        if not items or not all(
            isinstance(item, int) and not isinstance(item, bool) and 100 <= item <= 599 for item in items
        ):
            raise self.fail(name, "an HTTP status from 100 to 599 or an array of them", value)
        return tuple(items)

    def table_of_strings(self, name: str, expected: str) -> dict[str, str]:
        value = self.data.get(name, {})
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and k and isinstance(v, str) for k, v in value.items()
        ):
            raise self.fail(name, expected, value)
        return dict(value)


def is_url_path(value: Any) -> bool:
    """A path to request: starts with "/", no whitespace or control characters."""
    return isinstance(value, str) and value.startswith("/") and not _CONTROL_OR_SPACE.search(value)


def json_problem(value: Any, depth: int = 0) -> str | None:
    """None when ``value`` is plain JSON (TOML dates/times and non-finite numbers are not), else why not."""
    if depth > 32:
        return "nested too deep"
    if value is None or isinstance(value, (str, bool, int)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else "not a finite number"
    if isinstance(value, Mapping):
        return next((p for p in (json_problem(item, depth + 1) for item in value.values()) if p), None)
    if isinstance(value, (list, tuple)):
        return next((p for p in (json_problem(item, depth + 1) for item in value) if p), None)
    return "a date or time is not JSON"


_CONTROL_OR_SPACE = re.compile(r"[\s\x00-\x1f\x7f]")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}")
_SCALAR = (str, int, float, bool)


def _cluster(data: Any) -> ClusterConfig:
    table = _Table("cluster", data)
    table.only(("service", "max_restarts"))
    service = table.text(
        "service", "the name of the target's Service (lower-case letters, digits and '-')", _SERVICE_NAME
    )
    max_restarts = table.data.get("max_restarts", DEFAULT_MAX_RESTARTS)
    if (
        isinstance(max_restarts, bool)
        or not isinstance(max_restarts, int)
        or not 0 <= max_restarts <= MAX_RESTARTS_LIMIT
    ):
        raise table.fail("max_restarts", f"a whole number from 0 to {MAX_RESTARTS_LIMIT}", max_restarts)
    return ClusterConfig(service=service, max_restarts=max_restarts)


def _database(data: Any) -> DatabaseConfig:
    table = _Table("database", data)
    table.only(
        ("health-path", "field", "expect", "latency-field", "max-latency-ms", "dsn-env"), ("field", "expect")
    )
    expect = table.data["expect"]
    if not isinstance(expect, _SCALAR) or json_problem(expect):
        raise table.fail("expect", "a string, number or boolean", expect)
    return DatabaseConfig(
        field=table.json_path("field") or "",
        expect=expect,
        health_path=table.path("health-path"),
        latency_field=table.json_path("latency-field"),
        max_latency_ms=table.positive_number("max-latency-ms", 600_000),
        dsn_env=table.text(
            "dsn-env", "the name of an environment variable holding a PostgreSQL DSN", _ENV_NAME
        ),
    )


def _service(name: str, data: Any, prefix: str) -> ServiceConfig:
    table = _Table("services", data, prefix)
    table.only(("name", "path", "service", "port", "internal-path", "namespace", "expect-status"))
    path = table.path("path")
    service = table.text("service", "a Service name (lower-case letters, digits and '-')", _SERVICE_NAME)
    port = table.data.get("port")
    if port is not None and not (
        (isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535)
        or (isinstance(port, str) and _PORT_NAME.match(port))
    ):
        raise table.fail("port", "a port number from 1 to 65535 or a port name", port)
    if path is None and service is None:
        raise AppConfigError(
            "services", prefix.rstrip("."), "at least one of path (through the target) or service", "neither"
        )
    if service is not None and port is None:
        raise table.fail("port", f"the port of Service {service} (required with service)", None)
    if port is not None and service is None:
        raise table.fail("service", "a Service name (required with port)", None)
    return ServiceConfig(
        name=name,
        path=path,
        service=service,
        port=port,
        internal_path=table.path("internal-path"),
        expect_status=table.statuses("expect-status", (200,)),
        namespace=table.text("namespace", "a namespace name", _SERVICE_NAME),
    )


def _services(data: Any) -> tuple[ServiceConfig, ...]:
    table = _Table("services", data)
    found: list[ServiceConfig] = []
    for name, entry in table.data.items():
        if name == "service":
            # [[tool.reachability.services.service]]: an array of tables, each with a name
            if not isinstance(entry, list) or not entry:
                raise table.fail(
                    "service", "an array of tables ([[tool.reachability.services.service]])", entry
                )
            for index, item in enumerate(entry):
                prefix = f"service[{index}]."
                item_table = _Table("services", item, prefix)
                label = item_table.text("name", "a name for the service (required)")
                if label is not None and (len(label) > 100 or _CONTROL_OR_SPACE.search(label)):
                    raise item_table.fail(
                        "name", "a service name of 1 to 100 characters without spaces", label
                    )
                if label is None:
                    raise item_table.fail("name", "a name for the service (required)", None)
                found.append(_service(label, item, prefix))
        else:
            if (
                not isinstance(name, str)
                or not name.strip()
                or len(name) > 100
                or _CONTROL_OR_SPACE.search(name)
            ):
                raise AppConfigError(
                    "services",
                    str(name),
                    "a service name of 1 to 100 characters without spaces",
                    describe_value(name),
                )
            found.append(_service(name, entry, f"{name}."))
    if not found:
        raise AppConfigError("services", "", "at least one service", "an empty table")
    names = [service.name for service in found]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise AppConfigError(
            "services", duplicate, "each service named once", "a second service of that name"
        )
    return tuple(found)


def _integration(data: Any) -> IntegrationConfig:
    table = _Table("integration", data)
    table.only(("steps",), ("steps",))
    raw = table.data["steps"]
    if not isinstance(raw, list) or not raw or len(raw) > MAX_STEPS:
        raise table.fail(
            "steps", f"an array of 1 to {MAX_STEPS} steps ([[tool.reachability.integration.steps]])", raw
        )
    saved: set[str] = set()
    steps: list[IntegrationStep] = []
    for index, item in enumerate(raw):
        step = _integration_step(f"steps[{index}].", item, saved)
        saved.update(step.save)
        steps.append(step)
    return IntegrationConfig(steps=tuple(steps))


def _integration_step(prefix: str, item: Any, saved: set[str]) -> IntegrationStep:
    """One step, whose placeholders may only use what the earlier steps ``saved``."""
    step = _Table("integration", item, prefix)
    step.only(("name", "method", "path", "json", "headers", "expect-status", "expect", "save"), ("path",))
    method = step.data.get("method", "GET")
    if not isinstance(method, str) or method.upper() not in HTTP_METHODS:
        raise step.fail("method", f"one of {', '.join(HTTP_METHODS)}", method)
    path = step.data["path"]
    if not is_url_path(path):
        raise step.fail("path", 'a URL path starting with "/" (no spaces)', path)
    headers = step.table_of_strings("headers", "a table of header names to strings")
    _check_step_headers(prefix, headers)
    body = step.json_value("json")
    expect = _step_expectations(step)
    save = step.table_of_strings("save", "a table of names to JSON paths")
    _check_save_names(prefix, save)
    unknown = sorted(placeholders([path, headers, body, dict(expect)]) - saved)
    if unknown:
        raise AppConfigError(
            "integration",
            f"{prefix[:-1]}",
            f"${{{unknown[0]}}} saved by an earlier step's save",
            f"no earlier step saving {unknown[0]}",
        )
    return IntegrationStep(
        name=step.text("name") or f"{method.upper()} {path}",
        method=method.upper(),
        path=path,
        json=body,
        headers=headers,
        expect_status=step.statuses("expect-status", (200,)),
        expect=dict(expect),
        save=save,
    )


def _step_error(where: str, expected: str, value: Any) -> AppConfigError:
    return AppConfigError("integration", where, expected, describe_value(value))


def _check_step_headers(prefix: str, headers: Mapping[str, str]) -> None:
    for header, value in headers.items():
        if not _HEADER_NAME.fullmatch(header):
            raise _step_error(
                f"{prefix}headers.{header}", "an HTTP header name (letters, digits, '-')", header
            )
        if any(char in value for char in "\r\n\0"):
            raise _step_error(f"{prefix}headers.{header}", "a header value on one line", value)


def _step_expectations(step: _Table) -> Mapping[str, Any]:
    """The step's ``expect`` table: JSON paths to values JSON can carry."""
    expect = step.data.get("expect", {})
    if not isinstance(expect, Mapping) or not all(isinstance(k, str) and k for k in expect):
        raise step.fail("expect", "a table of JSON paths to expected values", expect)
    if json_problem(expect):
        raise step.fail("expect", f"expected values JSON can carry ({json_problem(expect)})", expect)
    return expect


def _check_save_names(prefix: str, save: Mapping[str, str]) -> None:
    for name in save:
        if not _SAVE_NAME.match(name):
            raise _step_error(f"{prefix}save.{name}", "a name of letters, digits, '_' and '-'", name)


def _performance(data: Any) -> PerformanceConfig:
    table = _Table("performance", data)
    table.only(
        (
            "path",
            "requests",
            "concurrency",
            "p95-ms",
            "p99-ms",
            "max-error-rate",
            "deadline-s",
            "expect-status",
        ),
        ("path", "requests"),
    )
    requests_count = table.positive_int("requests", MAX_REQUESTS) or 1
    concurrency = table.positive_int("concurrency", MAX_CONCURRENCY, default=4) or 1
    if concurrency > requests_count:
        raise table.fail("concurrency", f"at most requests ({requests_count})", concurrency)
    p95 = table.positive_number("p95-ms", 600_000)
    p99 = table.positive_number("p99-ms", 600_000)
    if p95 is not None and p99 is not None and p99 < p95:
        raise table.fail("p99-ms", f"at least p95-ms ({p95:g})", table.data["p99-ms"])
    return PerformanceConfig(
        path=table.path("path") or "/",
        requests=requests_count,
        concurrency=concurrency,
        p95_ms=p95,
        p99_ms=p99,
        max_error_rate=table.fraction("max-error-rate", 0.0),
        deadline_s=table.positive_number("deadline-s", MAX_DEADLINE_S, default=30.0) or 30.0,
        expect_status=table.statuses("expect-status", (200,)),
    )


def _results_storage(data: Any) -> ResultsStorageConfig:
    table = _Table("results-storage", data)
    table.only(
        (
            "write-path",
            "read-path",
            "delete-path",
            "id-field",
            "payload",
            "write-status",
            "read-status",
            "delete-status",
            "gone-status",
        ),
        ("write-path", "read-path"),
    )
    payload = table.data.get("payload", {"check": "pytest-reachability"})
    if not isinstance(payload, Mapping) or not payload:
        raise table.fail("payload", "a non-empty table (the JSON object written)", payload)
    table.json_value("payload")
    for name in ("read-path", "delete-path"):
        unknown = sorted(placeholders(table.data.get(name)) - {"id"})
        if unknown:
            raise table.fail(name, "a path using only ${id}", table.data[name])
    return ResultsStorageConfig(
        write_path=table.path("write-path") or "/",
        read_path=table.path("read-path") or "/",
        delete_path=table.path("delete-path"),
        id_field=table.json_path("id-field") or "id",
        payload=dict(payload),
        write_status=table.statuses("write-status", (200, 201)),
        read_status=table.statuses("read-status", (200,)),
        delete_status=table.statuses("delete-status", (200, 202, 204)),
        gone_status=table.statuses("gone-status", (404, 410)),
    )


def load_app_config(tables: Mapping[str, Any] | None) -> AppConfig:
    """Validate the application tables (``Settings.tables``); :class:`AppConfigError` on the first problem."""
    tables = dict(tables or {})
    for name in tables:
        if name not in APP_TABLES and name not in TABLES_READ_ELSEWHERE:
            close = difflib.get_close_matches(str(name), APP_TABLES + TABLES_READ_ELSEWHERE, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise AppConfigError(
                str(name),
                "",
                f"one of the tables {', '.join(APP_TABLES + TABLES_READ_ELSEWHERE)}",
                f"an unknown table{hint}",
            )
    return AppConfig(
        database=_database(tables["database"]) if "database" in tables else None,
        services=_services(tables["services"]) if "services" in tables else (),
        integration=_integration(tables["integration"]) if "integration" in tables else None,
        performance=_performance(tables["performance"]) if "performance" in tables else None,
        results_storage=_results_storage(tables["results-storage"]) if "results-storage" in tables else None,
        cluster=_cluster(tables["cluster"]) if "cluster" in tables else ClusterConfig(),
    )
