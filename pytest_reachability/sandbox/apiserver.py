"""A read-only Kubernetes API server for the sandbox, speaking the real wire format.

A real kube-apiserver cannot run here, so this one serves a fixed set of manifests the way a cluster would:
HTTPS with a bearer token, discovery (legacy and aggregated), get/list with label and field selectors,
server-side tables for kubectl, pod logs and the service proxy. It never changes anything: every write verb
gets 405 and is recorded in `request_log`, so tests can prove that the plugin only reads.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import http.client
import json
import os
import re
import select
import socket
import socketserver
import ssl
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import yaml

from ..k8s import containers_ports, resolve_target_port, service_selects
from ..moments import parse_time
from .apiserver_discovery import (
    AGGREGATED_DISCOVERY_CONTENT_TYPE,
    RESOURCE_TYPES,
    SERVER_VERSION,
    ResourceType,
    aggregated_discovery_document,
    api_group_document,
    api_group_list_document,
    api_resource_list_document,
    api_versions_document,
    resource_type_for,
    resource_type_for_manifest,
    wants_aggregated_discovery,
)
from .apiserver_tables import SECRET_DATA_COUNT_KEY, render_table

SERVICE_ACCOUNT_USER = "system:serviceaccount:sandbox:reachability"
# What kube-apiserver fills into a probe left without them (pkg/apis/core/v1/defaults.go SetDefaults_Probe).
PROBE_DEFAULTS = {"timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
DEFAULT_AGE = timedelta(hours=12)
PROXY_BODY_LIMIT = 1024 * 1024
WRITE_BODY_LIMIT = 1024 * 1024
BUILTIN_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")
NODE_INFO_FIELDS = (
    "machineID",
    "systemUUID",
    "bootID",
    "kernelVersion",
    "osImage",
    "containerRuntimeVersion",
    "kubeletVersion",
    "kubeProxyVersion",
    "operatingSystem",
    "architecture",
)

BackendForService = Callable[[str, str, "int | str"], "tuple[str, int] | None"]

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "authorization",
    "host",
}

_WRITE_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def _format_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_document(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    """A meta/v1 Status as kube-apiserver writes it for a failed request."""
    body: dict = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


# ---- selectors ---------------------------------------------------------------------------------------


class SelectorError(ValueError):
    """A label or field selector the server cannot parse (answered with 400 BadRequest)."""


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # =, !=, in, notin, exists, !exists, gt, lt
    values: tuple[str, ...] = ()

    def matches(self, labels: dict) -> bool:
        present = self.key in labels
        value = str(labels.get(self.key, ""))
        if self.operator == "=":
            return present and value == self.values[0]
        if self.operator == "!=":
            return not present or value != self.values[0]
        if self.operator == "in":
            return present and value in self.values
        if self.operator == "notin":
            return not present or value not in self.values
        if self.operator == "exists":
            return present
        if self.operator == "!exists":
            return not present
        try:
            number, bound = int(value), int(self.values[0])
        except ValueError:
            return False
        return present and (number > bound if self.operator == "gt" else number < bound)


_LABEL_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_LABEL_VALUE = r"[-A-Za-z0-9_.]*"
_SET_REQUIREMENT = re.compile(rf"^({_LABEL_KEY})\s+(in|notin)\s+\((.*)\)$")
_EQUALITY_REQUIREMENT = re.compile(rf"^({_LABEL_KEY})\s*(==|=|!=)\s*({_LABEL_VALUE})$")
_COMPARE_REQUIREMENT = re.compile(rf"^({_LABEL_KEY})\s*(>|<)\s*(-?\d+)$")
_EXISTS_REQUIREMENT = re.compile(rf"^(!?)\s*({_LABEL_KEY})$")


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside `( ... )`."""
    parts, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def parse_label_selector(text: str) -> list[Requirement]:
    """Parse the `labelSelector` query syntax: `a=b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`."""
    requirements: list[Requirement] = []
    if not text.strip():
        return requirements
    for raw in _split_top_level(text):
        part = raw.strip()
        if match := _SET_REQUIREMENT.match(part):
            values = tuple(v.strip() for v in match.group(3).split(",") if v.strip())
            if not all(re.fullmatch(_LABEL_VALUE, v) for v in values):
                raise SelectorError(f"unable to parse requirement: invalid label value in {part!r}")
            requirements.append(Requirement(match.group(1), match.group(2), values))
        elif match := _EQUALITY_REQUIREMENT.match(part):
            operator = "!=" if match.group(2) == "!=" else "="
            requirements.append(Requirement(match.group(1), operator, (match.group(3),)))
        elif match := _COMPARE_REQUIREMENT.match(part):
            operator = "gt" if match.group(2) == ">" else "lt"
            requirements.append(Requirement(match.group(1), operator, (match.group(3),)))
        elif match := _EXISTS_REQUIREMENT.match(part):
            requirements.append(Requirement(match.group(2), "!exists" if match.group(1) else "exists"))
        else:
            raise SelectorError(f"unable to parse requirement: {part!r}")
    return requirements


def labels_match(requirements: Iterable[Requirement], labels: dict | None) -> bool:
    return all(requirement.matches(labels or {}) for requirement in requirements)


# Fields each resource can be filtered on, besides metadata.name and metadata.namespace (as upstream).
_FIELD_SELECTOR_FIELDS: dict[str, set[str]] = {
    "pods": {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    },
    "events": {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
        "regarding.kind",
        "regarding.name",
        "regarding.namespace",
    },
    "secrets": {"type"},
    "nodes": {"spec.unschedulable"},
    "namespaces": {"status.phase"},
    "replicasets": {"status.replicas"},
}


def _field_value(obj: dict, path: str) -> str:
    if path == "source":
        path = "source.component"
    value: object = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def parse_field_selector(text: str, plural: str) -> list[tuple[str, bool, str]]:
    """Parse `fieldSelector` into (field, equal?, value) terms, rejecting fields upstream rejects."""
    terms: list[tuple[str, bool, str]] = []
    allowed = {"metadata.name", "metadata.namespace"} | _FIELD_SELECTOR_FIELDS.get(plural, set())
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        match = re.fullmatch(r"([A-Za-z.]+)\s*(==|=|!=)\s*(.*)", part)
        if not match:
            raise SelectorError(f"invalid selector: '{part}'; can't understand '{part}'")
        field_name, operator, value = match.groups()
        if field_name not in allowed:
            raise SelectorError(f"field label not supported: {field_name}")
        terms.append((field_name, operator != "!=", value.strip()))
    return terms


def fields_match(terms: Iterable[tuple[str, bool, str]], obj: dict) -> bool:
    return all((_field_value(obj, name) == value) == equal for name, equal, value in terms)


# ---- the object store --------------------------------------------------------------------------------


def pod_is_ready(pod: dict) -> bool:
    """Ready as the endpoints controller sees it: the Ready condition, else every container ready."""
    metadata, status = pod.get("metadata") or {}, pod.get("status") or {}
    if metadata.get("deletionTimestamp") or status.get("phase") in ("Succeeded", "Failed"):
        return False
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    container_statuses = status.get("containerStatuses") or []
    return (
        status.get("phase") == "Running"
        and bool(container_statuses)
        and all(s.get("ready") for s in container_statuses)
    )


