"""Section 13, services: the services the API depends on answer, through the target and inside the cluster.

Configured by ``[tool.reachability.services]`` (see ``examples/reachability.toml``), one table per service::

    [tool.reachability.services.bot-service]
    path = "/bot/health"         # through the target, as a client reaches it
    service = "bot-service"      # and inside the cluster, through the API server's service proxy
    port = 5000
    internal-path = "/health"    # the path inside (default: path)
    expect-status = 200

Each check covers every configured service and names each one that failed.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from pytest_reachability import prefetch

pytestmark = pytest.mark.section("services", requires=["api-health"])


@pytest.fixture(scope="module")
def services_config(app_config):
    if not app_config.services:
        pytest.skip(app_config.not_configured("services"))
    return app_config.services


def expected_text(statuses) -> str:
    return " or ".join(str(status) for status in statuses)


# The requests through the target are sent as soon as api-health passes (see prefetch_for_target).
PREFETCH_AFTER_GATES = ("api-health",)


def through_key(target: Any, path: str) -> str:
    return f"suite-through:{target.base_url}:{path}"


def get_through(http: Any, path: str) -> tuple[int | None, Any, float]:
    """(status, what was observed: the status or the error, ms) of ``GET path`` through the target."""
    started = time.perf_counter()
    try:
        status = http.get(path).status_code
        observed: Any = status
    except requests.RequestException as error:
        status, observed = None, f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    return status, observed, round((time.perf_counter() - started) * 1000, 1)


def prefetch_for_target(work: Any) -> None:
    """The dependent services' answers through the target and inside the cluster, asked side by side."""
    services = work.app_config.services or []
    outside = [service for service in services if service.path]
    inside = [service for service in services if service.service]
    cluster = work.cluster() if inside else None
    reads = []
    if cluster is not None:
        reads += [lambda service=service: inside_answer(cluster, service, work.shared) for service in inside]
    if outside:

        def through() -> None:
            with work.session() as http:
                for service in outside:
                    key = through_key(work.target, service.path)
                    prefetch.flow_outcome(work.shared, key, lambda path=service.path: get_through(http, path))

        reads.append(through)
    prefetch.run_together(reads)


def test_dependent_services_answer_through_the_target(
    services_config, http, target, shared_results, evidence
):
    outside = [service for service in services_config if service.path]
    if not outside:
        pytest.skip("no service has a path in [tool.reachability.services] to request through the target")
    problems = []
    for service in outside:
        url = http.base_url + service.path
        status, observed, ms = prefetch.flow(
            shared_results,
            through_key(target, service.path),
            lambda path=service.path: get_through(http, path),
        )
        ok = status in service.expect_status
        evidence.record(
            "app_check",
            {
                "section": "services",
                "check": f"{service.name} through the target",
                "ok": ok,
                "observed": observed,
                "expected": list(service.expect_status),
                "url": url,
                "ms": ms,
            },
        )
        if not ok:
            problems.append(
                f"{service.name}: GET {url} answered {observed}, expected "
                f"{expected_text(service.expect_status)}"
            )
    assert not problems, "; ".join(problems)


def inside_answer(cluster: Any, service: Any, shared: Any) -> tuple[Any, Any]:
    """(the service proxy's answer, ClusterError) for a dependent service, asked once per session."""
    return prefetch.cluster_outcome(
        shared,
        f"suite-proxy:{cluster.server}:{service.namespace}:{service.service}:{service.port}:{service.inside_path}",
        lambda: cluster.proxy_get(service.service, service.port, service.inside_path, service.namespace),
    )


@pytest.mark.requires("cluster-access")
def test_dependent_services_answer_inside_the_cluster(services_config, request, shared_results, evidence):
    inside = [service for service in services_config if service.service]
    if not inside:
        pytest.skip(
            "no service has service and port in [tool.reachability.services] to request inside the cluster"
        )
    cluster = request.getfixturevalue("cluster")
    problems = []
    for service in inside:
        answer, error = inside_answer(cluster, service, shared_results)
        if error is not None:
            raise AssertionError(f"{service.name}: service proxy refused: {error.message}") from None
        where = f"service proxy {answer.namespace}/{service.service}:{service.port}{answer.path}"
        observed = answer.error if answer.error and answer.no_endpoints else answer.status
        ok = answer.error is None and answer.status in service.expect_status
        evidence.record(
            "app_check",
            {
                "section": "services",
                "check": f"{service.name} inside the cluster",
                "ok": ok,
                "observed": observed,
                "expected": list(service.expect_status),
                "url": where,
                "ms": answer.ms,
            },
        )
        if not ok:
            detail = f"{answer.status} ({answer.error})" if answer.error else f"{answer.status}"
            problems.append(
                f"{service.name}: {where} answered {detail}, expected {expected_text(service.expect_status)}"
            )
    assert not problems, "; ".join(problems)
