"""Application rules: what the service says about itself (its health body, inside and outside the
cluster), its database (the API's view and a direct connection), and how it behaves under load (slow,
intermittent).

Health bodies are read with :mod:`pytest_reachability.health_body` (IETF health+json ``checks``, Spring Boot
actuator ``components``, flat ``{"database": "down"}``). Database failures are classified from the driver's
own words (libpq: "Connection refused", "timeout expired", "password authentication failed", 'database "x"
does not exist').
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..health_body import HealthReading, read_health
from .facts import Facts
from .theory import Theory, curl_of, kubectl
from .wording import short

APP_SECTIONS = (
    "api-health",
    "api-internal",
    "database",
    "services",
    "integration",
    "performance",
    "results-storage",
)
DATABASE_WORDS = (
    "db",
    "database",
    "postgres",
    "postgresql",
    "pg",
    "mysql",
    "mariadb",
    "sql",
    "datasource",
    "rds",
)

# (rule, what the message says, the cause, the fix); the first whose words all appear wins.
DATABASE_CLASSES: tuple[tuple[str, tuple[tuple[str, ...], ...], str, str], ...] = (
    (
        "database-missing",
        (('database "', "does not exist"), ("unknown database",)),
        "the database named in the connection settings does not exist on the server",
        "Create the database (or correct its name in the DSN / the app's configuration)",
    ),
    (
        "database-auth-failed",
        (
            ("password authentication failed",),
            ("authentication failed",),
            ("no pg_hba.conf entry",),
            ("role", "does not exist"),
            ("access denied for user",),
        ),
        "the server refuses the credentials (wrong or rotated password, unknown role, or pg_hba.conf)",
        "Update the password in the Secret the app reads (and restart the pods), or fix the role / "
        "pg_hba.conf",
    ),
    (
        "database-refused",
        (("connection refused",), ("econnrefused",), ("is the server running",)),
        "nothing accepts connections at the database's address: the server is down or listens elsewhere",
        "Start the database server (or fix its host/port in the DSN); check its Service and endpoints if it "
        "runs in "
        "the cluster",
    ),
    (
        "database-timeout",
        (("timeout expired",), ("timed out",), ("timeout",), ("statement timeout",)),
        "the database does not answer in time: the server is overloaded or blocked, or a firewall drops the "
        "connection",
        "Check the database's load and locks (pg_stat_activity) and the network path; raise connect_timeout "
        "only "
        "once it answers",
    ),
)


def _classify_database(text: str) -> str | None:
    lowered = text.lower()
    for rule, alternatives, _cause, _fix in DATABASE_CLASSES:
        if any(all(word in lowered for word in words) for words in alternatives):
            return rule
    return None


def _is_database(name: str) -> bool:
    parts = re.split(r"[^a-z0-9]+", name.lower())
    return any(part in DATABASE_WORDS for part in parts)


def health_readings(facts: Facts) -> list[tuple[str, HealthReading, Mapping[str, Any]]]:
    """(where, reading, the probe or check) of every health body the run saw: edges and in-cluster."""
    found = []
    for probe in facts.http_probes():
        body = probe.get("body_excerpt")
        if probe.get("status") is None or not body:
            continue
        where = (
            f"GET {probe.get('path') or facts.context.health_path} at "
            f"{probe.get('address')}:{probe.get('port')}"
        )
        if '"kind":"Status"' in body.replace(" ", ""):
            continue  # a Kubernetes API Status object, not a health body
        found.append((where, read_health(body), probe))
    for check in facts.in_cluster_health():
        # An error is the API server's own answer (a Status object: no endpoints, backend refused), not the
        # app's.
        if check.get("status") is None or not check.get("body") or check.get("error") is not None:
            continue
        where = f"in-cluster GET {check.get('path')} via Service {check.get('service')}"
        found.append((where, read_health(check["body"]), check))
    return found


def _database_messages(facts: Facts) -> list[tuple[str, str]]:
    """(where, message) of every database failure the run saw: direct checks and the API's own health body."""
    messages = []
    for check in facts.app_checks("database"):
        if check.get("ok") is False and isinstance(check.get("observed"), str) and len(check["observed"]) > 8:
            messages.append((f"{check.get('check')} ({check.get('url')})", check["observed"]))
    for where, reading, _source in health_readings(facts):
        for dependency in reading.failing:
            if _is_database(dependency.name) and dependency.detail:
                messages.append((f"{where} reports {dependency.name}", dependency.detail))
    return messages