def _pod_ip(pod: dict) -> str | None:
    status = pod.get("status") or {}
    if status.get("podIP"):
        return status["podIP"]
    ips = status.get("podIPs") or []
    return ips[0].get("ip") if ips else None


def _short_hash(*parts: str, length: int = 5) -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"  # the characters Kubernetes uses for generated names
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return "".join(alphabet[byte % len(alphabet)] for byte in digest[:length])


def _stable_number(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("/".join(parts).encode()).digest()[:4], "big")


class ObjectStore:
    """The cluster's objects, filled in as an API server would serve them (never the caller's dicts)."""

    def __init__(self, objects: Iterable[dict], *, now: datetime | None = None) -> None:
        self.now = now or datetime.now(timezone.utc)
        self.default_creation = _format_time(self.now - DEFAULT_AGE)
        self._objects: dict[ResourceType, dict[tuple[str, str], dict]] = {rt: {} for rt in RESOURCE_TYPES}
        self.secret_data_counts: dict[tuple[str, str], int] = {}
        self._revision = 1000
        for index, manifest in enumerate(self._flatten(objects)):
            self._add(index, manifest)
        self._derive_namespaces()
        self._derive_endpoint_slices()
        self._derive_endpoints()
        self._link_events()
        self._link_owners()
        self._mirror_events()
        self.resource_version = str(self._revision)

    @staticmethod
    def _flatten(objects: Iterable[dict]) -> Iterable[dict]:
        for manifest in objects:
            if (
                isinstance(manifest, dict)
                and str(manifest.get("kind", "")).endswith("List")
                and "items" in manifest
            ):
                yield from manifest.get("items") or []
            else:
                yield manifest

    def _next_revision(self) -> str:
        self._revision += 1
        return str(self._revision)

    def _add(self, index: int, manifest: object) -> None:
        if not isinstance(manifest, dict):
            raise ValueError(f"object #{index + 1}: expected a mapping, got {type(manifest).__name__}")
        api_version, kind = manifest.get("apiVersion"), manifest.get("kind")
        name = (manifest.get("metadata") or {}).get("name")
        if not api_version or not kind or not name:
            raise ValueError(f"object #{index + 1}: apiVersion, kind and metadata.name are required")
        resource_type = resource_type_for_manifest(str(api_version), str(kind))
        if resource_type is None:
            served = ", ".join(sorted({f"{rt.api_version}/{rt.kind}" for rt in RESOURCE_TYPES}))
            raise ValueError(
                f"object #{index + 1} ({kind} {name}): {api_version}/{kind} is not served; one of {served}"
            )
        obj = copy.deepcopy(manifest)
        self._fill_metadata(resource_type, obj)
        metadata = obj["metadata"]
        key = (metadata.get("namespace", ""), metadata["name"])
        if key in self._objects[resource_type]:
            where = f"{key[0]}/{key[1]}" if key[0] else key[1]
            raise ValueError(f"object #{index + 1}: duplicate {kind} {where}")
        self._apply_defaults(resource_type, obj)
        self._objects[resource_type][key] = obj

    def _fill_metadata(self, resource_type: ResourceType, obj: dict) -> None:
        metadata = obj.setdefault("metadata", {})
        if resource_type.namespaced:
            metadata["namespace"] = metadata.get("namespace") or "default"
        else:
            metadata.pop("namespace", None)
        identity = (
            f"{resource_type.api_version}/{resource_type.kind}/"
            f"{metadata.get('namespace', '')}/{metadata['name']}"
        )
        metadata.setdefault("uid", str(uuid.uuid5(uuid.NAMESPACE_URL, identity)))
        metadata["resourceVersion"] = str(metadata.get("resourceVersion") or self._next_revision())
        if not metadata.get("creationTimestamp"):
            metadata["creationTimestamp"] = self.default_creation
        elif isinstance(metadata["creationTimestamp"], datetime):  # YAML turns timestamps into datetimes
            metadata["creationTimestamp"] = _format_time(metadata["creationTimestamp"])
        obj["apiVersion"] = resource_type.api_version
        obj["kind"] = resource_type.kind
        self._stringify_times(obj)

    def _stringify_times(self, value: object) -> object:
        """YAML loads unquoted timestamps as datetimes; on the wire they are RFC 3339 strings."""
        if isinstance(value, dict):
            for key, item in value.items():
                value[key] = self._stringify_times(item)
        elif isinstance(value, list):
            for position, item in enumerate(value):
                value[position] = self._stringify_times(item)
        elif isinstance(value, datetime):
            moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
            return _format_time(moment)
        return value

    def _apply_defaults(self, resource_type: ResourceType, obj: dict) -> None:
        """The defaults kube-apiserver fills in, where clients read them."""
        kind = resource_type.plural
        defaulters: dict[str, Callable[[dict], None]] = {
            "secrets": self._default_secret,
            "services": self._default_service,
            "pods": self._default_pod,
            "deployments": lambda workload: self._default_workload(kind, workload),
            "replicasets": lambda workload: self._default_workload(kind, workload),
            "statefulsets": lambda workload: self._default_workload(kind, workload),
            "daemonsets": lambda workload: self._default_workload(kind, workload),
            "nodes": self._default_node_info,
            "ingresses": self._default_ingress,
            "networkpolicies": self._default_network_policy,
            "endpointslices": self._default_endpoint_slice,
            "namespaces": self._default_namespace,
            "events": self._default_event_times,
        }
        defaulter = defaulters.get(kind)
        if defaulter is not None:
            defaulter(obj)

    def _default_secret(self, secret: dict) -> None:
        # Only the number of data keys is kept: the sandbox never holds secret values.
        metadata = secret["metadata"]
        data_keys = set(secret.pop("data", None) or {}) | set(secret.pop("stringData", None) or {})
        self.secret_data_counts[(metadata["namespace"], metadata["name"])] = len(data_keys)
        secret.setdefault("type", "Opaque")

    @staticmethod
    def _default_service(service: dict) -> None:
        metadata = service["metadata"]
        spec = service.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec["type"] != "ExternalName":
            ObjectStore._default_cluster_ip(spec, metadata)
        if spec["type"] in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
            if spec["type"] in ("NodePort", "LoadBalancer") and not port.get("nodePort"):
                number = _stable_number(metadata["namespace"], metadata["name"], str(port.get("port")))
                port["nodePort"] = 30000 + number % 2768
        service.setdefault("status", {}).setdefault("loadBalancer", {})

    @staticmethod
    def _default_cluster_ip(spec: dict, metadata: dict) -> None:
        """A stable cluster IP (from the Service's name) and the IP family fields that go with it."""
        if not spec.get("clusterIP"):
            number = _stable_number(metadata["namespace"], metadata["name"])
            spec["clusterIP"] = f"10.96.{(number >> 8) % 256}.{number % 254 + 1}"
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        if spec["clusterIP"] != "None":
            family = "IPv6" if ":" in spec["clusterIP"] else "IPv4"
            spec.setdefault("ipFamilies", [family])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")

    @staticmethod
    def _default_pod(pod: dict) -> None:
        spec = pod.setdefault("spec", {})
        ObjectStore._default_pod_spec(spec)
        status = pod.setdefault("status", {})
        status.setdefault("phase", "Pending")
        ObjectStore._default_container_statuses(spec, status)

    @staticmethod
    def _default_pod_spec(spec: dict) -> None:
        """Container ports' protocol, and probes' timing as SetDefaults_Probe fills it (timeoutSeconds 1,
        periodSeconds 10, successThreshold 1, failureThreshold 3; initialDelaySeconds stays unset)."""
        for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            for port in container.get("ports") or []:
                port.setdefault("protocol", "TCP")
            for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
                probe = container.get(kind)
                if isinstance(probe, dict):
                    for field, value in PROBE_DEFAULTS.items():
                        probe.setdefault(field, value)

    @staticmethod
    def _default_workload(kind: str, workload: dict) -> None:
        spec = workload.setdefault("spec", {})
        if kind != "daemonsets":
            spec.setdefault("replicas", 1)
        spec.setdefault("selector", {})
        spec.setdefault("template", {"metadata": {}, "spec": {"containers": []}})
        if isinstance(spec["template"], dict) and isinstance(spec["template"].get("spec"), dict):
            ObjectStore._default_pod_spec(spec["template"]["spec"])
        status = workload.setdefault("status", {})
        if kind in ("replicasets", "statefulsets"):
            status.setdefault("replicas", 0)
        if kind == "daemonsets":
            for counter in (
                "currentNumberScheduled",
                "desiredNumberScheduled",
                "numberMisscheduled",
                "numberReady",
            ):
                status.setdefault(counter, 0)

    @staticmethod
    def _default_ingress(ingress: dict) -> None:
        for rule in (ingress.get("spec") or {}).get("rules") or []:
            for path in (rule.get("http") or {}).get("paths") or []:
                path.setdefault("pathType", "ImplementationSpecific")

    @staticmethod
    def _default_network_policy(policy: dict) -> None:
        spec = policy.setdefault("spec", {})
        spec.setdefault("podSelector", {})
        # As kube-apiserver defaults them: Ingress always, Egress when there are egress rules; TCP ports.
        spec.setdefault("policyTypes", ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"])
        for direction in ("ingress", "egress"):
            for rule in spec.get(direction) or []:
                for port in rule.get("ports") or []:
                    port.setdefault("protocol", "TCP")

    @staticmethod
    def _default_endpoint_slice(slice_: dict) -> None:
        slice_.setdefault("addressType", "IPv4")
        # As kube-apiserver (1.33+) stores a slice with no endpoints: a null list, which clients
        # generated before 1.33 refuse unless they read it raw.
        slice_.setdefault("endpoints", None)
        for port in slice_.get("ports") or []:
            port.setdefault("protocol", "TCP")

    @staticmethod
    def _default_namespace(namespace: dict) -> None:
        metadata = namespace["metadata"]
        namespace.setdefault("status", {}).setdefault("phase", "Active")
        labels = metadata.setdefault("labels", {})
        labels.setdefault("kubernetes.io/metadata.name", metadata["name"])

    @staticmethod
    def _default_container_statuses(spec: dict, status: dict) -> None:
        """Fields the kubelet always reports; clients (the Python client among them) require them."""
        images = {
            c.get("name"): c.get("image", "")
            for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])
        }
        for field_name in ("containerStatuses", "initContainerStatuses"):
            for container_status in status.get(field_name) or []:
                image = container_status.setdefault("image", images.get(container_status.get("name"), ""))
                digest = hashlib.sha256(str(image).encode()).hexdigest()
                container_status.setdefault("imageID", f"{str(image).split(':')[0]}@sha256:{digest}")
                container_status.setdefault("ready", False)
                container_status.setdefault("restartCount", 0)
                for state_name in ("state", "lastState"):
                    terminated = (container_status.get(state_name) or {}).get("terminated")
                    if isinstance(terminated, dict):
                        terminated.setdefault("exitCode", 0)

    @staticmethod
    def _default_node_info(node: dict) -> None:
        """A node's system info as kube-apiserver serves it: every field present, empty unless reported.

        The fields are plain strings on the wire (never omitted), so a node whose kubelet reported nothing
        has ``kubeletVersion: ""``, not a made-up version.
        """
        info = node.setdefault("status", {}).setdefault("nodeInfo", {})
        for key in NODE_INFO_FIELDS:
            info.setdefault(key, "")

    def _default_event_times(self, event: dict) -> None:
        # kube-apiserver fills none of a core Event's times or its count: a new-style event has only
        # eventTime (and series), an old-style one what its recorder wrote.
        if event["apiVersion"] != "v1" and not event.get("eventTime"):
            first = event.get("deprecatedFirstTimestamp") or event["metadata"]["creationTimestamp"]
            event["eventTime"] = first.replace("Z", ".000000Z") if first.endswith("Z") else first

    def _type(self, group: str, plural: str) -> ResourceType:
        return next(rt for rt in RESOURCE_TYPES if rt.group == group and rt.plural == plural)

    def _derive_namespaces(self) -> None:
        namespaces = self._objects[self._type("", "namespaces")]
        used: dict[str, str] = {}
        for resource_type, objects in self._objects.items():
            if not resource_type.namespaced:
                continue
            for (namespace, _), obj in objects.items():
                created = obj["metadata"]["creationTimestamp"]
                if namespace not in used or (parse_time(created) or self.now) < (
                    parse_time(used[namespace]) or self.now
                ):
                    used[namespace] = created
        for name in sorted(set(used) | set(BUILTIN_NAMESPACES)):
            if ("", name) in namespaces:
                continue
            manifest = {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": name, "creationTimestamp": used.get(name, self.default_creation)},
                "spec": {"finalizers": ["kubernetes"]},
            }
            self._add(len(namespaces), manifest)

    def _derive_endpoint_slices(self) -> None:
        """The EndpointSlices the controller would keep for each selector Service that has none."""
        services = self._objects[self._type("", "services")]
        slices = self._objects[self._type("discovery.k8s.io", "endpointslices")]
        covered = {
            (
                obj["metadata"]["namespace"],
                (obj["metadata"].get("labels") or {}).get("kubernetes.io/service-name"),
            )
            for obj in slices.values()
        }
        pods = self._objects[self._type("", "pods")]
        for (namespace, name), service in sorted(services.items()):
            selector = (service.get("spec") or {}).get("selector")
            if not selector or (namespace, name) in covered:
                continue
            members = [
                pod
                for (pod_namespace, _), pod in sorted(pods.items())
                if pod_namespace == namespace
                and service_selects(selector, pod["metadata"].get("labels"))
                and _pod_ip(pod)
                and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
            ]
            self._add(len(slices), self._endpoint_slice_for(service, members))

    def _endpoint_slice_for(self, service: dict, members: list[dict]) -> dict:
        metadata = service["metadata"]
        ports = []
        for port in (service.get("spec") or {}).get("ports") or []:
            target = resolve_target_port(
                port.get("targetPort", port.get("port")), containers_ports(members[0]) if members else []
            )
            if target is None:
                continue
            entry = {"name": port.get("name", ""), "port": target, "protocol": port.get("protocol", "TCP")}
            if port.get("appProtocol"):
                entry["appProtocol"] = port["appProtocol"]
            ports.append(entry)
        endpoints = []
        for pod in members:
            ready = pod_is_ready(pod)
            terminating = bool(pod["metadata"].get("deletionTimestamp"))
            endpoint: dict = {
                "addresses": [_pod_ip(pod)],
                "conditions": {"ready": ready, "serving": ready or terminating, "terminating": terminating},
                "targetRef": {
                    "kind": "Pod",
                    "namespace": pod["metadata"]["namespace"],
                    "name": pod["metadata"]["name"],
                    "uid": pod["metadata"]["uid"],
                },
            }
            if (pod.get("spec") or {}).get("nodeName"):
                endpoint["nodeName"] = pod["spec"]["nodeName"]
            endpoints.append(endpoint)
        address_type = "IPv6" if members and ":" in (_pod_ip(members[0]) or "") else "IPv4"
        labels = dict(metadata.get("labels") or {})
        labels["kubernetes.io/service-name"] = metadata["name"]
        labels["endpointslice.kubernetes.io/managed-by"] = "endpointslice-controller.k8s.io"
        return {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{metadata['name']}-{_short_hash(metadata['namespace'], metadata['name'])}",
                "namespace": metadata["namespace"],
                "generateName": f"{metadata['name']}-",
                "labels": labels,
                "creationTimestamp": metadata["creationTimestamp"],
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "Service",
                        "name": metadata["name"],
                        "uid": metadata["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "addressType": address_type,
            "endpoints": endpoints or None,
            "ports": ports,
        }

    def _derive_endpoints(self) -> None:
        """Endpoints for every Service without one, from its EndpointSlices (as the mirroring does)."""
        services = self._objects[self._type("", "services")]
        endpoints = self._objects[self._type("", "endpoints")]
        slices = self._objects[self._type("discovery.k8s.io", "endpointslices")]
        for (namespace, name), service in sorted(services.items()):
            if (namespace, name) in endpoints:
                continue
            own_slices = [
                obj
                for (slice_namespace, _), obj in sorted(slices.items())
                if slice_namespace == namespace
                and (obj["metadata"].get("labels") or {}).get("kubernetes.io/service-name") == name
            ]
            if not own_slices and not (service.get("spec") or {}).get("selector"):
                continue
            subsets = [
                subset
                for subset in (_endpoints_subset(endpoint_slice) for endpoint_slice in own_slices)
                if subset is not None
            ]
            manifest: dict = {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": dict(service["metadata"].get("labels") or {}),
                    "creationTimestamp": service["metadata"]["creationTimestamp"],
                },
            }
            if subsets:
                manifest["subsets"] = subsets
            self._add(len(endpoints), manifest)

    def _link_events(self) -> None:
        """Give each event's object reference the uid of the object it names, as recorders do.

        kubectl describe finds an object's events by `involvedObject.uid`, so a reference without it
        would hide the events.
        """
        for group in ("", "events.k8s.io"):
            reference_field = "involvedObject" if group == "" else "regarding"
            for event in self._objects[self._type(group, "events")].values():
                reference = event.get(reference_field)
                if not isinstance(reference, dict) or reference.get("uid") or not reference.get("name"):
                    continue
                target = self._find_by_kind(
                    str(reference.get("kind", "")),
                    reference.get("namespace") or event["metadata"]["namespace"],
                    reference["name"],
                )
                if target is not None:
                    reference.setdefault("namespace", target["metadata"].get("namespace"))
                    reference.setdefault("apiVersion", target["apiVersion"])
                    reference["uid"] = target["metadata"]["uid"]
                    if reference.get("namespace") is None:
                        del reference["namespace"]

    def _link_owners(self) -> None:
        """Give each owner reference without a uid its owner's uid (kube-apiserver requires one).

        Clients require it too (the Python client refuses an OwnerReference without uid). An owner that is
        not served gets a stable made-up uid, as a reference to a deleted owner keeps its old one.
        """
        for objects in self._objects.values():
            for obj in objects.values():
                metadata = obj["metadata"]
                for reference in metadata.get("ownerReferences") or []:
                    if not isinstance(reference, dict) or reference.get("uid"):
                        continue
                    owner = self._find_by_kind(
                        str(reference.get("kind", "")),
                        metadata.get("namespace", ""),
                        str(reference.get("name", "")),
                    )
                    reference["uid"] = (
                        owner["metadata"]["uid"]
                        if owner is not None
                        else str(
                            uuid.uuid5(
                                uuid.NAMESPACE_URL, f"owner/{metadata.get('namespace', '')}/{reference}"
                            )
                        )
                    )

    def _find_by_kind(self, kind: str, namespace: str, name: str) -> dict | None:
        for resource_type, objects in self._objects.items():
            if resource_type.kind != kind or resource_type.group == "events.k8s.io":
                continue
            found = objects.get((namespace if resource_type.namespaced else "", name))
            if found is not None:
                return found
        return None

    def _mirror_events(self) -> None:
        """Serve every event through both APIs, as one stored object is on a real server."""
        core = self._objects[self._type("", "events")]
        modern = self._objects[self._type("events.k8s.io", "events")]
        for key, event in list(core.items()):
            if key not in modern:
                modern[key] = core_event_to_events_v1(event)
        for key, event in list(modern.items()):
            if key not in core:
                core[key] = events_v1_to_core_event(event)

    # ---- queries ----

    def list(self, resource_type: ResourceType, namespace: str | None = None) -> list[dict]:
        """In kube-apiserver's order: its storage key ``<namespace>/<name>`` as a string, so ``prod-x``
        comes before ``prod`` ('-' sorts before '/')."""
        objects = self._objects.get(resource_type, {})
        return [
            obj
            for key, obj in sorted(objects.items(), key=lambda item: f"{item[0][0]}/{item[0][1]}")
            if namespace is None or key[0] == namespace
        ]

    def get(self, resource_type: ResourceType, namespace: str | None, name: str) -> dict | None:
        return self._objects.get(resource_type, {}).get((namespace or "", name))

    def service(self, namespace: str, name: str) -> dict | None:
        return self.get(self._type("", "services"), namespace, name)

    def endpoints(self, namespace: str, name: str) -> dict | None:
        return self.get(self._type("", "endpoints"), namespace, name)


