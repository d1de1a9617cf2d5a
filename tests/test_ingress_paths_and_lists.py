"""What an Ingress says about a 404 or a 403 the controller answers itself.

``ingress_path_matches`` follows the examples table of the Kubernetes documentation (Ingress, "Examples"
under "Path types"). A 404 for a health path no path of the host's rules matches is the controller's default
backend, not a missing route in the app; a 403 from an Ingress with a source-address list is that list."""

from __future__ import annotations

import pytest

from pytest_reachability.k8s import ingress_path_matches
from pytest_reachability.sandbox.evaluate import evaluate

# (kind, path(s), request path, matches?) — https://kubernetes.io/docs/concepts/services-networking/ingress/
DOCS_EXAMPLES = [
    ("Prefix", ["/"], "/", True),
    ("Prefix", ["/"], "/anything", True),
    ("Exact", ["/foo"], "/foo", True),
    ("Exact", ["/foo"], "/bar", False),
    ("Exact", ["/foo"], "/foo/", False),
    ("Exact", ["/foo/"], "/foo", False),
    ("Prefix", ["/foo"], "/foo", True),
    ("Prefix", ["/foo"], "/foo/", True),
    ("Prefix", ["/foo/"], "/foo", True),
    ("Prefix", ["/foo/"], "/foo/", True),
    ("Prefix", ["/aaa/bb"], "/aaa/bbb", False),
    ("Prefix", ["/aaa/bbb"], "/aaa/bbb", True),
    ("Prefix", ["/aaa/bbb/"], "/aaa/bbb", True),
    ("Prefix", ["/aaa/bbb"], "/aaa/bbb/", True),
    ("Prefix", ["/aaa/bbb"], "/aaa/bbb/ccc", True),
    ("Prefix", ["/aaa/bbb"], "/aaa/bbbxyz", False),
    ("Prefix", ["/", "/aaa"], "/aaa/ccc", True),
    ("Prefix", ["/aaa"], "/ccc", False),
]


@pytest.mark.parametrize(("kind", "paths", "request_path", "matches"), DOCS_EXAMPLES)
def test_path_types_match_as_the_kubernetes_documentation_says(
    kind: str, paths: list[str], request_path: str, matches: bool
) -> None:
    assert any(ingress_path_matches(path, kind, request_path) for path in paths) is matches


def test_a_query_string_is_no_part_of_the_path_and_implementation_specific_reads_as_prefix() -> None:
    assert ingress_path_matches("/health", "Exact", "/health?from=database")
    assert ingress_path_matches("/api", "ImplementationSpecific", "/api/health")
    assert not ingress_path_matches("/api", "ImplementationSpecific", "/apix")


def test_a_404_for_a_path_no_ingress_path_matches_names_the_paths() -> None:
    (row,) = evaluate(["ingress-path-exact"])
    assert row.hit, row.problem()
    assert (
        "no path of the Ingress rules for the host matches /health (Ingress api-ingress: / (Exact))"
        in row.title
    )


def test_a_403_behind_a_source_list_names_the_annotation() -> None:
    (row,) = evaluate(["ingress-allowlist-403"])
    assert row.hit, row.problem()
    assert "nginx.ingress.kubernetes.io/whitelist-source-range=10.8.0.0/16,10.244.0.0/16" in row.title


REGEX = "nginx.ingress.kubernetes.io/use-regex"


def _facts_404(paths: list[dict], annotations: dict | None = None, default_backend: dict | None = None):
    from pytest_reachability.diagnosis.facts import Facts, RunContext
    from pytest_reachability.results import TestResult

    test = TestResult("suites/test_10_api_health.py::test_health_answers_on_every_resolved_address")
    test.outcome, test.section, test.reason = "failed", "api-health", "HTTP 404"
    ingress = {
        "name": "api",
        "namespace": "production",
        "annotations": annotations or {},
        "rules": [{"host": "97v.test", "paths": paths}],
        "default_backend": default_backend,
    }
    test.evidence = [{"kind": "ingress", "data": ingress}]
    return Facts([test], RunContext(host="97v.test", namespace="production"))


@pytest.mark.parametrize(
    ("paths", "annotations", "default_backend", "claimed"),
    [
        ([{"path": "/", "path_type": "Exact"}], None, None, True),
        ([{"path": "/*", "path_type": "ImplementationSpecific"}], None, None, False),  # GKE / ALB glob
        ([{"path": "/api(/|$)(.*)", "path_type": "ImplementationSpecific"}], None, None, False),
        (
            [{"path": "/api", "path_type": "Prefix"}],
            {"nginx.ingress.kubernetes.io/use-regex": "true"},
            None,
            False,
        ),
        ([{"path": "/", "path_type": "Exact"}], None, {"service": "fallback", "port": 80}, False),
    ],
)
def test_no_claim_where_the_controller_matches_its_own_way(
    paths, annotations, default_backend, claimed
) -> None:
    from pytest_reachability.diagnosis.rules_traffic import _unmatched_ingress_paths

    found = _unmatched_ingress_paths(_facts_404(paths, annotations, default_backend), "/health")
    assert (found is not None) is claimed


def _facts_403(annotations: dict, inside_status: int = 200):
    from pytest_reachability.diagnosis.facts import Facts, RunContext
    from pytest_reachability.results import TestResult

    test = TestResult("suites/test_10_api_health.py::test_health_answers_on_every_resolved_address")
    test.outcome, test.section, test.reason = "failed", "api-health", "HTTP 403"
    probe = {
        "address": "127.0.10.80",
        "port": 80,
        "scheme": "http",
        "host": "97v.test",
        "path": "/health",
        "status": 403,
        "reason": "Forbidden",
        "failure": "http_status",
        "headers": {},
        "redirects": [],
        "detail": "",
    }
    ingress = {"name": "api", "annotations": annotations, "rules": [{"host": "97v.test", "paths": []}]}
    inside = {"service": "api", "path": "/health", "status": inside_status, "error": None}
    test.evidence = [
        {"kind": "http_probe", "data": probe},
        {"kind": "ingress", "data": ingress},
        {"kind": "in_cluster_health", "data": inside},
    ]
    return Facts([test], RunContext(host="97v.test", namespace="production"))


def test_a_deny_list_is_not_told_to_add_the_client_and_an_app_that_refuses_itself_is_no_list() -> None:
    from pytest_reachability.diagnosis.rules_traffic import http_auth

    deny = http_auth(_facts_403({"nginx.ingress.kubernetes.io/denylist-source-range": "0.0.0.0/0"}))
    assert deny is not None and "on the deny list" in deny.title
    assert deny.fix[0].startswith("Take the checking client's public address off the deny list")
    refused_inside = http_auth(
        _facts_403({"nginx.ingress.kubernetes.io/whitelist-source-range": "10.0.0.0/8"}, 403)
    )
    assert refused_inside is not None and "source address" not in refused_inside.title