def _database_theory(facts: Facts, rule: str) -> Theory | None:
    matched = [(where, text) for where, text in _database_messages(facts) if _classify_database(text) == rule]
    if not matched:
        return None
    _rule, _words, cause, fix = next(entry for entry in DATABASE_CLASSES if entry[0] == rule)
    direct = next(
        (c for c in facts.app_checks("database") if c.get("check") == "database answers directly"), None
    )
    target = str(direct.get("url")) if direct and direct.get("url") else "the API's database"
    api_ok = facts.http_probes("dns") and all(
        p.get("status") and p.get("failure") in (None, "body_mismatch") for p in facts.http_probes("dns")
    )
    title = f"{target}: {cause}"
    if api_ok:
        title += " — the API itself answers"
    evidence = [f"{where}: {short(text, 200)}" for where, text in matched[:3]]
    confirm = []
    match = re.match(r"postgresql://([^/:]+):(\d+)/(\S*)", target)
    if match:
        host, port, database = match.groups()
        confirm.append(f"pg_isready -h {host} -p {port} -d {database}")
        confirm.append(
            f"psql -h {host} -p {port} -d {database} -U <user> -c 'SELECT 1'  # the DSN's user; it asks for "
            "the password"
        )
    confirm += [curl_of(p, facts.context) for p in facts.http_probes("dns")[:1]]
    confidence = 0.9 if any("directly" in where for where, _ in matched) else 0.8
    theory = Theory(rule, title, confidence, evidence, confirm, [fix], subjects=["database"])
    theory.explains = facts.explain(("database", "integration", "results-storage")) + facts.explain(
        ("api-health", "api-internal"), ["database", "degraded", "db"]
    )
    return theory


def database_refused(facts: Facts) -> Theory | None:
    """The database refuses connections (nothing listens at its address)."""
    return _database_theory(facts, "database-refused")


def database_timeout(facts: Facts) -> Theory | None:
    """The database does not answer in time."""
    return _database_theory(facts, "database-timeout")


def database_auth_failed(facts: Facts) -> Theory | None:
    """The database refuses the credentials."""
    return _database_theory(facts, "database-auth-failed")


def database_missing(facts: Facts) -> Theory | None:
    """The database named in the DSN does not exist."""
    return _database_theory(facts, "database-missing")


def database_slow(facts: Facts) -> Theory | None:
    """The API reports (or the direct check measures) a database latency over the configured limit."""
    slow = [
        c
        for c in facts.app_checks("database")
        if c.get("ok") is False
        and "latency" in str(c.get("check"))
        and isinstance(c.get("observed"), (int, float))
    ]
    direct = [
        c
        for c in facts.app_checks("database")
        if c.get("check") == "database answers directly" and c.get("ok") is False and c.get("observed") == 1
    ]
    if not slow and not direct:
        return None
    parts = [f"the API reports {c.get('observed')} ms, limit {c.get('expected')} ms" for c in slow]
    parts += [f"connect and SELECT 1 took {c.get('ms')} ms directly ({c.get('url')})" for c in direct]
    title = (
        f"the database answers, but slowly ({'; '.join(parts)}): queries wait on an overloaded or distant "
        "server"
    )
    evidence = [
        f"{c.get('check')}: observed {c.get('observed')}, expected {c.get('expected')}, {c.get('ms')} ms"
        for c in slow + direct
    ]
    confirm = [curl_of(p, facts.context) for p in facts.http_probes("dns")[:1]]
    confirm.append("psql ... -c 'SELECT 1' with \\timing  # the latency from here")
    fix = [
        "Find what slows the database (load, locks, slow queries in pg_stat_activity, network latency to it)"
    ]
    theory = Theory("database-slow", title, 0.75, evidence, confirm, fix, subjects=["database"])
    theory.explains = facts.explain(("database", "performance"))
    return theory


