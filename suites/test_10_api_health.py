"""Section 10, api-health: ``GET <health-path>`` answers on every address DNS gives for the target.

The two checks on resolved addresses form the gate ``api-health``: the application sections (12-16)
run only when every resolved address answers, because a client may be sent to any of them. The
LoadBalancer addresses are also probed directly with the target's Host header, outside the gate, so
that a report can say "the LoadBalancer answers 200, the address DNS points at does not".
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_reachability.health_body import describe_problem, read_health

pytestmark = pytest.mark.section("api-health")


def describe(result: Any) -> str:
    where = f"{result.address}:{result.port}" if result.address else result.host
    if result.ok:
        return f"{where} {result.status}"
    return f"{where} {result.failure.value} (curl {result.curl_exit}): {result.detail}"


def health_problem(result: Any) -> str | None:
    """Why an answered health body does not say healthy, or None
    (a body in no known shape says nothing either way)."""
    problem = describe_problem(read_health(result.body or b""))
    return (
        None if problem is None else f"{result.address}:{result.port} answered {result.status} with {problem}"
    )


@pytest.fixture
def resolved_health(probe: Any, target: Any, evidence: Any) -> list[Any]:
    """The health probe of every resolved address, each recorded with ``source: dns``."""
    results = probe.health()
    for result in results:
        evidence.record("http_probe", result, source="dns")
    return results


@pytest.mark.gate("api-health")
def test_health_answers_on_every_resolved_address(resolved_health, target, reachability_settings):
    failed = [r for r in resolved_health if not r.ok]
    assert not failed, (
        f"GET {reachability_settings.health_path} failed on {'; '.join(describe(r) for r in failed)}; "
        f"expected a 2xx/3xx answer from every address {target.host} resolves to"
    )


# The body is read only where every address answered: a healthy body from one address says nothing of another.
@pytest.mark.gate("api-health")
@pytest.mark.requires(test="test_health_answers_on_every_resolved_address")
def test_health_body_reports_healthy(resolved_health, reachability_settings):
    answered = [r for r in resolved_health if r.status is not None and r.failure is None]
    problems = [problem for problem in map(health_problem, answered) if problem]
    assert not problems, (
        f"GET {reachability_settings.health_path}: {'; '.join(problems)}; expected a healthy status in the "
        "body"
    )


def prefetch_for_target(work: Any) -> None:
    """The health request to each of the target's LoadBalancers, sent at session start once the cluster's
    lists name them (``probe.health`` then reads the answers)."""
    service = work.target_service()
    owners = service.loadbalancer_addresses() if service is not None else {}
    if owners:
        work.health(addresses=list(owners))


@pytest.mark.requires("cluster-access")
def test_loadbalancers_answer_health_for_the_target_host(
    probe, target, target_service, reachability_settings, evidence
):
    owners = target_service.loadbalancer_addresses()
    if not owners:
        pytest.skip(f"no LoadBalancer address for Service {target_service.name} to probe directly")
    results = probe.health(addresses=list(owners))
    for result in results:
        evidence.record("http_probe", result, source="loadbalancer", service=owners.get(result.address))
    failed = [f"LoadBalancer {owners.get(r.address)} {describe(r)}" for r in results if not r.ok]
    assert not failed, (
        f"GET {reachability_settings.health_path} with Host {target.host_header} failed on "
        f"{'; '.join(failed)}; "
        f"expected every LoadBalancer of the target to answer"
    )
