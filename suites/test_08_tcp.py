"""Section 8, tcp: a TCP connection opens to every address DNS answers and to every LoadBalancer address.

Each failure is classified (refused: nothing listens; timeout: a firewall drops or the address is wrong;
unreachable: no route) and comes with a curl line to reproduce it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from pytest_reachability import prefetch
from pytest_reachability.probes import tcp

pytestmark = pytest.mark.section("tcp")


def connect_all(
    target: Any, addresses: Iterable[str], settings: Any, shared_results: Any
) -> list[tcp.TcpResult]:
    """One TCP connect per address, concurrently; shared by every xdist worker (and started at session
    start for the resolved addresses)."""
    return prefetch.tcp_results(target, addresses, settings, shared_results)


def describe_failures(results: list[tcp.TcpResult]) -> str:
    return "; ".join(
        f"{r.address}:{r.port} {r.failure.value} (curl {r.curl_exit}): {r.detail}"
        for r in results
        if not r.ok
    )


def test_every_resolved_address_accepts_connections(
    target, dns, reachability_settings, shared_results, evidence
):
    addresses = [target.host] if target.is_ip else list(dns.addresses)
    assert addresses, f"{target.host} did not resolve: no address to connect to (see section dns)"
    results = connect_all(target, addresses, reachability_settings, shared_results)
    for result in results:
        evidence.record("tcp", result, source="dns")
    assert all(r.ok for r in results), (
        f"TCP connect failed: {describe_failures(results)}; expected every resolved address to accept "
        "connections"
    )


@pytest.mark.requires("cluster-access")
def test_every_loadbalancer_address_accepts_connections(
    target, target_service, reachability_settings, shared_results, evidence
):
    owners = target_service.loadbalancer_addresses()
    if not owners:
        pytest.skip(
            f"no LoadBalancer address for Service {target_service.name} "
            f"({', '.join(s.name + ' pending' for s in target_service.loadbalancers) or 'no LoadBalancer'})"
        )
    results = connect_all(target, owners, reachability_settings, shared_results)
    for result in results:
        evidence.record("tcp", result, source="loadbalancer", service=owners.get(result.address))
    failed = [
        f"LoadBalancer {owners.get(r.address)} {r.address}:{r.port} {r.failure.value} (curl {r.curl_exit}): "
        f"{r.detail}"
        for r in results
        if not r.ok
    ]
    assert not failed, (
        f"TCP connect failed: {'; '.join(failed)}; expected every LoadBalancer address to accept connections"
    )