def dependency_unhealthy(facts: Facts) -> Theory | None:
    """The service answers, and its health body names a dependency that is down."""
    readings = [
        (where, reading, source) for where, reading, source in health_readings(facts) if reading.failing
    ]
    if not readings:
        return None
    where, reading, _source = readings[0]
    failing = reading.failing
    names = ", ".join(f"`{d.name}`" for d in failing[:3])
    detail = next((d.detail for d in failing if d.detail), "")
    title = (
        f"the service answers, but its health check reports {names} {failing[0].status}"
        f"{' (' + short(detail, 120) + ')' if detail else ''}: the service is up, its dependency is not"
    )
    evidence = [f"{w}: {reading_line(r)}" for w, r, _s in readings[:3]]
    confirm = [curl_of(p, facts.context) for p in facts.http_probes("dns")[:1]] + _pod_log_lines(facts)
    if any(_is_database(d.name) for d in failing):
        fix = [
            "Bring the database back (see the database section and theories) and check the credentials the "
            "app uses"
        ]
    else:
        fix = [
            f"Restore {names} (the component the health check names), or fix the app's connection settings "
            "for it"
        ]
    theory = Theory(
        "dependency-unhealthy", title, 0.8, evidence, confirm, fix, subjects=[d.name for d in failing]
    )
    theory.explains = facts.explain(("api-health", "api-internal")) + facts.explain(
        ("database", "services", "integration", "results-storage")
    )
    return theory


def app_reports_unhealthy(facts: Facts) -> Theory | None:
    """The service answers, and its health body says it is not healthy without naming a failing component."""
    readings = health_readings(facts)
    if any(reading.failing for _where, reading, _source in readings):
        return None  # a named dependency: dependency-unhealthy says more
    unhealthy = [(where, reading) for where, reading, _source in readings if reading.healthy is False]
    if not unhealthy:
        return None
    where, reading = unhealthy[0]
    degraded = ", ".join(d.describe() for d in reading.degraded[:3])
    title = (
        f"the service answers, but its health body reports status {reading.status!r}"
        f"{' (degraded: ' + degraded + ')' if degraded else ''}: it declares itself unhealthy without naming "
        "a "
        "failing component — its own logs say why"
    )
    evidence = [f"{w}: {reading_line(r)}" for w, r in unhealthy[:3]]
    confirm = [curl_of(p, facts.context) for p in facts.http_probes("dns")[:1]] + _pod_log_lines(facts)
    fix = [
        "Read the application's logs around its health check for what it considers unhealthy, and fix that"
    ]
    theory = Theory("app-reports-unhealthy", title, 0.6, evidence, confirm, fix, subjects=[where])
    theory.explains = facts.explain(("api-health", "api-internal"))
    return theory


def reading_line(reading: HealthReading) -> str:
    parts = [f"{reading.shape} body"]
    if reading.status is not None:
        parts.append(f"status {reading.status!r}")
    if reading.failing:
        parts.append("failing " + ", ".join(d.describe() for d in reading.failing[:3]))
    return ", ".join(parts)


def in_cluster_unhealthy(facts: Facts) -> Theory | None:
    """Inside the cluster the application itself answers an error: an application fault, not the network."""
    # 404 inside means the path is not the app's health check (http-404 says so), not that the app fails.
    bad = [
        c
        for c in facts.in_cluster_health()
        if not c.get("no_endpoints")
        and c.get("status") != 404
        and (c.get("error") is not None or not isinstance(c.get("status"), int) or c["status"] >= 400)
    ]
    if not bad:
        return None
    check = bad[0]
    error = check.get("error")
    if error:
        title = (
            f"inside the cluster, GET {check.get('path')} via Service `{check.get('service')}` fails: "
            f"{short(error, 140)}"
        )
        if "refused" in str(error):
            title += " — the pods do not listen on the port the Service forwards to"
    else:
        reading = read_health(check.get("body") or "")
        title = (
            f"inside the cluster the application itself answers {check.get('status')} to GET "
            f"{check.get('path')}: "
            "an application fault, not the network"
        )
        if reading.failing:
            title += f" (its body reports {', '.join(d.name for d in reading.failing[:3])} down)"
    evidence = [
        f"in-cluster GET {c.get('path')} via Service {c.get('service')}:{c.get('port')}: "
        f"{c.get('status')} {c.get('error') or short(c.get('body'), 120)}"
        for c in bad[:2]
    ]
    confirm = [
        kubectl(facts.context, f"describe svc {check.get('service')}", check.get("namespace")),
        *_pod_log_lines(facts),
    ]
    fix = [
        "Read the app's logs for the failing request and fix the application (or the dependency it reports)"
    ]
    theory = Theory(
        "in-cluster-unhealthy", title, 0.65, evidence, confirm, fix, subjects=[str(check.get("service"))]
    )
    theory.explains = facts.explain(("api-internal",)) + facts.explain(("api-health",))
    return theory


