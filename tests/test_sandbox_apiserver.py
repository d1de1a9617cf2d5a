"""The sandbox's Kubernetes API server, checked with real clients: the official Python client and kubectl."""

from __future__ import annotations

import http.server
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import trustme
from kubernetes import client as kube
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException

from pytest_reachability.moments import human_duration
from pytest_reachability.sandbox.apiserver import (
    KubeApiServer,
    parse_label_selector,
    write_kubeconfig,
)

TOKEN = "sandbox-token-5b7c"
IN_CI = os.environ.get("CI", "").lower() == "true"


def _ago(**delta: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def production_objects() -> list[dict]:
    """A small world like the incident's: one healthy api pod behind two LoadBalancers, no Ingress."""
    api_labels = {"app": "api", "tier": "backend"}
    return [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": "pool-a-1",
                "labels": {"node-role.kubernetes.io/worker": ""},
                "creationTimestamp": _ago(days=30),
            },
            "status": {
                "conditions": [{"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": "10.110.0.2"}],
                "nodeInfo": {"kubeletVersion": "v1.32.4", "osImage": "Debian GNU/Linux 12 (bookworm)"},
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "api", "namespace": "production", "labels": {"app": "api"}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "api"}},
                "template": {
                    "metadata": {"labels": api_labels},
                    "spec": {"containers": [{"name": "api", "image": "registry.test/api:1.4.2"}]},
                },
            },
            "status": {"replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1},
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "api-847495fbc4-686tk", "namespace": "production", "labels": api_labels},
            "spec": {
                "nodeName": "pool-a-1",
                "containers": [
                    {
                        "name": "api",
                        "image": "registry.test/api:1.4.2",
                        "ports": [{"name": "http", "containerPort": 8000}],
                    }
                ],
            },
            "status": {
                "phase": "Running",
                "podIP": "10.244.0.17",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [
                    {"name": "api", "ready": True, "restartCount": 0, "state": {"running": {}}}
                ],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "digital-twin-bot-5d9f7-x2k8p",
                "namespace": "production",
                "labels": {"app": "bot"},
            },
            "spec": {"containers": [{"name": "bot", "image": "registry.test/bot:2.0"}]},
            "status": {
                "phase": "Running",
                "podIP": "10.244.0.18",
                "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [
                    {
                        "name": "bot",
                        "ready": False,
                        "restartCount": 7,
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                        "lastState": {"terminated": {"exitCode": 1, "finishedAt": _ago(minutes=3)}},
                    }
                ],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "ingress-nginx-controller-7c6974c4d8-abcde",
                "namespace": "ingress-nginx",
                "labels": {
                    "app.kubernetes.io/name": "ingress-nginx",
                    "app.kubernetes.io/component": "controller",
                },
            },
            "spec": {
                "containers": [{"name": "controller", "image": "registry.k8s.io/ingress-nginx/controller"}]
            },
            "status": {
                "phase": "Running",
                "podIP": "10.244.0.30",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [
                    {"name": "controller", "ready": True, "restartCount": 0, "state": {"running": {}}}
                ],
            },
        },
        _load_balancer("api", "10.109.31.2", "138.197.254.53", 80, 32558, "http", age={"hours": 12}),
        _load_balancer("api-service", "10.109.27.32", "138.197.240.239", 80, 32110, 8000, age={"hours": 69}),
        _load_balancer("bot-service", "10.109.19.114", None, 5000, 30949, 5000, selector={"app": "bot"}),
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {"name": "nginx"},
            "spec": {"controller": "k8s.io/ingress-nginx"},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "legacy", "namespace": "staging"},
            "spec": {
                "ingressClassName": "nginx",
                "rules": [
                    {
                        "host": "97v.test",
                        "http": {
                            "paths": [
                                {
                                    "path": "/",
                                    "pathType": "Prefix",
                                    "backend": {"service": {"name": "api", "port": {"number": 80}}},
                                }
                            ]
                        },
                    }
                ],
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "api-allow-edge", "namespace": "production"},
            "spec": {"podSelector": {"matchLabels": {"app": "api"}}, "policyTypes": ["Ingress"]},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "api-db", "namespace": "production"},
            "type": "Opaque",
            "data": {"password": "c2VjcmV0LXZhbHVl", "user": "YXBp"},
        },
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "bot.17f1", "namespace": "production"},
            "involvedObject": {
                "kind": "Pod",
                "name": "digital-twin-bot-5d9f7-x2k8p",
                "namespace": "production",
            },
            "reason": "BackOff",
            "type": "Warning",
            "message": "Back-off restarting failed container bot",
            "source": {"component": "kubelet", "host": "pool-a-1"},
            "firstTimestamp": _ago(minutes=40),
            "lastTimestamp": _ago(minutes=3),
            "count": 7,
        },
    ]


def _load_balancer(
    name: str,
    cluster_ip: str,
    address: str | None,
    port: int,
    node_port: int,
    target_port: int | str,
    *,
    selector: dict | None = None,
    age: dict | None = None,
) -> dict:
    service: dict = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "production"},
        "spec": {
            "type": "LoadBalancer",
            "clusterIP": cluster_ip,
            "selector": selector or {"app": "api"},
            "ports": [{"name": "http", "port": port, "nodePort": node_port, "targetPort": target_port}],
        },
        "status": {"loadBalancer": {"ingress": [{"ip": address}]} if address else {}},
    }
    if age:
        service["metadata"]["creationTimestamp"] = _ago(**age)
    return service


