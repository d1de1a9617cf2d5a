"""The bundled ``fleet`` scenario: 200 hosts on loopback, and discovery through its running sandbox finding
exactly the hosts it publishes, no more (a ClusterIP Service's annotation, a catch-all rule) and no fewer.
"""

from __future__ import annotations

import ipaddress

import pytest

from pytest_reachability.cluster import Cluster
from pytest_reachability.discover import discover
from pytest_reachability.sandbox import Sandbox, load_scenario

FLEET_HOSTS = {f"svc-{number:03d}.fleet.test" for number in range(200)}
WILDCARD = "*.preview.fleet.test"
LEGACY_NAME = "legacy-lb.fleet.test"  # the CNAME target of the shared cause, not a published host


@pytest.fixture(scope="module")
def scenario():
    return load_scenario("fleet")


@pytest.fixture(scope="module")
def discovered(scenario):
    with Sandbox(scenario) as info, Cluster.connect(kubeconfig=info.kubeconfig, timeout=5.0) as cluster:
        return {target.host: target for target in discover(cluster)}


def records(scenario):
    (resolver,) = scenario.resolvers
    return resolver.records


def edge_at(scenario, address):
    return next((edge for edge in scenario.edges if edge.address == address), None)


def test_the_fleet_scenario_loads_with_200_hosts_on_loopback(scenario):
    served = {host for edge in scenario.edges for host in edge.hosts or ()}
    named = set(records(scenario)) - {LEGACY_NAME}
    assert served | named == FLEET_HOSTS
    assert len(FLEET_HOSTS) >= 200
    assert all(ipaddress.ip_address(edge.address).is_loopback for edge in scenario.edges)
    assert scenario.target.host in served and scenario.expect.top is None


def test_discovery_through_the_sandbox_finds_exactly_the_published_hosts(scenario, discovered):
    assert set(discovered) == FLEET_HOSTS | {WILDCARD}
    assert [host for host, target in discovered.items() if target.wildcard] == [WILDCARD]
    # Every name the scenario's DNS or edges serve is found, and every address found is one of its edges.
    assert set(records(scenario)) - {LEGACY_NAME} <= set(discovered)
    edges = {edge.address for edge in scenario.edges}
    assert {address for target in discovered.values() for address in target.addresses} <= edges


def test_every_ingress_and_annotated_load_balancer_of_the_scenario_is_a_source(scenario, discovered):
    objects = {source for target in discovered.values() for source in target.objects}
    ingresses = {
        f"Ingress/{o['metadata']['namespace']}/{o['metadata']['name']}"
        for o in scenario.objects_of_kind("Ingress")
    }
    annotated = {
        f"Service/{o['metadata']['namespace']}/{o['metadata']['name']}"
        for o in scenario.objects_of_kind("Service")
        if o["spec"].get("type") == "LoadBalancer"
        and any("hostname" in key for key in o["metadata"].get("annotations") or {})
    }
    assert objects == ingresses | annotated
    assert annotated == {"Service/media/stream", "Service/payments/gateway", "Service/payments/legacy-api"}


def test_the_shared_cause_and_the_single_faults_are_where_the_scenario_says(scenario, discovered):
    dns = records(scenario)
    # One stale CNAME breaks twelve hosts that their Ingress says traefik serves.
    behind_legacy = sorted(host for host, record in dns.items() if record.cname == LEGACY_NAME)
    assert len(behind_legacy) == 12
    assert edge_at(scenario, dns[LEGACY_NAME].a[0]).behaviour.kind == "empty_reply"
    assert {discovered[host].addresses for host in behind_legacy} == {("127.0.20.2",)}
    # svc-013: published, no DNS record.
    assert "svc-013.fleet.test" in discovered and "svc-013.fleet.test" not in dns
    # svc-142: its Ingress's class has no controller, so no address.
    assert discovered["svc-142.fleet.test"].addresses == ()
    # svc-150: its A record is an address no edge serves.
    assert edge_at(scenario, dns["svc-150.fleet.test"].a[0]) is None
    # svc-197: its LoadBalancer refuses.
    (address,) = discovered["svc-197.fleet.test"].addresses
    assert edge_at(scenario, address).behaviour.kind == "refuse"
    # Healthy hosts resolve to an address their sources report.
    healthy = FLEET_HOSTS - set(behind_legacy) - {f"svc-{n}.fleet.test" for n in ("013", "142", "150", "197")}
    assert len(healthy) == 184
    for host in healthy:
        assert set(dns[host].a) <= set(discovered[host].addresses), host
