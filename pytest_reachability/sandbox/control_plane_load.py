"""Load a scenario's Kubernetes objects into a real API server, and clear them again.

Any manifest is created through the API, whatever its kind: the resource is found through the server's own
discovery (a CustomResourceDefinition in the same list is created first, waited for, and discovery read
again). Namespaces come first, then cluster-wide objects, then namespaced ones, Events last. A manifest's
``status`` is written through the ``/status`` subresource where the server has one (LoadBalancer
addresses, pod phases, conditions and container statuses, Deployment counters, node conditions).

What a real server decides itself is left to it, and every such change is reported in `LoadReport`:
server-owned metadata (uid, resourceVersion, creationTimestamp, generation) is dropped;
``status.observedGeneration`` is shifted by the generation the server assigned, so "observed < current"
keeps its meaning; an owner reference names the uid its owner got here; a field the server refuses (422,
e.g. a clusterIP outside the service range, an immutable field of a pod's status) is dropped and the
request retried, naming the field.

Besides the scenario's manifests, `cluster_objects` adds what the sandbox's own server derives as a
cluster's controllers would (EndpointSlices and Endpoints of selector Services, namespaces that objects
live in): a real API server without controllers makes none of them.
"""

from __future__ import annotations

import copy
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import requests

from .scenario import Scenario

__all__ = [
    "ApiError",
    "Discovery",
    "LoadReport",
    "RestClient",
    "cluster_objects",
    "clear_objects",
    "load_objects",
]

REQUEST_TIMEOUT = 30.0
MAX_FIELD_DROPS = 8  # per object: a 422 naming more fields than this is a bug, not a difference
_SERVER_METADATA = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)
# Fields that must be dropped together: the server checks that each pair agrees.
_COMPANIONS = {
    "clusterIP": "clusterIPs",
    "clusterIPs": "clusterIP",
    "podIP": "podIPs",
    "podIPs": "podIP",
    "hostIP": "hostIPs",
    "hostIPs": "hostIP",
}
_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


class ApiError(Exception):
    """A request the API server refused; ``status`` is its Status body (or {})."""

    def __init__(self, method: str, path: str, code: int, status: dict[str, Any]) -> None:
        self.code = code
        self.status = status
        self.reason = status.get("reason", "")
        message = status.get("message") or f"HTTP {code}"
        super().__init__(f"{method} {path}: {code} {self.reason}: {message}")

    @property
    def causes(self) -> list[dict[str, Any]]:
        return list((self.status.get("details") or {}).get("causes") or [])


