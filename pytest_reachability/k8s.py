"""Kubernetes object semantics shared by the suite, the diagnosis and the sandbox (no client needed).

How the API server and kube-proxy read a few fields, written once:

- Ingress rule hosts: an exact host or a ``*.`` wildcard covering exactly one more label;
- label selectors: a LabelSelector in wire form (``matchLabels``/``matchExpressions``, as Deployments and
  NetworkPolicies carry) and a Service's plain ``{key: value}`` selector;
- ports by number or name: a Service port picked by its number or name, its ``targetPort`` resolved against
  the containers' ports;
- owner references: the controlling owner of an object, and the Deployment behind a ReplicaSet;
- a container's history: whether what its last termination says is still going on, or the container has
  run and been ready since for longer than the kubelet's crash back-off.

Every function takes plain mappings (wire form) or the client's objects where it says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .moments import seconds_between

__all__ = [
    "batch_pod",
    "container_settled",
    "containers_ports",
    "controller_owner",
    "deployment_of_owner",
    "find_service_port",
    "ingress_host_matches",
    "ingress_path_matches",
    "port_declared",
    "replaced_pods",
    "resolve_target_port",
    "restarting_now",
    "restarts_are_history",
    "running_for",
    "selector_matches",
    "service_selects",
]

# Controllers that start a new pod in place of one that ended in phase Failed (an Evicted pod, say). A
# ReplicaSet leaves the failed pod object for the pod garbage collector (by default only past 12,500
# terminated pods); StatefulSets and DaemonSets delete it.
REPLACING_CONTROLLERS = ("ReplicaSet", "StatefulSet", "DaemonSet")

# The kubelet's back-off between restarts of a crashing container doubles up to 5 minutes: a container that
# has run, ready, for twice that is not crash-looping, and what ended its previous run is history.
SETTLED_AFTER_S = 600.0
# Restarts an hour and more behind a container that has run, ready, since are history: kubectl shows them as
# "7 (4d ago)"; they fail no check and explain no failure.
RESTARTS_FORGOTTEN_AFTER_S = 3600.0


# -- label selectors ------------------------------------------------------------------------------------


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector in wire form (``matchLabels``, ``matchExpressions``) matches ``labels``.

    ``{}`` matches all."""
    selector = selector or {}
    if not (selector.get("matchLabels") or {}).items() <= dict(labels).items():
        return False
    return all(_expression_holds(expression, labels) for expression in selector.get("matchExpressions") or [])