def _endpoints_subset(endpoint_slice: dict) -> dict | None:
    """The Endpoints subset mirroring one EndpointSlice; None when the slice has no address."""
    ready, not_ready = [], []
    for endpoint in endpoint_slice.get("endpoints") or []:
        for address in endpoint.get("addresses") or []:
            entry: dict = {"ip": address}
            if endpoint.get("nodeName"):
                entry["nodeName"] = endpoint["nodeName"]
            if endpoint.get("targetRef"):
                entry["targetRef"] = endpoint["targetRef"]
            is_ready = (endpoint.get("conditions") or {}).get("ready") is not False
            (ready if is_ready else not_ready).append(entry)
    if not ready and not not_ready:
        return None
    subset: dict = {}
    if ready:
        subset["addresses"] = ready
    if not_ready:
        subset["notReadyAddresses"] = not_ready
    subset["ports"] = [
        {
            key: port[key]
            for key in ("name", "port", "protocol", "appProtocol")
            if port.get(key) not in (None, "")
        }
        for port in endpoint_slice.get("ports") or []
    ]
    return subset


def core_event_to_events_v1(event: dict) -> dict:
    source = event.get("source") or {}
    converted: dict = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": copy.deepcopy(event["metadata"]),
        "eventTime": event.get("eventTime") or (event.get("firstTimestamp") or "").replace("Z", ".000000Z"),
        "reportingController": event.get("reportingComponent") or source.get("component", ""),
        "reportingInstance": event.get("reportingInstance") or source.get("host", ""),
        "action": event.get("action", ""),
        "reason": event.get("reason", ""),
        "regarding": copy.deepcopy(event.get("involvedObject") or {}),
        "note": event.get("message", ""),
        "type": event.get("type", ""),
        "deprecatedSource": copy.deepcopy(source),
        "deprecatedFirstTimestamp": event.get("firstTimestamp"),
        "deprecatedLastTimestamp": event.get("lastTimestamp"),
        "deprecatedCount": event.get("count", 1),
    }
    for optional in ("series", "related"):
        if event.get(optional):
            converted[optional] = copy.deepcopy(event[optional])
    return {key: value for key, value in converted.items() if value is not None}