def _pod_log_lines(facts: Facts) -> list[str]:
    """``kubectl logs`` of a running pod behind the target: what the application itself says."""
    pods = [p for p in facts.target_pods() if p.get("phase") == "Running" and p.get("node")]
    return (
        [kubectl(facts.context, f"logs {pods[0].get('name')} --tail=50", pods[0].get("namespace"))]
        if pods
        else []
    )


def _performance_failed(facts: Facts) -> dict[str, Any] | None:
    report = facts.performance()
    if report is None or not facts.failing_tests("performance"):
        return None
    return report


def slow_responses(facts: Facts) -> Theory | None:
    """Requests are answered, but slower than the configured percentiles allow (not timeouts)."""
    report = _performance_failed(facts)
    if report is None:
        return None
    limits = report.get("thresholds") or {}
    over = [
        (name, report.get(f"{name}_ms"), limits.get(f"{name}_ms"))
        for name in ("p95", "p99")
        if isinstance(report.get(f"{name}_ms"), (int, float))
        and isinstance(limits.get(f"{name}_ms"), (int, float))
        and report[f"{name}_ms"] > limits[f"{name}_ms"]
    ]
    if not over:
        return None
    p50 = report.get("p50_ms")
    spread = (
        "every request is slow"
        if isinstance(p50, (int, float)) and p50 > over[0][2]
        else "most requests are fast, a tail is slow"
    )
    title = (
        f"responses are slow ({', '.join(f'{n} {v:g} ms > {lim:g} ms' for n, v, lim in over)}; p50 {p50} "
        "ms): "
        f"{spread} — the service answers, it is not timing out"
    )
    evidence = [
        f"{report.get('requests')} requests to {report.get('url')} at concurrency "
        f"{report.get('concurrency')}: "
        f"p50 {p50} ms, p95 {report.get('p95_ms')} ms, p99 {report.get('p99_ms')} ms, "
        f"errors {report.get('errors')}"
    ]
    confirm = [
        f"curl -s -o /dev/null -w '%{{time_starttransfer}}\\n' {report.get('url')}  # time to first byte"
    ]
    fix = [
        "Find where the time goes: the app's own latency (slow queries, a slow dependency), CPU throttling "
        "of the "
        "pods (resources.limits.cpu), or too few replicas for the load"
    ]
    theory = Theory("slow-responses", title, 0.7, evidence, confirm, fix, subjects=[str(report.get("url"))])
    theory.explains = facts.explain(("performance",), ["ms"])
    return theory


def intermittent_failures(facts: Facts) -> Theory | None:
    """Some requests fail and others succeed: one bad backend among several, or failures under load."""
    report = _performance_failed(facts)
    if report is None:
        return None
    errors, requests = report.get("errors") or 0, report.get("requests") or 0
    limit = (report.get("thresholds") or {}).get("max_error_rate")
    if not (0 < errors < requests) or (
        isinstance(limit, (int, float)) and report.get("error_rate", 0) <= limit
    ):
        return None
    kinds = ", ".join(f"{kind} x{count}" for kind, count in sorted((report.get("error_kinds") or {}).items()))
    title = (
        f"{errors} of {requests} requests to {report.get('url')} failed ({kinds}) while the others "
        "succeeded: "
        "the service fails intermittently — one bad backend among several, a flapping pod, or failures under "
        "load"
    )
    evidence = [f"error rate {report.get('error_rate')} (limit {limit}); {kinds}"]
    restarting = [p for p in facts.target_pods() if p.get("restarts") or not p.get("ready")]
    evidence += [
        f"pod {p.get('name')}: ready {p.get('ready')}, restarts {p.get('restarts')}" for p in restarting[:2]
    ]
    confirm = [
        f"for i in $(seq 20); do curl -s -o /dev/null -w '%{{http_code}}\\n' {report.get('url')}; done | "
        "sort | uniq -c"
    ]
    fix = [
        "Find which backend fails (the access logs of each pod / the load balancer's per-backend health) and "
        "remove or fix it; if it fails only under load, add capacity"
    ]
    theory = Theory(
        "intermittent-failures", title, 0.7, evidence, confirm, fix, subjects=[str(report.get("url"))]
    )
    theory.explains = facts.explain(("performance",)) + facts.explain(
        ("integration", "results-storage", "services")
    )
    return theory