def _expression_holds(expression: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
    if operator == "In":
        return labels.get(key) in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    return True


def service_selects(selector: Mapping[str, Any] | None, labels: Mapping[str, Any] | None) -> bool:
    """A Service's plain selector (``{key: value}``) matches ``labels``: every pair present.

    An empty or missing selector matches nothing: such a Service gets its endpoints some other way
    (ExternalName, manually managed EndpointSlices), never from pods by label.
    """
    if not selector:
        return False
    labels = labels or {}
    return all(key in labels and str(labels[key]) == str(value) for key, value in selector.items())


# -- Ingress rules --------------------------------------------------------------------------------------


def ingress_host_matches(rule_host: str | None, host: str) -> bool:
    """An Ingress rule's host covers ``host`` (``*.example.com`` covers exactly one more label)."""
    return bool(rule_host) and ingress_host_name(rule_host or "") in ingress_names_covering(host)


def ingress_path_matches(path: str | None, path_type: str | None, request_path: str) -> bool:
    """An Ingress path matches ``request_path`` (its query dropped), as the Ingress API defines pathType:
    ``Exact`` the one path, case-sensitively; ``Prefix`` element by element (``/foo`` and ``/foo/`` match
    ``/foo`` and ``/foo/bar``, not ``/foobar``); ``ImplementationSpecific`` read as Prefix, as ingress-nginx
    reads it without regular expressions."""
    requested = request_path.split("?", 1)[0] or "/"
    if path_type == "Exact":
        return requested == (path or "/")
    prefix = (path or "/").rstrip("/")
    return not prefix or requested == prefix or requested.startswith(prefix + "/")


def ingress_host_name(name: str) -> str:
    """A host name as Ingress rules compare it: lower case, without the final dot."""
    return name.lower().rstrip(".")


def ingress_names_covering(host: str) -> list[str]:
    """The rule hosts (``ingress_host_name``) that cover ``host``: itself and the wildcard one label up."""
    host = ingress_host_name(host)
    head, _, rest = host.partition(".")
    return [host, f"*.{rest}"] if head else [host]


# -- ports by number or name ----------------------------------------------------------------------------


def _is_number(port: object) -> bool:
    return isinstance(port, int) or (isinstance(port, str) and port.isdigit())


def find_service_port(
    ports: Iterable[Mapping[str, Any]], wanted: int | str | None
) -> Mapping[str, Any] | None:
    """The Service port called ``wanted`` by number or by name; the first port when ``wanted`` is empty."""
    wanted_text = str(wanted) if wanted not in (None, "") else None
    return next(
        (
            port
            for port in ports
            if wanted_text is None or str(port.get("port")) == wanted_text or port.get("name") == wanted_text
        ),
        None,
    )


def resolve_target_port(
    target_port: int | str | None, container_ports: Iterable[Mapping[str, Any]]
) -> int | None:
    """The number a Service's ``targetPort`` means for a pod: a number as is, a name looked up in the
    pod's container ports (``{"containerPort": 8080, "name": "http"}``); None for a name none declares."""
    if _is_number(target_port):
        return int(target_port)  # type: ignore[arg-type]
    for port in container_ports:
        if target_port and port.get("name") == target_port and port.get("containerPort") is not None:
            return int(port["containerPort"])
    return None


def port_declared(target_port: int | str | None, container_ports: Iterable[Mapping[str, Any]]) -> bool:
    """``targetPort`` is one of these container ports, by number or by name (what kube-proxy needs)."""
    ports = list(container_ports)
    if _is_number(target_port):
        return int(target_port) in {port.get("containerPort") for port in ports}  # type: ignore[arg-type]
    return target_port is not None and any(port.get("name") == target_port for port in ports)


def containers_ports(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every declared port of a wire-form pod's containers."""
    return [
        port
        for container in (pod.get("spec") or {}).get("containers") or []
        for port in container.get("ports") or []
    ]


# -- owner references -----------------------------------------------------------------------------------


def _field(reference: Any, name: str) -> Any:
    return reference.get(name) if isinstance(reference, Mapping) else getattr(reference, name, None)


def controller_owner(references: Iterable[Any] | None) -> str | None:
    """``Kind/name`` of the controlling owner reference (the first reference when none controls), or None.

    Takes wire-form mappings or the client's ``V1OwnerReference`` objects.
    """
    references = list(references or [])
    if not references:
        return None
    chosen = next((ref for ref in references if _field(ref, "controller")), references[0])
    return f"{_field(chosen, 'kind')}/{_field(chosen, 'name')}"


def deployment_of_owner(owner: str | None) -> str | None:
    """The Deployment name behind a pod's owner ``ReplicaSet/<deployment>-<pod-template-hash>``, else None."""
    kind, _, name = str(owner or "").partition("/")
    return name.rsplit("-", 1)[0] if kind == "ReplicaSet" and name else None


# -- a container's history ------------------------------------------------------------------------------


def batch_pod(owner: Any) -> bool:
    """A pod a Job runs (``owner`` ``Job/<name>``): it is meant to run to completion, not to stay Running and
    Ready, and whether it succeeded is its Job's outcome (retried up to its backoffLimit)."""
    return str(owner or "").partition("/")[0] == "Job"


def replaced_pods(pods: Iterable[tuple[Any, Any, Any]]) -> set[Any]:
    """The names of the pods, given as ``(name, phase, owner)`` with ``owner`` as ``Kind/name``, that ended
    (phase ``Failed``) and whose controller runs another pod in their place now (one of the same owner, or
    of the same Deployment, that has not ended): they serve nothing and never run again, so they are no part
    of whether the workload runs now. A failed pod with nothing in its place still counts."""
    rows = list(pods)

    def family(owner: Any) -> tuple[str, str]:
        deployment = deployment_of_owner(owner)
        kind, _, name = str(owner or "").partition("/")
        return ("Deployment", deployment) if deployment else (kind, name)

    running = {
        family(owner) for _name, phase, owner in rows if owner and phase not in ("Failed", "Succeeded")
    }
    return {
        name
        for name, phase, owner in rows
        if phase == "Failed"
        and str(owner or "").partition("/")[0] in REPLACING_CONTROLLERS
        and family(owner) in running
    }


def running_for(state: Mapping[str, Any], read_at: Any) -> float | None:
    """Seconds a container (a ``container_states`` entry) had run, ready, when its pod was read at
    ``read_at`` (RFC 3339, the reader's clock, as kubectl measures "4d ago"); None when it is not running
    and ready, or a moment is unknown."""
    if state.get("state") != "running" or not state.get("ready"):
        return None
    return seconds_between(state.get("started_at"), read_at)


def container_settled(state: Mapping[str, Any], read_at: Any, after: float = SETTLED_AFTER_S) -> bool:
    """The container has run, ready, for at least ``after`` seconds: its last termination (and the events
    of its earlier runs) describe the past, not the run being diagnosed. Unknown moments never settle."""
    running = running_for(state, read_at)
    return running is not None and running >= after


def _completed_init(state: Mapping[str, Any]) -> bool:
    """An init container that has exited 0: its restarts are over, the pod went on."""
    return bool(state.get("init")) and state.get("state") == "terminated" and state.get("exit_code") == 0


def restarts_are_history(states: Iterable[Mapping[str, Any]], read_at: Any) -> bool:
    """Every container that restarted has run, ready, for an hour since, or is an init container that has
    completed (unknown moments: not history)."""
    restarted = [state for state in states if state.get("restarts")]
    return bool(restarted) and all(
        _completed_init(state) or container_settled(state, read_at, RESTARTS_FORGOTTEN_AFTER_S)
        for state in restarted
    )


def restarting_now(state: Mapping[str, Any], read_at: Any) -> bool:
    """The container has restarted more than once, the last time within the crash back-off's reach (10
    minutes) of the read: it is flapping now, whatever its count (kubectl: "4 (2m ago)"). Unknown moments:
    not known to be flapping."""
    if (state.get("restarts") or 0) < 2 or _completed_init(state):
        return False
    since = seconds_between(state.get("last_finished_at"), read_at)
    return since is not None and since < SETTLED_AFTER_S
