"""Read-only view of a Kubernetes cluster through the official client.

`Cluster.connect()` finds credentials the way kubectl does (explicit kubeconfig, then ``KUBECONFIG``,
then ``~/.kube/config``, then the in-cluster service account) and every read returns frozen snapshots
of plain data (`PodInfo`, `ServiceInfo`, ...) whose ``to_evidence()`` is JSON-ready.

Failures become one `ClusterError` with a `ClusterErrorKind` and a one-line message that says what
to do (which verb and resource to grant, which server did not answer).

The view never writes: its API client refuses any HTTP method but GET before a byte is sent, so a
mistake in this module cannot modify a cluster.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import enum
import inspect
import ipaddress
import json
import math
import os
import re
import shutil
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import urllib3
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config import kube_config as _kube_config_module
from kubernetes.config.config_exception import ConfigException

from . import environment, jsontext
from .idle_connections import open_many, tolerate_tickets
from .k8s import controller_owner

__all__ = [
    "ALL_NAMESPACES",
    "Cluster",
    "ClusterError",
    "ClusterErrorKind",
    "DeploymentInfo",
    "EndpointSliceInfo",
    "EventInfo",
    "IngressClassInfo",
    "IngressInfo",
    "NetworkPolicyInfo",
    "NodeInfo",
    "PodInfo",
    "ProxyResponse",
    "ServiceInfo",
]

ALL_NAMESPACES = "*"
"""Pass as ``namespace`` to list a resource across every namespace."""

SERVICE_ACCOUNT_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
DEFAULT_PROXY_BODY_CAP = 64 * 1024
DEFAULT_LOG_BYTES_CAP = 1024 * 1024

# Labels that ingress controllers' own charts and manifests put on their pods.
INGRESS_CONTROLLER_LABELS: dict[str, tuple[str, ...]] = {
    "app.kubernetes.io/name": (
        "ingress-nginx",
        "nginx-ingress",
        "traefik",
        "haproxy-ingress",
        "kubernetes-ingress",
        "contour",
        "kong",
        "ingress-controller",
        "emissary-ingress",
        "ambassador",
        "istio-ingressgateway",
        "gateway",
        "aws-load-balancer-controller",
        "skipper-ingress",
    ),
    "app": (
        "ingress-nginx",
        "nginx-ingress",
        "traefik",
        "haproxy-ingress",
        "contour",
        "kong",
        "istio-ingressgateway",
        "ambassador",
    ),
    "k8s-app": ("ingress-nginx", "nginx-ingress-controller", "traefik-ingress-lb"),
}
# Namespaces worth a look when listing pods across all namespaces is forbidden.
INGRESS_CONTROLLER_NAMESPACES = ("ingress-nginx", "kube-system", "traefik", "kong", "projectcontour")

_NAME_PATTERN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_FORBIDDEN_PATTERN = re.compile(
    r'(?:User "(?P<user>[^"]*)" )?cannot (?P<verb>\S+) resource "(?P<resource>[^"]+)"'
    r' in API group "(?P<group>[^"]*)"(?: in the namespace "(?P<namespace>[^"]+)")?'
)


class ClusterErrorKind(enum.Enum):
    NOT_CONFIGURED = "not_configured"
    UNREACHABLE = "unreachable"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    ERROR = "error"


class ClusterError(Exception):
    """A cluster read that failed, classified; ``str()`` is one line that says what to do."""

    def __init__(
        self,
        kind: ClusterErrorKind,
        message: str,
        *,
        verb: str | None = None,
        resource: str | None = None,
        group: str | None = None,
        namespace: str | None = None,
        user: str | None = None,
        server: str | None = None,
        status: int | None = None,
    ) -> None:
        self.kind = kind
        self.message = " ".join(message.split())
        self.verb = verb
        self.resource = resource
        self.group = group
        self.namespace = namespace
        self.user = user
        self.server = server
        self.status = status
        super().__init__(self.message)

    def to_evidence(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "message": self.message,
            "verb": self.verb,
            "resource": self.resource,
            "group": self.group,
            "namespace": self.namespace,
            "user": self.user,
            "server": self.server,
            "status": self.status,
        }


# --- snapshots ----------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """Built-in JSON types only: what survives xdist report serialisation and json.dumps."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: _plain(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(item) for item in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    return value


class _Snapshot:
    def to_evidence(self) -> dict[str, Any]:
        return _plain(self)


@dataclasses.dataclass(frozen=True)
class NodeInfo(_Snapshot):
    name: str
    ready: bool
    roles: tuple[str, ...]
    version: str | None
    conditions: tuple[dict[str, Any], ...]  # {type, status, reason, message}
    addresses: tuple[dict[str, str], ...]  # {type, address}
    unschedulable: bool = False  # cordoned: spec.unschedulable
    # As kubectl describe node prints them, ``key[=value]:effect``: node.kubernetes.io/unreachable:NoExecute.
    # (Strings, not {key: ...} mappings: a field named "key" would be masked as a secret in every output.)
    taints: tuple[str, ...] = ()
    # Labelled node.kubernetes.io/exclude-from-external-load-balancers (any value): the service controller
    # leaves the node out of every cloud load balancer's backends.
    excluded_from_load_balancers: bool = False


@dataclasses.dataclass(frozen=True)
class PodInfo(_Snapshot):
    name: str
    namespace: str
    phase: str | None
    ready: bool
    containers_ready: int
    containers_total: int
    restarts: int
    waiting_reasons: tuple[str, ...]  # CrashLoopBackOff, ImagePullBackOff, ... (init containers included)
    terminated_reasons: tuple[str, ...]  # last termination of each container, e.g. OOMKilled, Error
    labels: dict[str, str]
    node: str | None
    pod_ip: str | None
    container_ports: tuple[dict[str, Any], ...]  # {name, containerPort, protocol}
    owner: str | None  # "ReplicaSet/api-5d9f7c6b8"
    reason: str | None = None  # pod-level, e.g. Evicted
    unschedulable_message: str | None = None
    # One entry per container (init containers first, ``init: true``): its state now and its last
    # termination, as ``kubectl describe pod`` shows them: {name, init, image, ready, started, restarts,
    # state (waiting|running|terminated), reason, message, exit_code, started_at (running since),
    # last_reason, last_exit_code, last_message, last_finished_at}.
    container_states: tuple[dict[str, Any], ...] = ()
    conditions: tuple[dict[str, Any], ...] = ()  # {type, status, reason, message}: PodScheduled, Ready, ...
    # {container, probe (readiness|liveness|startup), handler, path, port, initial_delay_seconds,
    # period_seconds, failure_threshold, timeout_seconds}
    probes: tuple[dict[str, Any], ...] = ()
    message: str | None = None  # pod-level status message, e.g. why it was evicted
    # When this client read the pod (its clock, RFC 3339): what "5m ago" in the states is measured from,
    # as kubectl measures RESTARTS "3 (4d ago)" from its own clock.
    read_at: str | None = None

    @property
    def containers(self) -> str:
        """``ready/total`` as kubectl prints it."""
        return f"{self.containers_ready}/{self.containers_total}"


@dataclasses.dataclass(frozen=True)
class DeploymentInfo(_Snapshot):
    name: str
    namespace: str
    desired: int
    ready: int
    available: int
    updated: int
    rollout_complete: bool
    rollout_message: str
    selector: dict[str, str]
    labels: dict[str, str]
    current: int = 0  # status.replicas: pods of every ReplicaSet of the Deployment
    unavailable: int = 0
    conditions: tuple[
        dict[str, Any], ...
    ] = ()  # {type, status, reason, message}: Available, Progressing, ReplicaFailure
    revision: str | None = None  # deployment.kubernetes.io/revision
    paused: bool = False
    template_labels: dict[str, str] = dataclasses.field(default_factory=dict)
    images: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class ServiceInfo(_Snapshot):
    name: str
    namespace: str
    type: str
    cluster_ip: str | None
    selector: dict[str, str]
    ports: tuple[dict[str, Any], ...]  # {name, port, target_port, node_port, protocol}
    lb_addresses: tuple[str, ...]  # IP or hostname of each LoadBalancer ingress
    lb_pending: bool  # type LoadBalancer without any address yet
    external_ips: tuple[str, ...] = ()
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    annotations: dict[str, str] = dataclasses.field(
        default_factory=dict
    )  # without last-applied-configuration
    external_name: str | None = None  # type ExternalName: the DNS name the Service is an alias for
    # spec.externalTrafficPolicy of a LoadBalancer or NodePort Service: Cluster, or Local (only nodes with a
    # ready endpoint of their own take the traffic)
    external_traffic_policy: str | None = None
    # spec.internalTrafficPolicy: Cluster, or Local (traffic to the cluster IP goes only to a ready endpoint
    # on the sending node); None for ExternalName
    internal_traffic_policy: str | None = None


@dataclasses.dataclass(frozen=True)
class EndpointSliceInfo(_Snapshot):
    name: str
    namespace: str
    service: str | None
    address_type: str | None
    ready_addresses: tuple[str, ...]
    not_ready_addresses: tuple[str, ...]
    ports: tuple[dict[str, Any], ...]  # {name, port, protocol}
    targets: tuple[dict[str, Any], ...] = ()  # {addresses, ready, target ("Pod/name"), node}