POD_LOGS = {
    "production/api-847495fbc4-686tk": "".join(
        f'INFO:     10.244.0.1:4{index:04d} - "GET /health HTTP/1.1" 200 OK\n' for index in range(20)
    ),
}


class _Backend(http.server.BaseHTTPRequestHandler):
    """The in-cluster api pod, as the service proxy reaches it."""

    def do_GET(self) -> None:  # noqa: N802
        body = f'{{"status":"ok","path":"{self.path}","host":"{self.headers.get("Host")}"}}'.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Backend", "api")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def backend() -> Iterator[tuple[str, int]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Backend)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield ("127.0.0.1", server.server_address[1])
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("apiserver-certs")
    authority = trustme.CA()
    leaf = authority.issue_cert("127.0.0.1", "localhost")
    paths = {name: str(directory / f"{name}.pem") for name in ("ca", "cert", "key")}
    authority.cert_pem.write_to_path(paths["ca"])
    leaf.private_key_pem.write_to_path(paths["key"])
    leaf.cert_chain_pems[0].write_to_path(paths["cert"])
    for extra in leaf.cert_chain_pems[1:]:
        extra.write_to_path(paths["cert"], append=True)
    return paths


@pytest.fixture(scope="module")
def refusing_address() -> Iterator[tuple[str, int]]:
    """A bound port nobody listens on: connecting to it is refused (a targetPort nothing serves)."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield ("127.0.0.1", bound.getsockname()[1])


@pytest.fixture(scope="module")
def apiserver(
    certificates: dict[str, str], backend: tuple[str, int], refusing_address: tuple[str, int]
) -> Iterator[KubeApiServer]:
    requested: list[tuple[str, str, int | str]] = []
    backends = {("production", "api"): backend, ("production", "api-service"): refusing_address}

    def backend_for_service(namespace: str, name: str, port: int | str) -> tuple[str, int] | None:
        requested.append((namespace, name, port))
        return backends.get((namespace, name))

    server = KubeApiServer(
        production_objects(),
        pod_logs=POD_LOGS,
        deny=[
            {"verb": "list", "resource": "secrets", "namespace": "production"},
            {"verb": "get", "resource": "pods/log", "namespace": "ingress-nginx"},
        ],
        token=TOKEN,
        cert_file=certificates["cert"],
        key_file=certificates["key"],
        backend_for_service=backend_for_service,
    )
    server.proxied = requested  # type: ignore[attr-defined]
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def kubeconfig(
    apiserver: KubeApiServer, certificates: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> str:
    path = str(tmp_path_factory.mktemp("kubeconfig") / "config")
    write_kubeconfig(path, server_url=apiserver.url, ca_file=certificates["ca"], token=TOKEN)
    return path


@pytest.fixture(scope="module")
def api_client(kubeconfig: str) -> Iterator[kube.ApiClient]:
    client = kube_config.new_client_from_config(config_file=kubeconfig)
    yield client
    client.close()


def _raw_get(
    server: KubeApiServer, ca_file: str, path: str, accept: str = "application/json", token: str = TOKEN
):
    """One request outside any Kubernetes client, to see headers and bodies exactly as served."""
    import http.client
    import json
    import ssl
    from urllib.parse import urlsplit

    address = urlsplit(server.url)
    context = ssl.create_default_context(cafile=ca_file)
    connection = http.client.HTTPSConnection(address.hostname, address.port, context=context, timeout=10)
    try:
        connection.request("GET", path, headers={"Authorization": f"Bearer {token}", "Accept": accept})
        response = connection.getresponse()
        body = response.read()
        content_type = response.getheader("Content-Type", "")
        document = json.loads(body) if "json" in content_type else body.decode()
        return response.status, content_type, document
    finally:
        connection.close()


# ---- unit behaviour of the pieces clients depend on -----------------------------------------------


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("app=api", {"app": "api"}, True),
        ("app==api", {"app": "bot"}, False),
        ("app!=api", {"app": "bot"}, True),
        ("app!=api", {}, True),
        ("app in (api, bot)", {"app": "bot"}, True),
        ("app in (api)", {}, False),
        ("app notin (api,bot)", {"app": "web"}, True),
        ("app notin (api,bot)", {"app": "api"}, False),
        ("tier", {"tier": "backend"}, True),
        ("!tier", {"tier": "backend"}, False),
        ("app=api,tier in (backend,frontend),!canary", {"app": "api", "tier": "backend"}, True),
        (
            "app=api,tier in (backend,frontend),!canary",
            {"app": "api", "tier": "backend", "canary": "1"},
            False,
        ),
    ],
)
def test_label_selector_syntax(selector: str, labels: dict, expected: bool) -> None:
    requirements = parse_label_selector(selector)
    assert all(requirement.matches(labels) for requirement in requirements) is expected


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (5, "5s"),
        (119, "119s"),
        (185, "3m5s"),
        (900, "15m"),
        (3 * 3600 + 60, "3h1m"),
        (12 * 3600, "12h"),
        (69 * 3600, "2d21h"),
        (30 * 86400, "30d"),
        (800 * 86400, "2y70d"),
    ],
)
def test_ages_read_like_kubectl(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def test_bad_objects_fail_with_one_line(certificates: dict[str, str]) -> None:
    for objects, fragment in [
        ([{"apiVersion": "v1", "kind": "Pod"}], "metadata.name are required"),
        ([{"apiVersion": "example.test/v1", "kind": "Widget", "metadata": {"name": "w"}}], "is not served"),
        ([{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}] * 2, "duplicate Pod default/p"),
    ]:
        with pytest.raises(ValueError, match=fragment) as raised:
            KubeApiServer(objects, token=TOKEN, cert_file=certificates["cert"], key_file=certificates["key"])
        assert "\n" not in str(raised.value)


def test_callers_manifests_are_not_changed(certificates: dict[str, str]) -> None:
    import copy

    objects = production_objects()
    before = copy.deepcopy(objects)
    KubeApiServer(objects, token=TOKEN, cert_file=certificates["cert"], key_file=certificates["key"])
    assert objects == before


# ---- the official Python client ------------------------------------------------------------------


def test_client_lists_every_kind_namespaced_and_across_namespaces(api_client: kube.ApiClient) -> None:
    core, apps = kube.CoreV1Api(api_client), kube.AppsV1Api(api_client)
    networking, discovery = kube.NetworkingV1Api(api_client), kube.DiscoveryV1Api(api_client)
    events = kube.EventsV1Api(api_client)

    def names(result: object) -> list[str]:
        return [item.metadata.name for item in result.items]  # type: ignore[attr-defined]

    assert names(core.list_namespaced_pod("production")) == [
        "api-847495fbc4-686tk",
        "digital-twin-bot-5d9f7-x2k8p",
    ]
    assert "ingress-nginx-controller-7c6974c4d8-abcde" in names(core.list_pod_for_all_namespaces())
    assert names(core.list_namespaced_service("production")) == ["api", "api-service", "bot-service"]
    assert len(names(core.list_service_for_all_namespaces())) == 3
    assert names(core.list_namespaced_endpoints("production")) == ["api", "api-service", "bot-service"]
    assert names(core.list_node()) == ["pool-a-1"]
    assert {"production", "ingress-nginx", "staging", "default", "kube-system"} <= set(
        names(core.list_namespace())
    )
    assert names(core.list_namespaced_event("production")) == ["bot.17f1"]
    assert names(core.list_event_for_all_namespaces()) == ["bot.17f1"]
    assert names(core.list_namespaced_secret("staging")) == []
    assert names(apps.list_namespaced_deployment("production")) == ["api"]
    assert names(apps.list_deployment_for_all_namespaces()) == ["api"]
    assert names(apps.list_namespaced_replica_set("production")) == []
    slices = discovery.list_namespaced_endpoint_slice("production").items
    assert {s.metadata.labels["kubernetes.io/service-name"] for s in slices} == {
        "api",
        "api-service",
        "bot-service",
    }
    assert len(discovery.list_endpoint_slice_for_all_namespaces().items) == 3
    assert names(networking.list_namespaced_ingress("production")) == []
    assert names(networking.list_ingress_for_all_namespaces()) == ["legacy"]
    assert names(networking.list_ingress_class()) == ["nginx"]
    assert names(networking.list_namespaced_network_policy("production")) == ["api-allow-edge"]
    assert names(networking.list_network_policy_for_all_namespaces()) == ["api-allow-edge"]
    modern = events.list_namespaced_event("production").items
    assert [(e.reason, e.note, e.regarding.name) for e in modern] == [
        ("BackOff", "Back-off restarting failed container bot", "digital-twin-bot-5d9f7-x2k8p")
    ]


def test_client_gets_one_object_with_server_filled_metadata(api_client: kube.ApiClient) -> None:
    core = kube.CoreV1Api(api_client)
    service = core.read_namespaced_service("api", "production")
    assert service.status.load_balancer.ingress[0].ip == "138.197.254.53"
    assert (service.spec.ports[0].port, service.spec.ports[0].node_port, service.spec.ports[0].protocol) == (
        80,
        32558,
        "TCP",
    )
    assert service.metadata.uid and service.metadata.resource_version
    assert datetime.now(timezone.utc) - service.metadata.creation_timestamp > timedelta(hours=11)
    endpoints = core.read_namespaced_endpoints("api", "production")
    assert [(a.ip, a.target_ref.name) for a in endpoints.subsets[0].addresses] == [
        ("10.244.0.17", "api-847495fbc4-686tk")
    ]
    assert endpoints.subsets[0].ports[0].port == 8000  # the named targetPort, resolved through the pod
    bot = core.read_namespaced_endpoints("bot-service", "production")
    assert bot.subsets[0].addresses is None and bot.subsets[0].not_ready_addresses[0].ip == "10.244.0.18"
    secret = core.read_namespaced_secret("api-db", "production")
    assert secret.data is None and secret.type == "Opaque"


def test_client_label_and_field_selectors(api_client: kube.ApiClient) -> None:
    core = kube.CoreV1Api(api_client)

    def pods(**query: str) -> list[str]:
        return [p.metadata.name for p in core.list_pod_for_all_namespaces(**query).items]

    assert pods(label_selector="app=api") == ["api-847495fbc4-686tk"]
    assert pods(label_selector="app in (api,bot)") == ["api-847495fbc4-686tk", "digital-twin-bot-5d9f7-x2k8p"]
    assert pods(label_selector="app notin (api),app") == ["digital-twin-bot-5d9f7-x2k8p"]
    assert pods(label_selector="app!=api") == [  # sorted by namespace, then name, as etcd keys are
        "ingress-nginx-controller-7c6974c4d8-abcde",
        "digital-twin-bot-5d9f7-x2k8p",
    ]
    assert pods(label_selector="tier") == ["api-847495fbc4-686tk"]
    assert pods(label_selector="!tier,app") == ["digital-twin-bot-5d9f7-x2k8p"]
    assert pods(field_selector="metadata.namespace=ingress-nginx") == [
        "ingress-nginx-controller-7c6974c4d8-abcde"
    ]
    assert pods(field_selector="metadata.name=api-847495fbc4-686tk") == ["api-847495fbc4-686tk"]
    assert pods(field_selector="spec.nodeName=pool-a-1") == ["api-847495fbc4-686tk"]
    with pytest.raises(ApiException) as raised:
        core.list_pod_for_all_namespaces(field_selector="spec.color=blue")
    assert raised.value.status == 400 and "field label not supported: spec.color" in raised.value.body
    with pytest.raises(ApiException) as raised:
        core.list_pod_for_all_namespaces(label_selector="app in (api")
    assert raised.value.status == 400


def test_client_reads_logs_with_tail_lines(api_client: kube.ApiClient) -> None:
    core = kube.CoreV1Api(api_client)
    text = core.read_namespaced_pod_log("api-847495fbc4-686tk", "production", tail_lines=3, container="api")
    assert text.splitlines() == POD_LOGS["production/api-847495fbc4-686tk"].splitlines()[-3:]
    whole = core.read_namespaced_pod_log("api-847495fbc4-686tk", "production")
    assert len(whole.splitlines()) == 20
    with pytest.raises(ApiException) as raised:
        core.read_namespaced_pod_log("api-gone", "production")
    assert raised.value.status == 404 and 'pods \\"api-gone\\" not found' in raised.value.body


def test_client_reaches_backend_through_service_proxy(
    api_client: kube.ApiClient, apiserver: KubeApiServer
) -> None:
    import json

    core = kube.CoreV1Api(api_client)
    for name in ("api:80", "api:http", "http:api:80", "api"):
        response = core.connect_get_namespaced_service_proxy_with_path(
            name, "production", "health/live", _preload_content=False
        )
        assert response.status == 200
        assert response.headers["X-Backend"] == "api"
        body = json.loads(response.data)
        assert body["status"] == "ok" and body["path"] == "/health/live"
    assert ("production", "api", 80) in apiserver.proxied  # type: ignore[attr-defined]
    proxied = [e for e in apiserver.request_log if e["verb"] == "proxy" and e["status"] == 200][-4:]
    assert {(e["resource"], e["namespace"], e["name"]) for e in proxied} == {
        ("services", "production", "api")
    }
    assert [e["path"] for e in proxied] == [
        f"/api/v1/namespaces/production/services/{name}/proxy/health/live"
        for name in ("api:80", "api:http", "http:api:80", "api")
    ]


def test_service_proxy_failures(api_client: kube.ApiClient) -> None:
    import json

    core = kube.CoreV1Api(api_client)
    with pytest.raises(ApiException) as raised:
        core.connect_get_namespaced_service_proxy_with_path("bot-service:5000", "production", "health")
    status = json.loads(raised.value.body)
    assert (raised.value.status, status["reason"], status["message"]) == (
        503,
        "ServiceUnavailable",
        'no endpoints available for service "bot-service"',
    )
    with pytest.raises(ApiException) as raised:
        core.connect_get_namespaced_service_proxy_with_path("api:9999", "production", "health")
    assert raised.value.status == 503 and "no service port" in raised.value.body
    with pytest.raises(ApiException) as raised:
        core.connect_get_namespaced_service_proxy_with_path("missing:80", "production", "health")
    assert (
        raised.value.status == 404
        and json.loads(raised.value.body)["message"] == 'services "missing" not found'
    )


def test_service_proxy_backend_errors(
    api_client: kube.ApiClient, certificates: dict[str, str], refusing_address: tuple[str, int]
) -> None:
    import json

    core = kube.CoreV1Api(api_client)
    with pytest.raises(ApiException) as raised:
        core.connect_get_namespaced_service_proxy_with_path("api-service:80", "production", "health")
    assert raised.value.status == 503
    assert json.loads(raised.value.body)["message"] == (
        f"error trying to reach service: dial tcp 127.0.0.1:{refusing_address[1]}: connect: connection "
        "refused"
    )

    # A backend that accepts the connection and never answers: the proxy gives up after its timeout.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        server = KubeApiServer(
            production_objects(),
            token=TOKEN,
            cert_file=certificates["cert"],
            key_file=certificates["key"],
            backend_for_service=lambda namespace, name, port: silent.getsockname(),
            proxy_timeout=0.5,
        )
        with server, tempfile_kubeconfig(server, certificates) as path:
            with kube_config.new_client_from_config(config_file=path) as client:
                started = time.monotonic()
                with pytest.raises(ApiException) as raised:
                    kube.CoreV1Api(client).connect_get_namespaced_service_proxy_with_path(
                        "api:80", "production", "health", _request_timeout=10
                    )
                elapsed = time.monotonic() - started
    assert raised.value.status == 503 and "i/o timeout" in raised.value.body
    assert 0.4 < elapsed < 5


def tempfile_kubeconfig(server: KubeApiServer, certificates: dict[str, str]):
    import contextlib
    import tempfile

    @contextlib.contextmanager
    def written() -> Iterator[str]:
        with tempfile.TemporaryDirectory(prefix="kubeconfig-") as directory:
            path = os.path.join(directory, "config")
            write_kubeconfig(path, server_url=server.url, ca_file=certificates["ca"], token=TOKEN)
            yield path

    return written()


def test_paging_with_limit_and_continue(api_client: kube.ApiClient) -> None:
    core = kube.CoreV1Api(api_client)
    first = core.list_namespaced_service("production", limit=2)
    assert [s.metadata.name for s in first.items] == ["api", "api-service"]
    assert first.metadata._continue and first.metadata.remaining_item_count == 1
    rest = core.list_namespaced_service("production", limit=2, _continue=first.metadata._continue)
    assert [s.metadata.name for s in rest.items] == ["bot-service"] and rest.metadata._continue is None


def test_denied_logs_are_403_on_the_subresource(api_client: kube.ApiClient) -> None:
    import json

    core = kube.CoreV1Api(api_client)
    with pytest.raises(ApiException) as raised:
        core.read_namespaced_pod_log("ingress-nginx-controller-7c6974c4d8-abcde", "ingress-nginx")
    assert raised.value.status == 403
    assert json.loads(raised.value.body)["message"] == (
        'pods "ingress-nginx-controller-7c6974c4d8-abcde" is forbidden: User '
        '"system:serviceaccount:sandbox:reachability" cannot get resource "pods/log" in API group "" '
        'in the namespace "ingress-nginx"'
    )
    assert core.read_namespaced_pod(
        "ingress-nginx-controller-7c6974c4d8-abcde", "ingress-nginx"
    ).metadata.name


def test_wrong_token_is_401_with_status_body(
    kubeconfig: str, apiserver: KubeApiServer, tmp_path: Path
) -> None:
    import json

    import yaml

    document = yaml.safe_load(Path(kubeconfig).read_text())
    document["users"][0]["user"]["token"] = "wrong"
    wrong = tmp_path / "wrong-token"
    wrong.write_text(yaml.safe_dump(document))
    with kube_config.new_client_from_config(config_file=str(wrong)) as client:
        with pytest.raises(ApiException) as raised:
            kube.CoreV1Api(client).list_namespaced_pod("production")
    assert (raised.value.status, raised.value.reason) == (401, "Unauthorized")
    assert json.loads(raised.value.body) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }
    assert apiserver.request_log[-1]["status"] == 401


def test_denied_verb_is_403_forbidden(api_client: kube.ApiClient) -> None:
    import json

    core = kube.CoreV1Api(api_client)
    for call in (lambda: core.list_namespaced_secret("production"), core.list_secret_for_all_namespaces):
        with pytest.raises(ApiException) as raised:
            call()
        assert (raised.value.status, raised.value.reason) == (403, "Forbidden")
        status = json.loads(raised.value.body)
        assert status["reason"] == "Forbidden" and status["details"] == {"kind": "secrets"}
    assert json.loads(raised.value.body)["message"] == (
        'secrets is forbidden: User "system:serviceaccount:sandbox:reachability" cannot list resource '
        '"secrets" in API group "" at the cluster scope'
    )
    with pytest.raises(ApiException) as raised:
        core.list_namespaced_secret("production")
    assert json.loads(raised.value.body)["message"] == (
        'secrets is forbidden: User "system:serviceaccount:sandbox:reachability" cannot list resource '
        '"secrets" in API group "" in the namespace "production"'
    )
    assert core.read_namespaced_secret("api-db", "production").metadata.name == "api-db"  # get is not denied


def test_missing_objects_are_404_with_real_messages(api_client: kube.ApiClient) -> None:
    import json

    cases = [
        (lambda: kube.CoreV1Api(api_client).read_namespaced_pod("x", "production"), 'pods "x" not found'),
        (lambda: kube.CoreV1Api(api_client).read_node("gone"), 'nodes "gone" not found'),
        (
            lambda: kube.NetworkingV1Api(api_client).read_namespaced_ingress("api", "production"),
            'ingresses.networking.k8s.io "api" not found',
        ),
        (
            lambda: kube.AppsV1Api(api_client).read_namespaced_deployment("api", "staging"),
            'deployments.apps "api" not found',
        ),
    ]
    for call, message in cases:
        with pytest.raises(ApiException) as raised:
            call()
        status = json.loads(raised.value.body)
        assert (raised.value.status, status["reason"], status["message"]) == (404, "NotFound", message)


def test_writes_are_refused_and_logged(api_client: kube.ApiClient, apiserver: KubeApiServer) -> None:
    core = kube.CoreV1Api(api_client)
    attempts = [
        (lambda: core.delete_namespaced_pod("api-847495fbc4-686tk", "production"), "DELETE", "delete"),
        (
            lambda: core.create_namespaced_config_map("production", {"metadata": {"name": "c"}}),
            "POST",
            "create",
        ),
        (lambda: core.patch_namespaced_service("api", "production", {"spec": {}}), "PATCH", "patch"),
        (lambda: core.replace_namespace("production", {"metadata": {"name": "production"}}), "PUT", "update"),
    ]
    for call, method, verb in attempts:
        with pytest.raises(ApiException) as raised:
            call()
        assert (raised.value.status, "MethodNotAllowed" in raised.value.body) == (405, True)
        assert {k: apiserver.request_log[-1][k] for k in ("method", "verb", "status")} == {
            "method": method,
            "verb": verb,
            "status": 405,
        }
    assert core.read_namespaced_pod("api-847495fbc4-686tk", "production").metadata.name  # still there


def test_watch_answers_at_once(api_client: kube.ApiClient) -> None:
    started = time.monotonic()
    with pytest.raises(ApiException) as raised:
        kube.CoreV1Api(api_client).list_namespaced_pod("production", watch=True, _request_timeout=10)
    assert raised.value.status == 405 and time.monotonic() - started < 5


def test_discovery_documents(
    apiserver: KubeApiServer, certificates: dict[str, str], api_client: kube.ApiClient
) -> None:
    ca = certificates["ca"]
    status, _, version = _raw_get(apiserver, ca, "/version")
    assert status == 200 and (version["major"], version["minor"]) == ("1", "32")
    aggregated = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    status, content_type, groups = _raw_get(apiserver, ca, "/apis", accept=aggregated)
    assert content_type == "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    resources = {
        (item["metadata"]["name"], r["resource"]): r
        for item in groups["items"]
        for version_entry in item["versions"]
        for r in version_entry["resources"]
    }
    assert resources[("networking.k8s.io", "networkpolicies")]["shortNames"] == ["netpol"]
    assert resources[("discovery.k8s.io", "endpointslices")]["scope"] == "Namespaced"
    status, content_type, legacy = _raw_get(apiserver, ca, "/api")
    assert content_type == "application/json" and legacy["versions"] == ["v1"]
    core = {r["name"]: r for r in _raw_get(apiserver, ca, "/api/v1")[2]["resources"]}
    assert core["services"]["shortNames"] == ["svc"] and core["nodes"]["namespaced"] is False
    assert "pods/log" in core and "services/proxy" in core
    apis = kube.ApisApi(api_client).get_api_versions()
    assert {group.name for group in apis.groups} >= {"apps", "networking.k8s.io", "discovery.k8s.io"}
    assert _raw_get(apiserver, ca, "/openapi/v2")[0] == 404


def test_table_rendering_for_kubectl(apiserver: KubeApiServer, certificates: dict[str, str]) -> None:
    table_accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    status, _, table = _raw_get(
        apiserver, certificates["ca"], "/api/v1/namespaces/production/services", accept=table_accept
    )
    assert status == 200 and table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0] == [
        "Name",
        "Type",
        "Cluster-IP",
        "External-IP",
        "Port(s)",
        "Age",
    ]
    rows = {row["cells"][0]: row for row in table["rows"]}
    assert rows["api"]["cells"][1:5] == ["LoadBalancer", "10.109.31.2", "138.197.254.53", "80:32558/TCP"]
    assert rows["bot-service"]["cells"][3] == "<pending>"
    assert rows["api"]["object"]["kind"] == "PartialObjectMetadata"
    assert rows["api"]["object"]["metadata"]["namespace"] == "production"
    _, _, whole = _raw_get(
        apiserver,
        certificates["ca"],
        "/api/v1/namespaces/production/secrets/api-db?includeObject=Object",
        accept=table_accept,
    )
    assert whole["rows"][0]["cells"][:3] == ["api-db", "Opaque", 2]
    assert whole["rows"][0]["object"]["kind"] == "Secret" and "data" not in whole["rows"][0]["object"]
    assert "__dataCount" not in whole["rows"][0]["object"]


# ---- kubectl ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kubectl(kubeconfig: str, tmp_path_factory: pytest.TempPathFactory):
    binary = shutil.which("kubectl")
    if binary is None:
        if IN_CI:
            pytest.fail("kubectl is required in CI (CI=true) but is not installed")
        pytest.skip("kubectl is not installed")
    home = tmp_path_factory.mktemp("kubectl-home")

    def run(*arguments: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        environment = {"PATH": os.environ.get("PATH", ""), "HOME": str(home)}
        result = subprocess.run(
            [binary, "--kubeconfig", kubeconfig, "--cache-dir", str(home / "cache"), *arguments],
            capture_output=True,
            text=True,
            timeout=60,
            env=environment,
        )
        if check:
            assert result.returncode == 0, result.stderr
            assert result.stderr == "", result.stderr  # no errors and no warnings
        return result

    return run


def parse_tables(text: str) -> list[list[dict[str, str]]]:
    """kubectl's column output as rows keyed by header; blocks separated by blank lines."""
    tables = []
    for block in text.strip().split("\n\n"):
        lines = block.splitlines()
        header = lines[0]
        starts = [m.start() for m in re.finditer(r"(?:(?<=\s\s)|^)\S", header)]
        names = [header[s:e].strip() for s, e in zip(starts, [*starts[1:], None], strict=True)]
        rows = []
        for line in lines[1:]:
            cells = [line[s:e].strip() for s, e in zip(starts, [*starts[1:], None], strict=True)]
            rows.append(dict(zip(names, cells, strict=True)))
        tables.append(rows)
    return tables


