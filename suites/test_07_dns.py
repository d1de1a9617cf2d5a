"""Section 7, dns: the target resolves on every resolver, the resolvers agree, and the answers are the
addresses of the target's LoadBalancer or Ingress (the incident's DNS A record pointed at neither).

The checks that read the resolved addresses require ``test_target_resolves``: when nothing resolved they
are BLOCKED by it instead of passing on an empty answer.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from pytest_reachability import history, prefetch
from pytest_reachability.changes import describe_move, moved_loadbalancers
from pytest_reachability.probes import propagation
from pytest_reachability.probes.dns import SYSTEM, is_ip_literal, resolve_all
from pytest_reachability.state import running

pytestmark = pytest.mark.section("dns")


@pytest.fixture
def resolved(dns: Any, target: Any, evidence: Any) -> Any:
    """The DNS report of the target's name, recorded on this test; skips for an IP target."""
    if target.is_ip:
        pytest.skip(f"target {target.host} is an IP address: nothing to resolve")
    evidence.record("dns", dns)
    return dns


def test_target_resolves(resolved):
    failures = "; ".join(
        f"{a.resolver}: {a.rcode}{' (' + a.error + ')' if a.error else ''}" for a in resolved.answers
    )
    assert resolved.addresses, (
        f"{resolved.name} did not resolve ({failures or 'no resolver'}); expected an A or AAAA record"
    )


def test_target_resolves_on_every_resolver(resolved):
    failed = [
        f"{a.resolver}: {a.failure.value if a.failure else a.rcode}{' (' + a.error + ')' if a.error else ''}"
        for a in resolved.failed
    ]
    assert not failed, (
        f"{resolved.name} did not resolve on {'; '.join(failed)}; expected an answer from every resolver"
    )


# Agreeing on "nothing" or matching no address proves nothing: both read the resolved addresses.
@pytest.mark.requires(test="test_target_resolves")
def test_resolvers_agree(resolved):
    answers = "; ".join(
        f"{a.resolver} answers {', '.join(a.addresses) or 'nothing'}" for a in resolved.answers
    )
    assert resolved.agree, (
        f"resolvers disagree about {resolved.name}: {answers}; expected the same addresses everywhere"
    )


def behind_hostnames(resolved: Any, expected: dict[str, str], settings: Any, evidence: Any) -> dict[str, str]:
    """The addresses of the LoadBalancers that publish a hostname rather than an IP (AWS's ELB/NLB, as on
    EKS: ``status.loadBalancer.ingress[].hostname``) -> their owner. A name whose CNAME chain passes through
    such a hostname was answered with that hostname's addresses; an alias A record (Route 53, external-dns)
    carries no CNAME, so each hostname is also resolved on the same resolvers, and recorded as evidence."""
    hostnames = {
        name.rstrip(".").lower(): owner for name, owner in expected.items() if not is_ip_literal(name)
    }
    if not hostnames:
        return {}
    behind: dict[str, str] = {}
    for answer in resolved.answers:  # each resolver's own chain vouches for its own addresses only
        chain = [resolved.name, *answer.cnames]
        through = next(
            (hostnames[n.rstrip(".").lower()] for n in chain if n.rstrip(".").lower() in hostnames), None
        )
        if through is not None:
            behind.update(dict.fromkeys(answer.addresses, through))
    deadline = time.monotonic() + settings.probe_timeout  # every hostname within one probe timeout
    for hostname, owner in list(hostnames.items())[:MAX_LB_HOSTNAMES]:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        report = resolve_all(hostname, list(settings.resolvers or [SYSTEM]), timeout=left)
        evidence.record("dns", report, source="loadbalancer_hostname")
        for address in report.addresses:
            behind.setdefault(address, owner)
    return behind


MAX_LB_HOSTNAMES = 8  # LoadBalancer hostnames resolved per check (a Service has one per ingress entry)


