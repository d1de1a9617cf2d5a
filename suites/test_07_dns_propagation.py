"""Section 7, dns (continued): what the zone's authoritative servers answer against what the resolvers still
cache, and whether DNS still answers an address a LoadBalancer of the namespace had in an earlier run.

A change lands on the authoritative servers first; each caching resolver serves its old answer until the TTL
it cached runs out. The first check asks the servers named by the zone's NS records directly and says which
resolver still serves what, and until when. The second compares the LoadBalancer addresses of the namespace
with those earlier runs saw (``--results-db``), with the creation times and UIDs of the objects involved, so
that "Service api was re-created and its LoadBalancer moved; DNS still answers the old address" is evidence.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from pytest_reachability import history
from pytest_reachability.changes import cluster_changes, describe_move, moved_loadbalancers
from pytest_reachability.probes import propagation
from pytest_reachability.state import find_state

pytestmark = pytest.mark.section("dns")


@pytest.fixture(scope="module")
def dns_propagation(target: Any, reachability_settings: Any, pytestconfig: pytest.Config) -> Any:
    """The propagation report of the target's name; skips for an IP target."""
    if target.is_ip:
        pytest.skip(f"target {target.host} is an IP address: nothing to resolve")
    state = find_state(pytestconfig)
    port = propagation.authoritative_port(state.sandbox_info if state is not None else None)
    return propagation.probe(target, reachability_settings, port=port)


def test_resolvers_serve_what_the_authoritative_servers_answer(dns_propagation, evidence):
    report = dns_propagation
    evidence.record("dns_propagation", report.to_evidence())
    if report.source is None:
        pytest.skip(report.error or f"no authoritative server of {report.zone} answered")
    lines = report.disagreements()
    assert not lines, (f"changed at the source, still cached: {'; '.join(lines)}; expected every resolver to answer "
                       f"what the authoritative servers of {report.zone} answer ({', '.join(report.source_addresses)})")


@pytest.mark.requires("cluster-access")
def test_dns_does_not_answer_a_former_loadbalancer_address(dns, target, target_service, cluster, reachability_settings,
                                                          evidence):
    changes = cluster_changes(cluster, target_service.namespace)
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
    current = {f"{entry['namespace']}/{entry['name']}": entry.get("loadbalancer") or []
               for entry in changes["objects"] if entry["kind"] == "Service" and entry.get("type") == "LoadBalancer"}
    moves = moved_loadbalancers(rows, current, dns.addresses, changes["objects"])
    evidence.record("address_history", {"key": key, "rows": rows, "moves": moves,
                                        "read_at": changes["read_at"] or datetime.now(timezone.utc).isoformat()})
    if not rows:
        pytest.skip(f"no earlier run of {key} in the history to compare addresses with")
    still = [move for move in moves if move["dns_still_answers"]]
    assert not still, f"{'; '.join(describe_move(move) for move in still)}; expected DNS to follow the LoadBalancer"
