"""Section 7, dns: the target resolves on every resolver, the resolvers agree, and the answers are the
addresses of the target's LoadBalancer or Ingress (the incident's DNS A record pointed at neither).

The checks that read the resolved addresses require ``test_target_resolves``: when nothing resolved they
are BLOCKED by it instead of passing on an empty answer.
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.section("dns")


@pytest.fixture
def resolved(dns: Any, target: Any, evidence: Any) -> Any:
    """The DNS report of the target's name, recorded on this test; skips for an IP target."""
    if target.is_ip:
        pytest.skip(f"target {target.host} is an IP address: nothing to resolve")
    evidence.record("dns", dns)
    return dns


def test_target_resolves(resolved):
    failures = "; ".join(f"{a.resolver}: {a.rcode}{' (' + a.error + ')' if a.error else ''}" for a in resolved.answers)
    assert resolved.addresses, f"{resolved.name} did not resolve ({failures or 'no resolver'}); expected an A or AAAA record"


def test_target_resolves_on_every_resolver(resolved):
    failed = [
        f"{a.resolver}: {a.failure.value if a.failure else a.rcode}{' (' + a.error + ')' if a.error else ''}"
        for a in resolved.failed
    ]
    assert not failed, f"{resolved.name} did not resolve on {'; '.join(failed)}; expected an answer from every resolver"


# Agreeing on "nothing" or matching no address proves nothing: both read the resolved addresses.
@pytest.mark.requires(test="test_target_resolves")
def test_resolvers_agree(resolved):
    answers = "; ".join(f"{a.resolver} answers {', '.join(a.addresses) or 'nothing'}" for a in resolved.answers)
    assert resolved.agree, f"resolvers disagree about {resolved.name}: {answers}; expected the same addresses everywhere"


@pytest.mark.requires("cluster-access", test="test_target_resolves")
def test_dns_answers_are_loadbalancer_addresses(resolved, target_service, evidence):
    evidence.record("target_service", target_service)
    for service in target_service.loadbalancers:
        evidence.record("service", service)
    for ingress in target_service.ingresses:
        evidence.record("ingress", ingress)
    expected = {**target_service.loadbalancer_addresses(), **target_service.ingress_addresses()}
    if not expected:
        pytest.skip(f"Service {target_service.name} has no LoadBalancer and no Ingress for {target_service.namespace} "
                    f"has a rule for {resolved.name}: no address to compare with")
    stray = [address for address in resolved.addresses if address not in expected]
    balancers = " or ".join(
        f"{s.name} ({', '.join((*s.lb_addresses, *s.external_ips)) or 'pending'})" for s in target_service.loadbalancers
    )
    owners = ([f"LoadBalancer {balancers}"] if balancers else []) + [
        f"Ingress {i.name} ({', '.join(i.addresses) or 'no address'})" for i in target_service.ingresses
    ]
    assert not stray, (
        f"DNS {'A/AAAA' if len(stray) > 1 else 'A' if '.' in stray[0] else 'AAAA'} {', '.join(stray)} "
        f"{'are not addresses' if len(stray) > 1 else 'is not an address'} of {' or '.join(owners)}")
