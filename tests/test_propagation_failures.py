"""Propagation checks against resolvers that fail rather than cache: a SERVFAIL or REFUSED for the name is a
resolver that is down for it, never "changed at the source, still cached". Asked with EDNS, so that a
validating resolver's extended error (RFC 8914) says why; asked again without it when a server does not
speak EDNS. Against the sandbox's own authoritative servers and resolvers, and a hostile DNS server on
loopback."""

from __future__ import annotations

import time

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import hostile
import pytest

from pytest_reachability.probes import propagation
from pytest_reachability.probes.propagation import check_propagation
from pytest_reachability.sandbox import Sandbox

WORLD = """
name: propagation-resolver-fails
description: the authoritative servers and the primary resolver answer; the secondary fails for the name
base: healthy
postgres: false
dns:
  authoritative:
    zone: 97v.test
    serial: 2025120801
    nameservers: {{ns1.97v.test: 127.0.20.1, ns2.97v.test: 127.0.20.2}}
    records:
      97v.test: {{A: [127.0.10.53], ttl: 60}}
  primary: {{cache: true}}
  secondary:
    records:
      97v.test: {secondary}
"""


@pytest.mark.parametrize(
    ("secondary", "said"),
    [
        (
            '{rcode: SERVFAIL, ede: [{code: 6, text: "validation failure <97v.test. A IN>: no signatures"}]}',
            "SERVFAIL (DNSSEC Bogus (EDE 6): validation failure <97v.test. A IN>: no signatures)",
        ),
        ("{rcode: REFUSED}", "REFUSED"),
    ],
)
def test_a_resolver_that_fails_for_the_name_is_down_not_stale(tmp_path, secondary: str, said: str) -> None:
    path = tmp_path / "world.yaml"
    path.write_text(WORLD.format(secondary=secondary))
    with Sandbox(path, postgres=False) as info:
        report = check_propagation(
            "97v.test", info.resolvers, timeout=3, authoritative_port=info.authoritative_port
        )
    primary, secondary_answer = report.resolver_answers
    assert report.source_addresses == ["127.0.10.53"]
    assert primary.answered and primary.addresses == ["127.0.10.53"]
    assert not secondary_answer.answered and secondary_answer.error == said
    assert report.stale() == [] and not report.agree
    assert report.disagreements() == [f"resolver {secondary_answer.server} did not answer: {said}"]
    assert report.last_cache_expiry is None  # nothing waits on a cache to expire


def test_a_resolver_answering_nxdomain_still_compares_as_an_answer(tmp_path) -> None:
    # NXDOMAIN is an answer (the name has no addresses there): a resolver caching it while the source now
    # has the name is stale, as before.
    path = tmp_path / "world.yaml"
    path.write_text(WORLD.format(secondary="{rcode: NXDOMAIN}"))
    with Sandbox(path, postgres=False) as info:
        report = check_propagation(
            "97v.test", info.resolvers, timeout=3, authoritative_port=info.authoritative_port
        )
    assert [answer.server for answer in report.stale()] == [info.resolvers[1]]
    assert report.resolver_answers[1].answered and report.resolver_answers[1].rcode == "NXDOMAIN"


@pytest.mark.parametrize("rcode", [dns.rcode.FORMERR, dns.rcode.NOTIMP])
def test_a_server_without_edns_is_asked_again_without_it(rcode: int) -> None:
    seen: list[dns.message.Message] = []
    with hostile.HostileDns(hostile.without_edns(rcode, ["127.0.10.58"], seen)) as server:
        reply = propagation._ask(
            ("127.0.0.1", server.port), "97v.test", dns.rdatatype.A, time.perf_counter() + 2, recursion=False
        )
    assert [item.address for rrset in reply.answer for item in rrset] == ["127.0.10.58"]
    assert [query.edns for query in seen] == [0, -1]
    assert all(not query.flags & dns.flags.RD for query in seen)