@dataclasses.dataclass(frozen=True)
class IngressInfo(_Snapshot):
    name: str
    namespace: str
    class_name: str | None
    rules: tuple[dict[str, Any], ...]  # {host, paths: [{path, path_type, service, port}]}
    tls: tuple[dict[str, Any], ...]  # {hosts, secret}
    addresses: tuple[str, ...]
    default_backend: dict[str, Any] | None = None  # {service, port}
    annotations: dict[str, str] = dataclasses.field(
        default_factory=dict
    )  # without last-applied-configuration


@dataclasses.dataclass(frozen=True)
class IngressClassInfo(_Snapshot):
    name: str
    controller: str | None
    is_default: bool


@dataclasses.dataclass(frozen=True)
class NetworkPolicyInfo(_Snapshot):
    name: str
    namespace: str
    pod_selector: dict[str, Any]  # wire form: {matchLabels, matchExpressions}; {} selects every pod
    policy_types: tuple[str, ...]  # effective types (the API's defaulting applied)
    ingress: tuple[dict[str, Any], ...]  # {from: [{namespaceSelector, podSelector, ipBlock}], ports: [...]}
    egress: tuple[dict[str, Any], ...] = ()  # {to: [...], ports: [...]}


@dataclasses.dataclass(frozen=True)
class EventInfo(_Snapshot):
    namespace: str
    type: str | None
    reason: str | None
    message: str | None
    object: str  # "Pod/api-5d9f7c6b8-x2x9z"
    count: int
    first_seen: str | None
    last_seen: str | None
    source: str | None


@dataclasses.dataclass(frozen=True)
class ProxyResponse(_Snapshot):
    """An in-cluster GET through the API server's service proxy; a failure is data, not an exception."""

    service: str
    namespace: str
    port: str
    path: str
    status: int | None
    body: str
    truncated: bool
    ms: float
    error: str | None  # the API server's own message (no endpoints, backend refused, ...)
    no_endpoints: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 400


# --- conversion from the official client's models -----------------------------------------------------------


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    return str(value)


def _wire(value: Any) -> Any:
    """A client model as the API sends it (camelCase keys, no nulls).

    Selectors and rules stay recognisable that way."""
    return k8s.ApiClient.sanitize_for_serialization(_SERIALIZER, value)


def _attr(model: Any, *names: str) -> Any:
    """A field whose Python name changed between client releases (``_from`` became ``var_from``)."""
    for name in names:
        value = getattr(model, name, None)
        if value is not None:
            return value
    return None


def _peers(rule: Any) -> list[Any]:
    return list(_attr(rule, "var_from", "_from") or [])


def _labels(metadata: Any) -> dict[str, str]:
    return dict(metadata.labels or {}) if metadata is not None else {}


def _owner(metadata: Any) -> str | None:
    return controller_owner(getattr(metadata, "owner_references", None))


EXCLUDE_FROM_LOAD_BALANCERS = "node.kubernetes.io/exclude-from-external-load-balancers"


def node_info(node: k8s.V1Node) -> NodeInfo:
    labels = _labels(node.metadata)
    roles = sorted(
        {key.split("/", 1)[1] for key in labels if key.startswith("node-role.kubernetes.io/") and "/" in key}
        | ({labels["kubernetes.io/role"]} if labels.get("kubernetes.io/role") else set())
    )
    status = node.status
    conditions = tuple(
        {"type": c.type, "status": c.status, "reason": c.reason, "message": c.message}
        for c in (status.conditions if status and status.conditions else [])
    )
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
    addresses = tuple(
        {"type": a.type, "address": a.address}
        for a in (status.addresses if status and status.addresses else [])
    )
    version = status.node_info.kubelet_version if status and status.node_info else None
    return NodeInfo(
        name=node.metadata.name,
        ready=ready,
        roles=tuple(roles),
        version=version,
        conditions=conditions,
        addresses=addresses,
        unschedulable=bool(node.spec and node.spec.unschedulable),
        taints=tuple(
            f"{t.key}{'=' + t.value if t.value else ''}:{t.effect}"
            for t in (node.spec.taints or [] if node.spec else [])
        ),
        excluded_from_load_balancers=EXCLUDE_FROM_LOAD_BALANCERS in labels,
    )


def _conditions(conditions: Iterable[Any] | None) -> tuple[dict[str, Any], ...]:
    return tuple(
        {"type": c.type, "status": c.status, "reason": c.reason, "message": c.message}
        for c in conditions or []
    )


def _container_state(status: Any, init: bool) -> dict[str, Any]:
    """One container's state now and at its last termination, as ``kubectl describe pod`` shows them."""
    state, last = status.state, status.last_state
    entry: dict[str, Any] = {
        "name": status.name,
        "init": init,
        "image": status.image,
        "ready": bool(status.ready),
        "started": status.started,
        "restarts": status.restart_count or 0,
        "state": None,
        "reason": None,
        "message": None,
        "exit_code": None,
        "last_reason": None,
        "last_exit_code": None,
        "last_message": None,
        "started_at": None,
        "last_finished_at": None,
    }
    if state is not None and state.waiting is not None:
        entry.update(state="waiting", reason=state.waiting.reason, message=state.waiting.message)
    elif state is not None and state.terminated is not None:
        entry.update(
            state="terminated",
            reason=state.terminated.reason,
            message=state.terminated.message,
            exit_code=state.terminated.exit_code,
        )
    elif state is not None and state.running is not None:
        entry.update(state="running", started_at=_iso(state.running.started_at))
    if last is not None and last.terminated is not None:
        entry.update(
            last_reason=last.terminated.reason,
            last_exit_code=last.terminated.exit_code,
            last_message=last.terminated.message,
            last_finished_at=_iso(last.terminated.finished_at),
        )
    return entry


def _probe(container: str, kind: str, probe: Any) -> dict[str, Any] | None:
    if probe is None:
        return None
    entry: dict[str, Any] = {
        "container": container,
        "probe": kind,
        "handler": None,
        "path": None,
        "port": None,
        # The kubelet's budget: it acts after initialDelaySeconds + failureThreshold x periodSeconds.
        "initial_delay_seconds": getattr(probe, "initial_delay_seconds", None),
        "period_seconds": getattr(probe, "period_seconds", None),
        "failure_threshold": getattr(probe, "failure_threshold", None),
        "timeout_seconds": getattr(probe, "timeout_seconds", None),
    }
    if probe.http_get is not None:
        entry.update(handler="httpGet", path=probe.http_get.path or "/", port=probe.http_get.port)
    elif probe.tcp_socket is not None:
        entry.update(handler="tcpSocket", port=probe.tcp_socket.port)
    elif _attr(probe, "_exec", "exec") is not None:
        entry["handler"] = "exec"
    elif getattr(probe, "grpc", None) is not None:
        entry.update(handler="grpc", port=probe.grpc.port)
    return entry


def _items(model: Any, name: str) -> list[Any]:
    """A list field of a model that may itself be missing: empty when either is unset."""
    return list(getattr(model, name, None) or [])


def _waiting_reasons(statuses: Iterable[Any]) -> tuple[str, ...]:
    return tuple(
        s.state.waiting.reason for s in statuses if s.state and s.state.waiting and s.state.waiting.reason
    )


def _last_termination_reasons(statuses: Iterable[Any]) -> tuple[str, ...]:
    return tuple(
        s.last_state.terminated.reason
        for s in statuses
        if s.last_state and s.last_state.terminated and s.last_state.terminated.reason
    )


def _unschedulable_message(conditions: Iterable[Any]) -> str | None:
    """Why the scheduler found no node for the pod, from its PodScheduled condition."""
    return next(
        (
            c.message or c.reason
            for c in conditions
            if c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable"
        ),
        None,
    )


def _container_ports(containers: Iterable[Any]) -> tuple[dict[str, Any], ...]:
    return tuple(
        {"name": p.name, "containerPort": p.container_port, "protocol": p.protocol or "TCP"}
        for c in containers
        for p in (c.ports or [])
    )


def _container_probes(containers: Iterable[Any]) -> tuple[dict[str, Any], ...]:
    return tuple(
        entry
        for c in containers
        for kind, probe in (
            ("readiness", c.readiness_probe),
            ("liveness", c.liveness_probe),
            ("startup", c.startup_probe),
        )
        if (entry := _probe(c.name, kind, probe)) is not None
    )


