"""Tests for the read-only cluster view.

Snapshot conversion is checked on the official client's own model objects (built by its deserializer
from wire JSON); everything else runs against the sandbox Kubernetes API server over real TLS.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import logging
import os
import secrets
import signal
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
import servers
import trustme
from kubernetes import client as k8s
from kubernetes.config import incluster_config

from pytest_reachability import cluster as cluster_module
from pytest_reachability.cluster import (
    Cluster,
    ClusterError,
    ClusterErrorKind,
    deployment_info,
    endpoint_slice_info,
    event_info,
    ingress_class_info,
    ingress_info,
    network_policy_info,
    node_info,
    pod_info,
    service_info,
)
from pytest_reachability.sandbox.apiserver import KubeApiServer, write_kubeconfig

NAMESPACE = "production"


# --- an incident-like cluster, in wire form -----------------------------------------------------------------


def _meta(name: str, namespace: str | None = NAMESPACE, **extra: object) -> dict:
    metadata: dict = {
        "name": name,
        "uid": f"uid-{namespace}-{name}",
        "creationTimestamp": "2025-12-08T09:00:00Z",
    }
    if namespace:
        metadata["namespace"] = namespace
    metadata.update(extra)
    return metadata


def _node(name: str, ready: bool, roles: tuple[str, ...] = ()) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": _meta(
            name,
            None,
            labels={**{f"node-role.kubernetes.io/{r}": "" for r in roles}, "kubernetes.io/hostname": name},
        ),
        "spec": {},
        "status": {
            "conditions": [
                {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"},
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "reason": "KubeletReady" if ready else "KubeletNotReady",
                },
            ],
            "addresses": [{"type": "InternalIP", "address": "10.0.0." + name[-1]}],
            "nodeInfo": {
                "kubeletVersion": "v1.31.4",
                "architecture": "amd64",
                "bootID": "b",
                "containerRuntimeVersion": "containerd://1.7",
                "kernelVersion": "6.1",
                "kubeProxyVersion": "v1.31.4",
                "machineID": "m",
                "operatingSystem": "linux",
                "osImage": "Debian",
                "systemUUID": "s",
            },
        },
    }


def _pod(
    name: str,
    namespace: str,
    labels: dict,
    *,
    ready: bool = True,
    port: int = 8000,
    waiting: str | None = None,
    restarts: int = 0,
    owner: str | None = None,
    pod_ip: str = "10.244.0.15",
) -> dict:
    state = (
        {"waiting": {"reason": waiting, "message": "back-off"}}
        if waiting
        else {"running": {"startedAt": "2025-12-08T09:01:00Z"}}
    )
    metadata = _meta(name, namespace, labels=labels)
    if owner:
        metadata["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": owner,
                "uid": "rs-uid",
                "controller": True,
            }
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "nodeName": "node-1",
            "containers": [
                {
                    "name": "app",
                    "image": "registry.example/app:1",
                    "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
                }
            ],
        },
        "status": {
            "phase": "Running",
            "podIP": pod_ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [
                {
                    "name": "app",
                    "ready": ready,
                    "restartCount": restarts,
                    "image": "registry.example/app:1",
                    "imageID": "",
                    "state": state,
                    **({"lastState": {"terminated": {"reason": "Error", "exitCode": 1}}} if restarts else {}),
                }
            ],
        },
    }


def _service(
    name: str,
    selector: dict,
    port: int,
    target: int | str,
    lb_ip: str | None,
    node_port: int,
    service_type: str = "LoadBalancer",
) -> dict:
    status = {"loadBalancer": {"ingress": [{"ip": lb_ip}]}} if lb_ip else {"loadBalancer": {}}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(name, labels={"app": name}),
        "spec": {
            "type": service_type,
            "clusterIP": "10.109.31." + str(node_port % 200),
            "selector": selector,
            "ports": [
                {"name": "http", "port": port, "targetPort": target, "nodePort": node_port, "protocol": "TCP"}
            ],
        },
        "status": status,
    }


def _endpoint_slice(service: str, ready: list[str], not_ready: list[str], port: int) -> dict:
    endpoints = [
        {
            "addresses": [a],
            "conditions": {"ready": True},
            "targetRef": {"kind": "Pod", "name": f"{service}-pod"},
        }
        for a in ready
    ]
    endpoints += [{"addresses": [a], "conditions": {"ready": False}} for a in not_ready]
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": _meta(f"{service}-abcde", labels={"kubernetes.io/service-name": service}),
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
    }


def _event(name: str, reason: str, event_type: str, message: str, obj: str, last: str) -> dict:
    kind, obj_name = obj.split("/")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": _meta(name),
        "involvedObject": {"kind": kind, "name": obj_name, "namespace": NAMESPACE},
        "reason": reason,
        "type": event_type,
        "message": message,
        "count": 3,
        "firstTimestamp": "2025-12-08T09:00:00Z",
        "lastTimestamp": last,
        "source": {"component": "service-controller"},
    }


def incident_objects() -> list[dict]:
    """The INC-2025-12-08-001 shape: api healthy inside, two
    LoadBalancers, no Ingress, ingress-nginx running."""
    api_labels = {"app": "api", "pod-template-hash": "5d9f7c6b8"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(NAMESPACE, None)},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta("ingress-nginx", None)},
        _node("node-1", True, ("control-plane",)),
        _node("node-2", False),
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta("api", labels={"app": "api"}, generation=2),
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "api"}},
                "template": {
                    "metadata": {"labels": {"app": "api"}},
                    "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]},
                },
            },
            "status": {
                "observedGeneration": 2,
                "replicas": 1,
                "updatedReplicas": 1,
                "readyReplicas": 1,
                "availableReplicas": 1,
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta("bot", labels={"app": "bot"}, generation=5),
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "bot"}},
                "template": {
                    "metadata": {"labels": {"app": "bot"}},
                    "spec": {"containers": [{"name": "bot", "image": "registry.example/bot:2"}]},
                },
            },
            "status": {
                "observedGeneration": 5,
                "replicas": 3,
                "updatedReplicas": 2,
                "readyReplicas": 1,
                "availableReplicas": 1,
            },
        },
        _pod("api-5d9f7c6b8-x2x9z", NAMESPACE, api_labels, owner="api-5d9f7c6b8"),
        _pod(
            "bot-7c8d9-abcde",
            NAMESPACE,
            {"app": "bot"},
            ready=False,
            port=5000,
            waiting="CrashLoopBackOff",
            restarts=7,
            owner="bot-7c8d9",
            pod_ip="10.244.0.16",
        ),
        _pod(
            "ingress-nginx-controller-6b7f-qwert",
            "ingress-nginx",
            {"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller"},
            port=80,
            pod_ip="10.244.0.20",
        ),
        _service("api", {"app": "api"}, 80, 8000, "138.197.254.53", 32558),
        _service("api-service", {"app": "api"}, 80, 8000, "138.197.240.239", 32110),
        _service("bot-service", {"app": "bot"}, 5000, "http", "45.55.100.215", 30949),
        _service("metrics", {"app": "metrics"}, 9100, 9100, None, 31000),
        _endpoint_slice("api", ["10.244.0.15"], [], 8000),
        _endpoint_slice("api-service", ["10.244.0.15"], [], 8000),
        _endpoint_slice("bot-service", [], ["10.244.0.16"], 5000),
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": _meta(
                "nginx", None, annotations={"ingressclass.kubernetes.io/is-default-class": "true"}
            ),
            "spec": {"controller": "k8s.io/ingress-nginx"},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": _meta("legacy", "staging"),
            "spec": {
                "ingressClassName": "nginx",
                "tls": [{"hosts": ["old.example.com"], "secretName": "old-tls"}],
                "rules": [
                    {
                        "host": "old.example.com",
                        "http": {
                            "paths": [
                                {
                                    "path": "/",
                                    "pathType": "Prefix",
                                    "backend": {"service": {"name": "old", "port": {"number": 80}}},
                                }
                            ]
                        },
                    }
                ],
            },
            "status": {"loadBalancer": {"ingress": [{"hostname": "lb.example.net"}]}},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta("api-allow-edge"),
            "spec": {
                "podSelector": {"matchLabels": {"app": "api"}},
                "ingress": [
                    {
                        "from": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}
                                }
                            },
                            {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
                        ],
                        "ports": [{"protocol": "TCP", "port": 8000}],
                    }
                ],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": _meta("api-tls"),
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": "c2VjcmV0", "tls.key": "c2VjcmV0"},
        },
        _event(
            "bot.1",
            "BackOff",
            "Warning",
            "Back-off restarting failed container bot",
            "Pod/bot-7c8d9-abcde",
            "2025-12-08T09:30:00Z",
        ),
        _event(
            "api.1",
            "EnsuredLoadBalancer",
            "Normal",
            "Ensured load balancer",
            "Service/api",
            "2025-12-08T09:10:00Z",
        ),
        _event(
            "metrics.1",
            "SyncLoadBalancerFailed",
            "Warning",
            "Error syncing load balancer: quota exceeded",
            "Service/metrics",
            "2025-12-08T09:20:00Z",
        ),
    ]


def _of_kind(kind: str, name: str, namespace: str | None = NAMESPACE) -> dict:
    return next(
        o
        for o in incident_objects()
        if o["kind"] == kind and o["metadata"]["name"] == name and o["metadata"].get("namespace") == namespace
    )


def _api_exception(status: int, reason: str, body: str) -> k8s.ApiException:
    """An ApiException with a body, built the same way in every
    supported client version (the body keyword is new)."""
    error = k8s.ApiException(status=status, reason=reason)
    error.body = body
    return error


def _model(wire: dict, model_type: str):
    """The client's own model object, built by its deserializer from wire JSON (as a response would be)."""
    # The private deserializer takes (data, type) in every supported client version; the public one does not.
    return k8s.ApiClient()._ApiClient__deserialize(json.loads(json.dumps(wire)), model_type)


