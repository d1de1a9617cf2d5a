"""Ranking that explains: every failure has a theory, causes outrank and fold their symptoms, contradicting
evidence lowers or removes a theory, and the order is the same every run."""

from __future__ import annotations

import random

import diagnosis_evidence as E
import pytest

from pytest_reachability.diagnosis import RULES, Theory, evaluate
from pytest_reachability.diagnosis.fallback import FALLBACK_RULE
from pytest_reachability.diagnosis.rank import CAUSES, PRECEDENCE
from pytest_reachability.probes.failures import Failure
from pytest_reachability.results import TestResult

DNS_FAILURES = {
    "dns_nxdomain": "NXDOMAIN",
    "dns_no_answer": "NOERROR",
    "dns_timeout": "TIMEOUT",
    "dns_servfail": "SERVFAIL",
    "dns_refused": "REFUSED",
    "dns_bad_answer": "BADANSWER",
}


def records_for(failure: Failure) -> list:
    """What the suite records when the target fails with ``failure`` (no cluster access)."""
    if failure.value in DNS_FAILURES:
        return [
            (
                "dns",
                E.dns(
                    answers=[E.answer(addresses=(), failure=failure.value, rcode=DNS_FAILURES[failure.value])]
                ),
            )
        ]
    status = {"http_status": 503, "body_mismatch": 200}.get(failure.value)
    if failure.phase == "tls":
        return [
            (
                "tls",
                {**E.tcp_probe("127.0.10.53", failure.value, port=443), "tls": E.tls_info("verify failed")},
            )
        ]
    return [
        ("dns", E.dns(["127.0.10.53"])),
        ("http_probe", E.http_probe("127.0.10.53", failure.value, status)),
    ]


@pytest.mark.parametrize("failure", list(Failure), ids=[f.value for f in Failure])
def test_every_failure_class_gets_a_theory_of_its_own(failure):
    facts = E.facts_of(*records_for(failure), failed={"api-health": f"GET /health failed: {failure.value}"})
    ranked, _ = evaluate(facts)
    assert ranked, f"{failure.value}: no theory"
    top = ranked[0]
    assert top.rule != FALLBACK_RULE, f"{failure.value}: only the fallback explains it"
    assert top.title and top.confirm and top.fix and top.evidence
    assert "suites/test_api-health.py::test_api_health" in top.all_explained() or any(
        t.rule != FALLBACK_RULE for t in ranked
    )


def test_a_failed_check_no_rule_knows_still_gets_a_theory_from_its_own_evidence():
    check = {
        "kind": "app_check",
        "data": E.app_check(
            "integration", "read the session's user", False, 500, 200, url="http://97v.test/api/v1/me"
        ),
    }
    facts = E.facts_of(failed={})
    facts.tests.append(
        TestResult(
            "suites/test_14_integration.py::test_flow",
            section="integration",
            outcome="failed",
            reason="GET http://97v.test/api/v1/me answered 500, expected 200",
            evidence=[check],
        )
    )
    ranked, _ = evaluate(facts)
    assert [t.rule for t in ranked] == [FALLBACK_RULE]
    theory = ranked[0]
    assert theory.title.startswith("integration: GET http://97v.test/api/v1/me answered 500, expected 200")
    assert (
        "read the session's user: observed 500, expected 200 (http://97v.test/api/v1/me)" in theory.evidence
    )
    assert theory.confirm == ["curl -v http://97v.test/api/v1/me"] and theory.fix
    assert theory.explains == ["suites/test_14_integration.py::test_flow"]


def test_nothing_failed_means_no_cause_and_no_fallback():
    ranked, _ = evaluate(
        E.facts_of(("dns", E.dns(["127.0.10.53"])), ("http_probe", E.http_probe("127.0.10.53")), failed={})
    )
    assert ranked == []


def test_a_failed_check_that_recorded_nothing_is_left_to_its_own_message():
    facts = E.facts_of(failed={})
    facts.tests.append(TestResult("tests/test_unit.py::test_math", outcome="failed", reason="assert 1 == 2"))
    facts.tests.append(
        TestResult(
            "suites/test_x.py::test_gate",
            section="api-health",
            outcome="failed",
            reason="GET /health failed on 127.0.10.57:80 empty_reply",
        )
    )
    assert evaluate(facts)[0] == []