@pytest.mark.requires("cluster-access", test="test_target_resolves")
def test_dns_answers_are_loadbalancer_addresses(resolved, target_service, reachability_settings, evidence):
    evidence.record("target_service", target_service)
    for service in target_service.loadbalancers:
        evidence.record("service", service)
    for ingress in target_service.ingresses:
        evidence.record("ingress", ingress)
    # The ingress controllers' LoadBalancers carry what their addresses do (internal, traffic policy).
    for service in target_service.controller_services if target_service.ingresses else ():
        evidence.record("service", service)
    expected = {**target_service.loadbalancer_addresses(), **target_service.ingress_addresses()}
    if not expected:
        pytest.skip(
            f"Service {target_service.name} has no LoadBalancer and no Ingress for "
            f"{target_service.namespace} "
            f"has a rule for {resolved.name}: no address to compare with"
        )
    stray = [address for address in resolved.addresses if address not in expected]
    if stray:
        behind = behind_hostnames(resolved, expected, reachability_settings, evidence)
        stray = [address for address in stray if address not in behind]
    balancers = " or ".join(
        f"{s.name} ({', '.join((*s.lb_addresses, *s.external_ips)) or 'pending'})"
        for s in target_service.loadbalancers
    )
    owners = ([f"LoadBalancer {balancers}"] if balancers else []) + [
        f"Ingress {i.name} ({', '.join(i.addresses) or 'no address'})" for i in target_service.ingresses
    ]
    assert not stray, (
        f"DNS {'A/AAAA' if len(stray) > 1 else 'A' if '.' in stray[0] else 'AAAA'} {', '.join(stray)} "
        f"{'are not addresses' if len(stray) > 1 else 'is not an address'} of {' or '.join(owners)}"
    )


# What the zone's authoritative servers answer against what the resolvers still cache, and whether DNS still
# answers an address a LoadBalancer had in an earlier run (docs/waiting.md).
@pytest.fixture(scope="module")
def dns_propagation(target: Any, reachability_settings: Any, shared_results: Any) -> Any:
    """The propagation report of the target's name; skips for an IP target."""
    if target.is_ip:
        pytest.skip(f"target {target.host} is an IP address: nothing to resolve")
    port = propagation.authoritative_port(running().sandbox_info)
    return prefetch.propagation_report(target, reachability_settings, port, shared_results)


def test_resolvers_serve_what_the_authoritative_servers_answer(dns_propagation, evidence):
    report = dns_propagation
    evidence.record("dns_propagation", report.to_evidence())
    if report.source is None:
        pytest.skip(report.error or f"no authoritative server of {report.zone} answered")
    lines = report.disagreements()
    assert not lines, (
        f"changed at the source, still cached: {'; '.join(lines)}; expected every resolver to answer "
        f"what the authoritative servers of {report.zone} answer ({', '.join(report.source_addresses)})"
    )


@pytest.mark.requires("cluster-access")
def test_dns_does_not_answer_a_former_loadbalancer_address(
    dns, target, target_service, cluster, reachability_settings, shared_results, evidence
):
    # One read per namespace, however many of a fleet's targets live there.
    changes = prefetch.cluster_changes(cluster, target_service.namespace, shared_results)
    evidence.record("cluster_changes", changes)
    if not reachability_settings.results_db:
        pytest.skip("no history to compare addresses with (give --results-db to remember what each run saw)")
    key = history.target_key(target.host, target.base_path, reachability_settings.namespace)
    try:
        store = history.open_history(reachability_settings.results_db)
    except history.HistoryError as error:
        pytest.skip(f"history not readable: {error}")
    try:
        rows = store.addresses_seen(key)
    finally:
        store.close()
    current = {
        f"{entry['namespace']}/{entry['name']}": entry.get("loadbalancer") or []
        for entry in changes["objects"]
        if entry["kind"] == "Service" and entry.get("type") == "LoadBalancer"
    }
    moves = moved_loadbalancers(rows, current, dns.addresses, changes["objects"])
    evidence.record(
        "address_history", {"key": key, "rows": rows, "moves": moves, "read_at": changes["read_at"]}
    )
    if not rows:
        pytest.skip(f"no earlier run of {key} in the history to compare addresses with")
    still = [move for move in moves if move["dns_still_answers"]]
    assert not still, (
        f"{'; '.join(describe_move(move) for move in still)}; expected DNS to follow the LoadBalancer"
    )
