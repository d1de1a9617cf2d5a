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


def test_dependent_services_answer_through_the_target(services_config, http, evidence):
    outside = [service for service in services_config if service.path]
    if not outside:
        pytest.skip("no service has a path in [tool.reachability.services] to request through the target")
    problems = []
    for service in outside:
        url = http.base_url + service.path
        started = time.perf_counter()
        try:
            status = http.get(service.path).status_code
            observed = status
        except requests.RequestException as error:
            status, observed = (
                None,
                f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}",
            )
        ms = round((time.perf_counter() - started) * 1000, 1)
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


def prefetch_for_target(work: Any) -> None:
    """The dependent services' in-cluster answers (GET through the API server's proxy), asked at session
    start."""
    inside = [service for service in (work.app_config.services or []) if service.service]
    cluster = work.cluster() if inside else None
    if cluster is not None:
        prefetch.run_together(
            [lambda service=service: inside_answer(cluster, service, work.shared) for service in inside]
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