# --- snapshot conversion (client models, no network) --------------------------------------------------------


def test_node_snapshot_reports_readiness_roles_and_kubelet_version():
    ready = node_info(_model(_node("node-1", True, ("control-plane",)), "V1Node"))
    not_ready = node_info(_model(_node("node-2", False), "V1Node"))
    assert (ready.ready, ready.roles, ready.version) == (True, ("control-plane",), "v1.31.4")
    assert not_ready.ready is False and not_ready.roles == ()
    assert {
        "type": "Ready",
        "status": "False",
        "reason": "KubeletNotReady",
        "message": None,
    } in not_ready.conditions


def test_pod_snapshot_reports_crash_loop_restarts_ports_and_owner():
    pod = pod_info(_model(_of_kind("Pod", "bot-7c8d9-abcde"), "V1Pod"))
    assert pod.phase == "Running" and pod.ready is False
    assert pod.containers == "0/1"
    assert pod.waiting_reasons == ("CrashLoopBackOff",)
    assert pod.terminated_reasons == ("Error",)
    assert pod.restarts == 7
    assert pod.container_ports == ({"name": "http", "containerPort": 5000, "protocol": "TCP"},)
    assert pod.owner == "ReplicaSet/bot-7c8d9"
    assert (pod.node, pod.pod_ip, pod.labels) == ("node-1", "10.244.0.16", {"app": "bot"})


def test_deployment_snapshot_tells_a_finished_rollout_from_one_with_old_replicas():
    api = deployment_info(_model(_of_kind("Deployment", "api"), "V1Deployment"))
    bot = deployment_info(_model(_of_kind("Deployment", "bot"), "V1Deployment"))
    assert (api.desired, api.ready, api.available, api.updated, api.rollout_complete) == (1, 1, 1, 1, True)
    assert api.selector == {"app": "api"}
    assert bot.rollout_complete is False
    assert bot.rollout_message == "1 old replicas are pending termination"


def test_deployment_snapshot_waits_for_the_controller_to_observe_the_spec():
    wire = _of_kind("Deployment", "api")
    wire["metadata"]["generation"] = 3
    info = deployment_info(_model(wire, "V1Deployment"))
    assert info.rollout_complete is False and "observed" in info.rollout_message


def test_service_snapshot_reports_load_balancer_address_and_pending():
    api = service_info(_model(_of_kind("Service", "api"), "V1Service"))
    pending = service_info(_model(_of_kind("Service", "metrics"), "V1Service"))
    bot = service_info(_model(_of_kind("Service", "bot-service"), "V1Service"))
    assert (api.type, api.lb_addresses, api.lb_pending) == ("LoadBalancer", ("138.197.254.53",), False)
    assert api.ports == (
        {"name": "http", "port": 80, "target_port": 8000, "node_port": 32558, "protocol": "TCP"},
    )
    assert api.selector == {"app": "api"}
    assert (pending.lb_addresses, pending.lb_pending) == ((), True)
    assert bot.ports[0]["target_port"] == "http"


def test_service_snapshot_of_a_cluster_ip_service_is_never_pending():
    wire = _service("internal", {"app": "x"}, 80, 80, None, 30000, service_type="ClusterIP")
    info = service_info(_model(wire, "V1Service"))
    assert (info.type, info.lb_pending) == ("ClusterIP", False)


def test_endpoint_slice_snapshot_splits_ready_from_not_ready():
    api = endpoint_slice_info(_model(_of_kind("EndpointSlice", "api-abcde"), "V1EndpointSlice"))
    bot = endpoint_slice_info(_model(_of_kind("EndpointSlice", "bot-service-abcde"), "V1EndpointSlice"))
    assert (api.service, api.ready_addresses, api.not_ready_addresses) == ("api", ("10.244.0.15",), ())
    assert api.ports == ({"name": "http", "port": 8000, "protocol": "TCP"},)
    assert api.targets[0]["target"] == "Pod/api-pod"
    assert (bot.ready_addresses, bot.not_ready_addresses) == ((), ("10.244.0.16",))


def test_endpoint_without_ready_condition_counts_as_ready_as_the_api_documents():
    wire = _endpoint_slice("x", [], [], 80)
    wire["endpoints"] = [{"addresses": ["10.0.0.9"]}]
    assert endpoint_slice_info(_model(wire, "V1EndpointSlice")).ready_addresses == ("10.0.0.9",)