def events_v1_to_core_event(event: dict) -> dict:
    source = copy.deepcopy(event.get("deprecatedSource") or {})
    if not source and event.get("reportingController"):
        source = {"component": event["reportingController"]}
        if event.get("reportingInstance"):
            source["host"] = event["reportingInstance"]
    converted: dict = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": copy.deepcopy(event["metadata"]),
        "involvedObject": copy.deepcopy(event.get("regarding") or {}),
        "reason": event.get("reason", ""),
        "message": event.get("note", ""),
        "source": source,
        "firstTimestamp": event.get("deprecatedFirstTimestamp"),
        "lastTimestamp": event.get("deprecatedLastTimestamp"),
        "count": event.get("deprecatedCount"),
        "type": event.get("type", ""),
        "eventTime": event.get("eventTime"),
        "reportingComponent": event.get("reportingController", ""),
        "reportingInstance": event.get("reportingInstance", ""),
        "action": event.get("action", ""),
    }
    for optional in ("series", "related"):
        if event.get(optional):
            converted[optional] = copy.deepcopy(event[optional])
    return {key: value for key, value in converted.items() if value is not None}


# ---- HTTP --------------------------------------------------------------------------------------------


class _RequestError(Exception):
    """Ends a request with a Status body."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None) -> None:
        super().__init__(message)
        self.status = status_document(code, reason, message, details)


def _not_found(resource_type: ResourceType, name: str) -> _RequestError:
    details: dict = {"name": name, "kind": resource_type.plural}
    if resource_type.group:
        details["group"] = resource_type.group
    return _RequestError(404, "NotFound", f'{_qualified(resource_type)} "{name}" not found', details)


def _qualified(resource_type: ResourceType) -> str:
    return f"{resource_type.plural}.{resource_type.group}" if resource_type.group else resource_type.plural


_UNKNOWN_PATH = ("NotFound", "the server could not find the requested resource")


class _ApiRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-apiserver-sandbox"
    sys_version = ""
    timeout = 30  # idle keep-alive connections; stop() closes them sooner

    server: _ApiHttpServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base class signature
        """Requests are recorded in `request_log`, not printed."""

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._dispatch()

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch()

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch()

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch()

    def do_OPTIONS(self) -> None:  # noqa: N802
        self._dispatch()

    # ---- plumbing ----

    def _dispatch(self) -> None:
        api: KubeApiServer = self.server.api
        split = urlsplit(self.path)
        self._entry: dict = {
            "method": self.command,
            "path": unquote(split.path),
            "query": split.query,
            "verb": None,
            "resource": None,
            "namespace": None,
            "name": None,
            "status": None,
        }
        try:
            self._discard_request_body()
            if not api._token_valid(self.headers.get("Authorization", "")):
                raise _RequestError(401, "Unauthorized", "Unauthorized")
            api._route(self, split.path, parse_qs(split.query, keep_blank_values=True))
        except _RequestError as error:
            self.send_json(error.status["code"], error.status)
        except (ConnectionError, TimeoutError, ssl.SSLError):
            self.close_connection = True
            self._record(499)
        except Exception as error:  # a server bug must still answer like a server, not drop the connection
            self.send_json(500, status_document(500, "InternalError", f"Internal error occurred: {error}"))

    def _discard_request_body(self) -> None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True  # never read an unbounded body: answer and close instead
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > WRITE_BODY_LIMIT:
            self.close_connection = True
            return
        if length:
            self.rfile.read(length)

    def _record(self, status: int) -> None:
        if self._entry["status"] is None:
            self._entry["status"] = status
            self.server.api._log(self._entry)

    def send_body(
        self, status: int, body: bytes, content_type: str, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        self._record(status)
        self.server.api.round_trip()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-cache, private")
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status: int, document: dict, content_type: str = "application/json") -> None:
        self.send_body(status, json.dumps(document, separators=(",", ":")).encode(), content_type)


class _ApiHttpServer(ThreadingHTTPServer):
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], api: KubeApiServer, family: int) -> None:
        self.address_family = family
        self.api = api
        super().__init__(address, _ApiRequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host name up (getfqdn), which can stall without DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        # Daemon threads (an unstopped server never holds the interpreter open), joined by stop() itself:
        # socketserver only joins threads that are not daemons.
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"kube-apiserver:{self.server_port}:connection",
            daemon=True,
        )
        self.api._add_thread(thread)
        thread.start()

    def finish_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        self.api._track(request)
        try:
            request.settimeout(5)  # bounded TLS handshake
            if self.api.latency > 0:
                # The TCP handshake the kernel completed at once, then the TLS one: a round trip each.
                self.api.round_trip()
                select.select([request], [], [], 5)
                self.api.round_trip()
            try:
                connection = self.api._ssl_context.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError):
                return
            self.api._track(connection)
            try:
                _ApiRequestHandler(connection, client_address, self)
            finally:
                self.api._untrack(connection)
                connection.close()
        finally:
            self.api._untrack(request)

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that went away mid-request is not the server's error; say nothing."""


