"""Health bodies in the shapes services answer: the failing dependency is named, healthy bodies pass."""

from __future__ import annotations

import json

import pytest

from pytest_reachability.health_body import describe_problem, read_health

SPRING_DOWN = {
    "status": "DOWN",
    "components": {
        "db": {"status": "UP", "details": {"database": "PostgreSQL", "validationQuery": "isValid()"}},
        "redis": {
            "status": "DOWN",
            "details": {"error": "RedisConnectionFailureException: Unable to connect to Redis"},
        },
        "diskSpace": {"status": "UP", "details": {"total": 1, "free": 1}},
    },
}
SPRING_LEGACY = {"status": "DOWN", "details": {"mongo": {"status": "DOWN", "details": {"error": "timeout"}}}}
IETF_FAIL = {
    "status": "fail",
    "checks": {
        "cassandra:connections": [
            {"componentId": "c1", "status": "fail", "output": "Timed out connecting to 10.1.4.5:9042"}
        ],
        "uptime": [{"status": "pass", "observedValue": 1209600}],
    },
}
IETF_WARN = {"status": "warn", "checks": {"disk:utilization": [{"status": "warn", "output": "85% used"}]}}
SANDBOX_DEGRADED = {
    "status": "degraded",
    "dependencies": {"database": {"status": "error", "error": "OperationalError: x"}},
}


@pytest.mark.parametrize(
    "body, shape, failing, detail",
    [
        (
            SPRING_DOWN,
            "spring-actuator",
            ["redis"],
            "RedisConnectionFailureException: Unable to connect to Redis",
        ),
        (SPRING_LEGACY, "spring-actuator", ["mongo"], "timeout"),
        (IETF_FAIL, "health+json", ["cassandra:connections"], "Timed out connecting to 10.1.4.5:9042"),
        ({"database": "down", "redis": "ok"}, "flat", ["database"], ""),
        ({"status": "ok", "queue": "unavailable"}, "flat", ["queue"], ""),
        (SANDBOX_DEGRADED, "nested", ["database"], "OperationalError: x"),
    ],
)
def test_the_failing_dependency_is_named_with_its_detail(body, shape, failing, detail):
    reading = read_health(json.dumps(body))
    assert reading.shape == shape and reading.healthy is False
    assert [d.name for d in reading.failing] == failing
    assert reading.failing[0].detail == detail
    problem = describe_problem(reading)
    assert problem and failing[0] in problem


@pytest.mark.parametrize(
    "body",
    [
        {"status": "UP", "components": {"db": {"status": "UP"}, "ping": {"status": "UP"}}},
        {"status": "pass", "checks": {"uptime": [{"status": "pass"}]}},
        {
            "status": "healthy",
            "uptime": "12h",
            "version": "1.4.2",
            "dependencies": {"database": {"status": "ok", "latency_ms": 3}},
        },
        {"database": "ok", "cache": "up"},
        {"healthy": True},
    ],
)
def test_healthy_bodies_report_healthy(body):
    reading = read_health(json.dumps(body).encode())
    assert reading.healthy is True and describe_problem(reading) is None


@pytest.mark.parametrize(
    "body", ["OK", "", "<html>fine</html>", "[]", '{"version": "1.4.2"}', "null", '"yes"']
)
def test_bodies_without_a_status_say_nothing_either_way(body):
    reading = read_health(body)
    assert reading.healthy is None and describe_problem(reading) is None


def test_degraded_and_warn_are_not_healthy_but_name_no_failure():
    for body in (IETF_WARN, {"status": "degraded"}):
        reading = read_health(json.dumps(body))
        assert reading.healthy is False and not reading.failing
        assert describe_problem(reading)


def test_an_excerpt_cut_by_the_probe_still_reads_when_it_is_whole_json():
    assert read_health('{"status": "DOWN"}...').healthy is False


def test_hostile_bodies_stay_bounded():
    deep = {"a": "ok"}
    for _ in range(200):
        deep = {"components": {"x": deep}}
    wide = {"status": "UP", "components": {f"c{i}": {"status": "DOWN"} for i in range(5000)}}
    assert read_health(json.dumps(deep)).healthy in (True, None)
    reading = read_health(json.dumps(wide))
    assert reading.healthy is False and len(reading.dependencies) <= 64