def test_ingress_and_ingress_class_snapshots():
    ingress = ingress_info(_model(_of_kind("Ingress", "legacy", "staging"), "V1Ingress"))
    assert ingress.class_name == "nginx"
    assert ingress.rules == (
        {
            "host": "old.example.com",
            "paths": [{"path": "/", "path_type": "Prefix", "service": "old", "port": 80}],
        },
    )
    assert ingress.tls == ({"hosts": ["old.example.com"], "secret": "old-tls"},)
    assert ingress.addresses == ("lb.example.net",)
    nginx = ingress_class_info(_model(_of_kind("IngressClass", "nginx", None), "V1IngressClass"))
    assert (nginx.name, nginx.controller, nginx.is_default) == ("nginx", "k8s.io/ingress-nginx", True)


def test_network_policy_snapshot_keeps_peers_in_wire_form_and_defaults_policy_types():
    policy = network_policy_info(_model(_of_kind("NetworkPolicy", "api-allow-edge"), "V1NetworkPolicy"))
    assert policy.pod_selector == {"matchLabels": {"app": "api"}}
    assert policy.policy_types == ("Ingress",)
    assert policy.ingress == (
        {
            "from": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}},
                {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
            ],
            "ports": [{"protocol": "TCP", "port": 8000}],
        },
    )


def test_event_snapshot():
    event = event_info(_model(_of_kind("Event", "bot.1"), "CoreV1Event"))
    assert (event.type, event.reason, event.object, event.count) == (
        "Warning",
        "BackOff",
        "Pod/bot-7c8d9-abcde",
        3,
    )
    assert event.last_seen.startswith("2025-12-08T09:30:00")
    assert event.source == "service-controller"


def test_evidence_is_plain_json():
    snapshots = [
        node_info(_model(_node("node-1", True), "V1Node")),
        pod_info(_model(_of_kind("Pod", "bot-7c8d9-abcde"), "V1Pod")),
        service_info(_model(_of_kind("Service", "api"), "V1Service")),
        network_policy_info(_model(_of_kind("NetworkPolicy", "api-allow-edge"), "V1NetworkPolicy")),
        event_info(_model(_of_kind("Event", "bot.1"), "CoreV1Event")),
    ]
    for snapshot in snapshots:
        evidence = snapshot.to_evidence()
        assert json.loads(json.dumps(evidence)) == evidence
    assert snapshots[2].to_evidence()["lb_addresses"] == ["138.197.254.53"]


def test_forbidden_message_names_verb_resource_and_namespace():
    body = json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "reason": "Forbidden",
            "code": 403,
            "message": 'pods is forbidden: User "system:serviceaccount:ci:probe" cannot list resource '
            '"pods" in API group "" in the namespace "production"',
        }
    )
    error = cluster_module.classify(
        _api_exception(403, "Forbidden", body),
        cluster_module._Request("list", "pods", "", "production"),
        "https://127.0.0.1:6443",
        timeout=5,
    )
    assert error.kind is ClusterErrorKind.FORBIDDEN
    assert str(error) == (
        'forbidden: cannot list pods in namespace production; grant verb "list" on resource "pods" (group "")'
    )
    assert (error.verb, error.resource, error.group, error.namespace, error.user) == (
        "list",
        "pods",
        "",
        "production",
        "system:serviceaccount:ci:probe",
    )


# --- configuration (real files, no network) -----------------------------------------------------------------


