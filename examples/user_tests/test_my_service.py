"""A user's own checks of their service, run beside the built-in suite (or alone) with its fixtures.

Run them against your deployment, or against the bundled sandbox::

    pytest examples/user_tests --target api.example.com --namespace production
    pytest examples/user_tests --sandbox healthy            # passes
    pytest examples/user_tests --sandbox incident-2025-12-08  # the gate fails, the rest is BLOCKED

Each fixture is the plugin's (``pytest_reachability/fixtures.py``): ``probe`` and ``dns`` reach the
target from outside, ``target_service`` and ``cluster_reads`` read the cluster (read-only), and
``evidence.record`` hands what a check saw to the diagnosis and the reports.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.section("my-service")


@pytest.mark.gate("my-api")
def test_health_answers_on_every_address(probe, evidence):
    for result in probe.health():
        evidence.record("http_probe", result, source="dns")
        assert result.ok, (
            f"{result.address}: {result.failure.value}: {result.detail} -- reproduce: {result.curl}"
        )


@pytest.mark.requires("my-api")
def test_service_has_ready_pods(target_service, evidence):
    evidence.record("target_service", target_service)
    assert target_service.found, target_service.why
    ready = [pod.name for pod in target_service.pods if pod.ready]
    assert ready, f"no ready pod behind Service {target_service.name} ({target_service.why})"


@pytest.mark.requires("my-api")
def test_name_resolves_to_the_loadbalancer(dns, target_service):
    expected = {**target_service.loadbalancer_addresses(), **target_service.ingress_addresses()}
    if not expected:
        pytest.skip(f"Service {target_service.name} has no LoadBalancer or Ingress address to compare with")
    stray = [address for address in dns.addresses if address not in expected]
    assert not stray, f"{dns.name} resolves to {stray}, not an address of {sorted(expected)}"


def test_no_pod_restarts_often(cluster_reads):
    restarting = {pod.name: pod.restarts for pod in cluster_reads.pods() if pod.restarts > 5}
    assert not restarting, f"pods restarting often: {restarting}"