@dataclass(frozen=True)
class _Target:
    resource_type: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None
    tail_index: int  # index of the first path segment after the subresource


class KubeApiServer:
    """A read-only kube-apiserver over `objects`, served on HTTPS with a bearer token.

    Example::

        with KubeApiServer(objects, token=token, cert_file=cert, key_file=key) as server:
            write_kubeconfig(path, server_url=server.url, ca_file=ca, token=token)
            ...  # kubectl --kubeconfig path get pods,svc -n production

    `pod_logs` maps `namespace/pod` to the log text. Each `deny` rule (`verb`, `resource`, optional
    `namespace`; `*` matches any) answers 403 Forbidden; `verb` is a request verb (`list`, `get`,
    `logs`, `proxy`, ...) or RBAC's `get` on `pods/log` / `services/proxy`. `backend_for_service(namespace,
    name, port)` gets the Service port *number* the proxied request named and returns the address to
    forward to, or None for "no endpoints". `request_log` holds one dict per request: method, path
    (decoded), query, verb (get/list/watch/create/update/patch/delete/proxy/logs), resource,
    namespace, name and the status answered. `latency` (one way, seconds) delays each connection by the
    round trips of its TCP and TLS handshakes and each response by one round trip.
    """

    def __init__(
        self,
        objects: list[dict],
        *,
        pod_logs: dict[str, str] | None = None,
        deny: list[dict] | None = None,
        token: str,
        cert_file: str,
        key_file: str,
        host: str = "127.0.0.1",
        backend_for_service: Callable[[str, str, int | str], tuple[str, int] | None] | None = None,
        proxy_timeout: float = 5.0,
        latency: float = 0.0,
    ) -> None:
        if not token:
            raise ValueError("KubeApiServer: token must not be empty")
        self.store = ObjectStore(objects)
        self.pod_logs = dict(pod_logs or {})
        self.deny = [self._check_deny_rule(rule) for rule in deny or []]
        self.token = token
        self.host = host
        self.backend_for_service = backend_for_service
        self.proxy_timeout = proxy_timeout
        self.latency = latency  # one way, seconds: each exchange waits twice that
        self._stop_waiting = threading.Event()
        self.request_log: list[dict] = []
        self.url = ""
        self._ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ssl_context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._ssl_context.load_cert_chain(cert_file, key_file)
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._connection_threads: list[threading.Thread] = []
        self._stopping = False
        self._server: _ApiHttpServer | None = None
        self._thread: threading.Thread | None = None

    @staticmethod
    def _check_deny_rule(rule: dict) -> dict:
        if not isinstance(rule, dict) or not rule.get("verb") or not rule.get("resource"):
            raise ValueError(f"deny rule {rule!r}: expected a mapping with 'verb' and 'resource'")
        return dict(rule)

    def round_trip(self) -> None:
        """Wait the round trip the latency costs (at once when stopping)."""
        if self.latency > 0:
            self._stop_waiting.wait(2 * self.latency)

    # ---- lifecycle ----

    def start(self) -> None:
        if self._server is not None:
            return
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._server = _ApiHttpServer((self.host, 0), self, family)
        port = self._server.server_address[1]
        self.url = (
            f"https://[{self.host}]:{port}" if family == socket.AF_INET6 else f"https://{self.host}:{port}"
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"kube-apiserver:{port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, close every open connection and join every thread."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stop_waiting.set()
        server.shutdown()
        with self._lock:
            self._stopping = True
            connections = list(self._connections)
        for connection in connections:
            _shutdown_socket(connection)
        server.server_close()
        if thread is not None:
            thread.join(timeout=10)
        with self._lock:
            threads, self._connection_threads = self._connection_threads, []
        for connection_thread in threads:
            # Bounded by the handshake and proxy timeouts: every socket has been shut down.
            connection_thread.join(timeout=self.proxy_timeout + 10)
        self._server = self._thread = None
        self._stopping = False

    def __enter__(self) -> KubeApiServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _track(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)
            stopping = self._stopping
        if stopping:  # accepted just before stop(): end it at once
            _shutdown_socket(connection)

    def _add_thread(self, thread: threading.Thread) -> None:
        with self._lock:
            self._connection_threads = [t for t in self._connection_threads if t.is_alive()]
            self._connection_threads.append(thread)

    def _untrack(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _log(self, entry: dict) -> None:
        with self._lock:
            self.request_log.append(entry)

    def _token_valid(self, header: str) -> bool:
        scheme, _, presented = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            presented.strip().encode(), self.token.encode()
        )

    # ---- routing ----

    def _route(self, handler: _ApiRequestHandler, raw_path: str, query: dict[str, list[str]]) -> None:
        raw_segments = raw_path.split("/")
        raw_segments = raw_segments[1:] if raw_segments and raw_segments[0] == "" else raw_segments
        segments = [unquote(segment) for segment in raw_segments]
        while segments and segments[-1] == "" and "proxy" not in segments:
            segments.pop()
        handler._entry["verb"] = _WRITE_VERBS.get(handler.command, "get")

        if segments and segments[0] in ("api", "apis"):
            group, version, rest = self._split_group_version(segments)
            if rest:
                self._serve_resource(handler, group, version, rest, raw_segments, query)
                return
        self._refuse_writes(handler)
        self._serve_discovery(handler, segments)

    def _serve_discovery(self, handler: _ApiRequestHandler, segments: list[str]) -> None:
        """The paths above the resources: the root, version, health and API discovery."""
        if not segments:
            handler.send_json(
                200, {"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/version"]}
            )
        elif segments == ["version"]:
            handler.send_json(200, SERVER_VERSION)
        elif segments[0] in ("healthz", "livez", "readyz") and len(segments) == 1:
            handler.send_body(200, b"ok", "text/plain; charset=utf-8")
        elif segments in (["api"], ["apis"]):
            self._serve_api_root(handler, legacy=segments == ["api"])
        elif segments == ["api", "v1"]:
            handler.send_json(200, api_resource_list_document("", "v1") or {})
        elif document := self._group_discovery_document(segments):
            handler.send_json(200, document)
        else:
            raise _RequestError(404, *_UNKNOWN_PATH, {})

    def _serve_api_root(self, handler: _ApiRequestHandler, *, legacy: bool) -> None:
        """`/api` (legacy) or `/apis`, aggregated when the client asks for it."""
        if wants_aggregated_discovery(handler.headers.get("Accept", "")):
            handler.send_json(200, aggregated_discovery_document(legacy), AGGREGATED_DISCOVERY_CONTENT_TYPE)
        elif legacy:
            handler.send_json(200, api_versions_document(self.url.removeprefix("https://")))
        else:
            handler.send_json(200, api_group_list_document())

    @staticmethod
    def _group_discovery_document(segments: list[str]) -> dict | None:
        """`/apis/<group>` or `/apis/<group>/<version>`; None for any other path or an unknown group."""
        if len(segments) == 2 and segments[0] == "apis":
            return api_group_document(segments[1])
        if len(segments) == 3 and segments[0] == "apis":
            return api_resource_list_document(segments[1], segments[2])
        return None

    @staticmethod
    def _split_group_version(segments: list[str]) -> tuple[str, str, list[str]]:
        if segments[0] == "api":
            if len(segments) >= 2 and segments[1] == "v1":
                return "", "v1", segments[2:]
            return "", "", []
        if len(segments) >= 3:
            return segments[1], segments[2], segments[3:]
        return "", "", []

    @staticmethod
    def _refuse_writes(handler: _ApiRequestHandler) -> None:
        if handler.command not in ("GET", "HEAD"):
            raise _RequestError(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {}
            )

    @staticmethod
    def _resolve_target(group: str, version: str, rest: list[str]) -> _Target:
        """Which resource a path below `/api/v1` or `/apis/<group>/<version>` names."""
        if rest[0] == "namespaces" and len(rest) >= 3:
            resource_type = resource_type_for(group, version, rest[2])
            if resource_type is not None and resource_type.namespaced:
                name = rest[3] if len(rest) > 3 else None
                return _Target(resource_type, rest[1], name, rest[4] if len(rest) > 4 else None, 5)
        resource_type = resource_type_for(group, version, rest[0])
        if resource_type is None or (resource_type.namespaced and len(rest) > 1):
            raise _RequestError(404, *_UNKNOWN_PATH, {})
        name = rest[1] if len(rest) > 1 else None
        return _Target(resource_type, None, name, rest[2] if len(rest) > 2 else None, 3)

    def _serve_resource(
        self,
        handler: _ApiRequestHandler,
        group: str,
        version: str,
        rest: list[str],
        raw_segments: list[str],
        query: dict[str, list[str]],
    ) -> None:
        target = self._resolve_target(group, version, rest)
        resource_type, namespace, name, subresource = (
            target.resource_type,
            target.namespace,
            target.name,
            target.subresource,
        )
        entry = handler._entry
        self._record_request(handler, target, query)
        self._refuse_writes(handler)
        if entry["verb"] == "watch":
            raise _RequestError(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {}
            )
        self._enforce_deny(resource_type, entry["verb"], namespace, name, subresource)

        if len(rest) > target.tail_index and subresource != "proxy":
            raise _RequestError(404, *_UNKNOWN_PATH, {})
        if name is None:
            self._serve_list(handler, resource_type, namespace, query)
            return
        obj = self._get_or_404(
            resource_type, namespace, name if subresource != "proxy" else _proxy_service_name(name)
        )
        if subresource is None or subresource == "status":
            self._serve_object(handler, resource_type, obj, query)
        elif subresource == "log" and resource_type.plural == "pods":
            self._serve_log(handler, obj, query)
        elif subresource == "proxy" and resource_type.plural == "services":
            # The proxied path is everything after `.../proxy`, exactly as the client sent it.
            proxy_index = len(raw_segments) - len(rest) + target.tail_index - 1
            tail = "/".join(raw_segments[proxy_index + 1 :])
            self._serve_proxy(handler, obj, name, tail)
        else:
            raise _RequestError(404, *_UNKNOWN_PATH, {})

    @staticmethod
    def _record_request(handler: _ApiRequestHandler, target: _Target, query: dict[str, list[str]]) -> None:
        """Note the resource and the verb as the audit log and RBAC name them."""
        resource_type, name, subresource = target.resource_type, target.name, target.subresource
        entry = handler._entry
        entry.update(resource=resource_type.plural, namespace=target.namespace, name=name)
        reading = handler.command in ("GET", "HEAD")
        if subresource == "proxy" and resource_type.plural == "services":
            entry["name"] = _proxy_service_name(name or "")  # `http:api:80` names the Service `api`
            entry["verb"] = "proxy" if reading else entry["verb"]
        elif subresource == "log" and resource_type.plural == "pods":
            entry["verb"] = "logs" if reading else entry["verb"]
        elif reading:
            if _flag(query, "watch"):
                entry["verb"] = "watch"
            else:
                entry["verb"] = "get" if name else "list"

    def _get_or_404(self, resource_type: ResourceType, namespace: str | None, name: str) -> dict:
        obj = self.store.get(resource_type, namespace, name)
        if obj is None:
            raise _not_found(resource_type, name)
        return obj

    def _enforce_deny(
        self,
        resource_type: ResourceType,
        verb: str,
        namespace: str | None,
        name: str | None,
        subresource: str | None,
    ) -> None:
        # RBAC names reading logs and proxying as `get` on a subresource.
        rbac_verb, rbac_resource = verb, resource_type.plural
        if verb in ("logs", "proxy"):
            rbac_verb, rbac_resource = "get", f"{resource_type.plural}/{subresource}"
        for rule in self.deny:
            if rule["verb"] not in ("*", verb, rbac_verb):
                continue
            # As in RBAC, `pods` does not cover `pods/log` (nor `services` `services/proxy`).
            if rule["resource"] not in ("*", rbac_resource):
                continue
            if rule.get("namespace") and namespace is not None and rule["namespace"] != namespace:
                continue
            who = f'{_qualified(resource_type)} "{name}"' if name else _qualified(resource_type)
            scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
            message = (
                f'{who} is forbidden: User "{SERVICE_ACCOUNT_USER}" cannot {rbac_verb} resource '
                f'"{rbac_resource}" in API group "{resource_type.group}" {scope}'
            )
            details: dict = {"kind": resource_type.plural}
            if name:
                details = {"name": name, **details}
            if resource_type.group:
                details["group"] = resource_type.group
            raise _RequestError(403, "Forbidden", message, details)

    # ---- reads ----

    def _printable(self, resource_type: ResourceType, objects: list[dict]) -> list[dict]:
        if resource_type.plural != "secrets":
            return objects
        counts = self.store.secret_data_counts
        return [
            {
                **obj,
                SECRET_DATA_COUNT_KEY: counts.get((obj["metadata"]["namespace"], obj["metadata"]["name"]), 0),
            }
            for obj in objects
        ]

    def _serve_object(
        self, handler: _ApiRequestHandler, resource_type: ResourceType, obj: dict, query: dict
    ) -> None:
        if _wants_table(handler.headers.get("Accept", "")):
            table = render_table(
                resource_type,
                self._printable(resource_type, [obj]),
                resource_version=obj["metadata"]["resourceVersion"],
                include_object=_first(query, "includeObject") or "Metadata",
            )
            handler.send_json(200, table)
        else:
            handler.send_json(200, obj)

    def _serve_list(
        self, handler: _ApiRequestHandler, resource_type: ResourceType, namespace: str | None, query: dict
    ) -> None:
        try:
            labels = parse_label_selector(_first(query, "labelSelector") or "")
            fields = parse_field_selector(_first(query, "fieldSelector") or "", resource_type.plural)
        except SelectorError as error:
            raise _RequestError(400, "BadRequest", str(error)) from None
        items = [
            obj
            for obj in self.store.list(resource_type, namespace)
            if labels_match(labels, obj["metadata"].get("labels")) and fields_match(fields, obj)
        ]
        items, list_metadata = self._page(items, query)
        if _wants_table(handler.headers.get("Accept", "")):
            table = render_table(
                resource_type,
                self._printable(resource_type, items),
                resource_version=self.store.resource_version,
                include_object=_first(query, "includeObject") or "Metadata",
                list_metadata={k: v for k, v in list_metadata.items() if k != "resourceVersion"},
            )
            handler.send_json(200, table)
            return
        if _wants_metadata_only(handler.headers.get("Accept", "")):
            # What clients ask for to learn names without values (the plugin's Secret existence check).
            partial = {
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": list_metadata,
                # An empty one is `"items": null` on kube-apiserver's wire, unlike every other list.
                "items": [
                    {
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": item["metadata"],
                    }
                    for item in items
                ]
                or None,
            }
            handler.send_json(200, partial)
            return
        handler.send_json(
            200,
            {
                "kind": f"{resource_type.kind}List",
                "apiVersion": resource_type.api_version,
                "metadata": list_metadata,
                # kube-apiserver's JSON lists carry kind and apiVersion once, not on each item.
                "items": [
                    {k: v for k, v in item.items() if k not in ("apiVersion", "kind")} for item in items
                ],
            },
        )

    def _page(self, items: list[dict], query: dict) -> tuple[list[dict], dict]:
        """`limit` and `continue` as clients page through lists (kubectl asks for 500 at a time)."""
        metadata: dict = {"resourceVersion": self.store.resource_version}
        start = 0
        token = _first(query, "continue")
        if token:
            try:
                start = int(json.loads(base64.urlsafe_b64decode(token.encode()))["start"])
            except (ValueError, KeyError, TypeError):
                raise _RequestError(400, "BadRequest", "continue key is not valid: malformed token") from None
        limit_text = _first(query, "limit")
        try:
            limit = int(limit_text) if limit_text else 0
        except ValueError:
            raise _RequestError(400, "BadRequest", f"invalid limit: {limit_text!r}") from None
        end = len(items) if limit <= 0 else min(len(items), start + limit)
        if end < len(items):
            metadata["continue"] = base64.urlsafe_b64encode(json.dumps({"start": end}).encode()).decode()
            metadata["remainingItemCount"] = len(items) - end
        return items[start:end], metadata

    def _serve_log(self, handler: _ApiRequestHandler, pod: dict, query: dict) -> None:
        metadata = pod["metadata"]
        containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        container = _first(query, "container")
        if container and containers and container not in containers:
            raise _RequestError(
                400, "BadRequest", f"container {container} is not valid for pod {metadata['name']}"
            )
        text = self.pod_logs.get(f"{metadata['namespace']}/{metadata['name']}", "")
        lines = text.splitlines(keepends=True)
        tail = _first(query, "tailLines")
        if tail:
            try:
                count = int(tail)
            except ValueError:
                raise _RequestError(400, "BadRequest", f"invalid tailLines: {tail!r}") from None
            if count >= 0:
                lines = lines[len(lines) - count :] if count else []
        if _flag(query, "timestamps"):
            stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
            lines = [f"{stamp} {line}" for line in lines]
        body = "".join(lines).encode()
        limit_bytes = _first(query, "limitBytes")
        if limit_bytes and limit_bytes.isdigit():
            body = body[: int(limit_bytes)]
        handler.send_body(200, body, "text/plain")

    # ---- service proxy ----

    def _serve_proxy(self, handler: _ApiRequestHandler, service: dict, name_part: str, raw_tail: str) -> None:
        namespace, name = service["metadata"]["namespace"], service["metadata"]["name"]
        scheme, _, port_text = _proxy_parts(name_part)
        port = self._proxy_port(service, port_text)
        if not self._has_ready_endpoint(namespace, name, port):
            raise _RequestError(503, "ServiceUnavailable", f'no endpoints available for service "{name}"')
        backend = (
            self.backend_for_service(namespace, name, port["port"]) if self.backend_for_service else None
        )
        if backend is None:
            raise _RequestError(503, "ServiceUnavailable", f'no endpoints available for service "{name}"')
        path = "/" + quote(unquote(raw_tail), safe="/:@!$&'()*+,;=-._~")
        if handler._entry["query"]:
            path += "?" + handler._entry["query"]
        self._forward(handler, backend, scheme or "http", path)

    @staticmethod
    def _proxy_port(service: dict, port_text: str) -> dict:
        ports = (service.get("spec") or {}).get("ports") or []
        name = service["metadata"]["name"]
        if not port_text:
            candidates = ports if len(ports) == 1 else [p for p in ports if not p.get("name")]
        else:
            candidates = [p for p in ports if p.get("name") == port_text] or [
                p for p in ports if str(p.get("port")) == port_text
            ]
        if not candidates:
            raise _RequestError(
                503, "ServiceUnavailable", f'no service port "{port_text}" found for service "{name}"'
            )
        return candidates[0]

    def _has_ready_endpoint(self, namespace: str, name: str, port: dict) -> bool:
        endpoints = self.store.endpoints(namespace, name)
        for subset in (endpoints or {}).get("subsets") or []:
            if not subset.get("addresses"):
                continue
            subset_ports = subset.get("ports") or []
            if not subset_ports or any(p.get("name", "") == port.get("name", "") for p in subset_ports):
                return True
        return False

    def _forward(self, handler: _ApiRequestHandler, backend: tuple[str, int], scheme: str, path: str) -> None:
        host, port = backend
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        connection: http.client.HTTPConnection
        if scheme == "https":
            context = ssl.create_default_context()
            # kube-apiserver does not verify the certificates of the pods it proxies to.
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            connection = http.client.HTTPSConnection(host, port, timeout=self.proxy_timeout, context=context)
        else:
            connection = http.client.HTTPConnection(host, port, timeout=self.proxy_timeout)
        try:
            headers = {key: value for key, value in handler.headers.items() if key.lower() not in _HOP_BY_HOP}
            headers["Host"] = address
            connection.request(handler.command, path, headers=headers)
            response = connection.getresponse()
            body = b"" if handler.command == "HEAD" else response.read(PROXY_BODY_LIMIT)
            relayed = [
                (key, value)
                for key, value in response.getheaders()
                if key.lower() not in _HOP_BY_HOP and key.lower() not in ("content-type", "cache-control")
            ]
            handler.send_body(
                response.status,
                body,
                response.getheader("Content-Type", "application/octet-stream"),
                relayed,
            )
        except ConnectionRefusedError:
            raise _RequestError(
                503,
                "ServiceUnavailable",
                f"error trying to reach service: dial tcp {address}: connect: connection refused",
            ) from None
        except TimeoutError:
            raise _RequestError(
                503,
                "ServiceUnavailable",
                f"error trying to reach service: dial tcp {address}: i/o timeout",
            ) from None
        except (http.client.RemoteDisconnected, http.client.IncompleteRead, ConnectionResetError):
            raise _RequestError(503, "ServiceUnavailable", "error trying to reach service: EOF") from None
        except (OSError, http.client.HTTPException) as error:
            raise _RequestError(
                503, "ServiceUnavailable", f"error trying to reach service: {error}"
            ) from None
        finally:
            connection.close()