@pytest.fixture
def bare_environment(tmp_path, monkeypatch):
    """No kubeconfig anywhere and not in a pod: a fresh HOME, no KUBECONFIG, no service env."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    return home


def test_not_configured_without_any_kubeconfig_or_pod_environment(bare_environment):
    with pytest.raises(ClusterError) as raised:
        Cluster.connect()
    assert raised.value.kind is ClusterErrorKind.NOT_CONFIGURED
    assert "\n" not in str(raised.value) and "KUBECONFIG" in str(raised.value)


def test_not_configured_when_the_explicit_kubeconfig_is_missing(bare_environment, tmp_path):
    with pytest.raises(ClusterError) as raised:
        Cluster.connect(kubeconfig=str(tmp_path / "absent.yaml"))
    assert raised.value.kind is ClusterErrorKind.NOT_CONFIGURED
    assert "absent.yaml" in str(raised.value)


def test_in_cluster_environment_without_a_service_account_is_not_configured(bare_environment, monkeypatch):
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    with pytest.raises(ClusterError) as raised:
        Cluster.connect()
    assert raised.value.kind is ClusterErrorKind.NOT_CONFIGURED
    assert "in-cluster" in str(raised.value)


def _write_two_context_kubeconfig(path, server_a: str, server_b: str, ca_file: str = "") -> None:
    cluster_entry = {"certificate-authority": ca_file} if ca_file else {"insecure-skip-tls-verify": True}
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "staging",
                "clusters": [
                    {"name": "a", "cluster": {"server": server_a, **cluster_entry}},
                    {"name": "b", "cluster": {"server": server_b, **cluster_entry}},
                ],
                "users": [{"name": "u", "user": {"token": "not-the-token"}}],
                "contexts": [
                    {"name": "staging", "context": {"cluster": "a", "user": "u", "namespace": "staging"}},
                    {"name": "prod", "context": {"cluster": "b", "user": "u", "namespace": "production"}},
                ],
            }
        )
    )


def test_context_selection_and_namespace_precedence(bare_environment, tmp_path, monkeypatch):
    kubeconfig = tmp_path / "two-contexts.yaml"
    _write_two_context_kubeconfig(kubeconfig, "https://127.0.0.1:7001", "https://127.0.0.1:7002")
    current = Cluster.connect(kubeconfig=str(kubeconfig))
    assert (current.context, current.server, current.namespace) == (
        "staging",
        "https://127.0.0.1:7001",
        "staging",
    )
    prod = Cluster.connect(kubeconfig=str(kubeconfig), context="prod")
    assert (prod.context, prod.server, prod.namespace) == ("prod", "https://127.0.0.1:7002", "production")
    assert Cluster.connect(kubeconfig=str(kubeconfig), context="prod", namespace="ops").namespace == "ops"
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    assert Cluster.connect(context="prod").server == "https://127.0.0.1:7002"
    with pytest.raises(ClusterError) as raised:
        Cluster.connect(kubeconfig=str(kubeconfig), context="nope")
    assert raised.value.kind is ClusterErrorKind.NOT_CONFIGURED
    assert "prod" in str(raised.value) and "staging" in str(raised.value)


def test_home_kubeconfig_is_used_when_nothing_else_is_given(bare_environment):
    kube_dir = bare_environment / ".kube"
    kube_dir.mkdir()
    _write_two_context_kubeconfig(kube_dir / "config", "https://127.0.0.1:7001", "https://127.0.0.1:7002")
    assert Cluster.connect().context == "staging"


def _write_exec_plugin_kubeconfig(path, plugin) -> None:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "exec",
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {"server": "https://127.0.0.1:7001", "insecure-skip-tls-verify": True},
                    }
                ],
                "users": [
                    {
                        "name": "u",
                        "user": {
                            "exec": {
                                "apiVersion": "client.authentication.k8s.io/v1beta1",
                                "command": str(plugin),
                                "interactiveMode": "Never",
                            }
                        },
                    }
                ],
                "contexts": [{"name": "exec", "context": {"cluster": "c", "user": "u"}}],
            }
        )
    )


def test_a_hung_exec_credential_plugin_is_given_up_after_the_credentials_wait(
    bare_environment, tmp_path, monkeypatch
):
    # The client runs exec plugins with no timeout: without a bound, connect() would wait for the plugin.
    monkeypatch.setattr(cluster_module, "_CREDENTIALS_MIN_WAIT", 1.0)
    pid_file = tmp_path / "plugin.pid"
    plugin = tmp_path / "hung-plugin.sh"
    plugin.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 60\n")
    plugin.chmod(0o755)
    kubeconfig = tmp_path / "exec.yaml"
    _write_exec_plugin_kubeconfig(kubeconfig, plugin)
    started = time.monotonic()
    try:
        with pytest.raises(ClusterError) as raised:
            Cluster.connect(kubeconfig=str(kubeconfig), timeout=0.5)
        elapsed = time.monotonic() - started
    finally:
        for _attempt in range(50):  # the plugin writes its PID as its first step
            if pid_file.exists() and pid_file.read_text().strip():
                break
            time.sleep(0.05)
        if pid_file.exists() and pid_file.read_text().strip():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
    assert raised.value.kind is ClusterErrorKind.UNREACHABLE
    assert "did not load within 1s" in str(raised.value) and "exec credential plugin" in str(raised.value)
    assert elapsed < 5.0


def test_an_answering_exec_credential_plugin_supplies_the_token(bare_environment, tmp_path):
    plugin = tmp_path / "plugin.sh"
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "kind": "ExecCredential",
        "status": {"token": "token-from-the-plugin"},
    }
    plugin.write_text(f"#!/bin/sh\necho '{json.dumps(credential)}'\n")
    plugin.chmod(0o755)
    kubeconfig = tmp_path / "exec.yaml"
    _write_exec_plugin_kubeconfig(kubeconfig, plugin)
    view = Cluster.connect(kubeconfig=str(kubeconfig), timeout=2.0)
    assert view.context == "exec"
    assert "token-from-the-plugin" in str(view._api_client.configuration.api_key)


def _closed_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_api_server_is_classified_within_the_timeout(bare_environment, tmp_path):
    port = _closed_loopback_port()
    kubeconfig = tmp_path / "closed.yaml"
    _write_two_context_kubeconfig(kubeconfig, f"https://127.0.0.1:{port}", f"https://127.0.0.1:{port}")
    view = Cluster.connect(kubeconfig=str(kubeconfig), timeout=2.0)
    started = time.monotonic()
    with pytest.raises(ClusterError) as raised:
        view.pods()
    assert time.monotonic() - started < 2.0
    assert raised.value.kind is ClusterErrorKind.UNREACHABLE
    assert f"https://127.0.0.1:{port}" in str(raised.value)
    assert "refused" in str(raised.value).lower()


def test_api_server_that_never_answers_is_unreachable_within_the_timeout(bare_environment, tmp_path):
    # A listening socket nobody accepts on: TCP connects, the TLS handshake never gets an answer.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        kubeconfig = tmp_path / "silent.yaml"
        _write_two_context_kubeconfig(kubeconfig, f"https://127.0.0.1:{port}", f"https://127.0.0.1:{port}")
        view = Cluster.connect(kubeconfig=str(kubeconfig), timeout=1.0)
        started = time.monotonic()
        with pytest.raises(ClusterError) as raised:
            view.nodes()
        assert time.monotonic() - started < 2.5
    assert raised.value.kind is ClusterErrorKind.UNREACHABLE
    assert (
        str(raised.value)
        == f"unreachable: the API server at https://127.0.0.1:{port} did not answer within 1 s"
    )


# --- against the sandbox API server (real HTTPS, real client) -----------------------------------------------

API_POD = "api-5d9f7c6b8-x2x9z"
API_LOG = "".join(f"INFO GET /health 200 request {n}\n" for n in range(1, 301))
BIG_BODY = b"x" * 200_000


class _BackendHandler(http.server.BaseHTTPRequestHandler):
    """The in-cluster api pod as the service proxy reaches it."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base class signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        routes = {
            "/health": (200, b'{"status": "ok", "db": "up"}', "application/json"),
            "/big": (200, BIG_BODY, "text/plain"),
            "/v1/fail": (500, b"database unavailable", "text/plain"),
        }
        status, body, content_type = routes.get(self.path, (404, b"no route", "text/plain"))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def backend():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _BackendHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server.server_address[:2]
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """A CA and a server certificate for 127.0.0.1, as files."""
    folder = tmp_path_factory.mktemp("kube-tls")
    authority = trustme.CA()
    leaf = authority.issue_cert("127.0.0.1")
    paths = {name: str(folder / f"{name}.pem") for name in ("ca", "cert", "key")}
    authority.cert_pem.write_to_path(paths["ca"])
    with open(paths["cert"], "wb") as handle:
        for blob in leaf.cert_chain_pems:
            handle.write(blob.bytes())
    leaf.private_key_pem.write_to_path(paths["key"])
    return paths


class Sandbox:
    """A started KubeApiServer over the incident objects, and a kubeconfig for it."""

    def __init__(self, tls: dict, folder, backend_address, *, deny: list[dict] | None = None) -> None:
        self.token = secrets.token_urlsafe(24)
        self.ca_file = tls["ca"]
        self.server = KubeApiServer(
            incident_objects(),
            pod_logs={f"{NAMESPACE}/{API_POD}": API_LOG},
            deny=deny,
            token=self.token,
            cert_file=tls["cert"],
            key_file=tls["key"],
            backend_for_service=lambda namespace, name, port: (
                tuple(backend_address)
                if (namespace, name) in ((NAMESPACE, "api"), (NAMESPACE, "api-service"))
                else None
            ),
        )
        self.server.start()
        self.kubeconfig = str(folder / "kubeconfig")
        write_kubeconfig(self.kubeconfig, server_url=self.server.url, ca_file=self.ca_file, token=self.token)

    def connect(self, **kwargs: object) -> Cluster:
        return Cluster.connect(kubeconfig=self.kubeconfig, **kwargs)


@pytest.fixture(scope="module")
def sandbox(tls, backend, tmp_path_factory):
    running = Sandbox(tls, tmp_path_factory.mktemp("kube"), backend)
    yield running
    running.server.stop()


@pytest.fixture
def start_sandbox(tls, backend, tmp_path):
    """Start a private sandbox (e.g. with deny rules); stopped after the test."""
    started: list[Sandbox] = []

    def start(deny: list[dict] | None = None) -> Sandbox:
        folder = tmp_path / f"kube-{len(started)}"
        folder.mkdir()
        started.append(Sandbox(tls, folder, backend, deny=deny))
        return started[-1]

    yield start
    for running in started:
        running.server.stop()


