"""Wiring rules: how the objects between the edge and the pods connect — LoadBalancers, Services and their
selectors and ports, EndpointSlices, Ingress rules and backends, IngressClasses, TLS Secrets,
NetworkPolicies.

Each rule compares what one object names with what exists (a Service port, a container port, a Service, a
class) and says which side to change.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..k8s import deployment_of_owner, ingress_host_matches, selector_matches, service_selects
from ..probes.dns import NO_SUCH_NAME
from .facts import Facts, probe_ok
from .theory import Theory, curl_of, dig, kubectl, openssl_certificate
from .wording import answer_line, short
from .wording import probe_line as _probe_line
from .wording import service_label as _service_label

# Sections whose checks fail when the target's Service has no working backend.
SERVING_SECTIONS = (
    "endpoints",
    "api-health",
    "api-internal",
    "tcp",
    "performance",
    "services",
    "integration",
    "results-storage",
    "database",
)
EDGE_SECTIONS = ("dns", "tcp", "tls", "api-health", "performance")


def _first_failing_probe(facts: Facts, source: str | None = None) -> dict[str, Any] | None:
    """The first HTTP probe (of ``source``, or any) that failed."""
    return next((p for p in facts.http_probes(source) if not probe_ok(p)), None)


# --- Services and endpoints ---------------------------------------------------------------------------------


def loadbalancer_pending(facts: Facts) -> Theory | None:
    """A LoadBalancer Service that never got an address."""
    pending = [s for s in facts.services() if s.get("type") == "LoadBalancer" and s.get("lb_pending")]
    if not pending:
        return None
    target_name = facts.target_service_name()
    service = next((s for s in pending if s.get("name") == target_name), pending[0])
    confidence = 0.75 if service.get("name") == target_name or target_name is None else 0.4
    evidence = [
        f"Service {service.get('namespace')}/{service.get('name')} type LoadBalancer has no external address "
        "(pending)"
    ]
    for event in facts.of("event"):
        if event.get("object") == f"Service/{service.get('name')}" and event.get("type") == "Warning":
            evidence.append(f"event {event.get('reason')} x{event.get('count')}: {event.get('message')}")
            confidence += 0.15
            break
    dns_probes = facts.http_probes("dns")
    if dns_probes and not any(probe_ok(p) for p in dns_probes):
        evidence.append(_probe_line(dns_probes[0]))
        confidence += 0.05
    name = service.get("name")
    title = (
        f"the `{name}` LoadBalancer is pending: no external address was assigned, so nothing serves the "
        "public address"
    )
    confirm = [
        kubectl(facts.context, f"get svc {name} -o wide"),
        kubectl(facts.context, f"get events --field-selector involvedObject.name={name}"),
    ]
    fix = [
        "Fix what the cloud controller reports in the events (quota, annotations, subnet), then",
        kubectl(facts.context, f"get svc {name} -w") + "  # until EXTERNAL-IP is set",
        f"Point the DNS record of {facts.context.host or 'the target'} at the new address",
    ]
    verify = [
        kubectl(facts.context, f"get svc {name} -o jsonpath='{{.status.loadBalancer.ingress[*].ip}}'")
        + "  # expect an address"
    ]
    theory = Theory(
        "loadbalancer-pending",
        title,
        confidence,
        evidence,
        confirm,
        fix,
        subjects=[f"Service/{name}"],
        verify=verify,
    )
    theory.explains = facts.explain(("k8s-services",), [str(name)])
    if name == target_name or target_name is None:
        theory.explains += [
            n for n in facts.explain(EDGE_SECTIONS + ("api-internal",)) if n not in theory.explains
        ]
    return theory


def _balancers_selecting_the_same_pods(facts: Facts) -> list[dict[str, Any]] | None:
    """The first group of two or more LoadBalancer Services selecting the same pods (without pods: the same
    selector)."""
    groups: dict[tuple, list[dict]] = {}
    for service in facts.services():
        if service.get("type") != "LoadBalancer" or not service.get("selector"):
            continue
        pods = tuple(sorted(p.get("name") for p in facts.selected_pods(service)))
        key = pods if pods else tuple(sorted((service.get("selector") or {}).items()))
        groups.setdefault(key, []).append(service)
    return next((g for g in groups.values() if len(g) > 1), None)


def _dns_points_at(dns: set[str], service: Mapping[str, Any]) -> bool:
    return bool(dns & set(service.get("lb_addresses") or []))


def _duplicate_evidence(facts: Facts, duplicates: list[dict[str, Any]], pointed: list[Any]) -> list[str]:
    evidence = [
        f"Service {s.get('name')}: type LoadBalancer, selector {s.get('selector')}, addresses "
        f"{', '.join(s.get('lb_addresses') or []) or 'pending'}"
        for s in duplicates
    ]
    pods = facts.selected_pods(duplicates[0])
    if pods:
        evidence.append(f"both select pod(s) {', '.join(p.get('name') for p in pods)}")
    evidence.append(f"DNS points at {'`' + pointed[0] + '`' if pointed else 'neither of them'}")
    return evidence


def duplicate_loadbalancers(facts: Facts) -> Theory | None:
    """Two or more LoadBalancer Services select the same pods."""
    duplicates = _balancers_selecting_the_same_pods(facts)
    if not duplicates:
        return None
    target_name = facts.target_service_name()
    dns = set(facts.dns_addresses())
    keep = next((s for s in duplicates if s.get("name") == target_name), None) or next(
        (s for s in duplicates if _dns_points_at(dns, s)), duplicates[0]
    )
    listing = " and ".join(
        f"{_service_label(s)} ({', '.join(s.get('lb_addresses') or ['pending'])})" for s in duplicates
    )
    title = (
        f"duplicate LoadBalancer Services select the same pods: {listing} — keep {_service_label(keep)}, "
        "delete the other"
    )
    pointed = [s.get("name") for s in duplicates if _dns_points_at(dns, s)]
    evidence = _duplicate_evidence(facts, duplicates, pointed)
    confidence = 0.45 + (0.1 if not pointed else 0.0)
    confirm = [kubectl(facts.context, "get svc -o wide")]
    confirm += [kubectl(facts.context, f"describe svc {s.get('name')}") for s in duplicates]
    fix = [
        kubectl(facts.context, f"delete svc {s.get('name')}") + "  # after checking nothing else uses it"
        for s in duplicates
        if s is not keep
    ]
    verify = [
        kubectl(facts.context, "get svc -o wide")
        + f"  # expect one LoadBalancer for these pods: {keep.get('name')}"
    ]
    theory = Theory(
        "duplicate-loadbalancers",
        title,
        confidence,
        evidence,
        confirm,
        fix,
        subjects=[s.get("name") for s in duplicates],
        verify=verify,
    )
    theory.explains = facts.explain(("k8s-services",), ["duplicate"])
    return theory


def service_in_other_namespace(facts: Facts) -> Theory | None:
    """The target Service is not in the namespace looked at, but exists in another."""
    for data in facts.of("target_service"):
        if data.get("found") or not data.get("found_in"):
            continue
        name, namespace, found_in = data.get("name"), data.get("namespace"), data.get("found_in")
        title = (
            f"Service `{name}` does not exist in namespace {namespace} but in {', '.join(found_in)} — the "
            "run (or the deploy) uses the wrong namespace"
        )
        evidence = [
            f"Service {name} not found in {namespace} ({data.get('how')}); found in: {', '.join(found_in)}"
        ]
        # The namespace where it is missing is listed by name: "No resources found", exit 0.
        confirm = [kubectl(facts.context, f"get svc --field-selector metadata.name={name}", namespace)]
        confirm += [kubectl(facts.context, f"get svc {name}", ns) for ns in found_in]
        fix = [
            f"Re-run with --namespace {found_in[0]} if that is where the service lives, or",
            f"deploy the Service to {namespace} (kubectl apply -n {namespace} -f <manifest>)",
        ]
        theory = Theory(
            "service-in-other-namespace", title, 0.8, evidence, confirm, fix, subjects=[f"Service/{name}"]
        )
        theory.explains = facts.explain()
        return theory
    return None


def _ready_addresses(facts: Facts, service: Mapping[str, Any]) -> list[str]:
    slices = facts.endpoint_slices_of(str(service.get("name")), service.get("namespace"))
    return [a for s in slices for a in s.get("ready_addresses") or []]


def _pod_labels(facts: Facts, namespace: str | None, wanted: Callable[[str], bool]) -> list[str]:
    """``key=value`` of every label the pods of the namespace carry whose key passes ``wanted``."""
    return sorted(
        {f"{k}={v}" for p in facts.pods(namespace) for k, v in (p.get("labels") or {}).items() if wanted(k)}
    )


def _selector_evidence(facts: Facts, service: Mapping[str, Any], selector: Mapping[str, Any]) -> list[str]:
    name, ns = service.get("name"), service.get("namespace")
    carried = _pod_labels(facts, ns, lambda key: key != "pod-template-hash")
    evidence = [
        f"Service {ns}/{name} selector: {selector}",
        f"labels the pods of {ns} carry: {', '.join(carried) or 'none'}",
        "Deployments' pod templates: "
        + (
            ", ".join(
                f"{d.get('name')} {d.get('template_labels') or d.get('selector')}"
                for d in facts.deployments(ns)
            )
            or "none recorded"
        ),
    ]
    slices = facts.endpoint_slices_of(str(name), ns)
    if slices:
        evidence.append(f"EndpointSlices of Service {name}: {len(slices)}, ready addresses: none")
    return evidence


def selector_matches_no_pods(facts: Facts) -> Theory | None:
    """The target Service's selector matches no pod and no Deployment's pod template: a selector typo."""
    service = facts.target_service()
    if service is None or not service.get("selector") or not facts.of("pod"):
        return None
    if facts.selected_pods(service) or facts.deployments_for(service):
        return None  # pods exist, or a Deployment would make them (scaled to zero, rollout): not a typo
    name, ns = service.get("name"), service.get("namespace")
    selector = service.get("selector") or {}
    close = _pod_labels(facts, ns, lambda key: key in selector)
    title = (
        f"Service `{name}` selects {', '.join(f'{k}={v}' for k, v in selector.items())}, which matches no "
        "pod "
        f"and no Deployment's pod template: the selector is wrong, so the Service has no endpoints"
    )
    if close:
        title += f" (the pods carry {', '.join(close[:3])})"
    evidence = _selector_evidence(facts, service, selector)
    confirm = [
        kubectl(facts.context, f"get svc {name} -o jsonpath='{{.spec.selector}}'", ns),
        kubectl(facts.context, "get pods --show-labels", ns),
        kubectl(facts.context, f"get endpointslices -l kubernetes.io/service-name={name}", ns),
    ]
    fix = [
        kubectl(facts.context, f"edit svc {name}", ns)
        + "  # set spec.selector to the labels of the pods (see get pods --show-labels)"
    ]
    theory = Theory(
        "selector-matches-no-pods", title, 0.85, evidence, confirm, fix, subjects=[f"Service/{name}"]
    )
    theory.explains = facts.explain(SERVING_SECTIONS)
    return theory


def no_ready_endpoints(facts: Facts) -> Theory | None:
    """The target Service has pods, but none of them is a ready endpoint (a symptom: the pod theories say
    why)."""
    service = facts.target_service()
    if service is None or not service.get("selector"):
        return None
    name = service.get("name")
    slices = facts.endpoint_slices_of(str(name), service.get("namespace"))
    proxied = [c for c in facts.in_cluster_health() if c.get("service") == name]
    if not slices and not any(c.get("no_endpoints") for c in proxied):
        return None
    if _ready_addresses(facts, service):
        return None
    pods = facts.selected_pods(service)
    if not pods and not facts.deployments_for(service) and facts.of("pod"):
        return None  # a selector matching nothing: selector-matches-no-pods
    evidence = [f"EndpointSlices of Service {name}: {len(slices)}, ready addresses: none"]
    for check in proxied:
        if check.get("no_endpoints") or check.get("error"):
            evidence.append(
                f"in-cluster GET {check.get('path')} via the API server proxy: "
                f"{check.get('error') or check.get('status')}"
            )
    if pods:
        title = f"Service `{name}` has no ready endpoints: its {len(pods)} pod(s) are not ready"
        evidence.append("pods: " + ", ".join(f"{p.get('name')} ready={p.get('ready')}" for p in pods))
        fix = [
            kubectl(facts.context, f"describe pod {pods[0].get('name')}") + "  # fix why the pod is not ready"
        ]
    else:
        title = f"Service `{name}` has no ready endpoints: no pod of its Deployment exists"
        fix = [
            kubectl(facts.context, f"describe deployment {facts.deployments_for(service)[0].get('name')}")
            if facts.deployments_for(service)
            else kubectl(facts.context, "get pods --show-labels")
        ]
    confirm = [
        kubectl(facts.context, f"get endpointslices -l kubernetes.io/service-name={name}"),
        kubectl(facts.context, "get pods --show-labels"),
    ]
    theory = Theory("no-ready-endpoints", title, 0.6, evidence, confirm, fix, subjects=[f"Service/{name}"])
    theory.explains = facts.explain(SERVING_SECTIONS)
    return theory


# Sections whose checks fail when some of the requests reach pods that do not serve the app.
_REQUEST_SECTIONS = (
    "api-health",
    "api-internal",
    "performance",
    "services",
    "integration",
    "results-storage",
)


def _workload(pod: Mapping[str, Any]) -> str:
    """``Deployment/name`` behind a pod (through its ReplicaSet), else its controlling owner, else the pod."""
    deployment = deployment_of_owner(pod.get("owner"))
    if deployment:
        return f"Deployment/{deployment}"
    return str(pod.get("owner") or f"Pod/{pod.get('name')}")


def _serving_pods(facts: Facts, service: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The recorded pods the Service's ready endpoints point at (the EndpointSlices' targetRefs), or, with no
    EndpointSlice recorded, the ready pods its selector matches."""
    slices = facts.endpoint_slices_of(str(service.get("name")), service.get("namespace"))
    if not slices:
        return [p for p in facts.selected_pods(service) if p.get("ready")]
    pods = {p.get("name"): p for p in facts.pods(service.get("namespace"))}
    names = [
        str(t.get("target")).partition("/")[2]
        for s in slices
        for t in s.get("targets") or []
        if t.get("ready") and str(t.get("target") or "").startswith("Pod/")
    ]
    return [pods[n] for n in dict.fromkeys(names) if n in pods]


