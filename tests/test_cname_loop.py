"""A CNAME chain that comes back to a name already in it (www -> edge -> www) is a loop, not a dangling
CNAME: its "target" is the name asked for, which resolves to nothing only because of the loop, and the
takeover warning of a dangling CNAME (someone else may register its target) does not apply to names in one's
own zone. Each name of the chain is looked at once."""

from __future__ import annotations

import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from pytest_reachability.diagnosis.facts import Facts
from pytest_reachability.diagnosis.rules_dns import dns_cname_loop, dns_dangling_cname
from pytest_reachability.probes.dns import ResolverAnswer, _FamilyResult, _follow_chain, _merge_families
from pytest_reachability.results import TestResult
from pytest_reachability.sandbox.evaluate import evaluate


def _facts(cnames: list[str], name: str = "www.97v.test") -> Facts:
    answer = {
        "resolver": "127.0.0.1:5353",
        "name": name,
        "addresses": [],
        "cnames": cnames,
        "rcode": "NOERROR",
        "failure": "dns_no_answer",
    }
    test = TestResult("suites/test_07_dns.py::test_dns_resolves_on_every_resolver")
    test.outcome, test.section = "failed", "dns"
    test.reason = f"{name}: no address"
    test.evidence = [
        {
            "kind": "dns",
            "data": {
                "name": name,
                "addresses": [],
                "failure": "dns_no_answer",
                "answers": [answer],
            },
        }
    ]
    return Facts([test])


def test_a_chain_back_to_the_name_asked_is_a_loop() -> None:
    facts = _facts(["edge.97v.test", "WWW.97v.test."])
    assert dns_dangling_cname(facts) is None
    theory = dns_cname_loop(facts)
    assert theory is not None and theory.rule == "dns-cname-loop"
    assert "form a loop (www.97v.test -> edge.97v.test -> WWW.97v.test.)" in theory.title
    assert not any("takeover" in line for line in theory.fix)
    assert theory.confirm == [
        "dig @127.0.0.1 -p 5353 www.97v.test CNAME +short",
        "dig @127.0.0.1 -p 5353 edge.97v.test CNAME +short",
    ]
    assert theory.explains == ["suites/test_07_dns.py::test_dns_resolves_on_every_resolver"]


def test_a_loop_further_down_the_chain_is_a_loop_too() -> None:
    theory = dns_cname_loop(_facts(["a.97v.test", "b.97v.test", "a.97v.test"]))
    assert theory is not None and theory.rule == "dns-cname-loop"


def test_a_chain_to_a_name_that_is_gone_still_dangles() -> None:
    facts = _facts(["edge.97v.test", "k8s-old-lb.elb.amazonaws.com"])
    assert dns_cname_loop(facts) is None
    theory = dns_dangling_cname(facts)
    assert theory is not None and theory.rule == "dns-dangling-cname"
    assert any("takeover" in line for line in theory.fix)


def test_the_bundled_scenario_through_the_sandbox_dns_server() -> None:
    (row,) = evaluate(["dns-cname-loop"])
    assert row.hit, row.problem()
    assert "www.97v.test -> edge.97v.test -> www.97v.test" in row.title


def _response(question: str, *records: tuple[str, str]) -> dns.message.Message:
    query = dns.message.make_query(question, "A")
    response = dns.message.make_response(query)
    for owner, target in records:
        rrset = response.find_rrset(
            response.answer, dns.name.from_text(owner), dns.rdataclass.IN, dns.rdatatype.CNAME, create=True
        )
        rrset.add(dns.rdata.from_text("IN", "CNAME", target), 300)
    return response


def test_the_probe_ends_a_chain_on_the_name_it_comes_back_to() -> None:
    """a -> b -> c -> b: the chain the probe records ends on b again, so the loop stays visible (a list of
    the names seen, b and c, would read as a chain dangling at c)."""
    result = _FamilyResult()
    _follow_chain(
        _response(
            "a.97v.test.",
            ("a.97v.test.", "b.97v.test."),
            ("b.97v.test.", "c.97v.test."),
            ("c.97v.test.", "b.97v.test."),
        ),
        dns.name.from_text("a.97v.test."),
        dns.rdatatype.A,
        result,
    )
    assert result.cnames == ["b.97v.test", "c.97v.test", "b.97v.test"]
    answer = ResolverAnswer(resolver="127.0.0.1:53", name="a.97v.test")
    _merge_families(answer, {"A": result, "AAAA": result}, ("A", "AAAA"))
    assert answer.cnames == ["b.97v.test", "c.97v.test", "b.97v.test"]
    theory = dns_cname_loop(_facts(answer.cnames, name="a.97v.test"))
    assert theory is not None and "a.97v.test -> b.97v.test -> c.97v.test -> b.97v.test" in theory.title