@pytest.fixture
def view(sandbox):
    with sandbox.connect(timeout=5.0) as connected:
        yield connected


def test_connect_takes_server_context_and_namespace_from_the_kubeconfig(sandbox, view):
    assert (view.server, view.context, view.namespace) == (sandbox.server.url, "sandbox", NAMESPACE)
    assert view.version()["git_version"].startswith("v1.")
    assert view.can_read_namespace() is None


def test_loopback_api_server_is_not_sent_through_an_environment_proxy(sandbox, monkeypatch):
    # As kubectl does: a proxy from the environment never applies to a loopback API server.
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{_closed_loopback_port()}")
    assert sandbox.connect(timeout=2.0).version()["major"] == "1"


def test_a_loopback_api_server_stays_off_the_environment_proxy_on_every_request(sandbox, monkeypatch):
    # A bearer token is refreshed onto the client configuration before each request, which sets the host
    # again; the proxy decided at connect must survive that, not be read from the environment anew.
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{_closed_loopback_port()}")
    view = sandbox.connect(timeout=2.0)
    try:
        assert [view.version()["major"] for _ in range(3)] == ["1", "1", "1"]
        assert {node.name for node in view.nodes()} == {"node-1", "node-2"}
    finally:
        view.close()


def test_reads_from_threads_survive_a_changing_environment(sandbox, under_a_changing_environment):
    # Connecting (kubeconfig, proxies) and every read with a bearer token (refreshed onto the client's
    # configuration before each request) must not iterate the environment as it changes.
    def read() -> None:
        for _ in range(20):
            with sandbox.connect(timeout=5.0) as view:
                view.version()
                view.nodes()

    assert under_a_changing_environment(read) == []


@contextlib.contextmanager
def counted_sandbox(sandbox, tmp_path):
    """(a kubeconfig for ``sandbox`` through a loopback relay, the relay): the relay counts the client's
    connections to the API server."""
    host, port = urllib.parse.urlsplit(sandbox.server.url).netloc.rsplit(":", 1)
    with servers.LoopbackServer(servers.forwarding((host, int(port)))) as relay:
        kubeconfig = str(tmp_path / "relayed-kubeconfig")
        url = f"https://127.0.0.1:{relay.port}"
        write_kubeconfig(kubeconfig, server_url=url, ca_file=sandbox.ca_file, token=sandbox.token)
        yield kubeconfig, relay


def test_connections_opened_ahead_carry_the_reads_side_by_side_and_after(sandbox, tmp_path):
    # The sandbox API server speaks TLS 1.3 and sends session tickets after the handshake: a connection
    # opened ahead and idle until now is still taken, not dropped and opened again.
    with counted_sandbox(sandbox, tmp_path) as (kubeconfig, relay):
        view = Cluster.connect(kubeconfig=kubeconfig, timeout=5.0, preconnect=4)
        try:
            assert relay.connections == 4  # opened before connect() returned
            time.sleep(0.2)  # the tickets arrive
            together = threading.Barrier(4)
            answers: list[object] = []

            def read() -> None:
                together.wait(5)
                answers.append(view.nodes())

            readers = [threading.Thread(target=read) for _ in range(4)]
            for reader in readers:
                reader.start()
            for reader in readers:
                reader.join(10)
            assert len(answers) == 4 and view.version()
            assert relay.connections == 4
        finally:
            view.close()


def test_without_connections_opened_ahead_nothing_connects_before_the_first_read(sandbox, tmp_path):
    with counted_sandbox(sandbox, tmp_path) as (kubeconfig, relay):
        with Cluster.connect(kubeconfig=kubeconfig, timeout=5.0) as view:
            time.sleep(0.2)
            assert relay.connections == 0
            view.version()
            assert relay.connections == 1


@pytest.mark.parametrize("server", ["closed port", "silent after accept"])
def test_connections_ahead_to_a_server_that_does_not_answer_cost_no_second_timeout(
    bare_environment, tmp_path, server, caplog
):
    # A server that never answers costs the first read its timeout; the connections opened ahead add at
    # most a second's wait to it, not a timeout of their own.
    caplog.set_level(logging.WARNING)
    with contextlib.ExitStack() as stack:
        if server == "closed port":
            port = _closed_loopback_port()
        else:
            port = stack.enter_context(servers.LoopbackServer(servers.stall)).port
        kubeconfig = tmp_path / "kubeconfig"
        _write_two_context_kubeconfig(kubeconfig, f"https://127.0.0.1:{port}", f"https://127.0.0.1:{port}")
        started = time.monotonic()
        view = Cluster.connect(kubeconfig=str(kubeconfig), timeout=5.0, preconnect=30)
        try:
            # The grace after the client is built (and a first import of its API classes), not the 5 s
            # the connections opened ahead would wait out.
            assert time.monotonic() - started < 3.5
            failures: list[ClusterError] = []

            def read() -> None:
                try:
                    view.version()
                except ClusterError as error:
                    failures.append(error)

            readers = [threading.Thread(target=read) for _ in range(30)]
            for reader in readers:
                reader.start()
            for reader in readers:
                reader.join(10)
            assert time.monotonic() - started < 10.0
            assert len(failures) == 30 and all(f.kind is ClusterErrorKind.UNREACHABLE for f in failures)
            time.sleep(2.0)  # the connections opened ahead give up too, and go back to the pool
        finally:
            view.close()
    # Reads side by side with connections still being opened: none is discarded from a full pool.
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]


def _write_sandbox_kubeconfig(sandbox, kubeconfig: str, proxy_url: str) -> None:
    """A kubeconfig for ``sandbox`` whose cluster has ``proxy_url``."""
    import yaml

    write_kubeconfig(kubeconfig, server_url=sandbox.server.url, ca_file=sandbox.ca_file, token=sandbox.token)
    with open(kubeconfig, encoding="utf-8") as handle:
        document = yaml.safe_load(handle)
    for entry in document["clusters"]:
        entry["cluster"]["proxy-url"] = proxy_url
    with open(kubeconfig, "w", encoding="utf-8") as handle:
        yaml.safe_dump(document, handle)


@pytest.mark.parametrize("ahead", [0, 3])
def test_the_kubeconfigs_proxy_url_carries_the_reads_in_every_client_version(
    sandbox, tmp_path, monkeypatch, ahead
):
    # kubectl sends every request through a cluster's proxy-url (a loopback server included); clients
    # before 37 do not read it by themselves. Connections opened ahead go as urllib3 opens them for a
    # request: a CONNECT tunnel, then TLS with the API server in it (never a TLS handshake with the proxy,
    # which would then be sent the reads and their token).
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    seen: list[str] = []
    with servers.LoopbackServer(servers.connect_proxy(seen)) as proxy:
        kubeconfig = str(tmp_path / "proxied-kubeconfig")
        _write_sandbox_kubeconfig(sandbox, kubeconfig, f"http://127.0.0.1:{proxy.port}")
        with Cluster.connect(kubeconfig=kubeconfig, timeout=5.0, preconnect=ahead) as view:
            assert proxy.connections == ahead
            time.sleep(0.2)  # the tickets arrive
            assert view.version() and {node.name for node in view.nodes()} == {"node-1", "node-2"}
            assert proxy.connections == max(ahead, 1)  # the reads went out on the tunnels opened ahead
    authority = urllib.parse.urlsplit(sandbox.server.url).netloc
    assert len(seen) == max(ahead, 1) and all(
        line.startswith(f"CONNECT {authority} HTTP/1.") for line in seen
    )