def pod_info(pod: k8s.V1Pod) -> PodInfo:
    spec, status = pod.spec, pod.status
    statuses = _items(status, "container_statuses")
    init_statuses = _items(status, "init_container_statuses")
    containers = _items(spec, "containers")
    conditions = _items(status, "conditions")
    return PodInfo(
        name=pod.metadata.name,
        namespace=pod.metadata.namespace or "",
        phase=getattr(status, "phase", None),
        ready=any(c.type == "Ready" and c.status == "True" for c in conditions),
        containers_ready=sum(1 for s in statuses if s.ready),
        containers_total=len(containers) or len(statuses),
        restarts=sum(s.restart_count or 0 for s in statuses + init_statuses),
        waiting_reasons=_waiting_reasons(init_statuses + statuses),
        terminated_reasons=_last_termination_reasons(statuses),
        labels=_labels(pod.metadata),
        node=getattr(spec, "node_name", None),
        pod_ip=getattr(status, "pod_ip", None),
        container_ports=_container_ports(containers),
        owner=_owner(pod.metadata),
        reason=getattr(status, "reason", None),
        unschedulable_message=_unschedulable_message(conditions),
        container_states=tuple(
            [_container_state(s, True) for s in init_statuses]
            + [_container_state(s, False) for s in statuses]
        ),
        conditions=_conditions(conditions),
        probes=_container_probes(containers),
        message=getattr(status, "message", None),
        read_at=_iso(datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)),
    )


def _replicas(status: Any, name: str) -> int:
    """A replica count of a deployment's status; unset (or no status yet) counts as 0."""
    return getattr(status, name, None) or 0


def _rollout(metadata: Any, status: Any, desired: int) -> tuple[bool, str]:
    """Whether the rollout is complete, and its state in words."""
    updated = _replicas(status, "updated_replicas")
    current = _replicas(status, "replicas")
    available = _replicas(status, "available_replicas")
    conditions = _items(status, "conditions")
    # The same checks, in the same order, as `kubectl rollout status`.
    if metadata.generation is not None and _replicas(status, "observed_generation") < metadata.generation:
        return False, "waiting for the deployment spec update to be observed"
    if any(c.type == "Progressing" and c.reason == "ProgressDeadlineExceeded" for c in conditions):
        return False, "rollout exceeded its progress deadline"
    if updated < desired:
        return False, f"{updated} of {desired} new replicas have been updated"
    if current > updated:
        return False, f"{current - updated} old replicas are pending termination"
    if available < updated:
        return False, f"{available} of {updated} updated replicas are available"
    return True, "successfully rolled out"


def deployment_info(deployment: k8s.V1Deployment) -> DeploymentInfo:
    spec, status, metadata = deployment.spec, deployment.status, deployment.metadata
    replicas = getattr(spec, "replicas", None)
    desired = 1 if replicas is None else replicas
    complete, message = _rollout(metadata, status, desired)
    template = getattr(spec, "template", None)
    return DeploymentInfo(
        name=metadata.name,
        namespace=metadata.namespace or "",
        desired=desired,
        ready=_replicas(status, "ready_replicas"),
        available=_replicas(status, "available_replicas"),
        updated=_replicas(status, "updated_replicas"),
        rollout_complete=complete,
        rollout_message=message,
        selector=dict(getattr(getattr(spec, "selector", None), "match_labels", None) or {}),
        labels=_labels(metadata),
        current=_replicas(status, "replicas"),
        unavailable=_replicas(status, "unavailable_replicas"),
        conditions=_conditions(_items(status, "conditions")),
        revision=(metadata.annotations or {}).get("deployment.kubernetes.io/revision"),
        paused=bool(getattr(spec, "paused", None)),
        template_labels=_labels(getattr(template, "metadata", None)),
        images=tuple(c.image for c in _items(getattr(template, "spec", None), "containers") if c.image),
    )


# Annotations kept on snapshots: everything except what kubectl apply stores (a copy of the whole object).
_DROPPED_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def _annotations(metadata: Any) -> dict[str, str]:
    annotations = dict(metadata.annotations or {}) if metadata is not None else {}
    return {key: value for key, value in annotations.items() if key not in _DROPPED_ANNOTATIONS}


def _load_balancer_addresses(status: Any) -> tuple[str, ...]:
    load_balancer = getattr(status, "load_balancer", None) if status is not None else None
    ingress = getattr(load_balancer, "ingress", None) or []
    return tuple(entry.ip or entry.hostname for entry in ingress if entry.ip or entry.hostname)


def service_info(service: k8s.V1Service) -> ServiceInfo:
    spec = service.spec
    service_type = (spec.type if spec else None) or "ClusterIP"
    ports = tuple(
        {
            "name": p.name,
            "port": p.port,
            "target_port": p.target_port if p.target_port is not None else p.port,
            "node_port": p.node_port,
            "protocol": p.protocol or "TCP",
        }
        for p in (spec.ports or [] if spec else [])
    )
    addresses = _load_balancer_addresses(service.status)
    return ServiceInfo(
        name=service.metadata.name,
        namespace=service.metadata.namespace or "",
        type=service_type,
        cluster_ip=spec.cluster_ip if spec else None,
        selector=dict(spec.selector or {}) if spec else {},
        ports=ports,
        lb_addresses=addresses,
        lb_pending=service_type == "LoadBalancer" and not addresses,
        external_ips=tuple(_attr(spec, "external_ips", "external_i_ps") or []),
        labels=_labels(service.metadata),
        annotations=_annotations(service.metadata),
        external_name=(spec.external_name or None) if spec and service_type == "ExternalName" else None,
        **_traffic_policies(spec, service_type),
    )


def _traffic_policies(spec: Any, service_type: str) -> dict[str, str | None]:
    """externalTrafficPolicy (LoadBalancer and NodePort Services) and internalTrafficPolicy (all but
    ExternalName), as the Service sets them."""
    if spec is None:
        return {"external_traffic_policy": None, "internal_traffic_policy": None}
    return {
        "external_traffic_policy": (spec.external_traffic_policy or None)
        if service_type in ("LoadBalancer", "NodePort")
        else None,
        "internal_traffic_policy": (spec.internal_traffic_policy or None)
        if service_type != "ExternalName"
        else None,
    }


def endpoint_slice_info(endpoint_slice: k8s.V1EndpointSlice) -> EndpointSliceInfo:
    ready_addresses: list[str] = []
    not_ready_addresses: list[str] = []
    targets = []
    for endpoint in endpoint_slice.endpoints or []:
        # The API documents a missing `ready` as true.
        ready = endpoint.conditions is None or endpoint.conditions.ready is not False
        (ready_addresses if ready else not_ready_addresses).extend(endpoint.addresses or [])
        target = endpoint.target_ref
        targets.append(
            {
                "addresses": list(endpoint.addresses or []),
                "ready": ready,
                "target": f"{target.kind}/{target.name}" if target else None,
                "node": endpoint.node_name,
            }
        )
    ports = tuple(
        {"name": p.name, "port": p.port, "protocol": p.protocol or "TCP"} for p in endpoint_slice.ports or []
    )
    return EndpointSliceInfo(
        name=endpoint_slice.metadata.name,
        namespace=endpoint_slice.metadata.namespace or "",
        service=_labels(endpoint_slice.metadata).get("kubernetes.io/service-name"),
        address_type=endpoint_slice.address_type,
        ready_addresses=tuple(ready_addresses),
        not_ready_addresses=tuple(not_ready_addresses),
        ports=ports,
        targets=tuple(targets),
    )


def _ingress_backend(backend: Any) -> dict[str, Any] | None:
    if backend is None:
        return None
    service = backend.service
    if service is None:
        resource = backend.resource
        return {
            "service": None,
            "port": None,
            "resource": f"{resource.kind}/{resource.name}" if resource else None,
        }
    port = service.port
    port_value = (port.number if port.number is not None else port.name) if port else None
    return {"service": service.name, "port": port_value}


def ingress_info(ingress: k8s.V1Ingress) -> IngressInfo:
    spec, metadata = ingress.spec, ingress.metadata
    rules = []
    for rule in spec.rules or [] if spec else []:
        paths = []
        for path in rule.http.paths or [] if rule.http else []:
            backend = _ingress_backend(path.backend) or {"service": None, "port": None}
            paths.append({"path": path.path or "/", "path_type": path.path_type, **backend})
        rules.append({"host": rule.host, "paths": paths})
    tls = tuple(
        {"hosts": list(entry.hosts or []), "secret": entry.secret_name}
        for entry in (spec.tls or [] if spec else [])
    )
    annotations = dict(metadata.annotations or {})
    class_name = (spec.ingress_class_name if spec else None) or annotations.get("kubernetes.io/ingress.class")
    return IngressInfo(
        name=metadata.name,
        namespace=metadata.namespace or "",
        class_name=class_name,
        rules=tuple(rules),
        tls=tls,
        addresses=_load_balancer_addresses(ingress.status),
        default_backend=_ingress_backend(spec.default_backend) if spec else None,
        annotations=_annotations(metadata),
    )


def ingress_class_info(ingress_class: k8s.V1IngressClass) -> IngressClassInfo:
    annotations = dict(ingress_class.metadata.annotations or {})
    return IngressClassInfo(
        name=ingress_class.metadata.name,
        controller=ingress_class.spec.controller if ingress_class.spec else None,
        is_default=annotations.get("ingressclass.kubernetes.io/is-default-class", "").lower() == "true",
    )


