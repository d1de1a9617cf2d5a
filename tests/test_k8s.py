"""The Kubernetes field semantics the suite, the diagnosis
and the sandbox share, as the API server reads them."""

from __future__ import annotations

import pytest

from pytest_reachability.k8s import (
    containers_ports,
    controller_owner,
    deployment_of_owner,
    find_service_port,
    port_declared,
    resolve_target_port,
    selector_matches,
    service_selects,
)

POD_LABELS = {"app": "api", "tier": "web"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        (None, True),
        ({}, True),
        ({"matchLabels": {"app": "api"}}, True),
        ({"matchLabels": {"app": "db"}}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "edge"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["web"]}]}, False),
        ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, True),
        ({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, False),
        ({"matchLabels": {"app": "api"}, "matchExpressions": [{"key": "zone", "operator": "Exists"}]}, False),
    ],
)
def test_wire_selector(selector, expected):
    assert selector_matches(selector, POD_LABELS) is expected


@pytest.mark.parametrize(
    ("selector", "labels_", "expected"),
    [
        ({"app": "api"}, POD_LABELS, True),
        ({"app": "api", "tier": "db"}, POD_LABELS, False),
        ({}, POD_LABELS, False),  # a Service without selector selects no pod
        (None, POD_LABELS, False),
        ({"app": "api"}, None, False),
        ({"version": "2"}, {"version": 2}, True),  # values compared as the strings they are on the wire
    ],
)
def test_service_selector(selector, labels_, expected):
    assert service_selects(selector, labels_) is expected


PORTS = [{"containerPort": 8080, "name": "http"}, {"containerPort": 9090}]


@pytest.mark.parametrize(
    ("target", "number", "declared"),
    [
        (8080, 8080, True),
        ("8080", 8080, True),
        ("http", 8080, True),
        (80, 80, False),
        ("metrics", None, False),
        (None, None, False),
    ],
)
def test_target_port_by_number_or_name(target, number, declared):
    assert resolve_target_port(target, PORTS) == number
    assert port_declared(target, PORTS) is declared


def test_service_port_by_number_or_name():
    ports = [{"port": 80, "name": "web"}, {"port": 443, "name": "tls"}]
    assert find_service_port(ports, 443)["name"] == "tls"
    assert find_service_port(ports, "web")["port"] == 80
    assert find_service_port(ports, None)["port"] == 80
    assert find_service_port(ports, 8443) is None


def test_containers_ports_of_a_wire_pod():
    pod = {"spec": {"containers": [{"ports": PORTS[:1]}, {}, {"ports": PORTS[1:]}]}}
    assert containers_ports(pod) == PORTS


def test_owner_references():
    class Reference:  # the client's V1OwnerReference has these attributes
        def __init__(self, kind, name, controller):
            self.kind, self.name, self.controller = kind, name, controller

    assert controller_owner(None) is None
    assert (
        controller_owner(
            [{"kind": "Node", "name": "n1"}, {"kind": "ReplicaSet", "name": "api-5d9", "controller": True}]
        )
        == "ReplicaSet/api-5d9"
    )
    assert controller_owner([Reference("StatefulSet", "db", None)]) == "StatefulSet/db"
    assert deployment_of_owner("ReplicaSet/api-5d9f7c6b8") == "api"
    assert deployment_of_owner("StatefulSet/db") is None
    assert deployment_of_owner(None) is None
