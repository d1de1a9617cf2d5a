"""Wildcard records in the sandbox DNS server, as RFC 4592 defines them, asked with dnspython over UDP and
TCP of a running sandbox: the wildcard answers names that do not exist under its parent, and nothing else.
"""

from __future__ import annotations

import textwrap

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from pytest_reachability.sandbox import Sandbox, ScenarioError, load_scenario

SCENARIO = """\
name: wildcard-dns
description: a wildcard beside explicit records, an empty non-terminal and a wildcard CNAME
target: {host: www.apps.test, scheme: http}
postgres: false
dns:
  primary:
    records:
      "*.apps.test": {A: [127.0.30.1], ttl: 60}
      www.apps.test: {A: [127.0.30.2]}
      api.apps.test: {TXT: [explicit]}
      db.internal.apps.test: {A: [127.0.30.3]}
      "*.lb.test": {CNAME: edge.lb.test}
      edge.lb.test: {A: [127.0.30.4]}
edges:
  - {address: 127.0.30.1, behaviour: healthy}
"""


@pytest.fixture(scope="module")
def resolver(tmp_path_factory):
    path = tmp_path_factory.mktemp("wildcard") / "wildcard-dns.yaml"
    path.write_text(SCENARIO)
    with Sandbox(path, postgres=False) as info:
        host, port = info.resolvers[0].rsplit(":", 1)
        yield host, int(port)


def ask(resolver, name: str, rdtype: str = "A", *, tcp: bool = False) -> dns.message.Message:
    host, port = resolver
    send = dns.query.tcp if tcp else dns.query.udp
    return send(dns.message.make_query(name, rdtype), host, port=port, timeout=3)


def answers(response: dns.message.Message) -> list[tuple[str, str, str]]:
    return [
        (rrset.name.to_text(), dns.rdatatype.to_text(rrset.rdtype), item.to_text())
        for rrset in response.answer
        for item in rrset
    ]


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_a_name_that_does_not_exist_is_answered_from_the_wildcard_under_its_own_name(resolver, tcp):
    response = ask(resolver, "anything.apps.test", tcp=tcp)
    assert response.rcode() == dns.rcode.NOERROR and response.flags & dns.flags.AA
    assert answers(response) == [("anything.apps.test.", "A", "127.0.30.1")]
    assert response.answer[0].ttl == 60


def test_names_several_labels_below_the_closest_encloser_match_too(resolver):
    # RFC 4592 2.2.1: the closest encloser of a.b.apps.test is apps.test, so *.apps.test is the source.
    assert answers(ask(resolver, "a.b.apps.test")) == [("a.b.apps.test.", "A", "127.0.30.1")]


def test_an_explicit_record_wins_over_the_wildcard(resolver):
    assert answers(ask(resolver, "www.apps.test")) == [("www.apps.test.", "A", "127.0.30.2")]


def test_a_name_with_records_of_another_type_gets_no_data_not_the_wildcard(resolver):
    response = ask(resolver, "api.apps.test", "A")
    assert response.rcode() == dns.rcode.NOERROR and response.answer == []
    assert [rrset.rdtype for rrset in response.authority] == [dns.rdatatype.SOA]


def test_the_wildcards_parent_is_not_matched(resolver):
    # apps.test owns nothing (names below it only): no answer from *.apps.test, NXDOMAIN as for any name
    # without records in the sandbox.
    response = ask(resolver, "apps.test")
    assert response.rcode() == dns.rcode.NXDOMAIN and response.answer == []


def test_an_empty_non_terminal_blocks_the_wildcard(resolver):
    # internal.apps.test exists (db.internal.apps.test is below it), so it is no name for *.apps.test ...
    response = ask(resolver, "internal.apps.test")
    assert response.rcode() == dns.rcode.NXDOMAIN and response.answer == []
    # ... and a name under it has internal.apps.test as closest encloser, which has no wildcard child.
    assert ask(resolver, "other.internal.apps.test").rcode() == dns.rcode.NXDOMAIN


def test_a_name_under_an_existing_name_is_not_matched(resolver):
    assert ask(resolver, "x.www.apps.test").rcode() == dns.rcode.NXDOMAIN


def test_names_outside_the_wildcards_parent_stay_nxdomain(resolver):
    assert ask(resolver, "anything.other.test").rcode() == dns.rcode.NXDOMAIN
    assert ask(resolver, "anything.test").rcode() == dns.rcode.NXDOMAIN


def test_a_wildcard_cname_is_synthesised_and_followed(resolver):
    assert answers(ask(resolver, "shop.lb.test")) == [
        ("shop.lb.test.", "CNAME", "edge.lb.test."),
        ("edge.lb.test.", "A", "127.0.30.4"),
    ]


@pytest.mark.parametrize("name", ["a.*.apps.test", "*x.apps.test", "*", "**.apps.test"])
def test_a_wildcard_anywhere_but_the_first_whole_label_is_refused(tmp_path, name):
    path = tmp_path / "bad.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            name: bad
            description: bad wildcard
            target: {{host: www.apps.test}}
            dns: {{primary: {{records: {{"{name}": {{A: [127.0.30.1]}}}}}}}}
            """
        )
    )
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: dns.primary.records: expected host names or wildcards")
    assert "\n" not in message