def network_policy_info(policy: k8s.V1NetworkPolicy) -> NetworkPolicyInfo:
    spec = policy.spec
    ingress = tuple(
        {"from": [_wire(peer) for peer in _peers(rule)], "ports": [_wire(port) for port in rule.ports or []]}
        for rule in _items(spec, "ingress")
    )
    egress = tuple(
        {"to": [_wire(peer) for peer in rule.to or []], "ports": [_wire(port) for port in rule.ports or []]}
        for rule in _items(spec, "egress")
    )
    # The API defaults policyTypes to Ingress, plus Egress when egress rules exist.
    policy_types = _items(spec, "policy_types") or (
        ["Ingress", "Egress"] if _items(spec, "egress") else ["Ingress"]
    )
    return NetworkPolicyInfo(
        name=policy.metadata.name,
        namespace=policy.metadata.namespace or "",
        pod_selector=_wire(getattr(spec, "pod_selector", None)) or {},
        policy_types=tuple(policy_types),
        ingress=ingress,
        egress=egress,
    )


def event_info(event: k8s.CoreV1Event) -> EventInfo:
    involved = event.involved_object
    last_seen = (
        event.last_timestamp
        or event.event_time
        or (event.series.last_observed_time if event.series else None)
    )
    source = event.reporting_component or (event.source.component if event.source else None)
    return EventInfo(
        namespace=event.metadata.namespace or (involved.namespace if involved else "") or "",
        type=event.type,
        reason=event.reason,
        message=event.message,
        object=f"{involved.kind}/{involved.name}" if involved else "",
        count=event.count or (event.series.count if event.series and event.series.count else 1),
        first_seen=_iso(event.first_timestamp or event.event_time),
        last_seen=_iso(last_seen),
        source=source,
    )


# --- errors -------------------------------------------------------------------------------------------------


