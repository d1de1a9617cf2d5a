"""ExternalName Services: a DNS alias the cluster's clients (ingress controllers included) resolve. Checked by
resolving the name on the run's resolvers (section endpoints), never through the API server's service
proxy, which kube-apiserver only lets reach the pods of a Service's EndpointSlices (an ExternalName has
none: it answers "no endpoints available" however healthy the alias is). Each case is the built-in suite
against the sandbox's real DNS server, in a fresh process."""

from __future__ import annotations

from pathlib import Path

import pytest
from scenario_runs import run_suite

from pytest_reachability.diagnosis.facts import Facts
from pytest_reachability.diagnosis.rules_wiring import external_name_unresolvable
from pytest_reachability.results import TestResult
from suites.test_04_endpoints import in_cluster_name

ALIAS_TEST = "test_04_endpoints.py::test_external_names_resolve"
PROXY_TEST = "test_11_api_internal.py::test_health_through_the_service_proxy"


def _variant(folder: Path, external_name: str, edge: str = "healthy") -> str:
    path = folder / "variant.yaml"
    path.write_text(
        "name: external-name-variant\n"
        "description: the ExternalName scenario with another externalName\n"
        "base: external-name-unresolvable\n"
        f"edges:\n  - {{address: 127.0.10.80, behaviour: {edge}, hosts: [97v.test, www.97v.test]}}\n"
        "kubernetes:\n  objects:\n"
        "    - apiVersion: v1\n      kind: Service\n      metadata: {name: api, namespace: production}\n"
        f"      spec: {{externalName: '{external_name}'}}\n"
    )
    return str(path)


def _tests(results: dict) -> dict[str, dict]:
    """Each test's result by node id from the suite's folder (``test_04_endpoints.py::...``)."""
    return {test["nodeid"].rsplit("/", 1)[-1]: test for test in results["tests"]}


def test_an_alias_to_a_name_that_does_not_exist_is_the_cause(tmp_path: Path) -> None:
    results, stdout = run_suite("external-name-unresolvable", tmp_path)
    tests = _tests(results)
    assert tests[ALIAS_TEST]["outcome"] == "failed"
    assert "api.eu-west-1.hosting.97v.test, which has no address" in tests[ALIAS_TEST]["reason"]
    # The proxy's "no endpoints available" is how kube-apiserver answers for every ExternalName: no verdict.
    assert tests[PROXY_TEST]["outcome"] == "skipped"
    assert "is an ExternalName for api.eu-west-1.hosting.97v.test" in tests[PROXY_TEST]["reason"]
    top = results["theories"][0]
    assert top["rule"] == "external-name-unresolvable"
    assert top["title"].startswith(
        "Service `api` is an ExternalName for api.eu-west-1.hosting.97v.test, which does not resolve "
        "(NXDOMAIN from 127.0.0.1:"
    )
    assert "Ingress `api-ingress` routes 97v.test/ to it" in top["title"]
    assert top["confidence"] == pytest.approx(0.9)
    assert "kubectl -n production get service api -o jsonpath='{.spec.externalName}'" in top["confirm"]
    assert "1. [90%] Service `api` is an ExternalName" in stdout


def test_an_alias_that_resolves_passes_and_blames_nothing(tmp_path: Path) -> None:
    results, _ = run_suite(_variant(tmp_path, "api.eu-west-1.hosted.97v.test"), tmp_path)
    tests = _tests(results)
    assert tests[ALIAS_TEST]["outcome"] == "passed"
    assert tests[PROXY_TEST]["outcome"] == "skipped"
    assert not [t for t in results["theories"] if t["rule"] == "external-name-unresolvable"]
    failing = [name for name, test in tests.items() if test["outcome"] in ("failed", "error", "blocked")]
    assert not failing, failing


def test_an_alias_to_a_cluster_name_is_left_to_the_cluster(tmp_path: Path) -> None:
    results, _ = run_suite(_variant(tmp_path, "api.payments.svc.cluster.local"), tmp_path)
    test = _tests(results)[ALIAS_TEST]
    assert test["outcome"] == "skipped"
    assert "names only the cluster's DNS answers: api (api.payments.svc.cluster.local)" in test["reason"]


def test_an_alias_that_is_an_address_fails(tmp_path: Path) -> None:
    results, _ = run_suite(_variant(tmp_path, "10.20.30.40", edge="{http_status: 503}"), tmp_path)
    test = _tests(results)[ALIAS_TEST]
    assert test["outcome"] == "failed"
    assert "externalName 10.20.30.40 is an address, which DNS does not resolve as a name" in test["reason"]


@pytest.mark.parametrize(
    ("name", "inside"),
    [
        ("api.payments.svc.cluster.local", True),
        ("api.payments.svc", True),
        ("db.corp.cluster.local", True),
        ("svc.example.com", False),  # "svc" as the first label is a host name like any other
        ("api.svc-eu.example.com", False),
        ("api.eu-west-1.rds.amazonaws.com", False),
    ],
)
def test_cluster_names_are_told_from_public_ones(name: str, inside: bool) -> None:
    assert in_cluster_name(name) is inside


def _facts(failures: list[str]) -> Facts:
    test = TestResult(ALIAS_TEST)
    test.outcome, test.section = "failed", "endpoints"
    test.reason = "Service api is an ExternalName for api.example.test, which has no address"
    answers = [
        {"resolver": f"10.0.0.{n}", "name": "api.example.test", "addresses": [], "rcode": rcode, "failure": f}
        for n, (rcode, f) in enumerate(
            [("NXDOMAIN" if f == "dns_nxdomain" else "SERVFAIL", f) for f in failures], start=1
        )
    ]
    test.evidence = [
        {
            "kind": "service",
            "data": {
                "name": "api",
                "namespace": "production",
                "type": "ExternalName",
                "external_name": "api.example.test",
            },
        },
        {
            "kind": "external_name_dns",
            "data": {
                "name": "api.example.test",
                "addresses": [],
                "answers": answers,
                "service": "api",
                "namespace": "production",
            },
        },
    ]
    return Facts([test])


def test_the_rule_needs_every_resolver_to_say_the_name_does_not_exist() -> None:
    theory = external_name_unresolvable(_facts(["dns_nxdomain", "dns_nxdomain"]))
    assert theory is not None and theory.rule == "external-name-unresolvable"
    assert theory.explains == [ALIAS_TEST]
    # One resolver that failed to answer is not a resolver saying "no such name".
    assert external_name_unresolvable(_facts(["dns_nxdomain", "dns_servfail"])) is None