def test_building_a_proxied_client_never_writes_the_environment(sandbox, tmp_path, monkeypatch):
    # Clients 29 to 36 set os.environ["no_proxy"] for a moment while they decide whether a proxied server
    # is exempt; any thread reading the environment then may see it changed. The reads still go through
    # the kubeconfig's proxy-url (CONNECT), the environment untouched.
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    writes: list[str] = []
    set_item, del_item = os._Environ.__setitem__, os._Environ.__delitem__

    def recording_set(environ, key, value):
        writes.append(f"set {key}")
        set_item(environ, key, value)

    def recording_del(environ, key):
        writes.append(f"del {key}")
        del_item(environ, key)

    seen: list[str] = []
    with servers.LoopbackServer(servers.connect_proxy(seen)) as proxy:
        kubeconfig = str(tmp_path / "proxied-kubeconfig")
        _write_sandbox_kubeconfig(sandbox, kubeconfig, f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setattr(os._Environ, "__setitem__", recording_set)
        monkeypatch.setattr(os._Environ, "__delitem__", recording_del)
        try:
            view = Cluster.connect(kubeconfig=kubeconfig, timeout=5.0)
        finally:
            monkeypatch.setattr(os._Environ, "__setitem__", set_item)
            monkeypatch.setattr(os._Environ, "__delitem__", del_item)
        with view:
            assert view.version() and {node.name for node in view.nodes()} == {"node-1", "node-2"}
            # a read through the metadata client
            assert view.secrets_exist("default", ["absent-secret"]) == {"absent-secret": False}
    assert writes == []
    assert seen and all(line.startswith("CONNECT ") for line in seen)


@pytest.mark.parametrize(
    ("proxy", "said"),
    [
        ("socks5://user:pass@127.0.0.1:1080", "is a SOCKS proxy, which kubernetes"),
        ("http://[not-an-address", "is not a URL"),
        ("ftp://user:pass@proxy.example:21", "is not an http://, https:// or socks5:// URL"),
    ],
)
def test_a_proxy_the_client_cannot_use_is_said_in_one_line_without_its_address(
    bare_environment, tmp_path, monkeypatch, proxy, said
):
    monkeypatch.setattr(cluster_module, "_socks_client", lambda: False)
    made: list[str] = []
    private_dir = cluster_module._private_credentials_dir
    monkeypatch.setattr(
        cluster_module, "_private_credentials_dir", lambda: made.append(private_dir()) or made[-1]
    )
    kubeconfig = tmp_path / "kubeconfig"
    # Not a loopback server: the environment's proxy applies to it.
    _write_two_context_kubeconfig(
        kubeconfig, "https://api.example.invalid:6443", "https://api.example.invalid:6443"
    )
    monkeypatch.setenv("HTTPS_PROXY", proxy)
    with pytest.raises(ClusterError) as raised:
        Cluster.connect(kubeconfig=str(kubeconfig), timeout=2.0)
    message = str(raised.value)
    assert raised.value.kind is ClusterErrorKind.NOT_CONFIGURED and said in message
    assert "\n" not in message and "pass" not in message and "not-an-address" not in message
    assert made and not any(os.path.exists(folder) for folder in made)  # the decoded credentials went too


def test_a_socks_proxy_url_the_client_cannot_use_is_said_in_one_line(sandbox, tmp_path, monkeypatch):
    kubeconfig = str(tmp_path / "socks-kubeconfig")
    _write_sandbox_kubeconfig(sandbox, kubeconfig, "socks5://127.0.0.1:1080")
    monkeypatch.setattr(cluster_module, "_socks_client", lambda: False)
    with pytest.raises(ClusterError) as raised:
        Cluster.connect(kubeconfig=kubeconfig, timeout=2.0)
    assert raised.value.kind is ClusterErrorKind.NOT_CONFIGURED
    message = str(raised.value)
    assert "\n" not in message and "SOCKS proxy" in message
    assert "kubernetes 37 or later with PySocks" in message


def test_a_new_client_configuration_takes_no_proxy_from_the_environment(monkeypatch):
    # Whatever the client version reads by itself (37: everything, on every host change; 30-36: HTTPS_PROXY,
    # then HTTP_PROXY over it, and NO_PROXY), only _choose_proxy decides.
    for name, value in (("HTTPS_PROXY", "http://127.0.0.1:3128"), ("HTTP_PROXY", "http://127.0.0.1:8080")):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("NO_PROXY", ".svc")
    configuration = cluster_module._new_configuration()
    configuration.host = "https://127.0.0.1:6443"
    assert not configuration.proxy and not configuration.no_proxy
    cluster_module._choose_proxy(configuration, {"HTTPS_PROXY": "http://127.0.0.1:3128"})
    assert (configuration.proxy, configuration.no_proxy) == (None, None)  # loopback: never proxied


P = "http://p:3128"


@pytest.mark.parametrize(
    ("host", "from_kubeconfig", "variables", "proxy"),
    [
        ("https://api.example:6443", None, {"HTTPS_PROXY": P, "NO_PROXY": ".svc"}, P),
        ("https://api.example:6443", None, {"https_proxy": P}, P),
        ("https://api.example:6443", None, {"HTTPS_PROXY": P, "https_proxy": "http://lower:1"}, P),
        ("http://api.example:8080", None, {"HTTP_PROXY": P, "HTTPS_PROXY": "http://other:1"}, P),
        # Go reads no ALL_PROXY (a SOCKS address there would break clients before 37 outright).
        ("https://api.example:6443", None, {"ALL_PROXY": "socks5://127.0.0.1:1080"}, None),
        ("https://api.example:6443", None, {"HTTP_PROXY": P}, None),
        ("https://api.example:6443", None, {"HTTPS_PROXY": P, "NO_PROXY": "example"}, None),
        ("https://10.0.0.1:6443", None, {"HTTPS_PROXY": P, "NO_PROXY": "10.0.0.0/8"}, None),
        ("https://api.example:6443", None, {"HTTPS_PROXY": P, "NO_PROXY": "*"}, None),
        (
            "https://api.example:6443",
            "http://mine:8080",
            {"HTTPS_PROXY": P, "NO_PROXY": "*"},
            "http://mine:8080",
        ),
        ("https://127.0.0.2:6443", None, {"HTTPS_PROXY": P}, None),
        ("https://localhost:6443", None, {"HTTPS_PROXY": P}, None),
        ("https://[::1]:6443", None, {"HTTPS_PROXY": P}, None),
    ],
)
def test_the_proxy_is_chosen_as_kubectl_chooses_it(host, from_kubeconfig, variables, proxy):
    configuration = cluster_module._new_configuration()
    configuration.host = host
    if from_kubeconfig:
        configuration.proxy = from_kubeconfig
    cluster_module._choose_proxy(configuration, variables)
    # Decided once: the client is left no no-proxy list to read (and rewrite the environment for) again.
    assert (configuration.proxy, configuration.no_proxy) == (proxy, None)


def test_nodes_against_the_api_server(view):
    nodes = {node.name: node for node in view.nodes()}
    assert set(nodes) == {"node-1", "node-2"}
    assert nodes["node-1"].ready and nodes["node-1"].roles == ("control-plane",)
    assert not nodes["node-2"].ready


def test_pods_by_namespace_selector_and_across_namespaces(view):
    pods = {pod.name: pod for pod in view.pods()}
    assert set(pods) == {API_POD, "bot-7c8d9-abcde"}
    assert pods[API_POD].ready and pods[API_POD].container_ports[0]["containerPort"] == 8000
    assert pods["bot-7c8d9-abcde"].waiting_reasons == ("CrashLoopBackOff",)
    assert [pod.name for pod in view.pods(selector="app=api")] == [API_POD]
    everywhere = {(pod.namespace, pod.name) for pod in view.pods("*")}
    assert ("ingress-nginx", "ingress-nginx-controller-6b7f-qwert") in everywhere
    assert view.pods("ingress-nginx")[0].labels["app.kubernetes.io/name"] == "ingress-nginx"


def test_deployments_against_the_api_server(view):
    deployments = {d.name: d for d in view.deployments()}
    assert deployments["api"].rollout_complete and deployments["api"].available == 1
    assert not deployments["bot"].rollout_complete and deployments["bot"].desired == 2


def test_services_show_both_load_balancers_and_the_pending_one(view):
    services = {s.name: s for s in view.services()}
    assert services["api"].lb_addresses == ("138.197.254.53",)
    assert services["api-service"].lb_addresses == ("138.197.240.239",)
    assert services["api"].selector == services["api-service"].selector == {"app": "api"}
    assert services["bot-service"].ports[0]["target_port"] == "http"
    assert services["metrics"].lb_pending and not services["api"].lb_pending
    assert view.services("default") == []


def test_endpoint_slices_against_the_api_server(view):
    by_service = {s.service: s for s in view.endpoint_slices()}
    assert by_service["api"].ready_addresses == ("10.244.0.15",)
    assert by_service["bot-service"].not_ready_addresses == ("10.244.0.16",)
    only_bot = view.endpoint_slices(service="bot-service")
    assert [s.service for s in only_bot] == ["bot-service"]


def test_no_ingress_in_the_namespace_but_an_ingress_class_and_controller(view):
    assert view.ingresses() == []
    elsewhere = view.ingresses("*")
    assert [(i.namespace, i.name, i.class_name) for i in elsewhere] == [("staging", "legacy", "nginx")]
    assert [(c.name, c.controller, c.is_default) for c in view.ingress_classes()] == [
        ("nginx", "k8s.io/ingress-nginx", True)
    ]
    controllers = view.ingress_controller_pods()
    assert [(p.namespace, p.name) for p in controllers] == [
        ("ingress-nginx", "ingress-nginx-controller-6b7f-qwert")
    ]


def test_network_policies_against_the_api_server(view):
    [policy] = view.network_policies()
    assert policy.name == "api-allow-edge" and policy.pod_selector == {"matchLabels": {"app": "api"}}
    assert policy.ingress[0]["ports"] == [{"protocol": "TCP", "port": 8000}]


def test_secrets_exist_reads_names_only(view):
    assert view.secrets_exist(NAMESPACE, ["api-tls", "api-tls-old"]) == {
        "api-tls": True,
        "api-tls-old": False,
    }


def test_events_newest_last_and_warnings_only(view):
    events = view.events()
    assert [e.reason for e in events] == ["EnsuredLoadBalancer", "SyncLoadBalancerFailed", "BackOff"]
    warnings = view.events(warnings_only=True)
    assert {e.reason for e in warnings} == {"SyncLoadBalancerFailed", "BackOff"}
    assert all(e.type == "Warning" for e in warnings)


def test_pod_logs_return_the_tail(view):
    tail = view.pod_logs(API_POD, tail_lines=3)
    assert tail.splitlines() == [f"INFO GET /health 200 request {n}" for n in (298, 299, 300)]
    assert view.pod_logs(API_POD).count("\n") == 200


def test_pod_logs_of_a_missing_pod_is_not_found(view):
    with pytest.raises(ClusterError) as raised:
        view.pod_logs("api-gone")
    assert raised.value.kind is ClusterErrorKind.NOT_FOUND
    assert "api-gone" in str(raised.value)


def test_proxy_get_returns_the_backends_answer(view):
    health = view.proxy_get("api", 80, "/health")
    assert (health.status, health.error, health.no_endpoints) == (200, None, False)
    assert json.loads(health.body) == {"status": "ok", "db": "up"}
    assert health.ok and health.ms > 0
    failing = view.proxy_get("api", "http", "/v1/fail")
    assert (failing.status, failing.body, failing.error, failing.ok) == (
        500,
        "database unavailable",
        None,
        False,
    )
    big = view.proxy_get("api-service", 80, "/big", max_body=1000)
    assert (big.status, len(big.body), big.truncated) == (200, 1000, True)
    assert json.loads(json.dumps(health.to_evidence()))["status"] == 200


def test_proxy_get_without_ready_endpoints_is_a_result_not_an_exception(view):
    result = view.proxy_get("bot-service", 5000, "/health")
    assert result.status == 503 and result.no_endpoints and not result.ok
    assert result.error == 'no endpoints available for service "bot-service"'


def test_proxy_get_to_a_missing_service_is_not_found(view):
    with pytest.raises(ClusterError) as raised:
        view.proxy_get("api", 80, "/health", namespace="default")
    assert raised.value.kind is ClusterErrorKind.NOT_FOUND
    assert 'services "api" not found' in str(raised.value)


def test_wrong_token_is_unauthorized(sandbox, tmp_path):
    kubeconfig = str(tmp_path / "wrong-token")
    write_kubeconfig(
        kubeconfig, server_url=sandbox.server.url, ca_file=sandbox.ca_file, token="not-the-token"
    )
    view = Cluster.connect(kubeconfig=kubeconfig)
    for read in (view.pods, view.nodes, lambda: view.proxy_get("api", 80, "/health")):
        with pytest.raises(ClusterError) as raised:
            read()
        assert raised.value.kind is ClusterErrorKind.UNAUTHORIZED
        assert sandbox.server.url in str(raised.value) and "401" in str(raised.value)


def test_forbidden_names_the_verb_and_resource_to_grant(start_sandbox):
    denied = start_sandbox(
        deny=[
            {"verb": "list", "resource": "pods", "namespace": NAMESPACE},
            {"verb": "get", "resource": "services/proxy"},
            {"verb": "list", "resource": "nodes"},
        ]
    )
    view = denied.connect()
    with pytest.raises(ClusterError) as raised:
        view.can_read_namespace()
    error = raised.value
    assert error.kind is ClusterErrorKind.FORBIDDEN
    assert str(error) == (
        'forbidden: cannot list pods in namespace production; grant verb "list" on resource "pods" (group "")'
    )
    assert (error.verb, error.resource, error.group, error.namespace) == ("list", "pods", "", NAMESPACE)
    assert error.user == "system:serviceaccount:sandbox:reachability"
    with pytest.raises(ClusterError) as raised:
        view.nodes()
    assert str(raised.value) == (
        'forbidden: cannot list nodes at cluster scope; grant verb "list" on resource "nodes" (group "")'
    )
    with pytest.raises(ClusterError) as raised:
        view.proxy_get("api", 80, "/health")
    assert raised.value.kind is ClusterErrorKind.FORBIDDEN
    assert 'grant verb "get" on resource "services/proxy"' in str(raised.value)
    assert view.services()  # other reads still work


def test_ingress_controllers_are_found_without_cluster_wide_pod_rights(start_sandbox):
    # Denied cluster-wide (the deny rule without a namespace), allowed in ingress-nginx: the fallback
    # looks in the namespaces controllers usually live in.
    limited = start_sandbox(deny=[{"verb": "list", "resource": "pods", "namespace": "kube-system"}])
    view = limited.connect()
    with pytest.raises(ClusterError):
        view.pods("*")
    assert [p.name for p in view.ingress_controller_pods()] == ["ingress-nginx-controller-6b7f-qwert"]


def test_untrusted_api_server_certificate_is_a_tls_error(sandbox, tmp_path):
    other_ca = str(tmp_path / "other-ca.pem")
    trustme.CA().cert_pem.write_to_path(other_ca)
    kubeconfig = str(tmp_path / "other-ca")
    write_kubeconfig(kubeconfig, server_url=sandbox.server.url, ca_file=other_ca, token=sandbox.token)
    with pytest.raises(ClusterError) as raised:
        Cluster.connect(kubeconfig=kubeconfig).version()
    assert raised.value.kind is ClusterErrorKind.ERROR
    assert str(raised.value).startswith(f"tls: cannot verify the API server at {sandbox.server.url}: ")
    assert "certificate verify failed" in str(raised.value)


def test_context_selection_against_real_servers(
    sandbox, start_sandbox, tmp_path, bare_environment, monkeypatch
):
    second = start_sandbox()
    kubeconfig = tmp_path / "two"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "first",
                "clusters": [
                    {
                        "name": "one",
                        "cluster": {"server": sandbox.server.url, "certificate-authority": sandbox.ca_file},
                    },
                    {
                        "name": "two",
                        "cluster": {"server": second.server.url, "certificate-authority": second.ca_file},
                    },
                ],
                "users": [
                    {"name": "one", "user": {"token": sandbox.token}},
                    {"name": "two", "user": {"token": second.token}},
                ],
                "contexts": [
                    {
                        "name": "first",
                        "context": {"cluster": "one", "user": "one", "namespace": "ingress-nginx"},
                    },
                    {"name": "second", "context": {"cluster": "two", "user": "two"}},
                ],
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    before = len(second.server.request_log)
    chosen = Cluster.connect(context="second")
    assert (chosen.server, chosen.namespace) == (second.server.url, "default")
    assert chosen.services(NAMESPACE)
    assert len(second.server.request_log) == before + 1
    current = Cluster.connect()
    assert [p.name for p in current.pods()] == ["ingress-nginx-controller-6b7f-qwert"]


def _every_read(view: Cluster) -> None:
    view.version()
    view.can_read_namespace()
    view.nodes()
    view.pods()
    view.pods("*", selector="app=api")
    view.deployments()
    view.deployments("*")
    view.services()
    view.services("*")
    view.endpoint_slices()
    view.endpoint_slices("*", service="api")
    view.ingresses()
    view.ingresses("*")
    view.ingress_classes()
    view.network_policies()
    view.network_policies("*")
    view.secrets_exist(NAMESPACE, ["api-tls"])
    view.events()
    view.events("*", warnings_only=True)
    view.pod_logs(API_POD, tail_lines=5)
    view.proxy_get("api", 80, "/health")
    view.proxy_get("bot-service", 5000, "/health")
    view.ingress_controller_pods()


def test_every_read_sends_only_get(start_sandbox):
    running = start_sandbox()
    with running.connect() as view:
        _every_read(view)
        log = running.server.request_log
        assert {entry["method"] for entry in log} == {"GET"}
        assert {entry["resource"] for entry in log} >= {
            "nodes",
            "pods",
            "deployments",
            "services",
            "endpointslices",
            "ingresses",
            "ingressclasses",
            "networkpolicies",
            "secrets",
            "events",
        }
        assert {entry["verb"] for entry in log} >= {"get", "list", "logs", "proxy"}
        # The client's one door refuses a write before anything leaves the process.
        sent = len(log)
        with pytest.raises(ClusterError, match="read-only"):
            k8s.CoreV1Api(view._api_client).delete_namespaced_pod(API_POD, NAMESPACE)
        assert len(running.server.request_log) == sent


def test_the_request_log_would_catch_a_write(start_sandbox):
    """Control for the test above: a write that does reach the
    server is logged, so its absence means something."""
    running = start_sandbox()
    context = ssl.create_default_context(cafile=running.ca_file)
    request = urllib.request.Request(
        f"{running.server.url}/api/v1/namespaces/{NAMESPACE}/pods/{API_POD}",
        method="DELETE",
        headers={"Authorization": f"Bearer {running.token}"},
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        # No environment proxy: the request must reach the sandbox itself.
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )
        opener.open(request, timeout=5)
    raised.value.close()
    assert raised.value.code == 405
    assert [entry["method"] for entry in running.server.request_log] == ["DELETE"]


def test_not_found_for_an_unserved_resource_names_what_was_asked():
    body = json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "reason": "NotFound",
            "code": 404,
            "message": "the server could not find the requested resource",
        }
    )
    error = cluster_module.classify(
        _api_exception(404, "Not Found", body),
        cluster_module._Request("list", "ingressclasses", "networking.k8s.io"),
        "https://127.0.0.1:6443",
        timeout=5,
    )
    assert error.kind is ClusterErrorKind.NOT_FOUND
    assert str(error) == (
        "not found: list ingressclasses at cluster scope: the server could not find the requested resource"
    )


def test_in_cluster_service_account_is_used_without_a_kubeconfig(
    sandbox, bare_environment, tmp_path, monkeypatch
):
    # The pod's service-account files, written where the test can (the client reads them from fixed paths).
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(sandbox.token)
    (account / "namespace").write_text("ingress-nginx")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(account / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", sandbox.ca_file)
    monkeypatch.setattr(cluster_module, "SERVICE_ACCOUNT_NAMESPACE_FILE", str(account / "namespace"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", sandbox.server.url.rsplit(":", 1)[1])
    view = Cluster.connect()
    assert (view.server, view.context, view.namespace) == (sandbox.server.url, None, "ingress-nginx")
    assert [p.name for p in view.pods()] == ["ingress-nginx-controller-6b7f-qwert"]