def _status_body(body: Any) -> dict[str, Any] | None:
    """The API server's `Status` object in an error body, or None when the body is something else."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not isinstance(body, str) or not body.lstrip().startswith("{"):
        return None
    try:
        parsed = jsontext.loads(body)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) and parsed.get("kind") == "Status" else None


@dataclasses.dataclass(frozen=True)
class _Request:
    """What a read asks for, so an error can name the verb and resource to grant."""

    verb: str
    resource: str
    group: str = ""
    namespace: str | None = None
    name: str | None = None

    def describe(self) -> str:
        where = f"in namespace {self.namespace}" if self.namespace else "at cluster scope"
        what = f'{self.resource} "{self.name}"' if self.name else self.resource
        return f"{self.verb} {what} {where}"


def _first_line(text: str) -> str:
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


def _tls_reason(error: BaseException | str) -> str:
    text = _first_line(str(error))
    # urllib3 wraps ssl's own words in its pool's description; keep only ssl's.
    match = re.search(r'\[SSL[^\]]*\]\s*([^()"]+)', text)
    return match.group(1).strip() if match else text


def _connection_reason(error: BaseException) -> str:
    reason = getattr(error, "reason", None) or error
    text = str(reason)
    # NewConnectionError subclasses ConnectTimeoutError in urllib3 2, so the refusal must be told apart first.
    if not isinstance(reason, urllib3.exceptions.NewConnectionError) and (
        isinstance(reason, urllib3.exceptions.ConnectTimeoutError) or "timed out" in text.lower()
    ):
        return "connection timed out"
    marker = "Failed to establish a new connection: "
    if marker in text:
        text = text.split(marker, 1)[1]
    return re.sub(r"^\[Errno -?\d+\]\s*", "", _first_line(text)).rstrip(".") or type(reason).__name__


def _unanswered_error(
    error: ApiException, request: _Request, server: str, api_message: str, fields: dict
) -> ClusterError:
    """An ApiException without an HTTP status: the request never got an answer (TLS, most often)."""
    reason = error.reason or ""
    if "SSL" in reason or "certificate" in reason.lower():
        return ClusterError(
            ClusterErrorKind.ERROR,
            f"tls: cannot verify the API server at {server}: {_tls_reason(reason.split(chr(10), 1)[-1])}",
            **fields,
        )
    return ClusterError(ClusterErrorKind.ERROR, f"error: {request.describe()}: {api_message}", **fields)


def _unauthorized_error(server: str, context: str | None, status: int, fields: dict) -> ClusterError:
    who = f'context "{context}"' if context else "the configured credentials"
    return ClusterError(
        ClusterErrorKind.UNAUTHORIZED,
        f"unauthorized: the API server at {server} rejected {who} (401); "
        f"refresh the token or choose another context",
        status=status,
        **fields,
    )


def _forbidden_error(api_message: str, status: int, fields: dict) -> ClusterError:
    """A 403 naming what to grant: the verb and resource the API server says were refused."""
    match = _FORBIDDEN_PATTERN.search(api_message)
    if match:
        fields.update(
            verb=match["verb"],
            resource=match["resource"],
            group=match["group"],
            namespace=match["namespace"],
        )
    where = f"in namespace {fields['namespace']}" if fields["namespace"] else "at cluster scope"
    return ClusterError(
        ClusterErrorKind.FORBIDDEN,
        f"forbidden: cannot {fields['verb']} {fields['resource']} {where}; "
        f'grant verb "{fields["verb"]}" on resource "{fields["resource"]}" (group '
        f'"{fields["group"]}")',
        user=match["user"] if match else None,
        status=status,
        **fields,
    )


def _not_found_error(request: _Request, api_message: str, status: int, fields: dict) -> ClusterError:
    detail = api_message or f"{request.resource} not found"
    if request.resource.split("/")[0] not in detail:
        # e.g. "the server could not find the requested resource": say which one was asked for.
        detail = f"{request.describe()}: {detail}"
    return ClusterError(ClusterErrorKind.NOT_FOUND, f"not found: {detail}", status=status, **fields)


def _api_error(
    error: ApiException, request: _Request, server: str, context: str | None, fields: dict
) -> ClusterError:
    """What the API server (or the client on its behalf) answered, by HTTP status."""
    status = error.status or 0
    body = _status_body(error.body)
    api_message = _first_line(body.get("message", "") if body else (error.reason or ""))
    if status == 0:
        return _unanswered_error(error, request, server, api_message, fields)
    if status == 401:
        return _unauthorized_error(server, context, status, fields)
    if status == 403:
        return _forbidden_error(api_message, status, fields)
    if status == 404:
        return _not_found_error(request, api_message, status, fields)
    detail = api_message or f"HTTP {status}"
    return ClusterError(
        ClusterErrorKind.ERROR,
        f"error: {request.describe()}: {detail} ({status})",
        status=status,
        **fields,
    )


def _proxy_refused_access(failure: ApiException, api_status: dict[str, Any] | None) -> bool:
    """Whether a service proxy request failed at the API server itself (401, 403, an unanswered request, or
    404 for the Service; ``api_status`` is the body's ``Status``): an access problem, raised. Anything else
    is the backend's answer, or the proxy's report on the backend, returned as data."""
    if failure.status in (0, 401, 403) and (api_status is not None or not failure.status):
        return True
    return bool(
        failure.status == 404 and api_status and (api_status.get("details") or {}).get("kind") == "services"
    )


def _proxy_answer(
    failure: ApiException, api_status: dict[str, Any] | None, max_body: int
) -> tuple[int | None, bytes, bool, str | None]:
    """(status, body up to ``max_body``, whether it was cut, the API server's message from ``api_status``)
    of a proxied answer that is not 2xx."""
    raw = failure.body or b""  # bytes before client 37, str from 37 on
    raw = raw if isinstance(raw, bytes) else raw.encode("utf-8", "replace")
    error = None
    if api_status is not None:
        error = _first_line(api_status.get("message", "")) or f"HTTP {failure.status}"
    return failure.status, raw[:max_body], len(raw) > max_body, error


def _read_timed_out(error: BaseException) -> bool:
    """Whether a request was sent and its answer did not come in time (not a connection that failed)."""
    if isinstance(error, urllib3.exceptions.MaxRetryError) and error.reason is not None:
        error = error.reason
    return isinstance(error, urllib3.exceptions.ReadTimeoutError)


def _transport_error(
    error: BaseException, request: _Request, server: str, timeout: float, fields: dict
) -> ClusterError:
    """A request that got no HTTP answer: TLS, timeout or connection failures, else the error itself."""
    if isinstance(error, urllib3.exceptions.MaxRetryError) and error.reason is not None:
        error = error.reason  # one attempt is made; what stopped it is the reason
    if isinstance(error, urllib3.exceptions.SSLError):
        return ClusterError(
            ClusterErrorKind.ERROR,
            f"tls: cannot verify the API server at {server}: {_tls_reason(error)}",
            **fields,
        )
    if isinstance(error, (urllib3.exceptions.ReadTimeoutError, TimeoutError)):
        return ClusterError(
            ClusterErrorKind.UNREACHABLE,
            f"unreachable: the API server at {server} did not answer within {timeout:g} s",
            **fields,
        )
    if isinstance(error, (urllib3.exceptions.HTTPError, OSError)):
        return ClusterError(
            ClusterErrorKind.UNREACHABLE,
            f"unreachable: cannot connect to the API server at {server} ({_connection_reason(error)})",
            **fields,
        )
    return ClusterError(
        ClusterErrorKind.ERROR,
        f"error: {request.describe()}: {type(error).__name__}: {_first_line(str(error))}",
        **fields,
    )


def classify(
    error: BaseException, request: _Request, server: str, *, timeout: float, context: str | None = None
) -> ClusterError:
    """Turn what the client raised into a ClusterError whose message says what to do."""
    if isinstance(error, ClusterError):
        return error
    fields = {
        "verb": request.verb,
        "resource": request.resource,
        "group": request.group,
        "namespace": request.namespace,
        "server": server,
    }
    if isinstance(error, ApiException):
        return _api_error(error, request, server, context, fields)
    return _transport_error(error, request, server, timeout, fields)


# --- configuration ------------------------------------------------------------------------------------------


def _new_configuration() -> k8s.Configuration:
    """A client configuration that takes no proxy from the environment itself: only a kubeconfig's
    ``proxy-url`` may set one before :func:`_choose_proxy` decides, once, in every client version alike.

    Client 37 reads the environment's proxies when constructed and whenever the host is set, which a
    bearer token's refresh hook does before every request: that iterates ``os.environ`` in whichever
    thread sends, and another thread changing the environment makes it raise KeyError. Clients 30 to 36
    copy HTTPS_PROXY, HTTP_PROXY (over it) and NO_PROXY at construction; 29 and older take none.
    """
    parameters = inspect.signature(k8s.Configuration).parameters
    if "proxy" in parameters and "no_proxy" in parameters:
        return k8s.Configuration(proxy="", no_proxy="")
    configuration = k8s.Configuration()
    configuration.proxy = None
    configuration.no_proxy = None
    return configuration


def _build_client(configuration: k8s.Configuration, **headers: str) -> _GetOnlyApiClient:
    """A GET-only client for ``configuration``, its proxy (already chosen) used as the client would use it.

    Clients 29 to 36 ask requests whether a proxied server is exempt (``should_bypass_proxies``), which
    sets ``os.environ["no_proxy"]`` for a moment and iterates the environment, in whichever thread builds
    the client: another thread reading the environment then (Python or C ``getenv``) may see it changed or
    fail. The exemption was decided already (:func:`_choose_proxy`), so those clients are built without
    the proxy and given urllib3's proxy manager with the same settings, as their ``RESTClientObject`` makes
    it. Other clients are built as they are (and built again when the environment changed meanwhile)."""
    proxy = configuration.proxy
    if not proxy or not _client_asks_requests_for_exemptions():
        return environment.retried(lambda: _GetOnlyApiClient(configuration, **headers))
    configuration.proxy = None
    try:
        client = _GetOnlyApiClient(configuration, **headers)
    finally:
        configuration.proxy = proxy
    direct = client.rest_client.pool_manager
    client.rest_client.pool_manager = urllib3.ProxyManager(
        proxy,
        num_pools=getattr(direct.pools, "_maxsize", 4),
        proxy_headers=configuration.proxy_headers,
        **direct.connection_pool_kw,
    )
    direct.clear()
    return client


def _client_asks_requests_for_exemptions() -> bool:
    import requests.utils
    from kubernetes.client import rest

    return getattr(rest, "should_bypass_proxies", None) is requests.utils.should_bypass_proxies


class _GetOnlyApiClient(k8s.ApiClient):
    """The one door to the network: anything but GET is refused before it is sent.

    The door is the REST client's ``request(method, url, ...)``, through which every call of every
    supported client version goes with the same two leading arguments. ``ApiClient.call_api`` is not:
    before kubernetes 36 it takes ``(resource_path, method, ...)``, from 37 on ``(method, url, ...)``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        send = self.rest_client.request

        def get_only(method: str, url: str, *rest: Any, **options: Any) -> Any:
            if str(method).upper() != "GET":
                raise ClusterError(
                    ClusterErrorKind.ERROR,
                    f"error: refused to send {method} {url}: the cluster view is read-only",
                )
            timeout = options.get("_request_timeout")
            if isinstance(timeout, float):
                # Clients before 36 take only an int as the total timeout and silently drop a float (no
                # timeout at all: a silent server hangs the read); whole seconds work in every version.
                options["_request_timeout"] = max(1, math.ceil(timeout))
            return send(method, url, *rest, **options)

        self.rest_client.request = get_only


# An object as metadata only (name, labels): a Secret's values never leave the API server.
_METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"

# Reads run side by side (every kind at session start, a fleet's targets): pooled connections to the API
# server are kept for as many of them, not opened anew and dropped (the client's default is five per CPU).
_POOL_CONNECTIONS = 32
# Seconds the connections opened ahead are still waited for once the client is built.
_PRECONNECT_GRACE = 1.0
_CLIENT_VERSION = getattr(k8s, "__version__", "?")

# A client used only to turn models into wire dicts and raw bodies into models; it never opens a connection.
_SERIALIZER = k8s.ApiClient(_new_configuration())

# The most a raw list read keeps in memory.
_LIST_LIMIT = 64 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class _RawBody:
    """What `ApiClient.deserialize` reads a body from in clients before 34 (a response with `.data`)."""

    data: str


def _deserialize(text: str, model: str) -> Any:
    """A JSON body as the client's model, through `ApiClient.deserialize` in either of its signatures:
    ``(response, response_type)`` in older clients, ``(response_text, response_type, content_type)`` later."""
    if "content_type" in inspect.signature(_SERIALIZER.deserialize).parameters:
        return _SERIALIZER.deserialize(text, model, "application/json")
    return _SERIALIZER.deserialize(_RawBody(text), model)


def _not_configured(message: str) -> ClusterError:
    return ClusterError(ClusterErrorKind.NOT_CONFIGURED, f"not configured: {message}")


def _kubeconfig_source(kubeconfig: str | None) -> str | None:
    """The kubeconfig to load (a path, or KUBECONFIG's path list), or None for in-cluster / nothing."""
    if kubeconfig:
        path = os.path.expanduser(kubeconfig)
        if not os.path.isfile(path):
            raise _not_configured(f"kubeconfig {kubeconfig} does not exist")
        return path
    from_env = os.environ.get("KUBECONFIG", "")
    if from_env.strip():
        paths = [os.path.expanduser(p) for p in from_env.split(os.pathsep) if p]
        if not any(os.path.isfile(p) for p in paths):
            raise _not_configured(f"KUBECONFIG={from_env} names no existing file")
        return from_env
    default = os.path.expanduser("~/.kube/config")
    return default if os.path.isfile(default) else None


# Credentials may come from an exec plugin or an OIDC refresh, neither of which the client bounds in time.
_CREDENTIALS_MIN_WAIT = 10.0


def _private_credentials_dir() -> str:
    """A folder only this user can read, for the client's decoded credentials.

    It is removed however the process ends."""
    from . import watchdog

    directory = tempfile.mkdtemp(prefix="reachability-kube-")
    watchdog.guard_directory(directory)
    return directory


def _remove_credentials_dir(directory: str) -> None:
    from . import watchdog

    shutil.rmtree(directory, ignore_errors=True)
    watchdog.release_directory(directory)


def _forget_temp_files_in(directory: str) -> None:
    """Drop the client's cache entries for files in ``directory``, which goes when its Cluster closes.

    The client reuses a decoded file for the same content across loads; a later Cluster must write
    its own files rather than be handed paths in a folder already removed.
    """
    cache = getattr(_kube_config_module, "_temp_files", None)
    if isinstance(cache, dict):
        prefix = os.path.join(directory, "")
        for key in [key for key, path in cache.items() if str(path).startswith(prefix)]:
            cache.pop(key, None)


def _load_credentials_bounded(
    source: str,
    context_name: str,
    configuration: k8s.Configuration,
    wait: float,
    credentials_dir: str | None = None,
) -> None:
    """``load_kube_config`` in a daemon thread, given up after `wait` seconds (the thread is left behind).

    The client writes ``*-data`` credentials (the decoded client key among them) to files; they go to
    ``credentials_dir`` instead of the shared temporary folder.
    """
    outcome: dict[str, BaseException] = {}

    def load() -> None:
        try:
            # persist_config=False: even a token refresh must not rewrite the user's kubeconfig. Loaded
            # again when an exec plugin's copy of the environment met the environment changing.
            environment.retried(
                lambda: k8s_config.load_kube_config(
                    config_file=source,
                    context=context_name,
                    client_configuration=configuration,
                    persist_config=False,
                    temp_file_path=credentials_dir,
                )
            )
        except BaseException as error:  # handed to the caller's thread, which classifies it
            outcome["error"] = error
        finally:
            if credentials_dir is not None:
                _forget_temp_files_in(credentials_dir)

    thread = threading.Thread(target=load, name="kubeconfig credentials", daemon=True)
    thread.start()
    thread.join(wait)
    if thread.is_alive():
        raise ClusterError(
            ClusterErrorKind.UNREACHABLE,
            f"kubeconfig credentials did not load within {wait:g}s "
            f"(exec credential plugin or OIDC refresh not answering)",
        )
    if "error" in outcome:
        raise outcome["error"]


def _load_kubeconfig(
    source: str,
    context: str | None,
    configuration: k8s.Configuration,
    timeout: float = 5.0,
    credentials_dir: str | None = None,
) -> tuple[str | None, str | None]:
    """Fill `configuration` from a kubeconfig; return (context name, context namespace).

    Loading credentials is bounded by max(timeout, 10) s: a credential plugin may legitimately take a few
    seconds, but a hung one must not hang the run.
    """
    try:
        contexts, current = k8s_config.list_kube_config_contexts(config_file=source)
    except (ConfigException, yaml.YAMLError, OSError, TypeError, KeyError, AttributeError) as error:
        raise _not_configured(f"kubeconfig {source} is not usable: {_first_line(str(error))}") from None
    names = [entry.get("name") for entry in contexts or []]
    chosen_name = context or (current or {}).get("name")
    if not chosen_name:
        raise _not_configured(
            f"kubeconfig {source} has no current-context; pass a context "
            f"(available: {', '.join(map(str, names)) or 'none'})"
        )
    if chosen_name not in names:
        raise _not_configured(
            f'context "{chosen_name}" is not in kubeconfig {source} '
            f"(available: {', '.join(map(str, names)) or 'none'})"
        )
    chosen = next(entry for entry in contexts if entry.get("name") == chosen_name)
    try:
        _load_credentials_bounded(
            source, chosen_name, configuration, max(timeout, _CREDENTIALS_MIN_WAIT), credentials_dir
        )
    except (ConfigException, yaml.YAMLError, OSError, ValueError, TypeError, KeyError) as error:
        raise _not_configured(
            f'context "{chosen_name}" in kubeconfig {source} is not usable: {_first_line(str(error))}'
        ) from None
    if not configuration.proxy:  # clients before 37 do not read the cluster's proxy-url; kubectl does
        configuration.proxy = _cluster_proxy_url(source, (chosen.get("context") or {}).get("cluster"))
    return chosen_name, (chosen.get("context") or {}).get("namespace")


def _cluster_proxy_url(source: str, cluster_name: Any) -> str | None:
    """The ``proxy-url`` of the kubeconfig's cluster ``cluster_name`` (the files of KUBECONFIG merged as the
    client merges them: the first file naming a cluster gives it)."""
    if not isinstance(cluster_name, str) or not cluster_name:
        return None
    try:
        merged = _kube_config_module.KubeConfigMerger(source).config
        clusters = merged.value.get("clusters") if isinstance(merged.value, dict) else None
    except (ConfigException, yaml.YAMLError, OSError, TypeError, AttributeError):
        return None
    for node in clusters if isinstance(clusters, list) else []:
        entry = getattr(node, "value", node)  # the merger wraps each file's entries
        if isinstance(entry, dict) and entry.get("name") == cluster_name:
            url = (entry.get("cluster") or {}).get("proxy-url")
            return url if isinstance(url, str) and url.strip() else None
    return None


_SOCKS_SCHEMES = ("socks4", "socks4a", "socks5", "socks5h")


def _check_proxy(configuration: k8s.Configuration) -> None:
    """The proxy chosen for the API server is one this client can use; else the cluster is not usable,
    said in one line. The proxy's address is not repeated: it may carry credentials."""
    proxy = configuration.proxy
    if not proxy:
        return
    where = "the proxy for the API server (the kubeconfig's proxy-url, or HTTPS_PROXY)"
    try:
        parts = urllib.parse.urlsplit(proxy)
        host, _port = parts.hostname, parts.port
    except ValueError:
        raise _not_configured(f"{where} is not a URL") from None
    scheme = parts.scheme.lower()
    if scheme in _SOCKS_SCHEMES and not _socks_client():
        raise _not_configured(
            f"{where} is a SOCKS proxy, which kubernetes {_CLIENT_VERSION} cannot use "
            f"(kubernetes 37 or later with PySocks can)"
        )
    if scheme not in ("http", "https", *_SOCKS_SCHEMES) or not host:
        raise _not_configured(f"{where} is not an http://, https:// or socks5:// URL with a host")


def _socks_client() -> bool:
    """Whether this kubernetes client can send its requests through a SOCKS proxy (37 and later, with
    PySocks installed)."""
    from kubernetes.client import rest

    if not hasattr(rest, "is_socks_proxy_url"):
        return False
    try:
        import socks  # noqa: F401 - PySocks, which urllib3's SOCKS support needs
    except ImportError:
        return False
    return True


def _load_in_cluster(configuration: k8s.Configuration) -> str | None:
    """Fill `configuration` from the pod's service account; return the pod's namespace."""
    try:
        k8s_config.load_incluster_config(client_configuration=configuration)
    except ConfigException as error:
        raise _not_configured(f"in-cluster configuration is not usable: {_first_line(str(error))}") from None
    try:
        with open(SERVICE_ACCOUNT_NAMESPACE_FILE, encoding="utf-8") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


_T = TypeVar("_T")


# --- the view -----------------------------------------------------------------------------------------------


class Cluster:
    """A read-only view of one cluster and namespace.

    Example, as a test would use it::

        cluster = Cluster.connect(kubeconfig='~/.kube/config', context='prod', namespace='production')
        api = next(s for s in cluster.services() if s.name == 'api')
        assert not api.lb_pending, f'LoadBalancer {api.name} has no address yet'
        assert all(p.ready for p in cluster.pods(selector='app=api'))
    """

    def __init__(
        self,
        configuration: k8s.Configuration,
        *,
        namespace: str,
        context: str | None,
        timeout: float,
        credentials_dir: str | None = None,
        preconnect: int = 0,
    ) -> None:
        # The view builds its own client so that every request passes the GET-only door.
        api_client = _build_client(configuration)
        self._api_client = api_client
        self._metadata_client = _build_client(
            configuration, header_name="Accept", header_value=_METADATA_ONLY
        )
        # Same server, same credentials: the metadata reads use the connections the other reads opened
        # (a distant API server charges a new TCP and TLS handshake per new connection).
        pool_manager = api_client.rest_client.pool_manager
        tolerate_tickets(pool_manager)
        self._metadata_client.rest_client.pool_manager = pool_manager
        self.namespace = namespace
        self.context = context
        self.server: str = api_client.configuration.host
        self.timeout = timeout
        self._credentials_dir = credentials_dir  # decoded client key and certificates; removed by close()
        # The handshakes go on while the API classes are imported (clients from 37 import each on first use).
        opening = self._open_connections(preconnect)
        self._core = k8s.CoreV1Api(api_client)
        self._metadata_core = k8s.CoreV1Api(self._metadata_client)
        self._apps = k8s.AppsV1Api(api_client)
        self._discovery = k8s.DiscoveryV1Api(api_client)
        self._networking = k8s.NetworkingV1Api(api_client)
        self._version = k8s.VersionApi(api_client)
        # Waited for a little longer than the import (a distant server's handshakes), never a timeout: an API
        # server that does not answer would otherwise cost its timeout here and again in the first read.
        deadline = time.monotonic() + min(_PRECONNECT_GRACE, timeout)
        for thread in opening:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _open_connections(self, count: int) -> list[threading.Thread]:
        """``count`` connections to the API server opened side by side (handshakes only), left idle in the
        pool the reads take theirs from; a failure is left for the read, which connects on its own."""
        if count <= 0:
            return []
        try:
            pool = self._api_client.rest_client.pool_manager.connection_from_url(self.server)
            count = min(count, _POOL_CONNECTIONS)
            return open_many(pool, count, self.timeout, "reachability-cluster-connect")
        except Exception:  # noqa: BLE001 - a server URL the reads themselves will report on
            return []

    @classmethod
    def connect(
        cls,
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        namespace: str | None = None,
        timeout: float = 5.0,
        preconnect: int = 0,
    ) -> Cluster:
        """Load credentials (explicit path > KUBECONFIG > ~/.kube/config > in-cluster); no request is sent.

        ``preconnect`` connections to the API server are opened before this returns (TCP and TLS, nothing
        sent), for as many reads about to run side by side; each is bounded by ``timeout``."""
        if not timeout or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        configuration = _new_configuration()
        source = _kubeconfig_source(kubeconfig)
        credentials_dir = None
        if source is not None:
            credentials_dir = _private_credentials_dir()
            try:
                context_name, context_namespace = _load_kubeconfig(
                    source, context, configuration, float(timeout), credentials_dir
                )
            except BaseException as error:
                # A loader given up on (UNREACHABLE) may still write there: the watchdog removes it at exit.
                if not (isinstance(error, ClusterError) and error.kind is ClusterErrorKind.UNREACHABLE):
                    _remove_credentials_dir(credentials_dir)
                raise
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            if context:
                raise _not_configured(
                    f'context "{context}" was asked for but there is no kubeconfig '
                    f"(only the in-cluster service account)"
                )
            context_name, context_namespace = None, _load_in_cluster(configuration)
        else:
            raise _not_configured(
                "no kubeconfig (looked at KUBECONFIG and ~/.kube/config) and not running "
                "in a pod; pass --kubeconfig or set KUBECONFIG"
            )
        try:
            _choose_proxy(configuration, environment.snapshot())
            _check_proxy(configuration)
            # One attempt per read: the caller's timeout is the whole budget, and a redirect is returned,
            # not followed.
            configuration.retries = urllib3.Retry(
                total=0, redirect=0, raise_on_redirect=False, raise_on_status=False
            )
            configuration.connection_pool_maxsize = max(
                # Twice: reads that start while connections opened ahead are still in flight (a server
                # that does not answer) take slots of their own, and neither is discarded with a warning.
                configuration.connection_pool_maxsize or 0,
                2 * _POOL_CONNECTIONS,
            )
            # Service proxy paths keep their slashes (names never contain one, they are validated).
            configuration.safe_chars_for_path_param = "/"
            return cls(
                configuration,
                namespace=namespace or context_namespace or "default",
                context=context_name,
                timeout=float(timeout),
                credentials_dir=credentials_dir,
                preconnect=preconnect,
            )
        except BaseException:
            # The decoded client key and certificates go now, not at the process's exit.
            if credentials_dir is not None:
                _remove_credentials_dir(credentials_dir)
            raise

    @classmethod
    def from_settings(cls, settings: Any, preconnect: int = 0) -> Cluster:
        """:meth:`connect` with a run's settings (kubeconfig, context, namespace, probe timeout)."""
        return cls.connect(
            kubeconfig=settings.kubeconfig,
            context=settings.kube_context,
            namespace=settings.namespace,
            timeout=settings.probe_timeout,
            preconnect=preconnect,
        )

    def in_namespace(self, namespace: str | None) -> Cluster:
        """This view reading ``namespace`` by default (None: this view), sharing its connection and
        credentials: close the view that connected, not this one."""
        if namespace is None or namespace == self.namespace:
            return self
        view = copy.copy(self)
        view.namespace = namespace
        view._credentials_dir = None  # owned by the view that loaded them
        return view

    def close(self) -> None:
        try:
            for client in (self._api_client, self._metadata_client):
                client.close()
                # Before client 37 close() leaves the connections open until garbage collection: the last
                # response (kept on the client) holds its connection, and the pool keeps the others.
                client.last_response = None
                client.rest_client.pool_manager.clear()
        finally:
            directory, self._credentials_dir = self._credentials_dir, None
            if directory is not None:
                _remove_credentials_dir(directory)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Cluster(server={self.server!r}, context={self.context!r}, namespace={self.namespace!r})"

    # -- plumbing

    def _call(self, request: _Request, method: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        try:
            # A credential refresh (an exec plugin copies the environment) that met the environment
            # changing sent nothing: the read is sent again.
            return environment.retried(lambda: method(*args, _request_timeout=self.timeout, **kwargs))
        except Exception as error:  # noqa: BLE001 - every failure is classified into one ClusterError
            raise classify(error, request, self.server, timeout=self.timeout, context=self.context) from None

    def _namespace(self, namespace: str | None) -> str:
        chosen = namespace or self.namespace
        if chosen != ALL_NAMESPACES:
            _check_name(chosen, "namespace")
        return chosen

    def _list(
        self,
        resource: str,
        group: str,
        namespace: str | None,
        namespaced: Callable[..., Any],
        all_namespaces: Callable[..., Any],
        **kwargs: Any,
    ) -> list[Any]:
        chosen = self._namespace(namespace)
        if chosen == ALL_NAMESPACES:
            result = self._call(_Request("list", resource, group), all_namespaces, **kwargs)
        else:
            result = self._call(_Request("list", resource, group, chosen), namespaced, chosen, **kwargs)
        return list(result.items or [])

    # -- reads

    def version(self) -> dict[str, Any]:
        """The API server's version: {major, minor, git_version, platform}."""
        # Parsed here rather than by the client's strict model: some servers omit fields it requires.
        response = self._call(_Request("get", "version"), self._version.get_code, _preload_content=False)
        try:
            info = jsontext.loads(_read_capped(response, 64 * 1024, time.monotonic() + self.timeout)[0])
        except (ValueError, urllib3.exceptions.HTTPError, OSError) as error:
            raise classify(error, _Request("get", "version"), self.server, timeout=self.timeout) from None
        finally:
            response.release_conn()
        info = info if isinstance(info, dict) else {}
        return {
            "major": info.get("major"),
            "minor": info.get("minor"),
            "git_version": info.get("gitVersion"),
            "platform": info.get("platform"),
        }

    def can_read_namespace(self, namespace: str | None = None) -> None:
        """Raise ClusterError unless pods in the namespace can be listed (one item, read-only)."""
        chosen = self._namespace(namespace)
        self._call(_Request("list", "pods", "", chosen), self._core.list_namespaced_pod, chosen, limit=1)

    def nodes(self) -> list[NodeInfo]:
        result = self._call(_Request("list", "nodes"), self._core.list_node)
        return [node_info(node) for node in result.items or []]

    def pods(self, namespace: str | None = None, selector: str | None = None) -> list[PodInfo]:
        """Pods in the namespace (``'*'`` for every namespace), optionally by label selector ``app=api``."""
        items = self._list(
            "pods",
            "",
            namespace,
            self._core.list_namespaced_pod,
            self._core.list_pod_for_all_namespaces,
            label_selector=selector,
        )
        return [pod_info(pod) for pod in items]

    def deployments(self, namespace: str | None = None, selector: str | None = None) -> list[DeploymentInfo]:
        items = self._list(
            "deployments",
            "apps",
            namespace,
            self._apps.list_namespaced_deployment,
            self._apps.list_deployment_for_all_namespaces,
            label_selector=selector,
        )
        return [deployment_info(item) for item in items]

    def services(self, namespace: str | None = None, selector: str | None = None) -> list[ServiceInfo]:
        items = self._list(
            "services",
            "",
            namespace,
            self._core.list_namespaced_service,
            self._core.list_service_for_all_namespaces,
            label_selector=selector,
        )
        return [service_info(item) for item in items]

    def endpoint_slices(
        self, namespace: str | None = None, service: str | None = None
    ) -> list[EndpointSliceInfo]:
        """EndpointSlices, optionally only those of one Service."""
        selector = f"kubernetes.io/service-name={service}" if service else None
        chosen = self._namespace(namespace)
        if chosen == ALL_NAMESPACES:
            request = _Request("list", "endpointslices", "discovery.k8s.io")
            method, args = self._discovery.list_endpoint_slice_for_all_namespaces, ()
        else:
            request = _Request("list", "endpointslices", "discovery.k8s.io", chosen)
            method, args = self._discovery.list_namespaced_endpoint_slice, (chosen,)
        # Read raw: a slice of a Service with no pods has no `endpoints` (optional since Kubernetes 1.33),
        # which clients generated before that refuse as a whole list ("must not be `None`").
        response = self._call(request, method, *args, label_selector=selector, _preload_content=False)
        try:
            body, truncated = _read_capped(response, _LIST_LIMIT, time.monotonic() + self.timeout)
            if truncated:
                raise ValueError(f"list larger than {_LIST_LIMIT // (1024 * 1024)} MiB")
            document = jsontext.loads(body)
            for item in document.get("items") or []:
                if isinstance(item, dict) and item.get("endpoints") is None:
                    item["endpoints"] = []
            listed = _deserialize(json.dumps(document), "V1EndpointSliceList")
        except (ValueError, TypeError, AttributeError, urllib3.exceptions.HTTPError, OSError) as error:
            raise classify(error, request, self.server, timeout=self.timeout, context=self.context) from None
        finally:
            response.release_conn()
        slices = [endpoint_slice_info(item) for item in listed.items or []]
        # Filter here too: a server that ignores the selector must not widen the answer.
        return [s for s in slices if service is None or s.service == service]

    def ingresses(self, namespace: str | None = None, selector: str | None = None) -> list[IngressInfo]:
        items = self._list(
            "ingresses",
            "networking.k8s.io",
            namespace,
            self._networking.list_namespaced_ingress,
            self._networking.list_ingress_for_all_namespaces,
            label_selector=selector,
        )
        return [ingress_info(item) for item in items]

    def objects(self, resource: str, namespace: str | None = None) -> list[Any]:
        """The official client's objects of ``services``, ``ingresses``, ``deployments`` or
        ``replicasets``, as read (creation times, UIDs, annotations): what "what changed" compares.
        Read-only like every read."""
        calls = {
            "services": ("", self._core.list_namespaced_service, self._core.list_service_for_all_namespaces),
            "ingresses": (
                "networking.k8s.io",
                self._networking.list_namespaced_ingress,
                self._networking.list_ingress_for_all_namespaces,
            ),
            "deployments": (
                "apps",
                self._apps.list_namespaced_deployment,
                self._apps.list_deployment_for_all_namespaces,
            ),
            "replicasets": (
                "apps",
                self._apps.list_namespaced_replica_set,
                self._apps.list_replica_set_for_all_namespaces,
            ),
        }
        if resource not in calls:
            raise ValueError(f"resource must be one of {', '.join(calls)}, not {resource!r}")
        group, namespaced, all_namespaces = calls[resource]
        return self._list(resource, group, namespace, namespaced, all_namespaces)

    def ingress_classes(self) -> list[IngressClassInfo]:
        result = self._call(
            _Request("list", "ingressclasses", "networking.k8s.io"), self._networking.list_ingress_class
        )
        return [ingress_class_info(item) for item in result.items or []]

    def network_policies(self, namespace: str | None = None) -> list[NetworkPolicyInfo]:
        items = self._list(
            "networkpolicies",
            "networking.k8s.io",
            namespace,
            self._networking.list_namespaced_network_policy,
            self._networking.list_network_policy_for_all_namespaces,
        )
        return [network_policy_info(item) for item in items]

    def secrets_exist(self, namespace: str | None, names: Iterable[str]) -> dict[str, bool]:
        """Which of these Secrets exist: one ``get`` per name, which RBAC can grant for named Secrets only
        (``list`` would expose every Secret's value); the answer is asked for as metadata only."""
        chosen = self._namespace(namespace)
        present: dict[str, bool] = {}
        for name in dict.fromkeys(names):
            _check_name(name, "secret name")
            try:
                # The Accept header comes from a client whose default headers override the generated
                # method's (a per-call ``_headers`` exists only from client 37 on).
                response = self._call(
                    _Request("get", "secrets", "", chosen, name),
                    self._metadata_core.read_namespaced_secret,
                    name,
                    chosen,
                    _preload_content=False,
                )
                response.drain_conn()  # only existence matters: the metadata is read and dropped
                response.release_conn()
                present[name] = True
            except ClusterError as error:
                if error.kind is not ClusterErrorKind.NOT_FOUND:
                    raise
                present[name] = False
        return present

    def events(self, namespace: str | None = None, *, warnings_only: bool = False) -> list[EventInfo]:
        """Events, oldest first by last sighting."""
        selector = "type=Warning" if warnings_only else None
        items = self._list(
            "events",
            "",
            namespace,
            self._core.list_namespaced_event,
            self._core.list_event_for_all_namespaces,
            field_selector=selector,
        )
        events = [event_info(item) for item in items]
        if warnings_only:
            events = [event for event in events if event.type == "Warning"]
        return sorted(events, key=lambda event: event.last_seen or event.first_seen or "")

    def pod_logs(
        self,
        name: str,
        namespace: str | None = None,
        *,
        tail_lines: int = 200,
        container: str | None = None,
        previous: bool = False,
    ) -> str:
        """The last lines of a pod's log (``previous=True`` for the crashed container before the restart)."""
        _check_name(name, "pod name")
        chosen = self._namespace(namespace)
        # The raw bytes, decoded here: client 36 hands the deserialized log back as the repr of its bytes.
        response = self._call(
            _Request("get", "pods/log", "", chosen, name),
            self._core.read_namespaced_pod_log,
            name,
            chosen,
            tail_lines=tail_lines,
            container=container,
            previous=previous or None,
            limit_bytes=DEFAULT_LOG_BYTES_CAP,
            _preload_content=False,
        )
        try:
            return response.data.decode("utf-8", "replace")
        finally:
            response.release_conn()

    def proxy_get(
        self,
        service: str,
        port: int | str,
        path: str = "/",
        namespace: str | None = None,
        *,
        max_body: int = DEFAULT_PROXY_BODY_CAP,
    ) -> ProxyResponse:
        """GET ``path`` on a Service from inside the cluster, through the API server's service proxy.

        The backend's status and body (at most ``max_body`` bytes) come back as data, as does the API
        server's own failure (503 no endpoints, backend refused); only access problems (401, 403, an
        unreachable API server) raise ClusterError.
        """
        _check_name(service, "service name")
        port_text = str(port)
        if not re.fullmatch(r"[A-Za-z0-9-]{1,63}", port_text):
            raise ValueError(f"service port must be a number or a port name, not {port!r}")
        chosen = self._namespace(namespace)
        relative = path.lstrip("/")
        request = _Request("get", "services/proxy", "", chosen, service)
        start = time.monotonic()
        status: int | None = None
        body = b""
        truncated = False
        error: str | None = None
        try:
            response = self._core.connect_get_namespaced_service_proxy_with_path(
                f"{service}:{port_text}",
                chosen,
                relative,
                _preload_content=False,
                _request_timeout=self.timeout,
            )
        except ApiException as failure:
            api_status = _status_body(failure.body)
            if _proxy_refused_access(failure, api_status):
                raise classify(
                    failure, request, self.server, timeout=self.timeout, context=self.context
                ) from None
            status, body, truncated, error = _proxy_answer(failure, api_status, max_body)
        except Exception as failure:  # noqa: BLE001 - classified like every other read
            if not _read_timed_out(failure):
                raise classify(
                    failure, request, self.server, timeout=self.timeout, context=self.context
                ) from None
            # The API server took the request and was still waiting for the backend: the service (or the
            # API server's way to it) hangs. Data, like the proxy's other reports on the backend.
            error = (
                f"no answer through the service proxy within {self.timeout:g} s: the backend, or the API "
                "server's connection to it, hangs"
            )
        else:
            status = response.status
            try:
                body, truncated = _read_capped(response, max_body, start + self.timeout)
            except (urllib3.exceptions.ReadTimeoutError, TimeoutError):
                error = f"backend response not complete within {self.timeout:g} s"
            except (urllib3.exceptions.HTTPError, OSError) as failure:
                # The body stopped arriving: say why; what came is not trustworthy as a whole.
                error = "backend response interrupted: " + _connection_reason(failure)
            finally:
                response.release_conn()
        no_endpoints = status == 503 and error is not None and "no endpoints available" in error
        return ProxyResponse(
            service=service,
            namespace=chosen,
            port=port_text,
            path="/" + relative,
            status=status,
            body=body.decode("utf-8", "replace"),
            truncated=truncated,
            ms=round((time.monotonic() - start) * 1000, 1),
            error=error,
            no_endpoints=no_endpoints,
        )

    def ingress_controller_pods(self) -> list[PodInfo]:
        """Pods in any namespace that carry an ingress controller's usual labels."""
        selectors = [f"{key} in ({','.join(values)})" for key, values in INGRESS_CONTROLLER_LABELS.items()]
        found: dict[tuple[str, str], PodInfo] = {}
        try:
            # One list per selector, side by side (a distant API server costs one round trip, not two).
            with ThreadPoolExecutor(len(selectors), thread_name_prefix="reachability-controllers") as pool:
                lists = [pool.submit(self.pods, ALL_NAMESPACES, selector=selector) for selector in selectors]
            for pods in lists:
                for pod in pods.result():
                    found[(pod.namespace, pod.name)] = pod
        except ClusterError as cluster_wide:
            if cluster_wide.kind is not ClusterErrorKind.FORBIDDEN:
                raise
            # Without cluster-wide list rights, look where controllers usually live.
            readable = refused_somewhere = False
            for namespace in dict.fromkeys((*INGRESS_CONTROLLER_NAMESPACES, self.namespace)):
                for selector in selectors:
                    try:
                        pods = self.pods(namespace, selector=selector)
                    except ClusterError as error:
                        if error.kind is ClusterErrorKind.FORBIDDEN:
                            refused_somewhere = True
                            break
                        raise
                    readable = True
                    for pod in pods:
                        found[(pod.namespace, pod.name)] = pod
            # None found while a usual namespace was refused proves nothing: say which grant is missing
            # rather than "no ingress controller runs".
            if not readable or (not found and refused_somewhere):
                raise cluster_wide from None
        return sorted(found.values(), key=lambda pod: (pod.namespace, pod.name))


# The variables Go's ProxyFromEnvironment (so kubectl) reads, the upper-case name first; never ALL_PROXY.
_GO_PROXY_VARIABLES = {"https": ("HTTPS_PROXY", "https_proxy"), "http": ("HTTP_PROXY", "http_proxy")}


def _choose_proxy(configuration: k8s.Configuration, variables: Mapping[str, str]) -> None:
    """The proxy for the API server, as kubectl (Go's ProxyFromEnvironment) chooses it: the kubeconfig's
    ``proxy-url`` when the cluster has one; else ``HTTPS_PROXY`` (``HTTP_PROXY`` for an http server), unless
    ``NO_PROXY`` exempts the server, and never for a loopback server. Decided here, once, from one copy of
    the environment (``variables``): the client is given no no-proxy list to read again -- clients before
    37 would read and rewrite the environment for it, in whichever thread builds the client."""
    configuration.no_proxy = None
    if configuration.proxy:
        return  # kubectl sends every request through a kubeconfig's proxy-url
    parts = urllib.parse.urlsplit(configuration.host)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    names = _GO_PROXY_VARIABLES.get(parts.scheme, ())
    chosen = next((variables[name] for name in names if variables.get(name)), None)
    if chosen and "://" not in chosen:
        chosen = "http://" + chosen  # as Go reads a proxy given without a scheme
    exempt = environment.bypasses_proxy(host, parts.port, variables)
    configuration.proxy = None if loopback or exempt else chosen


def _check_name(value: str, what: str) -> None:
    if not isinstance(value, str) or not _NAME_PATTERN.match(value):
        raise ValueError(f"{what} {value!r} is not a valid Kubernetes name")


def _read_capped(response: Any, cap: int, deadline: float) -> tuple[bytes, bool]:
    """Read at most `cap` bytes (one more to know it was cut), giving up at `deadline`."""
    chunks: list[bytes] = []
    size = 0
    while size <= cap:
        if time.monotonic() > deadline:
            raise TimeoutError("body not received in time")
        chunk = response.read(min(64 * 1024, cap + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    body = b"".join(chunks)
    return body[:cap], size > cap