def _images(pods: list[dict[str, Any]]) -> str:
    images = {str(c.get("image")) for p in pods for c in p.get("container_states") or [] if c.get("image")}
    return ", ".join(sorted(i.rsplit("/", 1)[-1] for i in images))


def _workload_groups(facts: Facts, service: Mapping[str, Any]) -> tuple[dict[str, list[dict[str, Any]]], str]:
    """The Service's serving pods by workload, and the workload meant to serve it (the Deployment named like
    the Service, else the one with most endpoints)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for pod in _serving_pods(facts, service):
        groups.setdefault(_workload(pod), []).append(pod)
    main = f"Deployment/{service.get('name')}"
    if groups and main not in groups:
        main = max(groups, key=lambda g: len(groups[g]))
    return groups, main


def _overlap_evidence(service: Mapping[str, Any], groups: Mapping[str, list[dict[str, Any]]]) -> list[str]:
    evidence = [
        f"Service {service.get('namespace')}/{service.get('name')} selector: {service.get('selector')}"
    ]
    for group, pods in groups.items():
        names = ", ".join(str(p.get("name")) for p in pods[:3])
        more = f" and {len(pods) - 3} more" if len(pods) > 3 else ""
        images = _images(pods)
        evidence.append(f"endpoints of {group}: {names}{more}" + (f" (image {images})" if images else ""))
    return evidence


def _overlap_fix(facts: Facts, service: Mapping[str, Any], main: str, others: list[str]) -> list[str]:
    name, ns = service.get("name"), service.get("namespace")
    main_kind, _, main_name = main.partition("/")
    fix = [
        f"Give Service {name} a selector only {main}'s pods carry: add a label to {main_kind.lower()} "
        f"{main_name}'s pod template first (a rollout), then to the selector — "
        + kubectl(facts.context, f"edit svc {name}", ns)
    ]
    for group in others:
        kind, _, other = group.partition("/")
        if kind == "Deployment":
            fix.append(
                f"or, if {group} is meant to share the traffic (a canary), take it out until it is fixed: "
                + kubectl(facts.context, f"scale deployment/{other} --replicas=0", ns)
            )
    return fix


def service_selector_overlap(facts: Facts) -> Theory | None:
    """The target Service's endpoints are pods of more than one workload (a selector another app's pods
    also match) while requests fail: the requests that land on the other workload's pods.

    Firm (80%) only when the observed error rate is close to the other workloads' share of the endpoints;
    otherwise a weak alternative (35%) that never takes other theories' failures as its own."""
    service = facts.target_service()
    if service is None or not service.get("selector"):
        return None
    explains = facts.explain(_REQUEST_SECTIONS)
    groups, main = _workload_groups(facts, service)
    if not explains or len(groups) < 2:
        return None
    name, ns = service.get("name"), service.get("namespace")
    others = [g for g in groups if g != main]
    total = sum(len(pods) for pods in groups.values())
    stray = sum(len(groups[g]) for g in others)
    selector = ",".join(f"{k}={v}" for k, v in (service.get("selector") or {}).items())
    report = facts.performance() or {}
    errors, requests = report.get("errors") or 0, report.get("requests") or 0
    rate = errors / requests if 0 < errors < requests else None
    matched = rate is not None and abs(rate - stray / total) <= 0.15
    title = (
        f"Service `{name}` selects {selector}, which also matches the pods of {', '.join(others)}: "
        f"{stray} of its {total} ready endpoints {'is' if stray == 1 else 'are'} theirs, not {main}'s"
    )
    if matched:
        title += (
            f", and {errors} of {requests} requests failed ({rate:.0%}) — likely the ones that land on them"
        )
    else:
        title += " — requests that land on them may be the ones failing"
    evidence = _overlap_evidence(service, groups)
    if rate is not None:
        evidence.append(f"error rate {rate:.2f} of {requests} requests; endpoints {stray}/{total}")
    confirm = [
        kubectl(
            facts.context,
            f"get pods -l {selector} -o custom-columns=POD:.metadata.name,"
            "OWNER:.metadata.ownerReferences[0].name,IMAGE:.spec.containers[*].image",
            ns,
        ),
        kubectl(
            facts.context,
            f"get endpointslices -l kubernetes.io/service-name={name} "
            "-o jsonpath='{range .items[*].endpoints[*]}{.targetRef.name}{\"\\n\"}{end}'",
            ns,
        ),
    ]
    fix = _overlap_fix(facts, service, main, others)
    confidence = 0.8 if matched else 0.35
    theory = Theory(
        "service-selector-overlap",
        title,
        confidence,
        evidence,
        confirm,
        fix,
        subjects=[f"Service/{name}", *others],
    )
    theory.explains = explains
    return theory


