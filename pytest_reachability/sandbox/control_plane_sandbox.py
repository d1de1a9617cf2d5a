"""A scenario served by a real control plane: ``--sandbox --sandbox-apiserver=real``.

`RealApiServer` loads the scenario (control_plane_load.py) into kube-apiserver, gives the sandbox's
kubeconfig a token user that may read what the scenario lets it read (its ``deny`` rules become RBAC),
and answers what kube-apiserver asks of the cluster behind it, through the control plane's egress guard:

* the service proxy dials a pod's address and port: a port that a container of that pod declares is
  tunnelled to the sandbox's in-cluster backend, any other to a socket that refuses, as the pod would;
* pod logs are fetched from the kubelet at the node's address, port 10250: `FakeKubelet` answers
  ``/containerLogs`` with the scenario's ``logs``.

Nothing else is reachable: every other destination is refused by the guard.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .control_plane_load import (
    Discovery,
    LoadReport,
    RestClient,
    clear_objects,
    cluster_objects,
    load_objects,
)
from .scenario import Scenario

__all__ = ["READER", "FakeKubelet", "RealApiServer", "reader_rbac"]

DEFAULT_KUBELET_PORT = 10250

READER = "sandbox-reader"  # the token user a sandbox's kubeconfig names on a real control plane
_READ_VERBS = ("get", "list", "watch")
# What the sandbox's own server serves beyond plain reads: RBAC names them as `get` on a subresource.
_READ_SUBRESOURCES = (("", "pods/log"), ("", "services/proxy"))


def reader_rbac(
    discovery: Discovery, deny: list[dict[str, Any]], namespaces: Iterable[str], user: str = READER
) -> list[dict[str, Any]]:
    """RBAC objects letting ``user`` read everything except what the scenario's ``deny`` rules refuse.

    The sandbox's own server is read-only and answers a deny rule with 403; here RBAC does both. A deny
    rule limited to one namespace moves that permission from the ClusterRole to Roles in every other
    namespace of the scenario.
    """
    wanted = {(r.group, r.plural, verb) for r in discovery.resources.values() for verb in _READ_VERBS}
    wanted |= {(group, resource, "get") for group, resource in _READ_SUBRESOURCES}

    def denied(permission: tuple[str, str, str], rule: dict[str, Any]) -> bool:
        _group, resource, verb = permission
        return rule["resource"] in ("*", resource) and rule["verb"] in ("*", verb)

    cluster_wide = {p for p in wanted if not any(denied(p, rule) for rule in deny)}
    per_namespace: dict[str, set[tuple[str, str, str]]] = {}
    for namespace in namespaces:
        per_namespace[namespace] = {
            p
            for p in wanted - cluster_wide
            if not any(denied(p, rule) and rule.get("namespace") in (None, "", namespace) for rule in deny)
        }
    name = f"reachability-{user}"
    subject = [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": user}]
    role_ref = {"apiGroup": "rbac.authorization.k8s.io", "name": name}
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": _rules(cluster_wide) + [{"nonResourceURLs": ["*"], "verbs": ["get"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {**role_ref, "kind": "ClusterRole"},
            "subjects": subject,
        },
    ]
    for namespace, permissions in sorted(per_namespace.items()):
        if not permissions:
            continue
        metadata = {"name": name, "namespace": namespace}
        objects.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": metadata,
                "rules": _rules(permissions),
            }
        )
        objects.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": metadata,
                "roleRef": {**role_ref, "kind": "Role"},
                "subjects": subject,
            }
        )
    return objects


def wait_until_authorized(
    client: RestClient, rbac: list[dict[str, Any]], user: str, timeout: float = 30.0
) -> None:
    """Wait until kube-apiserver's authorizer grants what the ClusterRoles in ``rbac`` say.

    The RBAC authorizer reads roles and bindings from informer caches, so a grant created a moment ago
    (or re-created after the previous scenario's was deleted) can still be refused; each `list` the
    ClusterRoles grant is asked through a SubjectAccessReview, the same authorizer, until allowed.
    """
    asked = sorted(
        {
            (group, resource)
            for role in rbac
            if role.get("kind") == "ClusterRole"
            for rule in role.get("rules") or []
            if "list" in (rule.get("verbs") or [])
            for group in rule.get("apiGroups") or []
            for resource in rule.get("resources") or []
        }
    )
    deadline = time.monotonic() + timeout
    for group, resource in asked:
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": user,
                "resourceAttributes": {"verb": "list", "group": group, "resource": resource},
            },
        }
        while not (
            client.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", review).get("status")
            or {}
        ).get("allowed"):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"RBAC for {user} not in effect after {timeout:g} s: list {resource} ({group or 'core'})"
                )
            time.sleep(0.05)


def _rules(permissions: set[tuple[str, str, str]]) -> list[dict[str, Any]]:
    by_group_verbs: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    resources: dict[tuple[str, str], set[str]] = {}
    for group, resource, verb in permissions:
        resources.setdefault((group, resource), set()).add(verb)
    for (group, resource), verbs in sorted(resources.items()):
        by_group_verbs.setdefault((group, tuple(sorted(verbs))), []).append(resource)
    return [
        {"apiGroups": [group], "resources": sorted(names), "verbs": list(verbs)}
        for (group, verbs), names in sorted(by_group_verbs.items())
    ]


class FakeKubelet:
    """The kubelet's read-only log endpoint over HTTPS, serving the scenario's pod logs."""

    def __init__(self, logs: dict[str, str], cert_file: str, key_file: str) -> None:
        self.logs = dict(logs)
        kubelet = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection: none outlives the scenario

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base class signature
                """Quiet: the API server's audit log records the requests."""

            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                status, body = kubelet.answer(self.path)
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.address = ("127.0.0.1", int(self._server.server_address[1]))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="fake-kubelet", daemon=True
        )
        self._thread.start()

    def answer(self, raw_path: str) -> tuple[int, bytes]:
        """``/containerLogs/<namespace>/<pod>/<container>?tailLines=N&limitBytes=N``.

        As the kubelet serves it."""
        split = urlsplit(raw_path)
        parts = [unquote(part) for part in split.path.strip("/").split("/")]
        if len(parts) != 4 or parts[0] != "containerLogs":
            return 404, b"404 page not found\n"
        _, namespace, pod, _container = parts
        query = parse_qs(split.query)
        lines = self.logs.get(f"{namespace}/{pod}", "").splitlines(keepends=True)
        tail = (query.get("tailLines") or [""])[0]
        if tail.isdigit():
            lines = lines[len(lines) - int(tail) :] if int(tail) else []
        body = "".join(lines).encode()
        limit = (query.get("limitBytes") or [""])[0]
        return 200, body[: int(limit)] if limit.isdigit() else body

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


