"""The namespace's objects as the built-in suite and user tests read them: each kind once per run.

``ClusterReads`` wraps the read-only :class:`~pytest_reachability.cluster.Cluster` view: every list is
read once per run and shared by every xdist worker, and a refused or failed read becomes a one-line
skip (forbidden) or failure of the test that asked. The ``cluster_reads`` fixture hands it out.

Example::

    def test_no_pod_restarts_much(cluster_reads):
        restarting = [pod.name for pod in cluster_reads.pods() if pod.restarts > 5]
        assert not restarting
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from .cluster import ALL_NAMESPACES, ClusterError, ClusterErrorKind

if TYPE_CHECKING:
    from .cluster import (
        Cluster,
        DeploymentInfo,
        EndpointSliceInfo,
        EventInfo,
        IngressClassInfo,
        IngressInfo,
        NetworkPolicyInfo,
        NodeInfo,
        PodInfo,
        ServiceInfo,
    )
    from .fixtures import SharedResults


class ClusterReads:
    """Lists of cluster objects, read once per run and shared across xdist workers."""

    def __init__(self, cluster: Cluster, shared: SharedResults) -> None:
        self.cluster = cluster
        self.namespace: str = cluster.namespace
        self._shared = shared

    def _read(
        self, what: str, read: Callable[[], Any], *, optional: bool = False, context: bool = False
    ) -> Any:
        """``optional``: a resource the server may not have (404 skips); ``context``: refused gives []."""
        try:
            return self._shared.get(self._key(what), read)
        except ClusterError as error:
            if context and error.kind in (ClusterErrorKind.FORBIDDEN, ClusterErrorKind.NOT_FOUND):
                if error.kind is ClusterErrorKind.FORBIDDEN:
                    # Nothing fails for lack of it, but the run says which grant would add the evidence.
                    warnings.warn(
                        f"{what} not read, so missing from the evidence: {error.message}", stacklevel=2
                    )
                return []
            if error.kind is ClusterErrorKind.FORBIDDEN or (
                optional and error.kind is ClusterErrorKind.NOT_FOUND
            ):
                pytest.skip(error.message)
            pytest.fail(error.message, pytrace=False)

    # Each read's key word and the Cluster method behind it (the keys of the session's shared results).
    KINDS = {
        "nodes": "nodes",
        "pods": "pods",
        "deployments": "deployments",
        "services": "services",
        "endpointslices": "endpoint_slices",
        "ingresses": "ingresses",
        "ingressclasses": "ingress_classes",
        "ingress-controllers": "ingress_controller_pods",
        "networkpolicies": "network_policies",
        "events": "events",
    }

    @classmethod
    def side_by_side(cls) -> int:
        """How many lists :meth:`warm` sends at once: one per kind (the ingress controllers' one per
        label they are looked for by) and the Services of every namespace."""
        from .cluster import INGRESS_CONTROLLER_LABELS

        return len(cls.KINDS) - 1 + len(INGRESS_CONTROLLER_LABELS) + 1

    def warm(self) -> None:
        """Read every kind now, at the same time (started at session start by ``prefetch``); a read that
        fails is left for the test that asks, which reads it again and reports why."""
        from . import prefetch

        def read(what: str, method: str) -> None:
            try:
                self._shared.get(self._key(what), getattr(self.cluster, method))
            except Exception:  # noqa: BLE001 - see above
                pass

        def read_everywhere() -> None:  # what finding the target's Service asks next (no warning here)
            try:
                self._shared.get(self._everywhere_key(), lambda: self.cluster.services(ALL_NAMESPACES))
            except Exception:  # noqa: BLE001 - see above
                pass

        threads = [
            prefetch.start_background(read, f"reachability-read {item[0]}", item)
            for item in self.KINDS.items()
        ]
        threads.append(prefetch.start_background(read_everywhere, "reachability-read services *"))
        for thread in threads:
            thread.join(timeout=600)  # each read ends within the cluster timeout; this only bounds the wait

    def _everywhere_key(self) -> str:
        return f"suite-cluster:{self.cluster.server}:*:services"

    def _key(self, what: str) -> str:
        return f"suite-cluster:{self.cluster.server}:{self.namespace}:{what}"

    def nodes(self) -> list[NodeInfo]:
        return self._read("nodes", self.cluster.nodes)

    def pods(self) -> list[PodInfo]:
        return self._read("pods", self.cluster.pods)

    def deployments(self) -> list[DeploymentInfo]:
        return self._read("deployments", self.cluster.deployments)

    def services(self) -> list[ServiceInfo]:
        return self._read("services", self.cluster.services)

    def endpoint_slices(self) -> list[EndpointSliceInfo]:
        return self._read("endpointslices", self.cluster.endpoint_slices)

    def ingresses(self) -> list[IngressInfo]:
        return self._read("ingresses", self.cluster.ingresses)

    def ingress_classes(self) -> list[IngressClassInfo]:
        return self._read("ingressclasses", self.cluster.ingress_classes, optional=True)

    def ingress_controller_pods(self) -> list[PodInfo]:
        return self._read("ingress-controllers", self.cluster.ingress_controller_pods)

    def network_policies(self) -> list[NetworkPolicyInfo]:
        return self._read("networkpolicies", self.cluster.network_policies)

    def events(self) -> list[EventInfo]:
        """Events explain findings but decide none: when they may not be read there are none."""
        return self._read("events", self.cluster.events, context=True)

    def services_everywhere(self) -> list[ServiceInfo]:
        """Services of every namespace (empty when listing every namespace is forbidden)."""
        try:
            return self._shared.get(self._everywhere_key(), lambda: self.cluster.services(ALL_NAMESPACES))
        except ClusterError as error:
            if error.kind is ClusterErrorKind.FORBIDDEN:
                warnings.warn(f"Services of other namespaces not read: {error.message}", stacklevel=2)
            return []

    def services_named(self, name: str) -> list[ServiceInfo]:
        """Services called ``name`` in any namespace readable."""
        return [service for service in self.services_everywhere() if service.name == name]

    def services_in(self, namespace: str) -> list[ServiceInfo]:
        """Services of another namespace (empty when that cannot be read)."""
        if namespace == self.namespace:
            return self.services()
        return [service for service in self.services_everywhere() if service.namespace == namespace]
