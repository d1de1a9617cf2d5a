"""The sandbox API server's resource catalogue and the discovery documents built from it.

Clients learn what a cluster serves from discovery before they ask for anything else: kubectl resolves
`svc` to `services` through `shortNames`, and asks `/api` and `/apis` for aggregated discovery
(apidiscovery.k8s.io/v2) first, falling back to the per-version lists. Both forms are built here from one
catalogue so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SERVER_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.4",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-04-22T00:00:00Z",
    "goVersion": "go1.23.6",
    "compiler": "gc",
    "platform": "linux/amd64",
}

# The sandbox is read-only: discovery advertises reads only.
READ_VERBS = ["get", "list"]

AGGREGATED_DISCOVERY_CONTENT_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


@dataclass(frozen=True)
class Subresource:
    name: str
    kind: str
    verbs: tuple[str, ...] = ("get",)
    group: str = ""
    version: str = "v1"


@dataclass(frozen=True)
class ResourceType:
    """One served resource: where it lives (group/version/plural) and how clients name it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[Subresource, ...] = field(default=())

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> tuple[str, str]:
        return (self.group, self.version)


RESOURCE_TYPES: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    ResourceType("", "v1", "endpoints", "Endpoints", True, ("ep",)),
    ResourceType("", "v1", "events", "Event", True, ("ev",)),
    ResourceType("", "v1", "namespaces", "Namespace", False, ("ns",)),
    ResourceType("", "v1", "nodes", "Node", False, ("no",)),
    ResourceType(
        "",
        "v1",
        "pods",
        "Pod",
        True,
        ("po",),
        ("all",),
        (Subresource("log", "Pod"), Subresource("status", "Pod")),
    ),
    ResourceType("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ("pvc",)),
    ResourceType("", "v1", "persistentvolumes", "PersistentVolume", False, ("pv",)),
    ResourceType("", "v1", "resourcequotas", "ResourceQuota", True, ("quota",)),
    ResourceType("", "v1", "secrets", "Secret", True),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",)),
    ResourceType(
        "",
        "v1",
        "services",
        "Service",
        True,
        ("svc",),
        ("all",),
        (Subresource("proxy", "ServiceProxyOptions"), Subresource("status", "Service")),
    ),
    ResourceType("apps", "v1", "daemonsets", "DaemonSet", True, ("ds",), ("all",)),
    ResourceType(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        True,
        ("deploy",),
        ("all",),
        (Subresource("status", "Deployment", group="apps"),),
    ),
    ResourceType("apps", "v1", "replicasets", "ReplicaSet", True, ("rs",), ("all",)),
    ResourceType("apps", "v1", "statefulsets", "StatefulSet", True, ("sts",), ("all",)),
    ResourceType("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    ResourceType("events.k8s.io", "v1", "events", "Event", True, ("ev",)),
    ResourceType("networking.k8s.io", "v1", "ingressclasses", "IngressClass", False),
    ResourceType("networking.k8s.io", "v1", "ingresses", "Ingress", True, ("ing",)),
    ResourceType("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, ("netpol",)),
)

# Group order as a real server lists it: kubectl breaks short-name ties by this order.
GROUP_ORDER: tuple[str, ...] = ("apps", "events.k8s.io", "networking.k8s.io", "discovery.k8s.io")


def resource_type_for(group: str, version: str, plural: str) -> ResourceType | None:
    for resource_type in RESOURCE_TYPES:
        if resource_type.group_version == (group, version) and resource_type.plural == plural:
            return resource_type
    return None


def resource_type_for_manifest(api_version: str, kind: str) -> ResourceType | None:
    """The catalogue entry a manifest (`apiVersion`, `kind`) is stored under."""
    group, _, version = api_version.rpartition("/")
    for resource_type in RESOURCE_TYPES:
        if resource_type.group_version == (group, version) and resource_type.kind == kind:
            return resource_type
    return None


def group_versions(group: str) -> list[str]:
    return sorted({rt.version for rt in RESOURCE_TYPES if rt.group == group})


def api_versions_document(server_address: str) -> dict:
    """`GET /api`: the legacy core group's versions."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _api_group(group: str) -> dict:
    versions = [
        {"groupVersion": f"{group}/{version}", "version": version} for version in group_versions(group)
    ]
    return {"name": group, "versions": versions, "preferredVersion": versions[0]}


def api_group_list_document() -> dict:
    """`GET /apis`: every named group."""
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_api_group(group) for group in GROUP_ORDER],
    }


def api_group_document(group: str) -> dict | None:
    """`GET /apis/<group>`."""
    if group not in GROUP_ORDER:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_api_group(group)}


def api_resource_list_document(group: str, version: str) -> dict | None:
    """`GET /api/v1` or `GET /apis/<group>/<version>`: the legacy per-version resource list."""
    members = [rt for rt in RESOURCE_TYPES if rt.group_version == (group, version)]
    if not members:
        return None
    resources: list[dict] = []
    for rt in members:
        entry: dict = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": list(READ_VERBS),
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
        resources.append(entry)
        for sub in rt.subresources:
            sub_entry: dict = {
                "name": f"{rt.plural}/{sub.name}",
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": sub.kind,
                "verbs": list(sub.verbs),
            }
            # As kube-apiserver lists them: group and version only for a kind of another group (Scale).
            if (sub.group, sub.version) != (rt.group, rt.version) and (sub.group or sub.kind != rt.kind):
                sub_entry["group"] = sub.group
                sub_entry["version"] = sub.version
            resources.append(sub_entry)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


def _aggregated_resource(rt: ResourceType) -> dict:
    entry: dict = {
        "resource": rt.plural,
        "responseKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
        "scope": "Namespaced" if rt.namespaced else "Cluster",
        "singularResource": rt.singular,
        "verbs": list(READ_VERBS),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    if rt.subresources:
        entry["subresources"] = [
            {
                "subresource": sub.name,
                "responseKind": {"group": sub.group, "version": sub.version, "kind": sub.kind},
                "verbs": list(sub.verbs),
            }
            for sub in rt.subresources
        ]
    return entry


def _aggregated_group(group: str) -> dict:
    metadata: dict = {"creationTimestamp": None}
    if group:
        metadata["name"] = group
    versions = [
        {
            "version": version,
            "resources": [
                _aggregated_resource(rt) for rt in RESOURCE_TYPES if rt.group_version == (group, version)
            ],
            "freshness": "Current",
        }
        for version in group_versions(group)
    ]
    return {"metadata": metadata, "versions": versions}


def aggregated_discovery_document(legacy: bool) -> dict:
    """Aggregated discovery (apidiscovery.k8s.io/v2): `/api` when `legacy`, else `/apis`."""
    groups = [""] if legacy else list(GROUP_ORDER)
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": [_aggregated_group(group) for group in groups],
    }


def wants_aggregated_discovery(accept: str) -> bool:
    """Whether an Accept header asks for apidiscovery.k8s.io/v2 (the only aggregated version served)."""
    for media_range in accept.split(","):
        params = {
            key.strip(): value.strip()
            for key, _, value in (part.partition("=") for part in media_range.split(";")[1:])
        }
        if (
            params.get("g") == "apidiscovery.k8s.io"
            and params.get("v") == "v2"
            and params.get("as") == "APIGroupDiscoveryList"
        ):
            return True
    return False
