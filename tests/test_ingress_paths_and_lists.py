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