CRASHLOOP = [
    ("target_service", E.target_service()),
    ("service", E.service()),
    (
        "pod",
        E.pod(
            ready=False,
            containers=[
                E.container(
                    "waiting",
                    "CrashLoopBackOff",
                    ready=False,
                    restarts=27,
                    last_reason="Error",
                    last_exit_code=1,
                )
            ],
        ),
    ),
    ("endpoint_slice", E.endpoint_slice(ready=(), not_ready=("10.244.0.45",))),
    ("dns", E.dns(["127.0.10.53"])),
    ("http_probe", E.http_probe("127.0.10.53", "http_status", 503)),
    ("in_cluster_health", E.in_cluster(503, 'no endpoints available for service "api"', no_endpoints=True)),
]
CRASHLOOP_FAILED = {
    "cluster": "pods waiting in a failure state: api-847495fbc4-686tk (CrashLoopBackOff)",
    "endpoints": "Service api has no ready endpoints",
    "api-health": "GET /health failed on 127.0.10.53:80 http_status (curl 22): 503",
    "api-internal": "no endpoints available for service api",
}


def test_the_cause_folds_its_symptoms_and_explains_what_they_explain():
    ranked, _ = evaluate(E.facts_of(*CRASHLOOP, failed=CRASHLOOP_FAILED))
    top = ranked[0]
    assert top.rule == "pods-crashing"
    folded = {s.rule for s in top.symptoms} | {ss.rule for s in top.symptoms for ss in s.symptoms}
    assert {"no-ready-endpoints", "http-5xx"} <= folded
    assert not {"no-ready-endpoints", "http-5xx"} & {t.rule for t in ranked}, (
        "symptoms are not listed as rival causes"
    )
    assert set(top.all_explained()) == {
        f"suites/test_{s}.py::test_{s.replace('-', '_')}" for s in CRASHLOOP_FAILED
    }
    assert all(top.confidence >= s.confidence for s in top.symptoms)


def test_the_order_is_the_same_whatever_the_order_of_rules_and_evidence():
    def ranking(rules, records):
        ranked, _ = evaluate(E.facts_of(*records, failed=CRASHLOOP_FAILED), rules)
        return [(t.rule, t.confidence, t.title, [s.rule for s in t.symptoms]) for t in ranked]

    records = CRASHLOOP + E.incident_records()[9:]
    expected = ranking(RULES, records)
    generator = random.Random(7)
    for _ in range(5):
        rules, shuffled = list(RULES), list(records)
        generator.shuffle(rules)
        generator.shuffle(shuffled)
        assert ranking(tuple(rules), shuffled) == expected


def test_evidence_against_a_theory_lowers_it():
    # The same crashing pod, but the app answers inside the cluster: something else serves, the pod state is
    # stale.
    answering = [(k, E.in_cluster() if k == "in_cluster_health" else d) for k, d in CRASHLOOP]
    crash = next(
        t for t in evaluate(E.facts_of(*CRASHLOOP, failed=CRASHLOOP_FAILED))[0] if t.rule == "pods-crashing"
    )
    lowered = next(
        t for t in evaluate(E.facts_of(*answering, failed=CRASHLOOP_FAILED))[0] if t.rule == "pods-crashing"
    )
    assert lowered.confidence < crash.confidence


def test_causes_form_a_graph_without_cycles_over_known_rules():
    known = {rule.__name__.replace("_", "-") for rule in RULES}
    assert set(CAUSES) <= known and {s for symptoms in CAUSES.values() for s in symptoms} <= known
    assert set(PRECEDENCE) <= known
    visiting, done = set(), set()

    def visit(rule):
        assert rule not in visiting, f"cycle through {rule}"
        if rule in done:
            return
        visiting.add(rule)
        for symptom in CAUSES.get(rule, ()):
            visit(symptom)
        visiting.discard(rule)
        done.add(rule)

    for rule in CAUSES:
        visit(rule)


def test_theory_round_trips_with_explains_symptoms_and_unknowns():
    symptom = Theory(
        "http-5xx",
        "answers 503",
        0.55,
        ["GET /health: 503"],
        ["curl ..."],
        ["fix it"],
        explains=["t2"],
        unknowns=["pods not checked — kubectl get pods (needs cluster access)"],
    )
    theory = Theory(
        "pods-crashing",
        "crashes",
        0.9,
        ["pod x"],
        ["kubectl get pods"],
        ["restart"],
        explains=["t1"],
        symptoms=[symptom],
    )
    data = theory.to_dict()
    assert data["symptoms"][0]["rule"] == "http-5xx" and data["explains"] == ["t1"] and data["unknowns"] == []
    back = Theory.from_dict(data)
    assert back.to_dict() == data and back.all_explained() == ["t1", "t2"]
    assert Theory.from_dict({"rule": "r", "title": "t"}).symptoms == []
