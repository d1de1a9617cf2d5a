"""The cluster view's snapshots of a scenario.

They are read from the sandbox's own API server and from the real one."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pytest_reachability.cluster import ALL_NAMESPACES, Cluster, ClusterError, ClusterErrorKind
from pytest_reachability.sandbox import apiserver
from pytest_reachability.sandbox.certs import write_sandbox_certificates
from pytest_reachability.sandbox.control_plane import ControlPlane
from pytest_reachability.sandbox.control_plane_sandbox import RealApiServer
from pytest_reachability.sandbox.scenario import Scenario

EMBEDDED_TOKEN = "differential-token-7f3a"

# Every read of the cluster view, across all namespaces: the view's own methods, so a field added to a
# snapshot type is compared without a change here.
READS: dict[str, Callable[[Cluster], list[Any]]] = {
    "nodes": lambda c: c.nodes(),
    "pods": lambda c: c.pods(ALL_NAMESPACES),
    "deployments": lambda c: c.deployments(ALL_NAMESPACES),
    "services": lambda c: c.services(ALL_NAMESPACES),
    "endpoint_slices": lambda c: c.endpoint_slices(ALL_NAMESPACES),
    "ingresses": lambda c: c.ingresses(ALL_NAMESPACES),
    "ingress_classes": lambda c: c.ingress_classes(),
    "network_policies": lambda c: c.network_policies(ALL_NAMESPACES),
    "events": lambda c: c.events(ALL_NAMESPACES),
}


def snapshot(kubeconfig: str) -> dict[str, list[dict[str, Any]]]:
    """Per read, its snapshots; a read the server refuses (a scenario's deny rules) as the refusal's kind,
    so both servers must refuse the same reads as well as serve the same objects."""
    cluster = Cluster.connect(kubeconfig=kubeconfig, timeout=20)
    taken: dict[str, list[dict[str, Any]]] = {}
    try:
        for name, read in READS.items():
            try:
                taken[name] = [item.to_evidence() for item in read(cluster)]
            except ClusterError as error:
                if error.kind is not ClusterErrorKind.FORBIDDEN:
                    raise
                taken[name] = [{"name": "<refused>", "refused": error.kind.value}]
        return taken
    finally:
        cluster.close()


@contextlib.contextmanager
def embedded_server(scenario: Scenario, directory: Path) -> Iterator[str]:
    """The sandbox's own API server over the scenario; yields a kubeconfig."""
    certificates = write_sandbox_certificates(directory / "pki-embedded", scenario.target.host)
    server = apiserver.scenario_server(scenario, EMBEDDED_TOKEN, certificates)
    server.start()
    try:
        kubeconfig = str(directory / "kubeconfig-embedded")
        apiserver.write_kubeconfig(
            kubeconfig,
            server_url=server.url,
            ca_file=certificates.ca_file,
            token=EMBEDDED_TOKEN,
            namespace=scenario.namespace,
        )
        yield kubeconfig
    finally:
        server.stop()


@contextlib.contextmanager
def real_server(
    scenario: Scenario, plane: ControlPlane, directory: Path
) -> Iterator[tuple[str, RealApiServer]]:
    """The scenario loaded into the real control plane (cleared afterwards); yields (kubeconfig, loader)."""
    certificates = write_sandbox_certificates(directory / "pki-real", scenario.target.host)
    real = RealApiServer(scenario, certificates, control_plane=plane)
    kubeconfig = str(directory / "kubeconfig-real")
    # The worker's control plane is shared by every module that loads scenarios into it, and events left
    # there by an earlier test (seen once: two Service/api events in production, of unknown origin) would
    # read as this scenario's: the comparison starts from none.
    subprocess.run(
        ["kubectl", "--kubeconfig", plane.kubeconfig(), "delete", "events", "--all", "--all-namespaces"],
        check=True,
        capture_output=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    try:
        real.start(kubeconfig, context="real")
        yield kubeconfig, real
    finally:
        real.stop()


def given_service_fields(scenario: Scenario) -> dict[tuple[str, str], dict[str, Any]]:
    """Per Service, the clusterIP and nodePorts its manifest fixes (the rest each server allocates)."""
    fixed = {}
    for service in scenario.objects_of_kind("Service"):
        spec = service.get("spec") or {}
        metadata = service["metadata"]
        fixed[(metadata["namespace"], metadata["name"])] = {
            "cluster_ip": spec.get("clusterIP"),
            "node_ports": {
                (p.get("port"), p.get("protocol") or "TCP"): p.get("nodePort")
                for p in spec.get("ports") or []
                if p.get("nodePort")
            },
        }
    return fixed


# Objects kube-apiserver keeps itself in every cluster: the `kubernetes` Service in `default` that
# fronts the API servers, and its EndpointSlice.
SERVER_OWN = {("services", "default", "kubernetes"), ("endpoint_slices", "default", "kubernetes")}


def comparable(read: str, items: list[dict[str, Any]], scenario: Scenario) -> list[dict[str, Any]]:
    """The documented exceptions applied: what each server allocates on its own is not compared."""
    fixed = given_service_fields(scenario)
    given = {(o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in scenario.objects}
    given_events = {
        (
            o["metadata"].get("namespace", ""),
            f"{(o.get('involvedObject') or {}).get('kind')}/{(o.get('involvedObject') or {}).get('name')}",
            o.get("reason"),
        )
        for o in scenario.objects_of_kind("Event")
    }
    result = []
    for item in items:
        key = (item.get("namespace", ""), item.get("name"))
        if (read, *key) in SERVER_OWN and key not in given:
            continue
        # Events kube-apiserver records itself, at a time of its own: about its ServiceCIDR in `default`,
        # and about loaded Services whose addresses its repair loops (every few minutes) find unallocated.
        if read == "events" and (item.get("namespace", ""), item.get("object"), item.get("reason")) not in (
            given_events
        ):
            continue
        if "read_at" in item:
            # When this client read the object, by its own clock: not the server's to agree on.
            item = {key: value for key, value in item.items() if key != "read_at"}
        if read == "services":
            item = dict(item)
            allocated = fixed.get(key, {"cluster_ip": None, "node_ports": {}})
            if not allocated["cluster_ip"]:
                item["cluster_ip"] = (
                    "<allocated>" if item["cluster_ip"] not in (None, "None") else item["cluster_ip"]
                )
            item["ports"] = [
                {
                    **port,
                    "node_port": port["node_port"]
                    if (port["port"], port["protocol"]) in allocated["node_ports"]
                    or port["node_port"] is None
                    else "<allocated>",
                }
                for port in item["ports"]
            ]
        result.append(item)
    return result


def differences(scenario: Scenario, embedded: dict[str, list], real: dict[str, list]) -> list[str]:
    """One line per read whose snapshots differ, naming the first differing object and field."""
    lines = []
    for read in READS:
        left, right = comparable(read, embedded[read], scenario), comparable(read, real[read], scenario)
        if left == right:
            continue
        names_left = [(i.get("namespace"), i.get("name") or i.get("object")) for i in left]
        names_right = [(i.get("namespace"), i.get("name") or i.get("object")) for i in right]
        if names_left != names_right:
            lines.append(f"{read}: embedded serves {names_left}, real serves {names_right}")
            continue
        for one, other in zip(left, right, strict=True):
            if one != other:
                fields = sorted(key for key in set(one) | set(other) if one.get(key) != other.get(key))
                detail = "; ".join(
                    f"{key}: embedded {one.get(key)!r} != real {other.get(key)!r}" for key in fields
                )
                lines.append(f"{read} {names_left[left.index(one)]}: {detail}")
    return lines