class RestClient:
    """JSON over HTTPS with a bearer token; never through an environment proxy; bounded in time."""

    def __init__(self, url: str, token: str, ca_file: str, *, timeout: float = REQUEST_TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = ca_file
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.headers["Accept"] = "application/json"

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        response = self.session.request(
            method,
            self.url + path,
            json=body,
            params=params,
            timeout=self.timeout,
            headers={"Content-Type": content_type} if body is not None else None,
        )
        try:
            document = response.json() if response.content else {}
        except ValueError:
            document = {"message": response.text[:500]}
        if response.status_code >= 400:
            raise ApiError(method, path, response.status_code, document if isinstance(document, dict) else {})
        return document

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    def close(self) -> None:
        self.session.close()


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    has_status: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def collection(self, namespace: str | None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        return f"{base}/namespaces/{namespace}/{self.plural}" if self.namespaced else f"{base}/{self.plural}"


class Discovery:
    """(apiVersion, kind) -> Resource, from the server's own discovery documents."""

    def __init__(self, client: RestClient) -> None:
        self.client = client
        self.resources: dict[tuple[str, str], Resource] = {}
        self.refresh()

    def refresh(self) -> None:
        versions = [("", "v1", "/api/v1")]
        for group in self.client.get("/apis").get("groups") or []:
            for version in group.get("versions") or []:
                versions.append((group["name"], version["version"], f"/apis/{version['groupVersion']}"))
        resources: dict[tuple[str, str], Resource] = {}
        for group, version, path in versions:
            try:
                listing = self.client.get(path).get("resources") or []
            except ApiError:
                continue  # an aggregated API that is not available; nothing of it can be created anyway
            names = {entry["name"] for entry in listing}
            for entry in listing:
                if "/" in entry["name"]:
                    continue
                resource = Resource(
                    group,
                    version,
                    entry["name"],
                    entry["kind"],
                    bool(entry.get("namespaced")),
                    f"{entry['name']}/status" in names,
                )
                resources.setdefault((resource.api_version, resource.kind), resource)
        self.resources = resources

    def find(self, api_version: str, kind: str) -> Resource | None:
        return self.resources.get((api_version, kind))


@dataclass
class LoadReport:
    """What was created, and every place where the server's object differs from the manifest on purpose."""

    created: list[tuple[str, str | None, str]] = field(default_factory=list)  # (collection path, ns, name)
    adjustments: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def note(self, identity: str, text: str) -> None:
        self.adjustments.append(f"{identity}: {text}")


def _identity(manifest: dict[str, Any]) -> str:
    metadata = manifest.get("metadata") or {}
    where = f"{metadata['namespace']}/" if metadata.get("namespace") else ""
    return f"{manifest.get('kind')}/{where}{metadata.get('name')}"


def _order(manifest: dict[str, Any]) -> int:
    kind = manifest.get("kind")
    if kind == "Namespace":
        return 0
    if kind == "CustomResourceDefinition":
        return 1
    if kind == "Event":
        return 4
    return 3 if (manifest.get("metadata") or {}).get("namespace") else 2


def cluster_objects(scenario: Scenario) -> list[dict[str, Any]]:
    """The scenario's manifests plus what the sandbox's server derives for it (as controllers would)."""
    from .apiserver import ObjectStore
    from .apiserver_discovery import RESOURCE_TYPES, resource_type_for_manifest

    manifests = [copy.deepcopy(obj) for obj in scenario.objects]
    given = {
        (obj.get("kind"), (obj.get("metadata") or {}).get("namespace") or "", obj["metadata"]["name"])
        for obj in manifests
    }
    # Kinds the sandbox's server does not know (custom resources, ...) are loaded as they are.
    store = ObjectStore(
        [
            obj
            for obj in manifests
            if resource_type_for_manifest(str(obj.get("apiVersion")), str(obj.get("kind")))
        ]
    )
    derived = []
    for resource_type in RESOURCE_TYPES:
        if resource_type.kind not in ("Namespace", "EndpointSlice", "Endpoints"):
            continue
        for obj in store.list(resource_type):
            metadata = obj["metadata"]
            if (resource_type.kind, metadata.get("namespace", ""), metadata["name"]) in given:
                continue
            derived.append(_derived_manifest(obj))
    return manifests + derived


def _derived_manifest(obj: dict[str, Any]) -> dict[str, Any]:
    manifest = copy.deepcopy(obj)
    for endpoint in manifest.get("endpoints") or []:
        (endpoint.get("targetRef") or {}).pop("uid", None)
    for subset in manifest.get("subsets") or []:
        for address in (subset.get("addresses") or []) + (subset.get("notReadyAddresses") or []):
            (address.get("targetRef") or {}).pop("uid", None)
    return manifest


def load_objects(
    client: RestClient, manifests: Iterable[dict[str, Any]], report: LoadReport | None = None
) -> LoadReport:
    """Create every manifest through the API (see the module docstring); raise ApiError on a real refusal.

    ``report`` is filled as objects are created, so a caller holding it can clear a load that failed
    half-way.
    """
    started = time.monotonic()
    report = report if report is not None else LoadReport()
    discovery = Discovery(client)
    uids: dict[tuple[str, str, str], str] = {}  # (kind, namespace, name) -> uid given by the server
    ordered = sorted((copy.deepcopy(m) for m in manifests), key=_order)
    for manifest in ordered:
        identity = _identity(manifest)
        resource = discovery.find(str(manifest.get("apiVersion")), str(manifest.get("kind")))
        if resource is None:
            raise ApiError(
                "POST",
                identity,
                404,
                {
                    "message": f"{manifest.get('apiVersion')}/{manifest.get('kind')} "
                    "is not served by this API server"
                },
            )
        created, new = _create(client, resource, manifest, uids, report)
        metadata = created["metadata"]
        if new:
            report.created.append(
                (resource.collection(metadata.get("namespace")), metadata.get("namespace"), metadata["name"])
            )
        uids[(resource.kind, metadata.get("namespace", ""), metadata["name"])] = metadata["uid"]
        if manifest.get("status") and resource.has_status:
            _write_status(client, resource, manifest, created, report)
        if resource.kind == "CustomResourceDefinition":
            _wait_established(client, resource, metadata["name"])
            discovery.refresh()
    report.seconds = round(report.seconds + time.monotonic() - started, 2)
    return report


def _object_path(resource: Resource, namespace: str | None, name: str) -> str:
    return f"{resource.collection(namespace)}/{name}"


_WORKLOAD_KINDS = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "ReplicationController")
PLACEHOLDER_IMAGE = "placeholder.invalid/container:0"


def _complete_pod_template(body: dict[str, Any], report: LoadReport) -> None:
    """A workload without a pod template (a sandbox scenario may omit it) gets the smallest valid one."""
    if body.get("kind") not in _WORKLOAD_KINDS:
        return
    spec = body.setdefault("spec", {})
    template = spec.setdefault("template", {})
    if (template.get("spec") or {}).get("containers"):
        return
    selector = spec.get("selector") or {}
    labels = (
        dict(selector.get("matchLabels") or {}) if body["kind"] != "ReplicationController" else dict(selector)
    )
    template.setdefault("metadata", {}).setdefault("labels", labels)
    template.setdefault("spec", {})["containers"] = [{"name": "main", "image": PLACEHOLDER_IMAGE}]
    report.note(
        _identity(body), "spec.template added (kube-apiserver requires a pod template with a container)"
    )


def _prepare(
    manifest: dict[str, Any], uids: dict[tuple[str, str, str], str], report: LoadReport
) -> dict[str, Any]:
    body = copy.deepcopy(manifest)
    _complete_pod_template(body, report)
    body.pop("status", None)
    metadata = body.setdefault("metadata", {})
    for key in _SERVER_METADATA:
        metadata.pop(key, None)
    for reference in metadata.get("ownerReferences") or []:
        owner = uids.get(
            (reference.get("kind"), metadata.get("namespace", ""), reference.get("name"))
        ) or uids.get((reference.get("kind"), "", reference.get("name")))
        # No garbage collector runs: an owner that is not loaded keeps a stable made-up uid.
        reference["uid"] = (
            owner or reference.get("uid") or str(uuid.uuid5(uuid.NAMESPACE_URL, str(reference)))
        )
    return body


def _create(
    client: RestClient,
    resource: Resource,
    manifest: dict[str, Any],
    uids: dict[tuple[str, str, str], str],
    report: LoadReport,
) -> tuple[dict[str, Any], bool]:
    """The created object, and False when it existed already (a namespace the server made itself)."""
    body = _prepare(manifest, uids, report)
    namespace = body["metadata"].get("namespace") if resource.namespaced else None
    identity = _identity(manifest)
    for _attempt in range(MAX_FIELD_DROPS + 1):
        try:
            return client.request("POST", resource.collection(namespace), body), True
        except ApiError as error:
            if error.code == 409 and resource.kind == "Namespace":
                # The server made it itself (default, kube-system, ...): give it the manifest's labels.
                return _update_existing(client, resource, body), False
            if error.code != 422 or not (
                _fill_required_data(body, error, identity, report)
                or _drop_refused_fields(body, error, identity, report)
            ):
                raise
    raise ApiError("POST", identity, 422, {"message": "too many refused fields"})


_REQUIRED_DATA = re.compile(r"^data\[(?P<key>[^\]]+)\]$")
_EMPTY_JSON_KEYS = (".dockerconfigjson", ".dockercfg")


def _fill_required_data(body: dict[str, Any], error: ApiError, identity: str, report: LoadReport) -> bool:
    """A typed Secret without its keys (scenarios keep no secret data): each required key, empty."""
    filled = False
    for cause in error.causes:
        match = _REQUIRED_DATA.match(str(cause.get("field") or ""))
        if body.get("kind") != "Secret" or not match or cause.get("reason") != "FieldValueRequired":
            continue
        key = match["key"]
        data = body.setdefault("data", {})
        if key in data:
            continue
        data[key] = "e30=" if key in _EMPTY_JSON_KEYS else ""  # base64 of "{}" / of ""
        report.note(
            identity, f"data[{key}] added empty ({cause.get('message')}; scenarios hold no secret values)"
        )
        filled = True
    return filled


def _update_existing(client: RestClient, resource: Resource, body: dict[str, Any]) -> dict[str, Any]:
    path = _object_path(resource, None, body["metadata"]["name"])
    current = client.get(path)
    for key in ("labels", "annotations"):
        if body["metadata"].get(key):
            current["metadata"].setdefault(key, {}).update(body["metadata"][key])
    return client.request("PUT", path, current)


def _write_status(
    client: RestClient,
    resource: Resource,
    manifest: dict[str, Any],
    created: dict[str, Any],
    report: LoadReport,
) -> None:
    identity = _identity(manifest)
    status = copy.deepcopy(manifest["status"])
    given_generation = (manifest.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    if isinstance(observed, int):
        assigned = created["metadata"].get("generation") or 1
        shifted = max(0, observed - (given_generation or 1) + assigned)
        if shifted != observed:
            status["observedGeneration"] = shifted
            report.note(
                identity,
                f"status.observedGeneration {observed} -> {shifted} "
                f"(generation {given_generation or 1} -> {assigned})",
            )
    path = (
        _object_path(resource, created["metadata"].get("namespace"), created["metadata"]["name"]) + "/status"
    )
    body = copy.deepcopy(created)
    # The server's own status fields (e.g. a pod's qosClass) stay unless the manifest says otherwise.
    body["status"] = {**(created.get("status") or {}), **status}
    for _attempt in range(MAX_FIELD_DROPS + 1):
        try:
            client.request("PUT", path, body)
            return
        except ApiError as error:
            if error.code == 409:  # changed since read (a server-side hook): read again and retry
                body["metadata"]["resourceVersion"] = client.get(path)["metadata"]["resourceVersion"]
                continue
            if error.code != 422 or not _drop_refused_fields(body, error, identity, report):
                raise
    raise ApiError("PUT", path, 422, {"message": "too many refused fields"})


def _drop_refused_fields(body: dict[str, Any], error: ApiError, identity: str, report: LoadReport) -> bool:
    """Remove each field a 422 names (a whole list when an element is named); False if none could be."""
    dropped = False
    for cause in error.causes:
        path = str(cause.get("field") or "")
        parts = [name if name else int(index) for name, index in _PATH_PART.findall(path)]
        if not parts or parts[0] in ("metadata", "apiVersion", "kind"):
            continue
        while parts and isinstance(parts[-1], int):
            parts.pop()  # an element of a list: drop the list
        if not parts:
            continue
        parent: Any = body
        for part in parts[:-1]:
            try:
                parent = parent[part]
            except (KeyError, IndexError, TypeError):
                parent = None
                break
        last = parts[-1]
        if not isinstance(parent, dict) or last not in parent:
            continue
        del parent[last]
        companion = _COMPANIONS.get(str(last))
        if companion:
            parent.pop(companion, None)
        report.note(identity, f"{path} dropped: {cause.get('message') or error.reason}")
        dropped = True
    return dropped


def _wait_established(client: RestClient, resource: Resource, name: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        crd = client.get(_object_path(resource, None, name))
        conditions = (crd.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
            return
        time.sleep(0.2)
    raise ApiError(
        "GET", name, 504, {"message": f"CustomResourceDefinition {name} not established in {timeout:g}s"}
    )


def clear_objects(client: RestClient, report: LoadReport, *, timeout: float = 60.0) -> None:
    """Delete what `load_objects` created, newest first, so the server can take another scenario.

    Deletion is immediate (grace period 0: no kubelet confirms a pod's end) and finalizers are removed
    (no controller would ever remove them); a namespace is finalized by hand, as no namespace
    controller empties it. A CustomResourceDefinition is the exception: kube-apiserver itself adds
    its cleanup finalizer on delete and removes it once the definition's objects are gone, so the
    call waits, up to `timeout` seconds, until every deleted object reads 404.
    """
    deleted = [f"{collection}/{name}" for collection, _namespace, name in report.created]
    for collection, _namespace, name in reversed(report.created):
        path = f"{collection}/{name}"
        try:
            current = client.get(path)
        except ApiError as error:
            if error.code == 404:
                continue
            raise
        if current["metadata"].get("finalizers"):
            client.request(
                "PATCH", path, {"metadata": {"finalizers": None}}, content_type="application/merge-patch+json"
            )
        try:
            # Background propagation: the default for some kinds (a batch/v1 Job) is to orphan dependents
            # through an `orphan` finalizer that only the garbage collector, not run here, would remove.
            client.request(
                "DELETE",
                path,
                {
                    "kind": "DeleteOptions",
                    "apiVersion": "v1",
                    "gracePeriodSeconds": 0,
                    "propagationPolicy": "Background",
                },
            )
        except ApiError as error:
            if error.code != 404:
                raise
        if collection == "/api/v1/namespaces":
            _finalize_namespace(client, name)
    report.created.clear()
    _wait_gone(client, deleted, time.monotonic() + timeout)


def _wait_gone(client: RestClient, paths: list[str], deadline: float) -> None:
    remaining = list(paths)
    while remaining:
        path = remaining[0]
        try:
            client.get(path)
        except ApiError as error:
            if error.code != 404:
                raise
            remaining.pop(0)
            continue
        if time.monotonic() > deadline:
            raise ApiError(
                "GET", path, 0, {"message": f"still present {len(remaining)} object(s) after deletion"}
            )
        time.sleep(0.1)


def _finalize_namespace(client: RestClient, name: str) -> None:
    path = f"/api/v1/namespaces/{name}"
    try:
        current = client.get(path)
    except ApiError as error:
        if error.code == 404:
            return
        raise
    current.setdefault("spec", {})["finalizers"] = []
    client.request("PUT", f"{path}/finalize", current)