def _container_ports(pod_spec: dict) -> set[int]:
    """The numeric container ports a pod declares."""
    return {
        int(port["containerPort"])
        for container in pod_spec.get("containers") or []
        for port in container.get("ports") or []
        if str(port.get("containerPort", "")).isdigit()
    }


def _pod_addresses(pod_status: dict) -> set[str]:
    """A pod's addresses: ``podIP`` and every ``podIPs`` entry."""
    addresses = {pod_status.get("podIP")} | {entry.get("ip") for entry in pod_status.get("podIPs") or []}
    return {str(address) for address in addresses - {None, ""}}


def _kubelet_endpoints(node: dict) -> set[tuple[str, int]]:
    """Every (name or address, port) at which kube-apiserver may reach a node's kubelet."""
    status = node.get("status") or {}
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get(
        "Port"
    ) or DEFAULT_KUBELET_PORT
    names = {node["metadata"]["name"]} | {a.get("address") for a in status.get("addresses") or []}
    return {(str(name), int(port)) for name in names if name}


class RealApiServer:
    """A scenario loaded into a real control plane, read by a user with the scenario's read rights.

    ``in_cluster``: where a pod's declared port leads (the sandbox's in-cluster backend); ``refusing``: a
    bound, non-listening address standing for a pod port nothing listens on.
    """

    def __init__(
        self,
        scenario: Scenario,
        certificates: Any,
        *,
        control_plane: Any = None,
        in_cluster: tuple[str, int] | None = None,
        refusing: tuple[str, int] | None = None,
    ) -> None:
        self.scenario = scenario
        self.certificates = certificates
        self.control_plane = control_plane
        self.in_cluster = in_cluster
        self.refusing = refusing
        self._owned = control_plane is None
        self.client: RestClient | None = None
        self.report: LoadReport | None = None
        self.kubelet: FakeKubelet | None = None
        self._pod_ports: dict[str, set[int]] = {}
        self._kubelets: set[tuple[str, int]] = set()

    def start(self, kubeconfig: str, *, context: str) -> str:
        """Start (or reuse) the control plane, load the scenario, write ``kubeconfig``; return the URL."""
        from .control_plane import ADMIN, ControlPlane

        if self.control_plane is None:
            self.control_plane = ControlPlane(
                users=("nobody", READER),
                serving=self.certificates.apiserver,
                ca_file=self.certificates.ca_file,
            )
            self.control_plane.start()
        plane = self.control_plane
        self.client = RestClient(plane.url, plane.users[ADMIN].token, plane.ca_file)
        manifests = cluster_objects(self.scenario)
        namespaces = {m["metadata"]["name"] for m in manifests if m.get("kind") == "Namespace"}
        namespaces |= {
            m["metadata"]["namespace"] for m in manifests if (m.get("metadata") or {}).get("namespace")
        }
        self.report = LoadReport()
        load_objects(self.client, manifests, self.report)
        rbac = reader_rbac(Discovery(self.client), list(self.scenario.deny), sorted(namespaces))
        load_objects(self.client, rbac, self.report)
        wait_until_authorized(self.client, rbac, READER)
        self._learn_cluster_addresses()
        self.kubelet = FakeKubelet(
            self.scenario.logs, self.certificates.apiserver.cert_file, self.certificates.apiserver.key_file
        )
        if plane.egress is not None:
            plane.egress.set_route(self.route)
        plane.write_kubeconfig(
            kubeconfig,
            user=READER,
            token=plane.users[READER].token,
            namespace=self.scenario.namespace,
            context=context,
        )
        return str(plane.url)

    def _learn_cluster_addresses(self) -> None:
        for pod in self.scenario.objects_of_kind("Pod"):
            ports = _container_ports(pod.get("spec") or {})
            for address in _pod_addresses(pod.get("status") or {}):
                self._pod_ports.setdefault(address, set()).update(ports)
        for node in self.scenario.objects_of_kind("Node"):
            self._kubelets |= _kubelet_endpoints(node)

    def route(self, host: str, port: int) -> tuple[str, int] | None:
        """Where kube-apiserver's connection to ``host:port`` in the scenario's cluster goes.

        None: the connection is refused."""
        if (host, port) in self._kubelets and self.kubelet is not None:
            return self.kubelet.address
        if host in self._pod_ports:
            return self.in_cluster if port in self._pod_ports[host] else self.refusing
        return None

    def stop(self) -> None:
        client, self.client = self.client, None
        plane = self.control_plane
        if plane is not None and plane.egress is not None and plane.egress.route == self.route:
            plane.egress.set_route(None)
        kubelet, self.kubelet = self.kubelet, None
        try:
            if kubelet is not None:
                kubelet.stop()
            if client is not None and self.report is not None and not self._owned:
                clear_objects(client, self.report)
        finally:
            if client is not None:
                client.close()
            if self._owned and self.control_plane is not None:
                self.control_plane.stop()
                self.control_plane = None