_NEW_REPLICASET = re.compile(r'[Rr]eplica ?[Ss]et "([^"]+)"')


def _new_replicaset(deployment: Mapping[str, Any]) -> str | None:
    """The ReplicaSet a rollout is moving to, as the Deployment's Progressing condition names it
    (``ReplicaSet "api-6d4f8c7b9" is progressing.``, ``Created new replica set "api-6d4f8c7b9"``)."""
    for condition in deployment.get("conditions") or []:
        if condition.get("type") == "Progressing":
            found = _NEW_REPLICASET.search(str(condition.get("message") or ""))
            if found:
                return found.group(1)
    return None


def _error_rate(facts: Facts) -> tuple[int, int, float] | None:
    """(errors, requests, rate) of the performance run when some, not all, requests failed."""
    report = facts.performance() or {}
    errors, requests = report.get("errors") or 0, report.get("requests") or 0
    return (errors, requests, errors / requests) if 0 < errors < requests else None


def rollout_new_pods_failing(facts: Facts) -> Theory | None:
    """A rollout in progress whose new ReplicaSet's pods are among the ready endpoints, and about their share
    of the requests fails: the new release fails, and the rollout is replacing the working pods with it."""
    service, observed = facts.target_service(), _error_rate(facts)
    if service is None or observed is None:
        return None
    pods = _serving_pods(facts, service)
    for deployment in facts.deployments_for(service):
        new = _new_replicaset(deployment)
        if deployment.get("rollout_complete") is not False or new is None:
            continue
        fresh = [p for p in pods if p.get("owner") == f"ReplicaSet/{new}"]
        if fresh and len(fresh) < len(pods) and abs(observed[2] - len(fresh) / len(pods)) <= 0.15:
            return _new_pods_theory(facts, deployment, new, fresh, len(pods), observed)
    return None


def _new_pods_theory(
    facts: Facts,
    deployment: Mapping[str, Any],
    new: str,
    fresh: list[dict[str, Any]],
    total: int,
    observed: tuple[int, int, float],
) -> Theory:
    name, ns = deployment.get("name"), deployment.get("namespace")
    errors, requests, rate = observed
    images = _images(fresh)
    title = (
        f"Deployment {name} is mid-rollout (revision {deployment.get('revision') or '?'}: "
        f"{deployment.get('rollout_message')}) and the pods of its new ReplicaSet {new}"
        + (f" ({images})" if images else "")
        + f" are {len(fresh)} of the {total} ready endpoints, while {errors} of {requests} requests failed "
        f"({rate:.0%}): the new release likely fails, and the rollout is replacing the working pods with it"
    )
    evidence = [
        f"Deployment {ns}/{name}: {deployment.get('rollout_message')}; new ReplicaSet {new}",
        f"endpoints of ReplicaSet {new}: {', '.join(str(p.get('name')) for p in fresh[:3])}",
        f"error rate {rate:.2f} of {requests} requests; new pods {len(fresh)}/{total}",
    ]
    confirm = [kubectl(facts.context, f"logs {fresh[0].get('name')} --tail 50", ns)]
    fix = [
        kubectl(facts.context, f"rollout pause deployment/{name}", ns)
        + "  # stop it replacing the working pods",
        kubectl(facts.context, f"rollout undo deployment/{name}", ns)
        + "  # if the change was in a ConfigMap or Secret both revisions read, restore that instead",
    ]
    theory = Theory(
        "rollout-new-pods-failing", title, 0.8, evidence, confirm, fix, subjects=[f"Deployment/{name}"]
    )
    theory.explains = facts.explain(_REQUEST_SECTIONS) + facts.explain(("workloads",), [str(name)])
    return theory


# What a client meets at a load balancer whose nodes drop its traffic.
_DROPPED = ("tcp_timeout", "empty_reply", "reset", "read_timeout", "tls_timeout")