def _headers(text: str) -> list[list[str]]:
    return [block.splitlines()[0].split() for block in text.strip().split("\n\n")]


def test_kubectl_gets_production_with_real_columns(kubectl) -> None:
    result = kubectl("get", "pods,svc,endpointslices,ingress,netpol", "-n", "production")
    assert _headers(result.stdout) == [
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
        ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"],
        ["NAME", "POD-SELECTOR", "AGE"],
    ]
    pods, services, slices, policies = parse_tables(result.stdout)
    by_name = {row["NAME"]: row for row in pods}
    assert by_name["pod/api-847495fbc4-686tk"] == {
        "NAME": "pod/api-847495fbc4-686tk",
        "READY": "1/1",
        "STATUS": "Running",
        "RESTARTS": "0",
        "AGE": "12h",
    }
    bot = by_name["pod/digital-twin-bot-5d9f7-x2k8p"]
    assert (bot["READY"], bot["STATUS"]) == ("0/1", "CrashLoopBackOff")
    assert re.fullmatch(r"7 \((\d+m)?(\d+s)? ago\)", bot["RESTARTS"]), bot["RESTARTS"]  # 7 (3m4s ago)
    services_by_name = {row["NAME"]: row for row in services}
    assert services_by_name["service/api"] == {
        "NAME": "service/api",
        "TYPE": "LoadBalancer",
        "CLUSTER-IP": "10.109.31.2",
        "EXTERNAL-IP": "138.197.254.53",
        "PORT(S)": "80:32558/TCP",
        "AGE": "12h",
    }
    assert services_by_name["service/api-service"]["AGE"] == "2d21h"
    assert services_by_name["service/bot-service"]["EXTERNAL-IP"] == "<pending>"
    api_slice = next(
        row
        for row in slices
        if row["NAME"].startswith("endpointslice.discovery.k8s.io/api-") and "service" not in row["NAME"]
    )
    assert (api_slice["ADDRESSTYPE"], api_slice["PORTS"], api_slice["ENDPOINTS"]) == (
        "IPv4",
        "8000",
        "10.244.0.17",
    )
    assert policies == [
        {"NAME": "networkpolicy.networking.k8s.io/api-allow-edge", "POD-SELECTOR": "app=api", "AGE": "12h"}
    ]


