"""Section 11, api-internal: the health check from inside the cluster, and what the API's pods logged.

The request goes through the API server's service proxy (a read-only GET), as ``kubectl get --raw`` would:
it reaches the pods without DNS, LoadBalancer or Ingress, so "healthy inside, unreachable outside"
shows as this section passing while api-health fails. The pods' access logs tell who the pods hear
from: when only health checks from node addresses appear, no client traffic reaches them.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import pytest

from pytest_reachability import prefetch
from pytest_reachability.health_body import describe_problem, read_health

pytestmark = pytest.mark.section("api-internal", requires=["cluster-access"])

LOG_TAIL = 200
# Access-log lines of common servers: uvicorn/gunicorn ("1.2.3.4:5678 - "GET ..."), werkzeug and nginx
# ("1.2.3.4 - - [date] "GET ..."): the client address, then the quoted request line.
ACCESS_LINE = re.compile(
    r'(?P<client>\d{1,3}(?:\.\d{1,3}){3}|\[?[0-9a-fA-F:]*:[0-9a-fA-F:]+\]?)(?::\d+)?\s+-.*?"'
    r'(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+"'
)


def parse_access_log(text: str, health_path: str, node_addresses: set[str]) -> dict:
    """Client addresses, health requests and requests from
    other than the nodes (kubelet, LB health checks)."""
    clients: list[str] = []
    health = external = 0
    for line in text.splitlines():
        match = ACCESS_LINE.search(line)
        if not match:
            continue
        client = match["client"].strip("[]")
        try:
            ipaddress.ip_address(client)
        except ValueError:
            continue
        if client not in clients:
            clients.append(client)
        if match["path"].split("?", 1)[0] == health_path:
            health += 1
        if client not in node_addresses:
            external += 1
    return {"client_addresses": clients, "health_requests": health, "external_requests": external}


@pytest.fixture
def api_service(target_service: Any) -> Any:
    if target_service.service is None:
        pytest.skip(
            f"Service {target_service.name} not found in namespace {target_service.namespace} (see section "
            "k8s-services)"
        )
    service = target_service.service
    if service.external_name:
        # kube-apiserver proxies only to the pods of a Service's EndpointSlices; an ExternalName has none.
        pytest.skip(
            f"Service {service.name} is an ExternalName for {service.external_name}: the API server's "
            "service proxy reaches pods only (see test_external_names_resolve)"
        )
    return service


def proxied_health(cluster: Any, service: Any, path: str, shared_results: Any) -> tuple[Any, Any]:
    """(answer, ClusterError) of ``GET path`` through the API server's proxy to the Service's first port;
    asked once per Service and path (a fleet's hosts often share one backend Service)."""
    port = service.ports[0] if service.ports else None
    if port is None:
        pytest.skip(f"Service {service.name} has no ports")
    return prefetch.cluster_outcome(
        shared_results,
        f"suite-proxy:{cluster.server}:{service.namespace}:{service.name}:{port}:{path}",
        lambda: cluster.proxy_get(service.name, port.get("name") or port["port"], path),
    )


def pod_logs(cluster: Any, pod: Any, shared_results: Any) -> tuple[Any, Any]:
    """(the last LOG_TAIL lines of the pod's log, ClusterError), read once per session."""
    return prefetch.cluster_outcome(
        shared_results,
        f"suite-logs:{cluster.server}:{pod.namespace}:{pod.name}:{LOG_TAIL}",
        lambda: cluster.pod_logs(pod.name, pod.namespace, tail_lines=LOG_TAIL),
    )


def prefetch_for_target(work: Any) -> None:
    """The in-cluster health answer and the logs of the target's pods, read at session start."""
    found = work.target_service()
    if found is None or found.service is None:
        return
    cluster = work.cluster()
    service = found.service
    reads = [lambda pod=pod: pod_logs(cluster, pod, work.shared) for pod in found.pods]
    if service.ports and not service.external_name:
        reads.append(lambda: proxied_health(cluster, service, work.settings.health_path, work.shared))
    prefetch.run_together(reads)


def test_health_through_the_service_proxy(
    cluster, api_service, reachability_settings, shared_results, evidence
):
    response, error = proxied_health(cluster, api_service, reachability_settings.health_path, shared_results)
    assert error is None, f"service proxy to {api_service.name}: {error.message}"
    evidence.record("in_cluster_health", response)
    where = f"in-cluster GET {response.path} via Service {api_service.name}:{response.port}"
    assert not response.no_endpoints, f"{where}: {response.error}; expected a ready pod to answer 200"
    assert response.ok, (
        f"{where} got {response.status} {response.error or response.body[:80]!r}; expected 2xx/3xx"
    )


def test_in_cluster_health_body_reports_healthy(
    cluster, api_service, reachability_settings, shared_results, evidence
):
    response, error = proxied_health(cluster, api_service, reachability_settings.health_path, shared_results)
    if error is not None:
        pytest.skip(
            f"service proxy to {api_service.name}: {error.message} (see "
            "test_health_through_the_service_proxy)"
        )
    if response.error is not None or response.status is None:
        pytest.skip(
            f"no answer to read (see test_health_through_the_service_proxy): {response.error or 'no status'}"
        )
    evidence.record("in_cluster_health", response)
    problem = describe_problem(read_health(response.body))
    assert problem is None, (
        f"in-cluster GET {response.path} via Service {api_service.name}:{response.port} answered "
        f"{response.status} with {problem}; expected the body to report healthy"
    )


def test_api_pod_logs_are_readable(
    cluster, cluster_reads, target_service, reachability_settings, shared_results, evidence
):
    pods = target_service.pods
    if not pods:
        pytest.skip(f"no pods behind Service {target_service.name}: no logs to read")
    try:
        nodes = cluster_reads.nodes()
    except (
        pytest.skip.Exception,
        pytest.fail.Exception,
    ):  # node addresses only sharpen the reading; a forbidden node list must not hide the logs
        nodes = []
    node_addresses = {a["address"] for node in nodes for a in node.addresses}
    unreadable = []
    for pod in pods:
        text, error = pod_logs(cluster, pod, shared_results)
        if error is not None:
            unreadable.append(f"{pod.name}: {error.message}")
            continue
        text = text or ""  # an empty log comes back as None
        lines = text.splitlines()
        facts = parse_access_log(text, reachability_settings.health_path, node_addresses)
        if (
            facts["health_requests"]
            and not facts["external_requests"]
            and (facts["health_requests"] == sum(1 for line in lines if ACCESS_LINE.search(line)))
        ):
            facts["note"] = (
                f"only health checks from node addresses ({', '.join(facts['client_addresses'])}) "
                f"appear: no client traffic reached the pod"
            )
        evidence.record(
            "pod_logs",
            {"namespace": pod.namespace, "pod": pod.name, "tail": LOG_TAIL, "lines": lines[-20:], **facts},
        )
    assert not unreadable, f"cannot read pod logs: {'; '.join(unreadable)}; expected read access to pods/log"
