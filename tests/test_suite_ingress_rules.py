"""The ingress section's host lookup: an index over the rules finds what matching each rule finds."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_reachability.k8s import ingress_host_matches
from suites.test_05_ingress import rules_for_host


@dataclasses.dataclass(frozen=True)
class Ingress:
    name: str
    rules: tuple = ()


LABELS = st.sampled_from(["a", "b", "A", "www", "x-1"])
NAMES = st.lists(LABELS, min_size=0, max_size=3).map(".".join)
RULE_HOSTS = st.one_of(
    st.none(),
    st.just(""),
    NAMES,
    NAMES.map(lambda name: f"*.{name}"),
    NAMES.map(lambda name: f"{name}."),
    st.sampled_from(["*", "*.", "*.A.b.", "a.*"]),
)
INGRESSES = st.lists(
    st.lists(RULE_HOSTS.map(lambda host: {} if host is None else {"host": host}), max_size=4).map(tuple),
    max_size=6,
).map(lambda rule_lists: [Ingress(f"ing-{n}", rules) for n, rules in enumerate(rule_lists)])
HOSTS = st.one_of(NAMES, NAMES.map(lambda name: f"{name}."), NAMES.map(str.upper))


def covers(rule_host, host: str) -> bool:
    """The rule as Kubernetes documents it, written out here independently of the code under test."""
    if not rule_host:
        return False
    rule_host, host = rule_host.lower().rstrip("."), host.lower().rstrip(".")
    if rule_host.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == rule_host[2:]
    return rule_host == host


def every_rule(ingresses: list, host: str) -> list:
    return [
        (ingress, rule) for ingress in ingresses for rule in ingress.rules if covers(rule.get("host"), host)
    ]


@settings(max_examples=400, deadline=None)
@given(rule_host=RULE_HOSTS, host=HOSTS)
def test_ingress_host_matches_is_the_documented_rule(rule_host, host):
    assert ingress_host_matches(rule_host, host) == covers(rule_host, host)


@settings(max_examples=400, deadline=None)
@given(ingresses=INGRESSES, hosts=st.lists(HOSTS, min_size=1, max_size=4))
def test_the_rule_index_finds_what_every_rule_matched_finds_in_the_same_order(ingresses, hosts):
    for host in hosts:  # several hosts over one list: the index is built once and asked again
        found = rules_for_host(ingresses, host)
        wanted = every_rule(ingresses, host)
        assert [(i.name, id(r)) for i, r in found] == [(i.name, id(r)) for i, r in wanted]


def test_a_wildcard_covers_exactly_one_more_label_and_names_ignore_case_and_the_final_dot():
    ingresses = [
        Ingress("wild", ({"host": "*.Example.com."},)),
        Ingress("exact", ({"host": "api.example.com"}, {"host": "other.example.com"})),
        Ingress("none", ({},)),
    ]
    assert [(i.name, r["host"]) for i, r in rules_for_host(ingresses, "API.example.com.")] == [
        ("wild", "*.Example.com."),
        ("exact", "api.example.com"),
    ]
    assert rules_for_host(ingresses, "a.api.example.com") == []
    assert rules_for_host(ingresses, "example.com") == []


def test_a_list_changed_in_place_is_indexed_again():
    """The index of a list is not trusted once the list gained, lost or replaced an Ingress."""
    ingresses = [Ingress("one", ({"host": "a.example.com"},))]
    assert [i.name for i, _ in rules_for_host(ingresses, "a.example.com")] == ["one"]
    ingresses.append(Ingress("two", ({"host": "b.example.com"},)))
    assert [i.name for i, _ in rules_for_host(ingresses, "b.example.com")] == ["two"]
    ingresses[0] = Ingress("three", ({"host": "b.example.com"},))
    assert [i.name for i, _ in rules_for_host(ingresses, "b.example.com")] == ["three", "two"]
    del ingresses[1:]
    assert [i.name for i, _ in rules_for_host(ingresses, "b.example.com")] == ["three"]
    assert rules_for_host(ingresses, "a.example.com") == []