def test_kubectl_other_kinds_and_all_namespaces(kubectl) -> None:
    (pods,) = parse_tables(kubectl("get", "pods", "-A").stdout)
    assert [(row["NAMESPACE"], row["NAME"]) for row in pods] == [
        ("ingress-nginx", "ingress-nginx-controller-7c6974c4d8-abcde"),
        ("production", "api-847495fbc4-686tk"),
        ("production", "digital-twin-bot-5d9f7-x2k8p"),
    ]
    (ingresses,) = parse_tables(kubectl("get", "ingress", "-A").stdout)
    assert ingresses == [
        {
            "NAMESPACE": "staging",
            "NAME": "legacy",
            "CLASS": "nginx",
            "HOSTS": "97v.test",
            "ADDRESS": "",
            "PORTS": "80",
            "AGE": "12h",
        }
    ]
    (deployments,) = parse_tables(kubectl("get", "deploy", "-n", "production").stdout)
    assert deployments == [{"NAME": "api", "READY": "1/1", "UP-TO-DATE": "1", "AVAILABLE": "1", "AGE": "12h"}]
    (nodes,) = parse_tables(kubectl("get", "nodes").stdout)
    assert nodes == [
        {"NAME": "pool-a-1", "STATUS": "Ready", "ROLES": "worker", "AGE": "30d", "VERSION": "v1.32.4"}
    ]
    (events,) = parse_tables(kubectl("get", "events", "-n", "production").stdout)
    assert [(e["TYPE"], e["REASON"], e["OBJECT"]) for e in events] == [
        ("Warning", "BackOff", "pod/digital-twin-bot-5d9f7-x2k8p")
    ]
    (wide,) = parse_tables(kubectl("get", "pods", "-n", "production", "-o", "wide").stdout)
    assert (wide[0]["IP"], wide[0]["NODE"]) == ("10.244.0.17", "pool-a-1")
    import json

    import yaml

    listed = json.loads(kubectl("get", "svc", "-n", "production", "-o", "json").stdout)
    assert [item["metadata"]["name"] for item in listed["items"]] == ["api", "api-service", "bot-service"]
    pod = yaml.safe_load(
        kubectl("get", "pod", "api-847495fbc4-686tk", "-n", "production", "-o", "yaml").stdout
    )
    assert pod["status"]["podIP"] == "10.244.0.17"
    (secrets,) = parse_tables(kubectl("get", "secret", "api-db", "-n", "production").stdout)
    assert secrets == [{"NAME": "api-db", "TYPE": "Opaque", "DATA": "2", "AGE": "12h"}]


