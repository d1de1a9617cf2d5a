"""Application tables: every table validated, bad values rejected in one line naming table and key."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_reachability.appconfig import (
    APP_TABLES,
    AppConfig,
    AppConfigError,
    ClusterConfig,
    json_path_get,
    load_app_config,
    placeholders,
    substitute,
)
from pytest_reachability.config import resolve_settings
from pytest_reachability.sandbox import ScenarioError, load_scenario

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "reachability.toml"

GOOD: dict[str, Any] = {
    "database": {
        "field": "dependencies.database.status",
        "expect": "ok",
        "dsn-env": "DATABASE_DSN",
        "latency-field": "dependencies.database.latency_ms",
        "max-latency-ms": 200,
    },
    "services": {"bot-service": {"path": "/bot/health", "service": "bot-service", "port": 5000}},
    "integration": {
        "steps": [
            {
                "method": "POST",
                "path": "/api/v1/sessions",
                "json": {"user": "u"},
                "expect-status": 201,
                "save": {"token": "token"},
            },
            {"path": "/api/v1/me", "headers": {"Authorization": "Bearer ${token}"}, "expect": {"user": "u"}},
        ]
    },
    "performance": {
        "path": "/health",
        "requests": 200,
        "concurrency": 8,
        "p95-ms": 250,
        "p99-ms": 500,
        "max-error-rate": 0.01,
    },
    "results-storage": {
        "write-path": "/api/v1/results",
        "read-path": "/api/v1/results/${id}",
        "delete-path": "/api/v1/results/${id}",
    },
    "cluster": {"service": "api"},
}


def with_value(table: str, path: list[Any], value: Any) -> dict[str, Any]:
    """GOOD with ``tables[table][path...] = value`` (``...`` deletes the key)."""
    tables = copy.deepcopy(GOOD)
    node = tables[table]
    for part in path[:-1]:
        node = node[part]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return tables


def test_every_table_is_read_into_typed_values():
    config = load_app_config(GOOD)
    assert config.database.field == "dependencies.database.status" and config.database.expect == "ok"
    assert config.database.health_path is None and config.database.max_latency_ms == 200.0
    assert config.database.dsn_env == "DATABASE_DSN"
    [bot] = config.services
    assert (bot.name, bot.path, bot.service, bot.port, bot.expect_status, bot.inside_path) == (
        "bot-service",
        "/bot/health",
        "bot-service",
        5000,
        (200,),
        "/bot/health",
    )
    first, second = config.integration.steps
    assert first.method == "POST" and first.expect_status == (201,) and first.save == {"token": "token"}
    assert second.method == "GET" and second.name == "GET /api/v1/me" and second.expect == {"user": "u"}
    assert config.performance.requests == 200 and config.performance.concurrency == 8
    assert config.performance.deadline_s == 30.0 and config.performance.max_error_rate == 0.01
    storage = config.results_storage
    assert (
        storage.id_field == "id" and storage.write_status == (200, 201) and storage.gone_status == (404, 410)
    )


def test_nothing_configured_means_every_section_unconfigured_with_the_table_to_add():
    config = load_app_config({})
    assert config == AppConfig() and load_app_config(None) == AppConfig()
    assert config.database is None and config.services == () and config.performance is None
    for table in APP_TABLES:
        assert AppConfig.not_configured(table) == (
            f"not configured: add [tool.reachability.{table}] (see examples/reachability.toml)"
        )


def test_services_as_an_array_of_tables():
    config = load_app_config(
        {
            "services": {
                "service": [
                    {"name": "bot", "path": "/bot/health"},
                    {"name": "search", "service": "search", "port": "http"},
                ]
            }
        }
    )
    assert [(s.name, s.path, s.service, s.port) for s in config.services] == [
        ("bot", "/bot/health", None, None),
        ("search", None, "search", "http"),
    ]
    assert config.services[1].inside_path == "/health"


BAD = [
    # table, path in GOOD, value, the one line expected
    (
        "performance",
        ["requests"],
        "lots",
        '[tool.reachability.performance] requests: expected a positive integer <= 100000, got "lots"',
    ),
    (
        "performance",
        ["requests"],
        0,
        "[tool.reachability.performance] requests: expected a positive integer <= 100000, got 0",
    ),
    ("performance", ["requests"], 100001, "requests: expected a positive integer <= 100000, got 100001"),
    ("performance", ["requests"], True, "requests: expected a positive integer <= 100000, got true"),
    (
        "performance",
        ["requests"],
        ...,
        "[tool.reachability.performance] requests: expected a value (required), got nothing",
    ),
    ("performance", ["concurrency"], 300, "concurrency: expected a positive integer <= 256, got 300"),
    ("performance", ["concurrency"], 201, "concurrency: expected at most requests (200), got 201"),
    ("performance", ["p95-ms"], -1, "p95-ms: expected a number > 0 and <= 600000, got -1"),
    ("performance", ["p99-ms"], 100, "p99-ms: expected at least p95-ms (250), got 100"),
    (
        "performance",
        ["max-error-rate"],
        5,
        "max-error-rate: expected a fraction from 0 to 1 (0.01 is 1%), got 5",
    ),
    ("performance", ["deadline-s"], 3600, "deadline-s: expected a number > 0 and <= 600, got 3600"),
    (
        "performance",
        ["path"],
        "health",
        'path: expected a URL path starting with "/" (no spaces), got "health"',
    ),
    (
        "performance",
        ["reqests"],
        5,
        "[tool.reachability.performance] reqests: expected one of the keys path, requests,",
    ),
    ("performance", ["reqests"], 5, "got an unknown key (did you mean requests?)"),
    (
        "database",
        ["field"],
        ...,
        "[tool.reachability.database] field: expected a value (required), got nothing",
    ),
    (
        "database",
        ["field"],
        "a..b",
        '[tool.reachability.database] field: expected a JSON path such as "dependencies.database.status", '
        'got "a..b"',
    ),
    (
        "database",
        ["expect"],
        {"x": 1},
        "[tool.reachability.database] expect: expected a string, number or boolean, got a table",
    ),
    (
        "database",
        ["dsn-env"],
        "postgresql://u:p@h/db",
        "dsn-env: expected the name of an environment variable holding a PostgreSQL DSN, got",
    ),
    (
        "database",
        ["max-latency-ms"],
        "fast",
        'max-latency-ms: expected a number > 0 and <= 600000, got "fast"',
    ),
    ("database", ["health-path"], 42, "[tool.reachability.database] health-path: expected a URL path"),
    (
        "services",
        ["bot-service", "port"],
        70000,
        "[tool.reachability.services] bot-service.port: expected a port number from 1 to 65535 or a port "
        "name, got 70000",
    ),
    (
        "services",
        ["bot-service", "port"],
        ...,
        "bot-service.port: expected the port of Service bot-service (required with service), got nothing",
    ),
    ("services", ["bot-service", "service"], "Bot_Service", "bot-service.service: expected a Service name"),
    (
        "services",
        ["bot-service", "expect-status"],
        99,
        "bot-service.expect-status: expected an HTTP status from 100 to 599 or an array of them, got 99",
    ),
    (
        "services",
        ["bot-service", "expect-status"],
        [200, "ok"],
        "bot-service.expect-status: expected an HTTP status",
    ),
    (
        "services",
        ["bot-service"],
        "yes",
        '[tool.reachability.services] bot-service: expected a table, got "yes"',
    ),
    (
        "integration",
        ["steps"],
        [],
        "[tool.reachability.integration] steps: expected an array of 1 to 50 steps",
    ),
    (
        "integration",
        ["steps", 0, "method"],
        "FETCH",
        'steps[0].method: expected one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, got "FETCH"',
    ),
    (
        "integration",
        ["steps", 0, "path"],
        ...,
        "[tool.reachability.integration] steps[0].path: expected a value (required), got nothing",
    ),
    (
        "integration",
        ["steps", 1, "headers"],
        {"Authorization": 5},
        "steps[1].headers: expected a table of header names to strings, got a table",
    ),
    (
        "integration",
        ["steps", 0, "save"],
        ...,
        "steps[1]: expected ${token} saved by an earlier step's save, got no earlier step saving token",
    ),
    (
        "integration",
        ["steps", 0, "save"],
        {"to ken": "token"},
        "steps[0].save.to ken: expected a name of letters",
    ),
    (
        "integration",
        ["steps", 1, "expect"],
        ["user"],
        "steps[1].expect: expected a table of JSON paths to expected values, got an array",
    ),
    (
        "results-storage",
        ["read-path"],
        "/api/v1/results/${uid}",
        "read-path: expected a path using only ${id}",
    ),
    (
        "results-storage",
        ["write-path"],
        ...,
        "[tool.reachability.results-storage] write-path: expected a value (required), got nothing",
    ),
    (
        "results-storage",
        ["payload"],
        {},
        "payload: expected a non-empty table (the JSON object written), got a table",
    ),
    (
        "results-storage",
        ["gone-status"],
        "404",
        'gone-status: expected an HTTP status from 100 to 599 or an array of them, got "404"',
    ),
]


@pytest.mark.parametrize(
    ("table", "path", "value", "words"),
    BAD,
    ids=[f"{b[0]}-{'.'.join(map(str, b[1]))}-{i}" for i, b in enumerate(BAD)],
)
def test_bad_values_raise_one_line_naming_table_and_key(table, path, value, words):
    with pytest.raises(AppConfigError) as caught:
        load_app_config(with_value(table, path, value))
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"[tool.reachability.{table}]"), message
    assert words in message, message
    assert isinstance(caught.value, ValueError) and caught.value.table == table


def test_unknown_table_names_it_and_the_valid_ones():
    with pytest.raises(AppConfigError) as caught:
        load_app_config({**GOOD, "databse": {}})
    assert str(caught.value) == (
        "[tool.reachability.databse]: expected one of the tables database, services, integration, "
        "performance, "
        "results-storage, cluster, got an unknown table (did you mean database?)"
    )


def test_a_service_needs_somewhere_to_ask():
    with pytest.raises(
        AppConfigError, match=r"^\[tool.reachability.services\] bot: expected at least one of path"
    ):
        load_app_config({"services": {"bot": {"expect-status": 200}}})
    with pytest.raises(
        AppConfigError, match=r"^\[tool.reachability.services\] service\[0\].name: expected a name"
    ):
        load_app_config({"services": {"service": [{"path": "/x"}]}})
    with pytest.raises(AppConfigError, match="each service named once"):
        load_app_config({"services": {"service": [{"name": "a", "path": "/x"}, {"name": "a", "path": "/y"}]}})


def test_json_paths_and_substitution():
    document = {"dependencies": {"database": {"status": "ok"}}, "items": [{"id": 7}], "flag": False}
    assert json_path_get(document, "dependencies.database.status") == (True, "ok")
    assert json_path_get(document, "items.0.id") == (True, 7)
    assert json_path_get(document, "items.-1.id") == (True, 7)
    assert json_path_get(document, "flag") == (True, False)
    assert json_path_get(document, "items.1.id") == (False, None)
    assert json_path_get(document, "dependencies.cache.status") == (False, None)
    assert json_path_get("text", "a") == (False, None)
    saved = {"id": 42, "token": "t0k"}
    assert substitute("/results/${id}", saved) == "/results/42"
    assert substitute("${id}", saved) == 42  # a whole placeholder keeps the saved value's type
    assert substitute({"a": ["Bearer ${token}", {"b": "${id}"}], "n": 1}, saved) == {
        "a": ["Bearer t0k", {"b": 42}],
        "n": 1,
    }
    assert substitute("${unknown}", saved) == "${unknown}"
    assert placeholders({"h": "${a} ${b}", "l": ["${c}"], "n": 3}) == {"a", "b", "c"}


def test_the_documented_example_is_valid_and_is_what_the_sandbox_serves(tmp_path: Path):
    settings = resolve_settings({}, {}, config_option=str(EXAMPLE), invocation_dir=tmp_path)
    assert set(settings.tables) == set(APP_TABLES)
    assert load_app_config(settings.tables) == load_app_config(load_scenario("healthy").application)


def test_scenario_application_blocks_are_validated_with_the_same_words(tmp_path: Path):
    scenario = tmp_path / "bad.yaml"
    scenario.write_text("base: healthy\nname: bad\napplication:\n  performance: {requests: lots}\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(scenario)
    assert str(caught.value) == (
        f'{scenario}: application.performance.requests: expected a positive integer <= 100000, got "lots"'
    )
    scenario.write_text("base: healthy\nname: bad\napplication:\n  caching: {}\n")
    with pytest.raises(ScenarioError, match=r"application: expected tables named database, services"):
        load_scenario(scenario)
    scenario.write_text("base: healthy\nname: bad\npostgres: maybe\n")
    with pytest.raises(ScenarioError, match=r"postgres: expected true or false, got 'maybe'"):
        load_scenario(scenario)


def test_scenario_overlays_merge_the_application_block(tmp_path: Path):
    scenario = tmp_path / "overlay.yaml"
    scenario.write_text(
        "base: healthy\nname: overlay\npostgres: false\napplication:\n"
        "  performance: {requests: 10, concurrency: 2}\n  services: null\n"
    )
    loaded = load_scenario(scenario)
    assert loaded.postgres is False
    assert "services" not in loaded.application
    assert loaded.application["performance"]["requests"] == 10
    assert loaded.application["performance"]["path"] == "/health"  # kept from the base
    assert loaded.application["database"] == load_scenario("healthy").application["database"]
    assert load_scenario("incident-2025-12-08").application == load_scenario("healthy").application


# --------------------------------------------------------------------------- [tool.reachability.cluster]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (
            {"service": "Bad_Name"},
            "[tool.reachability.cluster] service: expected the name of the target's Service",
        ),
        ({"service": 5}, "[tool.reachability.cluster] service: expected the name of the target's Service"),
        (
            {"max_restarts": -1},
            "[tool.reachability.cluster] max_restarts: expected a whole number from 0 to 1000000, got -1",
        ),
        ({"max_restarts": "5"}, 'max_restarts: expected a whole number from 0 to 1000000, got "5"'),
        ({"max_restarts": True}, "max_restarts: expected a whole number from 0 to 1000000, got true"),
        (
            {"max-restarts": 3},
            "max-restarts: expected one of the keys service, max_restarts, got an unknown key (did you mean "
            "max_restarts?)",
        ),
        (
            {"servce": "api"},
            "servce: expected one of the keys service, max_restarts, got an unknown key (did you mean "
            "service?)",
        ),
        ("api", "[tool.reachability.cluster]: expected a table"),
    ],
)
def test_cluster_table_is_validated_at_start(value, words):
    with pytest.raises(AppConfigError) as caught:
        load_app_config({"cluster": value})
    assert words in str(caught.value) and "\n" not in str(caught.value), str(caught.value)


def test_cluster_table_values():
    assert load_app_config({"cluster": {"service": "api", "max_restarts": 0}}).cluster == ClusterConfig(
        "api", 0
    )
    assert load_app_config({}).cluster == ClusterConfig(None, 5)


def test_a_misspelt_cluster_table_stops_the_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_ok():\n    pass\n")
    pytester.makepyprojecttoml('[tool.reachability.cluster]\nservice = "api"\nmax-restarts = 3\n')
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == 4
    assert "ERROR: [tool.reachability.cluster] max-restarts: expected one of the keys" in result.stderr.str()


# --------------------------------------------------------------------------- fuzzing every table


def _toml_values():
    """What TOML can hold: strings, integers, floats (nan and
    inf too), booleans, dates and times, arrays, tables."""
    scalars = st.one_of(
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(),
        st.text(max_size=30),
        st.sampled_from(["/", "/health", "${id}", "${nope}", "GET", "ok", "a.b.0", "bot-service"]),
        st.datetimes(),
        st.dates(),
        st.times(),
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
        max_leaves=10,
    )


TABLE_KEYS = {
    "database": ("health-path", "field", "expect", "latency-field", "max-latency-ms", "dsn-env"),
    "services": ("bot-service", "service", "name", "path", "port"),
    "integration": ("steps",),
    "performance": (
        "path",
        "requests",
        "concurrency",
        "p95-ms",
        "p99-ms",
        "max-error-rate",
        "deadline-s",
        "expect-status",
    ),
    "results-storage": (
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
    "cluster": ("service", "max_restarts"),
}


def _check_outcome(tables: dict[str, Any]) -> None:
    """Either a usable configuration or one AppConfigError line naming the table; nothing else."""
    try:
        config = load_app_config(tables)
    except AppConfigError as error:
        message = str(error)
        assert "\n" not in message and "\r" not in message, message
        assert message.startswith("[tool.reachability."), message
        return
    for step in config.integration.steps if config.integration else ():
        json.dumps([step.json, step.expect, step.headers], allow_nan=False)
        assert step.path.startswith("/") and step.method in (
            "GET",
            "HEAD",
            "POST",
            "PUT",
            "PATCH",
            "DELETE",
            "OPTIONS",
        )
    if config.results_storage:
        json.dumps(config.results_storage.payload, allow_nan=False)
    if config.database:
        json.dumps(config.database.expect, allow_nan=False)
    if config.performance:
        assert 1 <= config.performance.concurrency <= config.performance.requests
    assert isinstance(config.cluster.max_restarts, int) and config.cluster.max_restarts >= 0


@pytest.mark.parametrize("table", sorted(TABLE_KEYS))
@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_fuzzed_tables_load_or_fail_in_one_line(table, data):
    keys = st.one_of(st.sampled_from(TABLE_KEYS[table]), st.text(max_size=12))
    whole = data.draw(
        st.one_of(st.dictionaries(keys, _toml_values(), max_size=5), _toml_values()), label="whole table"
    )
    _check_outcome({table: whole})
    # A valid table with one value replaced: the nearer to valid, the deeper the validation goes.
    base = copy.deepcopy(GOOD[table])
    key = data.draw(st.sampled_from(sorted(base)), label="replaced key")
    base[key] = data.draw(_toml_values(), label="new value")
    if table == "integration" and data.draw(st.booleans(), label="inside a step"):
        step = copy.deepcopy(GOOD["integration"]["steps"][1])
        step[
            data.draw(
                st.sampled_from(
                    ["path", "method", "json", "headers", "expect", "save", "name", "expect-status"]
                )
            )
        ] = data.draw(_toml_values(), label="step value")
        base = {"steps": [GOOD["integration"]["steps"][0], step]}
    _check_outcome({table: base})


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(name=st.text(min_size=1, max_size=20), value=_toml_values())
def test_fuzzed_table_names_load_or_fail_in_one_line(name, value):
    _check_outcome({name: value})


def _toml(value: Any) -> str:
    """TOML for what _toml_values draws, written out so resolve_settings reads it back from a file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return {"inf": "inf", "-inf": "-inf", "nan": "nan"}.get(repr(value), repr(value))
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"


TOP_LEVEL_KEYS = (
    "target",
    "namespace",
    "kubeconfig",
    "kube-context",
    "resolvers",
    "health-path",
    "probe-timeout",
    "ca-bundle",
    "sandbox",
    "incident-report",
    "results-json",
    "results-db",
    "gate-timeout",
    "mask-env",
)


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(key=st.one_of(st.sampled_from(TOP_LEVEL_KEYS), st.text(min_size=1, max_size=12)), value=_toml_values())
def test_fuzzed_top_level_table_loads_or_fails_in_one_line(tmp_path_factory, key, value):
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "pyproject.toml").write_text(f"[tool.reachability]\n{json.dumps(key)} = {_toml(value)}\n")
    try:
        resolve_settings({}, {}, rootpath=folder, invocation_dir=folder)
    except ValueError as error:
        assert "\n" not in str(error), str(error)