def _balancer_backends(facts: Facts, service: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ready pods behind a LoadBalancer: its ready endpoints' pods in the target's namespace, else the
    ingress controller pods it selects."""
    if service.get("namespace") == facts.context.namespace:
        return _serving_pods(facts, service)
    selector = service.get("selector") or {}
    return [
        p
        for p in facts.of("ingress_controller")
        if p.get("ready")
        and p.get("namespace") == service.get("namespace")
        and service_selects(selector, p.get("labels"))
    ]


def _dropped_at(facts: Facts, service: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Probes that failed as dropped traffic at the Service's load balancer addresses."""
    owner = f"Service {service.get('namespace')}/{service.get('name')}"
    addresses = {a for a, o in facts.loadbalancer_addresses().items() if o == owner}
    addresses |= set(service.get("lb_addresses") or [])
    probes = [
        *facts.http_probes("dns"),
        *facts.http_probes("loadbalancer"),
        *facts.of("tcp"),
        *facts.of("tls"),
    ]
    return [p for p in probes if p.get("address") in addresses and p.get("failure") in _DROPPED]


def loadbalancer_no_local_endpoints(facts: Facts) -> Theory | None:
    """A LoadBalancer with ``externalTrafficPolicy: Local`` whose ready pods all run on nodes labelled
    ``node.kubernetes.io/exclude-from-external-load-balancers``: the load balancer sends only to nodes
    without a local endpoint, which drop the traffic (kube-proxy forwards Local traffic to the node's own
    pods only)."""
    excluded = {n.get("name") for n in facts.nodes() if n.get("excluded_from_load_balancers")}
    if not excluded:
        return None
    for service in facts.all_services():
        if service.get("type") != "LoadBalancer" or service.get("external_traffic_policy") != "Local":
            continue
        pods = _balancer_backends(facts, service)
        dropped = _dropped_at(facts, service)
        if not pods or not dropped or any(p.get("node") not in excluded for p in pods):
            continue
        return _no_local_endpoints_theory(facts, service, pods, dropped)
    return None


def _no_local_endpoints_theory(
    facts: Facts, service: Mapping[str, Any], pods: list[dict[str, Any]], dropped: list[dict[str, Any]]
) -> Theory:
    name, ns = service.get("name"), service.get("namespace")
    nodes = sorted({str(p.get("node")) for p in pods})
    addresses = list(dict.fromkeys(str(p.get("address")) for p in dropped))
    title = (
        f"Service {ns}/{name} has externalTrafficPolicy: Local and its ready pods run only on "
        f"{', '.join(nodes)}, which {'is' if len(nodes) == 1 else 'are'} excluded from load balancers "
        "(node.kubernetes.io/exclude-from-external-load-balancers): the load balancer sends to the other "
        f"nodes, which have no local endpoint and drop the traffic — {', '.join(addresses)} does not answer"
    )
    evidence = [_probe_line(p) for p in dropped[:2]]
    evidence += [f"pod {p.get('namespace')}/{p.get('name')} runs on node {p.get('node')}" for p in pods[:3]]
    evidence.append(
        f"nodes labelled node.kubernetes.io/exclude-from-external-load-balancers: {', '.join(nodes)}"
    )
    confirm = [
        kubectl(facts.context, f"get svc {name} -o jsonpath='{{.spec.externalTrafficPolicy}}'", ns),
        kubectl(facts.context, "get nodes -L node.kubernetes.io/exclude-from-external-load-balancers"),
        kubectl(facts.context, "get pods -o wide", ns),
    ]
    fix = [
        f"Run the pods where the load balancer sends: schedule them on nodes without the label (their "
        f"nodeSelector / affinity), or remove the label from {nodes[0]} if it was not meant — "
        + kubectl(
            facts.context, f"label node {nodes[0]} node.kubernetes.io/exclude-from-external-load-balancers-"
        ),
        f"or set externalTrafficPolicy: Cluster on Service {name} (every node forwards; the client's source "
        "address is lost)",
    ]
    theory = Theory(
        "loadbalancer-no-local-endpoints", title, 0.85, evidence, confirm, fix, subjects=addresses
    )
    theory.explains = facts.explain(EDGE_SECTIONS, [*addresses, *_DROPPED])
    return theory


def _first_unmatched_port(
    service: Mapping[str, Any], numbers: set[Any], names: set[Any]
) -> tuple[dict[str, Any], Any, bool] | None:
    """The first Service port whose targetPort (a number, or a name) no container port matches, with that
    targetPort and whether it is a name."""
    for port in service.get("ports") or []:
        target = port.get("target_port", port.get("targetPort"))
        if target is None:
            continue
        by_name = not str(target).isdigit()
        matches = (target in names) if by_name else (int(target) in numbers)
        if not matches:
            return port, target, by_name
    return None


def _targetport_title(
    name: Any, port: Mapping[str, Any], target: Any, by_name: bool, listening: str, numbers: set[Any]
) -> str:
    if by_name:
        return (
            f"Service `{name}` forwards port {port.get('port')} to the named targetPort `{target}`, "
            "which "
            f"no container of its pods declares (they declare {listening}): the Service has no usable "
            "port"
        )
    return (
        f"Service `{name}` forwards port {port.get('port')} to targetPort {target}, "
        f"but its pods listen on {', '.join(str(n) for n in sorted(numbers))}"
    )


def _refused_in_cluster(facts: Facts, name: Any) -> list[dict[str, Any]]:
    """In-cluster checks through the Service that failed to connect to a pod."""
    return [
        c
        for c in facts.in_cluster_health()
        if c.get("service") == name
        and c.get("error")
        and ("refused" in str(c.get("error")) or "dial" in str(c.get("error")))
    ]


def targetport_mismatch(facts: Facts) -> Theory | None:
    """A Service port's targetPort names no port of the pods it selects (by number, or by name)."""
    service = facts.target_service()
    pods = facts.selected_pods(service) if service is not None else []
    container_ports = {
        (cp.get("containerPort"), cp.get("name")) for p in pods for cp in p.get("container_ports") or []
    }
    if service is None or not container_ports:
        return None
    numbers = {n for n, _ in container_ports}
    unmatched = _first_unmatched_port(service, numbers, {n for _, n in container_ports if n})
    if unmatched is None:
        return None
    port, target, by_name = unmatched
    name, ns = service.get("name"), service.get("namespace")
    listening = ", ".join(f"{n} ({nm})" if nm else str(n) for n, nm in sorted(container_ports, key=str))
    title = _targetport_title(name, port, target, by_name, listening, numbers)
    evidence = [
        f"Service {name} port {port.get('port')} -> targetPort {target}",
        "container ports: " + listening,
    ]
    confidence = 0.85 if by_name else 0.75
    for check in _refused_in_cluster(facts, name):
        evidence.append(f"in-cluster GET {check.get('path')} via Service {name}: {check.get('error')}")
        confidence += 0.1
    failing = _first_failing_probe(facts)
    if failing is not None:
        evidence.append(_probe_line(failing))
        confidence += 0.05
    pod_ports = f"get pod {pods[0].get('name')} -o jsonpath='{{.spec.containers[*].ports}}'"
    confirm = [
        kubectl(facts.context, f"get svc {name} -o jsonpath='{{.spec.ports}}'", ns),
        kubectl(facts.context, pod_ports, ns),
    ]
    fix = [
        kubectl(
            facts.context,
            f"patch svc {name} --type=json -p "
            f'\'[{{"op":"replace","path":"/spec/ports/0/targetPort","value":{sorted(numbers)[0]}}}]\'',
            ns,
        )
    ]
    theory = Theory(
        "targetport-mismatch", title, confidence, evidence, confirm, fix, subjects=[f"Service/{name}"]
    )
    theory.explains = facts.explain(SERVING_SECTIONS)
    return theory


# --- Ingress ------------------------------------------------------------------------------------------------


def _host_ingresses(facts: Facts) -> list[dict[str, Any]]:
    """The Ingresses with a rule for the target's host (every Ingress when no host is known)."""
    host = facts.context.host
    return facts.ingresses_for_host(host) if host else facts.of("ingress")


def _ingress_backends(facts: Facts) -> Iterator[tuple[dict[str, Any], str, dict[str, Any]]]:
    """``(Ingress, route, path)`` of every backend of the host's Ingresses; the route reads ``host/path``."""
    for ingress in _host_ingresses(facts):
        for rule in ingress.get("rules") or []:
            for path in rule.get("paths") or []:
                yield ingress, f"{rule.get('host')}{path.get('path') or '/'}", path


def _ingress_kubectl(facts: Facts, ingress: Mapping[str, Any], verb: str, options: str = "") -> str:
    """``kubectl VERB ingress NAME OPTIONS`` in the Ingress's namespace."""
    return kubectl(facts.context, f"{verb} ingress {ingress.get('name')}{options}", ingress.get("namespace"))


def _failing_probe_lines_at(facts: Facts, ingress: Mapping[str, Any]) -> list[str]:
    """The first failing probe of a DNS answer, when DNS answers the Ingress's address (else nothing)."""
    failing = [p for p in facts.http_probes("dns") if not probe_ok(p)]
    if failing and set(facts.dns_addresses()) & set(ingress.get("addresses") or []):
        return [_probe_line(failing[0])]
    return []


def _edge_failures(facts: Facts, ingress: Mapping[str, Any]) -> list[str]:
    """Failing edge checks at the Ingress's own addresses (what a broken Ingress explains)."""
    addresses = [str(a) for a in ingress.get("addresses") or []]
    if not set(addresses) & set(facts.dns_addresses()):
        return facts.explain(("api-health", "tcp", "tls"), addresses) if addresses else []
    return facts.explain(EDGE_SECTIONS)


def _controller_addresses(facts: Facts, controller: Mapping[str, Any]) -> set[str]:
    """The LoadBalancer addresses of Services in the ingress controller's namespace."""
    return {
        a
        for a, owner in facts.loadbalancer_addresses().items()
        if f"Service {controller.get('namespace')}/" in owner
    }


def _missing_rule_evidence(facts: Facts, host: str, controller: Mapping[str, Any]) -> tuple[list[str], float]:
    evidence = [
        f"ingress controller pod {controller.get('namespace')}/{controller.get('name')} is "
        f"{controller.get('phase')}",
        f"Ingresses seen: {len(facts.of('ingress'))}; none has a rule for host {host}",
    ]
    confidence = 0.5
    controller_addresses = _controller_addresses(facts, controller)
    if set(facts.dns_addresses()) & controller_addresses:
        confidence = 0.85  # traffic goes to the controller, which has no route for the host
    evidence += [_probe_line(p) for p in facts.http_probes() if p.get("address") in controller_addresses]
    elsewhere = [d for d in facts.of("target_service") if not d.get("found") and d.get("found_in")]
    if elsewhere:
        # The Service lives in another namespace: its Ingress probably does too.
        confidence = 0.3
        evidence.append(
            f"the target Service is in {', '.join(elsewhere[0]['found_in'])}, not in the namespace looked at"
        )
    return evidence, confidence


def _ingress_manifest(facts: Facts, host: str) -> str:
    """``kubectl apply`` of an Ingress of the default class routing the host to the target's Service."""
    service = facts.target_service()
    backend = service.get("name") if service else "<service>"
    port = ((service or {}).get("ports") or [{}])[0].get("port", 80)
    class_name = (
        next((c.get("name") for c in facts.of("ingress_class") if c.get("is_default")), None) or "nginx"
    )
    return (
        f"{facts.context.kubectl} apply -f - <<'EOF'\n"
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n"
        f"  name: {backend}-ingress\n  namespace: {facts.context.namespace}\nspec:\n"
        f"  ingressClassName: {class_name}\n"
        f"  rules:\n  - host: {host}\n    http:\n      paths:\n      - path: /\n        pathType: Prefix\n"
        f"        backend:\n          service:\n            name: {backend}\n            port:\n             "
        f" number: {port}\nEOF"
    )


def ingress_missing_rule(facts: Facts) -> Theory | None:
    """An ingress controller runs, but no Ingress has a rule for the target host."""
    host = facts.context.host
    controllers = facts.ingress_controller_running()
    if not host or not controllers or facts.context.is_ip:
        return None
    if facts.ingresses_for_host(host):
        return None
    controller = controllers[0]
    evidence, confidence = _missing_rule_evidence(facts, host, controller)
    title = (
        f"no Ingress routes {host} although {controller.get('name', 'an ingress controller')} runs: the "
        "controller answers the host with its default backend"
    )
    confirm = [
        kubectl(facts.context, "get ingress -A", ""),
        kubectl(facts.context, "get pods", controller.get("namespace")),
    ]
    fix = [
        _ingress_manifest(facts, host),
        "or, if the LoadBalancer Service is meant to serve the host directly, point DNS at it and ignore the "
        "controller",
    ]
    verify = [kubectl(facts.context, "get ingress") + f"  # expect a rule for host {host}"]
    theory = Theory(
        "ingress-missing-rule", title, confidence, evidence, confirm, fix, subjects=[host], verify=verify
    )
    theory.explains = facts.explain(("ingress",), [host])
    if confidence > 0.5:
        theory.explains += [n for n in facts.explain(EDGE_SECTIONS, ["404"]) if n not in theory.explains]
    return theory


def _ingress_backend_theory(
    facts: Facts,
    ingress: Mapping[str, Any],
    rule: str,
    title: str,
    evidence: list[str],
    confidence: float,
    service_check: str,
    fix_note: str,
    subject: str,
    explained_by: str,
) -> Theory:
    """A theory about what an Ingress backend names: the failing probe at the Ingress's address joins the
    evidence (and raises the confidence to 0.9); confirm reads the Ingress and runs ``service_check`` in
    its namespace; the fix edits the Ingress."""
    at_edge = _failing_probe_lines_at(facts, ingress)
    confirm = [
        _ingress_kubectl(facts, ingress, "get", " -o yaml"),
        kubectl(facts.context, service_check, ingress.get("namespace")),
    ]
    fix = [_ingress_kubectl(facts, ingress, "edit") + f"  # {fix_note}"]
    theory = Theory(
        rule, title, 0.9 if at_edge else confidence, evidence + at_edge, confirm, fix, subjects=[subject]
    )
    theory.explains = facts.explain(("ingress",), [explained_by]) + _edge_failures(facts, ingress)
    return theory


def ingress_backend_missing(facts: Facts) -> Theory | None:
    """The Ingress rule for the host routes to a Service that does not exist."""
    names = {s.get("name") for s in facts.services()}
    if not names:
        return None
    for ingress, route, path in _ingress_backends(facts):
        service = path.get("service")
        if not service or service in names:
            continue
        existing = sorted(n for n in names if n)
        namespace = ingress.get("namespace")
        guess = facts.target_service_name() or next(iter(existing), "<service>")
        return _ingress_backend_theory(
            facts,
            ingress,
            "ingress-backend-missing",
            f"Ingress `{ingress.get('name')}` routes {route} to Service `{service}`, which does not exist in "
            f"{namespace}",
            [
                f"Ingress {namespace}/{ingress.get('name')} backend: {service}:{path.get('port')}",
                f"Services in {namespace}: {', '.join(existing)}",
            ],
            0.8,
            # Lists by name: exits 0 with "No resources found" where `get svc NAME` would exit 1.
            f"get svc --field-selector metadata.name={service}",
            f"set the backend service name to `{guess}`",
            subject=service,
            explained_by=service,
        )
    return None


def _unresolved_aliases(facts: Facts) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """``(Service, DNS report)`` of each ExternalName Service whose name no resolver has an address for,
    every resolver saying so (NXDOMAIN or no records), as ``test_external_names_resolve`` recorded it."""
    services = {(s.get("namespace"), s.get("name")): s for s in facts.all_services()}
    for report in facts.of("external_name_dns"):
        answers = report.get("answers") or []
        if report.get("addresses") or not answers:
            continue
        if not all(a.get("failure") in NO_SUCH_NAME for a in answers):
            continue
        service = services.get((report.get("namespace"), report.get("service")))
        if service is not None and service.get("external_name"):
            yield service, report


def external_name_unresolvable(facts: Facts) -> Theory | None:
    """A Service the target's traffic goes to (the target's own, or a backend of the host's Ingress) is an
    ExternalName alias for a name that does not exist: whatever resolves it, an ingress controller or a
    client in the cluster, gets no address to connect to."""
    backends = {
        (ingress.get("namespace"), path.get("service")): (ingress, route)
        for ingress, route, path in _ingress_backends(facts)
    }
    target = facts.target_service_name()
    for service, report in _unresolved_aliases(facts):
        name, namespace = service.get("name"), service.get("namespace")
        alias = service.get("external_name")
        ingress, route = backends.get((namespace, name), (None, None))
        answers = report.get("answers") or []
        said = "; ".join(sorted({f"{a.get('rcode')} from {a.get('resolver')}" for a in answers}))
        who = (
            f"Ingress `{ingress.get('name')}` routes {route} to it, and its controller gets no address"
            if ingress is not None
            else "clients of the Service get no address"
        )
        evidence = [
            f"Service {namespace}/{name}: type ExternalName, externalName {alias}",
            *(answer_line(a, alias) for a in answers),
        ]
        at_edge = _failing_probe_lines_at(facts, ingress) if ingress is not None else []
        serves_target = ingress is not None or name == target
        theory = Theory(
            "external-name-unresolvable",
            f"Service `{name}` is an ExternalName for {alias}, which does not resolve ({said}): {who}",
            0.9 if at_edge else (0.7 if serves_target else 0.5),
            evidence + at_edge,
            [
                kubectl(facts.context, f"get service {name} -o jsonpath='{{.spec.externalName}}'", namespace),
                dig(alias, answers[0].get("resolver") if answers else None),
            ],
            [
                kubectl(facts.context, f"edit service {name}", namespace)
                + "  # set spec.externalName to the name that serves it (or give the Service a selector)"
            ],
            subjects=[name, alias],
        )
        theory.explains = facts.explain(("endpoints",), [alias]) + (
            _edge_failures(facts, ingress) if ingress is not None else []
        )
        return theory
    return None


def ingress_class_missing(facts: Facts) -> Theory | None:
    """The Ingress names an IngressClass that does not exist (or none, and there is no default), or one that
    no running controller serves: controllers publish their address in the status of the Ingresses they
    admit."""
    classes = facts.of("ingress_class")
    if not classes:
        return None
    known = {c.get("name") for c in classes}
    default = any(c.get("is_default") for c in classes)
    for ingress in _host_ingresses(facts):
        wanted = ingress.get("class_name")
        if wanted in known or (wanted is None and default):
            theory = _ingress_class_unserved(facts, ingress, classes)
            if theory is not None:
                return theory
            continue
        what = (
            f"IngressClass `{wanted}`, which does not exist"
            if wanted
            else "no IngressClass, and none is the default"
        )
        title = f"Ingress `{ingress.get('name')}` names {what}: no controller serves it"
        evidence = [
            f"Ingress {ingress.get('name')} class: {wanted}",
            f"IngressClasses: {', '.join(sorted(k for k in known if k))}",
        ]
        confirm = [kubectl(facts.context, "get ingressclass", ""), _ingress_kubectl(facts, ingress, "get")]
        fix = [
            _ingress_kubectl(facts, ingress, "edit")
            + f"  # spec.ingressClassName: {sorted(k for k in known if k)[0]}"
        ]
        theory = Theory(
            "ingress-class-missing", title, 0.75, evidence, confirm, fix, subjects=[ingress.get("name")]
        )
        theory.explains = facts.explain(("ingress",), ["IngressClass"]) + _edge_failures(facts, ingress)
        return theory
    return None


def _class_of(ingress: Mapping[str, Any], default: str | None) -> str | None:
    """The IngressClass an Ingress gets: the one it names, else the default class."""
    return ingress.get("class_name") or default


def _unserved_evidence(
    facts: Facts,
    ingress: Mapping[str, Any],
    wanted: str,
    controller: Any,
    served: Mapping[str | None, Mapping[str, Any]],
) -> list[str]:
    evidence = [
        f"Ingress {ingress.get('namespace')}/{ingress.get('name')}: class {wanted}, no address in "
        "status.loadBalancer",
        f"IngressClass {wanted}: controller {controller}",
    ]
    evidence += [
        f"Ingress {i.get('namespace')}/{i.get('name')}: class {name}, address "
        f"{', '.join(i.get('addresses') or [])}"
        for name, i in sorted(served.items(), key=lambda item: str(item[0]))
    ][:2]
    running = facts.ingress_controller_running()
    evidence.append(
        "ingress controller pods running: "
        + ", ".join(f"{p.get('namespace')}/{p.get('name')}" for p in running[:3])
    )
    return evidence


def _served_elsewhere(
    facts: Facts, wanted: str | None, default: str | None
) -> dict[str | None, dict[str, Any]]:
    """Class -> an Ingress of another class than ``wanted`` that a controller admitted (it has an
    address)."""
    return {
        _class_of(i, default): i
        for i in facts.of("ingress")
        if i.get("addresses") and _class_of(i, default) != wanted
    }


def _unserved_commands(
    facts: Facts, ingress: Mapping[str, Any], controller: Any, served: Mapping[str | None, Any]
) -> tuple[list[str], list[str]]:
    """Confirm and fix of an Ingress whose class no running controller serves."""
    confirm = [
        kubectl(facts.context, "get ingressclass", "") + "  # CONTROLLER of each class",
        _ingress_kubectl(facts, ingress, "get") + "  # ADDRESS stays empty",
    ]
    fix = [
        _ingress_kubectl(facts, ingress, "edit")
        + f"  # spec.ingressClassName: {sorted(n for n in served if n)[0]}",
        f"or install a controller started for {controller} (ingress-nginx: --controller-class={controller})",
    ]
    return confirm, fix


def _ingress_class_unserved(
    facts: Facts, ingress: Mapping[str, Any], classes: list[dict[str, Any]]
) -> Theory | None:
    """The Ingress's class exists, yet no controller admitted the Ingress (no address in its status) while
    the controllers running here do publish addresses on the Ingresses of other classes."""
    if ingress.get("addresses") or not facts.ingress_controller_running():
        return None
    default = next((c.get("name") for c in classes if c.get("is_default")), None)
    wanted = _class_of(ingress, default)
    served = _served_elsewhere(facts, wanted, default)
    if not served or wanted is None:
        return None  # controllers that publish no status: an empty one proves nothing
    controller = next((c.get("controller") for c in classes if c.get("name") == wanted), None)
    served_names = ", ".join(f"`{name}`" for name in sorted(n for n in served if n))
    title = (
        f"Ingress `{ingress.get('name')}` names IngressClass `{wanted}` (controller {controller}), which no "
        "running "
        f"controller serves: the Ingress has no address, while Ingresses of class {served_names} have one"
    )
    evidence = _unserved_evidence(facts, ingress, wanted, controller, served)
    confidence = 0.7
    served_addresses = {str(a) for i in served.values() for a in i.get("addresses") or []}
    refused = [
        p for p in facts.http_probes() if p.get("address") in served_addresses and p.get("status") == 404
    ]
    if refused:
        evidence.append(_probe_line(refused[0]))
        confidence += 0.05
    confirm, fix = _unserved_commands(facts, ingress, controller, served)
    theory = Theory(
        "ingress-class-missing", title, confidence, evidence, confirm, fix, subjects=[ingress.get("name")]
    )
    theory.explains = facts.explain(("ingress",), ["IngressClass"]) + facts.explain(
        EDGE_SECTIONS, sorted(served_addresses)
    )
    return theory


# "TLS secrets missing: production/letsencrypt-prod, ..." (the ingress section), or "secret X ... missing".
_SECRETS_MISSING_LIST = re.compile(r"secrets? missing:\s*([\w./-]+)", re.IGNORECASE)
_SECRET_MISSING = re.compile(
    r"secret\s+`?([a-z0-9][a-z0-9./-]*)`?[^;]*?(?:is missing|not found|does not exist)", re.IGNORECASE
)


def ingress_tls_secret_missing(facts: Facts) -> Theory | None:
    """An Ingress TLS section names a Secret the ingress section found missing."""
    for test in facts.failing_tests("ingress"):
        match = _SECRETS_MISSING_LIST.search(test.reason or "") or _SECRET_MISSING.search(test.reason or "")
        if not match:
            continue
        namespace, _, secret = match.group(1).rpartition("/")
        ingress = next(
            (i for i in facts.of("ingress") if any(t.get("secret") == secret for t in i.get("tls") or [])),
            None,
        )
        namespace = namespace or (ingress or {}).get("namespace") or facts.context.namespace
        title = (
            f"the TLS Secret `{secret}` of "
            f"{('Ingress `' + ingress.get('name') + '`') if ingress else 'the Ingress'} does not exist: "
            "the controller serves its default certificate"
        )
        evidence = [f"{test.nodeid}: {test.reason}"]
        # Listed by name: "No resources found" (exit 0) confirms the absence.
        confirm = [
            kubectl(facts.context, f"get secret --field-selector metadata.name={secret}", namespace),
            kubectl(
                facts.context,
                f"get ingress {ingress.get('name') if ingress else ''} -o yaml".replace("  ", " "),
                namespace,
            ),
        ]
        fix = [
            f"Create the certificate Secret {secret} in {namespace} (cert-manager: kubectl get certificate "
            "to see why "
            f"it was not issued; by hand: kubectl create secret tls {secret} --cert=... --key=...)"
        ]
        theory = Theory("ingress-tls-secret-missing", title, 0.7, evidence, confirm, fix, subjects=[secret])
        theory.explains = facts.explain(("ingress",), [secret]) + facts.explain(("tls",))
        return theory
    return None


TLS_CERTIFICATE_FAILURES = ("tls_untrusted", "tls_hostname")


def ingress_tls_host_missing(facts: Facts) -> Theory | None:
    """The host's Ingress has TLS entries, none listing the host: the controller has no certificate for it
    and answers with its default one (ingress-nginx: the self-signed "Kubernetes Ingress Controller Fake
    Certificate"). Claimed only when a certificate failure was seen at that Ingress's address: a controller
    whose default certificate is valid for the host (--default-ssl-certificate) fails nothing."""
    host = facts.context.host
    if not host:
        return None
    for ingress in _host_ingresses(facts):
        entries = ingress.get("tls") or []
        listed = [name for entry in entries for name in entry.get("hosts") or []]
        if not entries or any(not entry.get("hosts") for entry in entries):
            continue  # no TLS here (terminated before the controller), or an entry for every host
        if any(ingress_host_matches(name, host) for name in listed):
            continue
        addresses = {str(a) for a in ingress.get("addresses") or []}
        failures = [
            p
            for p in facts.http_probes() + facts.of("tls")
            if p.get("failure") in TLS_CERTIFICATE_FAILURES and p.get("address") in addresses
        ]
        if not failures:
            continue
        name, namespace = ingress.get("name"), ingress.get("namespace")
        title = (
            f"Ingress `{name}` has TLS entries for {', '.join(listed)}, not for {host}: the controller has "
            f"no certificate for {host} and answers with its default one, which clients reject"
        )
        evidence = [
            f"Ingress {namespace}/{name} routes {host}; its spec.tls hosts are {', '.join(listed)}",
            _probe_line({**failures[0], "source": failures[0].get("source", "dns")}),
        ]
        confirm = [
            _ingress_kubectl(facts, ingress, "get", " -o jsonpath='{.spec.tls}'"),
            openssl_certificate(failures[0].get("address"), failures[0].get("port") or 443, host),
        ]
        fix = [
            _ingress_kubectl(facts, ingress, "edit")
            + f"  # add {host} to the hosts of a spec.tls entry whose Secret's certificate covers it"
        ]
        theory = Theory("ingress-tls-host-missing", title, 0.85, evidence, confirm, fix, subjects=[host])
        theory.explains = facts.explain(("tls",)) + facts.explain(
            ("api-health", "performance"), list(addresses)
        )
        return theory
    return None


# --- network policy -----------------------------------------------------------------------------------------


def _policies_isolating(facts: Facts, pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The NetworkPolicies of the pod's namespace that select it and restrict its ingress."""
    return [
        p
        for p in facts.of("network_policy")
        if p.get("namespace") == pod.get("namespace")
        and selector_matches(p.get("pod_selector"), pod.get("labels") or {})
        and "Ingress" in (p.get("policy_types") or [])
    ]


def _dropped_at_the_edge(probe: Mapping[str, Any]) -> bool:
    """A probe that met a dropped connection: a timeout, or the edge's gateway error."""
    return probe.get("failure") in ("read_timeout", "tcp_timeout") or probe.get("status") in (502, 503, 504)


def _admit_the_edge(facts: Facts, service: Mapping[str, Any], port: Any) -> list[str]:
    """The fix: a NetworkPolicy admitting the ingress controller's namespace (or any address) to the port."""
    controllers = facts.ingress_controller_running()
    peer = ""
    if controllers and controllers[0].get("namespace"):
        # kubernetes.io/metadata.name is the one namespace label every namespace carries (set by the API
        # server).
        peer = (
            "  - from:\n    - namespaceSelector:\n        matchLabels:\n"
            f"          kubernetes.io/metadata.name: {controllers[0].get('namespace')}\n    ports:\n"
        )
    return [
        "Admit the edge: add an ingress rule to the policy for the pods' port from the ingress controller's "
        "namespace "
        "(by its kubernetes.io/metadata.name label) or, for a LoadBalancer straight to the pods, from any "
        "address, e.g.",
        kubectl(
            facts.context,
            "apply -f - <<'EOF'\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n"
            f"  name: {service.get('name')}-allow-http\nspec:\n  podSelector:\n    matchLabels: "
            f"{dict(service.get('selector') or {})}\n"
            f"  policyTypes: [Ingress]\n  ingress:\n{peer or '  - ports:' + chr(10)}    - port: {port}\n     "
            " protocol: TCP\nEOF",
        ),
    ]


def network_policy_denies(facts: Facts) -> Theory | None:
    """NetworkPolicies select the API pods and none admits traffic from the edge.

    Whether a rule admits the edge depends on its peers (an ipBlock covering everything, or a namespace/pod
    selector matching the ingress controller's pods): the network-policy section judges that against the
    controller pods it read, so this rule stands on that section's failure and never on the policies alone.
    """
    verdicts = facts.failing_tests("network-policy")
    service = facts.target_service()
    pods = facts.selected_pods(service) if service else []
    if not verdicts or not pods:
        return None
    pod = pods[0]
    policies = _policies_isolating(facts, pod)
    if not policies:
        return None
    port = next((cp.get("containerPort") for cp in pod.get("container_ports") or []), None)
    names = ", ".join(f"`{p.get('name')}`" for p in policies)
    title = (
        f"NetworkPolicy {names} selects the `{service.get('name')}` pods and admits no traffic from the edge "
        "(LoadBalancer or ingress controller): the edge's connections are dropped"
    )
    evidence = [f"{verdicts[0].nodeid}: {short(verdicts[0].reason, 300)}"] + [
        f"NetworkPolicy {p.get('name')}: podSelector {p.get('pod_selector') or '{} (every pod)'}, ingress "
        f"rules: {p.get('ingress') or 'none (deny all)'}"
        for p in policies
    ]
    confidence = 0.7
    failing = _first_failing_probe(facts)
    if failing is not None:
        evidence.append(_probe_line(failing))
        if _dropped_at_the_edge(failing):
            confidence += 0.15
    confirm = [
        kubectl(facts.context, "get networkpolicy"),
        kubectl(facts.context, f"describe networkpolicy {policies[0].get('name')}"),
    ]
    theory = Theory(
        "network-policy-denies",
        title,
        confidence,
        evidence,
        confirm,
        _admit_the_edge(facts, service, port),
        subjects=[p.get("name") for p in policies],
    )
    theory.explains = facts.explain(("network-policy",)) + [
        n for n in facts.explain(EDGE_SECTIONS) if n not in facts.explain(("dns",))
    ]
    return theory


def only_in_cluster_traffic(facts: Facts) -> Theory | None:
    """Pod logs show health checks from inside the cluster only: outside requests never reach the pods."""
    logs = [data for data in facts.of("pod_logs") if data.get("health_requests")]
    if not logs:
        return None
    if any(data.get("external_requests") for data in logs):
        return None
    failing = [p for p in facts.http_probes("dns") if not probe_ok(p)]
    if not failing:
        return None
    data = logs[0]
    clients = ", ".join(data.get("client_addresses") or []) or "cluster addresses"
    title = (
        f"the pod logs show only in-cluster health checks (from {clients}): requests from outside never "
        "reach the pods"
    )
    evidence = [
        f"pod {data.get('namespace')}/{data.get('pod')}: last {data.get('tail')} lines, "
        f"{data.get('health_requests')} health requests, {data.get('external_requests')} external",
        _probe_line(failing[0]),
    ]
    confirm = [
        kubectl(facts.context, f"logs {data.get('pod')} --tail=50", data.get("namespace")),
        curl_of(failing[0], facts.context),
    ]
    fix = [
        "Follow the public path hop by hop (DNS -> LoadBalancer -> Service -> pod) to where the request "
        "stops; the theories above name the likely hop"
    ]
    theory = Theory(
        "only-in-cluster-traffic", title, 0.35, evidence, confirm, fix, subjects=[data.get("pod")]
    )
    theory.explains = facts.explain(("api-health",))
    return theory


def _service_has_port(service: Mapping[str, Any], port: Any) -> bool:
    """Whether a Service port has this number or this name."""
    return any(str(port) in (str(p.get("port")), str(p.get("name"))) for p in service.get("ports") or [])


def _backend_port_theory(
    facts: Facts, ingress: Mapping[str, Any], route: str, service: Mapping[str, Any], port: Any
) -> Theory:
    ports = service.get("ports") or []
    listed = ", ".join(str(p.get("port")) + (f" ({p.get('name')})" if p.get("name") else "") for p in ports)
    kind = "named port" if not str(port).isdigit() else "port"
    right = next((p.get("name") or p.get("port") for p in ports), "<port>")
    key = "name" if not str(right).isdigit() else "number"
    return _ingress_backend_theory(
        facts,
        ingress,
        "ingress-backend-port-missing",
        f"Ingress `{ingress.get('name')}` routes {route} to "
        f"Service `{service.get('name')}` {kind} {port}, but the Service has port "
        f"{listed or 'none'}: "
        "the controller has no backend for the host",
        [
            f"Ingress {ingress.get('namespace')}/{ingress.get('name')} backend: {service.get('name')}:{port}",
            f"Service {service.get('name')} ports: {listed or 'none'}",
        ],
        0.85,
        f"get svc {service.get('name')} -o jsonpath='{{.spec.ports}}'",
        f"set backend.service.port.{key}: {right}",
        subject=str(service.get("name")),
        explained_by=str(port),
    )


def _not_tcp_theory(
    facts: Facts, ingress: Mapping[str, Any], route: str, service: Mapping[str, Any], port: Mapping[str, Any]
) -> Theory:
    """The backend port exists but is not TCP: an ingress controller proxies HTTP over TCP and finds no
    endpoint on it (ingress-nginx answers 503)."""
    name, shown = service.get("name"), port.get("name") or port.get("port")
    theory = _ingress_backend_theory(
        facts,
        ingress,
        "ingress-backend-port-missing",
        f"Ingress `{ingress.get('name')}` routes {route} to Service `{name}` port {shown}, which is protocol "
        f"{port.get('protocol')}: the ingress controller proxies HTTP over TCP only and finds no endpoint "
        "for it",
        [f"Service {name} port {shown}: protocol {port.get('protocol')}"],
        0.85,
        f"get svc {name} -o jsonpath='{{.spec.ports}}'",
        "",
        subject=str(name),
        explained_by=str(shown),
    )
    theory.fix = [
        kubectl(facts.context, f"edit svc {name}", service.get("namespace"))
        + f"  # set protocol: TCP on port {shown} (or add a TCP port for HTTP)"
    ]
    return theory


def ingress_backend_port_missing(facts: Facts) -> Theory | None:
    """The Ingress rule for the host routes to a Service port (number or name) the Service does not
    have, or to one that is not TCP."""
    services = {s.get("name"): s for s in facts.services()}
    for ingress, route, path in _ingress_backends(facts):
        service = services.get(path.get("service"))
        port = path.get("port")
        if service is None or port is None:
            continue
        if not _service_has_port(service, port):
            return _backend_port_theory(facts, ingress, route, service, port)
        named = [
            p for p in service.get("ports") or [] if str(port) in (str(p.get("port")), str(p.get("name")))
        ]
        if all((p.get("protocol") or "TCP") != "TCP" for p in named):
            return _not_tcp_theory(facts, ingress, route, service, named[0])
    return None


# What the probes met at an address nothing serves any more.
_NOTHING_ANSWERS = ("tcp_refused", "tcp_timeout", "empty_reply", "read_timeout", "tcp_unreachable")


def _load_balancer_deleted(facts: Facts, name: Any) -> list[dict[str, Any]]:
    """The events of the cloud controller deleting the Service's load balancer."""
    return [
        e
        for e in facts.events_for(f"Service/{name}")
        if e.get("reason") in ("DeletedLoadBalancer", "DeletingLoadBalancer")
    ]


def _removed_title(facts: Facts, service: Mapping[str, Any], dead: list[str], deleted: list[Any]) -> str:
    title = (
        f"Service `{service.get('name')}` is type {service.get('type')}, so it has no LoadBalancer, while "
        f"DNS still sends {facts.context.host} to {', '.join(dead)}, where nothing answers"
    )
    return title + (
        ": its load balancer was deleted when the type changed"
        if deleted
        else ": most likely the address of the load balancer released when the Service stopped being a "
        "LoadBalancer"
    )


def loadbalancer_removed(facts: Facts) -> Theory | None:
    """DNS still points at an address nothing of the cluster owns, while the target's Service is no longer
    a LoadBalancer (its type changed to ClusterIP or NodePort, which releases the load balancer)."""
    service = facts.target_service()
    addresses = facts.dns_addresses()
    if service is None or service.get("type") == "LoadBalancer" or not addresses:
        return None
    balancers = facts.loadbalancer_addresses()
    probes = {p.get("address"): p for p in facts.http_probes("dns") + facts.of("tcp")}
    dead = [
        a
        for a in addresses
        if a not in balancers and a in probes and probes[a].get("failure") in _NOTHING_ANSWERS
    ]
    if not dead:
        return None
    name = service.get("name")
    deleted = _load_balancer_deleted(facts, name)
    if not deleted and facts.ingresses_for_host(facts.context.host or ""):
        # The host is published through an Ingress, so the Service is not meant to be a LoadBalancer:
        # nothing says it ever was one. DNS pointing away from the Ingress is dns-not-loadbalancer's.
        return None
    evidence = [
        f"Service {service.get('namespace')}/{name}: type {service.get('type')}, no LoadBalancer address",
        f"DNS {facts.context.host} -> {', '.join(addresses)}; LoadBalancer/Ingress addresses in the cluster: "
        + (", ".join(balancers) or "none"),
    ]
    evidence += [_probe_line({**probes[a], "source": probes[a].get("source", "dns")}) for a in dead[:2]]
    evidence += [f"event {e.get('reason')} on Service/{name}: {e.get('message')}" for e in deleted[:1]]
    confirm = [
        kubectl(facts.context, f"get svc {name} -o wide"),
        kubectl(facts.context, f"get events --field-selector involvedObject.name={name}"),
    ]
    confirm += [curl_of(probes[a], facts.context) for a in dead[:1]]
    fix = [
        kubectl(facts.context, f'patch svc {name} -p \'{{"spec":{{"type":"LoadBalancer"}}}}\'')
        + "  # if it should be public; then point DNS at its new EXTERNAL-IP",
        "or route the host through an Ingress and point DNS at the ingress controller's address",
    ]
    theory = Theory(
        "loadbalancer-removed",
        _removed_title(facts, service, dead, deleted),
        0.85 if deleted else 0.7,
        evidence,
        confirm,
        fix,
        subjects=dead,
    )
    theory.explains = facts.explain(("dns", "k8s-services")) + [
        n
        for n in facts.explain(EDGE_SECTIONS, dead + ["tcp_refused", "tcp_timeout"])
        if n not in facts.explain(("dns",))
    ]
    return theory


def service_missing(facts: Facts) -> Theory | None:
    """The target's Service does not exist in any namespace that could be read."""
    record = _service_not_found(facts)
    if record is None:
        return None
    name, ns = record.get("name"), record.get("namespace")
    deployments = [d.get("name") for d in facts.deployments(ns)]
    if _namespace_empty(facts, ns, deployments):
        return None  # namespace-empty
    title = (
        f"no Service `{name}` exists in namespace {ns} (nor in any other namespace readable): nothing "
        "routes to the pods"
    )
    evidence = [f"target Service {name}: not found ({record.get('why') or record.get('how')})"]
    if deployments:
        evidence.append(f"Deployments in {ns}: {', '.join(str(d) for d in deployments)}")
    confirm = [
        kubectl(facts.context, "get svc -o wide", ns),
        kubectl(facts.context, f"get svc -A --field-selector metadata.name={name}", ""),
    ]
    fix = [
        f"Create the Service {name} (kubectl apply -f <service manifest>), or name the right one with "
        "service = "
        '"..." in [tool.reachability.cluster]'
    ]
    theory = Theory("service-missing", title, 0.8, evidence, confirm, fix, subjects=[f"Service/{name}"])
    theory.explains = facts.explain(("k8s-services",), [str(name)])
    return theory


def _service_not_found(facts: Facts) -> dict[str, Any] | None:
    """The target Service record when the Service exists in no namespace that could be read."""
    return next((d for d in facts.of("target_service") if not d.get("found") and not d.get("found_in")), None)


def _namespace_empty(facts: Facts, ns: Any, deployments: list[Any]) -> bool:
    """The namespace was read and holds no Service, Deployment, pod or Ingress at all."""
    return (
        facts.cluster_checked
        and not deployments
        and not facts.services(ns)
        and not facts.pods(ns)
        and not [i for i in facts.of("ingress") if i.get("namespace") == ns]
    )


def namespace_empty(facts: Facts) -> Theory | None:
    """Nothing at all in the namespace: not one missing Service (whose name was then only a guess), but the
    wrong namespace, or one deleted or being deleted (a namespace stuck Terminating keeps its name while the
    namespace controller deletes its objects, until its finalizers are done)."""
    record = _service_not_found(facts)
    if record is None:
        return None
    ns = record.get("namespace")
    if not _namespace_empty(facts, ns, [d.get("name") for d in facts.deployments(ns)]):
        return None
    title = (
        f"namespace {ns} holds no Service, Deployment, pod or Ingress at all: the run looks in the wrong "
        f"namespace, or {ns} was emptied, deleted or is being deleted (Terminating)"
    )
    guessed = (
        f" (the name `{record.get('name')}` was a guess: {record.get('why')})"
        if record.get("how") != "config"
        else ""
    )
    evidence = [
        f"target Service {record.get('name')}: not found in {ns}{guessed}",
        f"Services, Deployments, pods and Ingresses in {ns}: none",
    ]
    confirm = [
        kubectl(
            facts.context,
            f"get namespace {ns} -o jsonpath='{{.status.phase}} {{.metadata.deletionTimestamp}}{{\"\\n\"}}'",
            "",
        ),
        kubectl(facts.context, "get all,ingress", ns),
        kubectl(facts.context, "get namespace -o wide", ""),
    ]
    fix = [
        "Run against the namespace the service lives in (--namespace), or redeploy it; a namespace stuck "
        f"Terminating waits for its finalizers (kubectl get namespace {ns} -o "
        "jsonpath='{.status.conditions}' names them): remove the cause of the finalizer, then redeploy"
    ]
    theory = Theory("namespace-empty", title, 0.85, evidence, confirm, fix, subjects=[f"Namespace/{ns}"])
    theory.explains = facts.explain()
    return theory


ACCESS_FIXES = {
    "UNREACHABLE": (
        "Check the API server address in the kubeconfig and the network path to it (VPN, firewall)"
    ),
    "UNAUTHORIZED": "Renew the credentials in the kubeconfig (expired token or certificate)",
    "FORBIDDEN": "Grant the identity read access (deploy/rbac.yaml of this project lists exactly what the "
    "suite reads)",
    "NOT_CONFIGURED": "Pass --kubeconfig (or set KUBECONFIG) to check the cluster",
}


def cluster_access_failed(facts: Facts) -> Theory | None:
    """The cluster could not be read at all: every cluster section is blind."""
    failure = facts.cluster_access_failure()
    if failure is None:
        return None
    kind = str(failure.get("kind") or "ERROR").upper()
    title = (
        f"the cluster could not be read ({kind.lower()}: {failure.get('message')}): nothing of the cluster "
        "was checked"
    )
    evidence = [
        f"API server {failure.get('server')}, namespace {failure.get('namespace')}: {failure.get('message')}"
    ]
    confirm = [kubectl(facts.context, "auth can-i --list"), kubectl(facts.context, "get --raw /version", "")]
    fix = [ACCESS_FIXES.get(kind, "Fix what the message says, then re-run")]
    theory = Theory(
        "cluster-access-failed", title, 0.7, evidence, confirm, fix, subjects=[str(failure.get("server"))]
    )
    theory.explains = facts.explain(("cluster",))
    return theory