def test_kubectl_logs_and_jsonpath(kubectl) -> None:
    logs = kubectl("logs", "api-847495fbc4-686tk", "-n", "production", "--tail=2").stdout
    assert logs.splitlines() == POD_LOGS["production/api-847495fbc4-686tk"].splitlines()[-2:]
    via_deployment = kubectl("logs", "deployment/api", "-n", "production", "--tail=1").stdout
    assert via_deployment.splitlines() == POD_LOGS["production/api-847495fbc4-686tk"].splitlines()[-1:]
    address = kubectl(
        "get", "svc", "api", "-n", "production", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"
    )
    assert address.stdout == "138.197.254.53"


def test_kubectl_describe_finds_events_and_endpoints(kubectl) -> None:
    pod = kubectl("describe", "pod", "digital-twin-bot-5d9f7-x2k8p", "-n", "production").stdout
    assert "Back-off restarting failed container bot" in pod  # found by involvedObject.uid
    service = kubectl("describe", "svc", "api", "-n", "production").stdout
    assert re.search(r"^LoadBalancer Ingress:\s+138\.197\.254\.53\b", service, re.MULTILINE)
    assert re.search(r"^Endpoints:\s+10\.244\.0\.17:8000$", service, re.MULTILINE)


def test_kubectl_delete_is_refused_and_logged(kubectl, apiserver: KubeApiServer) -> None:
    result = kubectl("delete", "pod", "x", "-n", "production", check=False)
    assert result.returncode != 0
    assert "MethodNotAllowed" in result.stderr
    deletes = [e for e in apiserver.request_log if e["method"] == "DELETE" and e["name"] == "x"]
    assert deletes and deletes[-1]["status"] == 405 and deletes[-1]["verb"] == "delete"


