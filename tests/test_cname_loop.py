"""A CNAME chain that comes back to a name already in it (www -> edge -> www) is a loop, not a dangling
CNAME: its "target" is the name asked for, which resolves to nothing only because of the loop, and the
takeover warning of a dangling CNAME (someone else may register its target) does not apply to names in one's
own zone. Each name of the chain is looked at once."""

from __future__ import annotations

from pytest_reachability.diagnosis.facts import Facts
from pytest_reachability.diagnosis.rules_dns import dns_cname_loop, dns_dangling_cname
from pytest_reachability.results import TestResult
from pytest_reachability.sandbox.evaluate import evaluate


def _facts(cnames: list[str]) -> Facts:
    answer = {
        "resolver": "127.0.0.1:5353",
        "name": "www.97v.test",
        "addresses": [],
        "cnames": cnames,
        "rcode": "NOERROR",
        "failure": "dns_no_answer",
    }
    test = TestResult("suites/test_07_dns.py::test_dns_resolves_on_every_resolver")
    test.outcome, test.section = "failed", "dns"
    test.reason = "www.97v.test: no address"
    test.evidence = [
        {
            "kind": "dns",
            "data": {
                "name": "www.97v.test",
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