def _shutdown_socket(connection: socket.socket) -> None:
    try:
        # The plain socket's shutdown (not SSLSocket's) wakes a handler blocked in a read.
        socket.socket.shutdown(connection, socket.SHUT_RDWR)
    except OSError:
        pass


def _first(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[0] if values else None


def _flag(query: dict[str, list[str]], key: str) -> bool:
    return (_first(query, key) or "").lower() in ("true", "1")


PARTIAL_METADATA_LIST = "as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"


def _wants_metadata_only(accept: str) -> bool:
    """The first media range decides, as kube-apiserver negotiates: metadata only when it asks for it."""
    first = accept.split(",")[0].replace(" ", "")
    return PARTIAL_METADATA_LIST.lower() in first.lower()


def _wants_table(accept: str) -> bool:
    return any(
        "as=table" in media_range.replace(" ", "").lower() and "g=meta.k8s.io" in media_range.replace(" ", "")
        for media_range in accept.split(",")
    )


def _proxy_parts(name_part: str) -> tuple[str, str, str]:
    """`api`, `api:80`, `http:api:80`, `https:api:` -> (scheme, service name, port)."""
    parts = name_part.split(":")
    if len(parts) == 1:
        return "", parts[0], ""
    if len(parts) == 2:
        return "", parts[0], parts[1]
    return parts[0], parts[1], ":".join(parts[2:])


def _proxy_service_name(name_part: str) -> str:
    return _proxy_parts(name_part)[1]


def scenario_server(scenario: Any, token: str, certificates: Any, **options: Any) -> KubeApiServer:
    """The API server over a scenario's objects, pod logs and deny rules, serving the sandbox's
    certificate (not started). ValueError for a manifest it cannot hold (a kind it does not serve)."""
    return KubeApiServer(
        scenario.objects,
        pod_logs=dict(scenario.logs),
        deny=list(scenario.deny),
        token=token,
        cert_file=certificates.apiserver.cert_file,
        key_file=certificates.apiserver.key_file,
        **options,
    )


def write_kubeconfig(
    path: str,
    *,
    server_url: str,
    ca_file: str,
    token: str,
    context: str = "sandbox",
    namespace: str = "production",
) -> None:
    """Write a kubeconfig (mode 0600: it holds the token) whose current context points at the server."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": context, "cluster": {"server": server_url, "certificate-authority": ca_file}}],
        "users": [{"name": context, "user": {"token": token}}],
        "contexts": [
            {"name": context, "context": {"cluster": context, "user": context, "namespace": namespace}}
        ],
        "current-context": context,
    }
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        yaml.safe_dump(config, handle, default_flow_style=False, sort_keys=False)
    os.chmod(path, 0o600)