def test_kubectl_wrong_token_and_forbidden(kubectl) -> None:
    result = kubectl("--token", "wrong", "get", "pods", "-n", "production", check=False)
    assert result.returncode != 0
    assert "error: You must be logged in to the server (Unauthorized)" in result.stderr
    result = kubectl("get", "secrets", "-n", "production", check=False)
    assert result.returncode != 0
    assert (
        "Error from server (Forbidden): secrets is forbidden: User "
        '"system:serviceaccount:sandbox:reachability"' in (result.stderr)
    )


# ---- lifecycle ---------------------------------------------------------------------------------


def test_stop_leaves_no_thread_or_socket(certificates: dict[str, str], tmp_path: Path) -> None:
    import ssl
    from urllib.parse import urlsplit

    threads_before = set(threading.enumerate())
    server = KubeApiServer(
        production_objects(), token=TOKEN, cert_file=certificates["cert"], key_file=certificates["key"]
    )
    server.start()
    port = urlsplit(server.url).port
    kubeconfig_path = str(tmp_path / "config")
    write_kubeconfig(kubeconfig_path, server_url=server.url, ca_file=certificates["ca"], token=TOKEN)
    assert oct(os.stat(kubeconfig_path).st_mode & 0o777) == "0o600"
    client = kube_config.new_client_from_config(config_file=kubeconfig_path)
    assert kube.CoreV1Api(client).list_namespaced_pod("production").items  # leaves a keep-alive connection
    idle = ssl.create_default_context(cafile=certificates["ca"]).wrap_socket(
        socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="127.0.0.1"
    )  # and one idle connection that never sends a request
    assert len(set(threading.enumerate()) - threads_before) >= 2
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 5
    assert set(threading.enumerate()) - threads_before == set()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    listening = Path("/proc/net/tcp").read_text()
    assert f":{port:04X} 00000000:0000 0A" not in listening
    idle.close()
    client.close()
    server.stop()  # a second stop is harmless


def test_denying_a_resource_does_not_deny_its_subresources(
    certificates: dict[str, str], tmp_path: Path
) -> None:
    """RBAC treats pods and pods/log (services and services/proxy) as separate resources."""
    server = KubeApiServer(
        production_objects(),
        pod_logs=POD_LOGS,
        deny=[{"verb": "get", "resource": "pods"}],
        token=TOKEN,
        cert_file=certificates["cert"],
        key_file=certificates["key"],
    )
    with server:
        path = str(tmp_path / "config")
        write_kubeconfig(path, server_url=server.url, ca_file=certificates["ca"], token=TOKEN)
        client = kube_config.new_client_from_config(config_file=path)
        try:
            core = kube.CoreV1Api(client)
            pod = next(iter(POD_LOGS)).split("/")
            with pytest.raises(ApiException) as raised:
                core.read_namespaced_pod(pod[1], pod[0])
            assert raised.value.status == 403
            assert core.read_namespaced_pod_log(pod[1], pod[0]) == POD_LOGS["/".join(pod)]
        finally:
            client.close()
