"""Wiring rules: how the objects between the edge and the pods connect — LoadBalancers, Services and their
selectors and ports, EndpointSlices, Ingress rules and backends, IngressClasses, TLS Secrets, NetworkPolicies.

Each rule compares what one object names with what exists (a Service port, a container port, a Service, a
class) and says which side to change.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..k8s import selector_matches
from .facts import Facts, probe_ok
from .theory import Theory, curl_of, kubectl
from .wording import probe_line as _probe_line
from .wording import service_label as _service_label
from .wording import short

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

# --- Services and endpoints --------------------------------------------------------------------------------


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
    title = f"the `{name}` LoadBalancer is pending: no external address was assigned, so nothing serves the public address"
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


def duplicate_loadbalancers(facts: Facts) -> Theory | None:
    """Two or more LoadBalancer Services select the same pods."""
    balancers = [s for s in facts.services() if s.get("type") == "LoadBalancer" and s.get("selector")]
    groups: dict[tuple, list[dict]] = {}
    for service in balancers:
        pods = tuple(sorted(p.get("name") for p in facts.selected_pods(service)))
        key = pods if pods else tuple(sorted((service.get("selector") or {}).items()))
        groups.setdefault(key, []).append(service)
    duplicates = next((g for g in groups.values() if len(g) > 1), None)
    if not duplicates:
        return None
    target_name = facts.target_service_name()
    dns = set(facts.dns_addresses())
    keep = next((s for s in duplicates if s.get("name") == target_name), None) or next(
        (s for s in duplicates if dns & set(s.get("lb_addresses") or [])), duplicates[0]
    )
    others = [s for s in duplicates if s is not keep]
    listing = " and ".join(
        f"{_service_label(s)} ({', '.join(s.get('lb_addresses') or ['pending'])})" for s in duplicates
    )
    title = f"duplicate LoadBalancer Services select the same pods: {listing} — keep {_service_label(keep)}, delete the other"
    evidence = [
        f"Service {s.get('name')}: type LoadBalancer, selector {s.get('selector')}, addresses "
        f"{', '.join(s.get('lb_addresses') or []) or 'pending'}"
        for s in duplicates
    ]
    pods = facts.selected_pods(duplicates[0])
    if pods:
        evidence.append(f"both select pod(s) {', '.join(p.get('name') for p in pods)}")
    pointed = [s.get("name") for s in duplicates if dns & set(s.get("lb_addresses") or [])]
    evidence.append(f"DNS points at {'`' + pointed[0] + '`' if pointed else 'neither of them'}")
    confidence = 0.45 + (0.1 if not pointed else 0.0)
    confirm = [kubectl(facts.context, "get svc -o wide")]
    confirm += [kubectl(facts.context, f"describe svc {s.get('name')}") for s in duplicates]
    fix = [
        kubectl(facts.context, f"delete svc {s.get('name')}") + "  # after checking nothing else uses it"
        for s in others
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
        title = f"Service `{name}` does not exist in namespace {namespace} but in {', '.join(found_in)} — the run (or the deploy) uses the wrong namespace"
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


def selector_matches_no_pods(facts: Facts) -> Theory | None:
    """The target Service's selector matches no pod and no Deployment's pod template: a selector typo."""
    service = facts.target_service()
    if service is None or not service.get("selector") or not facts.of("pod"):
        return None
    if facts.selected_pods(service) or facts.deployments_for(service):
        return None  # pods exist, or a Deployment would make them (scaled to zero, rollout): not a typo
    name, ns = service.get("name"), service.get("namespace")
    selector = service.get("selector") or {}
    carried = sorted(
        {
            f"{k}={v}"
            for p in facts.pods(ns)
            for k, v in (p.get("labels") or {}).items()
            if k != "pod-template-hash"
        }
    )
    close = sorted(
        {f"{k}={v}" for p in facts.pods(ns) for k, v in (p.get("labels") or {}).items() if k in selector}
    )
    title = (
        f"Service `{name}` selects {', '.join(f'{k}={v}' for k, v in selector.items())}, which matches no "
        "pod "
        f"and no Deployment's pod template: the selector is wrong, so the Service has no endpoints"
    )
    if close:
        title += f" (the pods carry {', '.join(close[:3])})"
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
    """The target Service has pods, but none of them is a ready endpoint (a symptom: the pod theories say why)."""
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


def targetport_mismatch(facts: Facts) -> Theory | None:
    """A Service port's targetPort names no port of the pods it selects (by number, or by name)."""
    service = facts.target_service()
    if service is None:
        return None
    pods = facts.selected_pods(service)
    if not pods:
        return None
    container_ports = {
        (cp.get("containerPort"), cp.get("name")) for p in pods for cp in p.get("container_ports") or []
    }
    if not container_ports:
        return None
    numbers = {n for n, _ in container_ports}
    names = {n for _, n in container_ports if n}
    for port in service.get("ports") or []:
        target = port.get("target_port", port.get("targetPort"))
        if target is None:
            continue
        by_name = not str(target).isdigit()
        matches = (target in names) if by_name else (int(target) in numbers)
        if matches:
            continue
        name, ns = service.get("name"), service.get("namespace")
        listening = ", ".join(f"{n} ({nm})" if nm else str(n) for n, nm in sorted(container_ports, key=str))
        if by_name:
            title = (
                f"Service `{name}` forwards port {port.get('port')} to the named targetPort `{target}`, "
                "which "
                f"no container of its pods declares (they declare {listening}): the Service has no usable "
                "port"
            )
        else:
            title = (
                f"Service `{name}` forwards port {port.get('port')} to targetPort {target}, "
                f"but its pods listen on {', '.join(str(n) for n in sorted(numbers))}"
            )
        evidence = [
            f"Service {name} port {port.get('port')} -> targetPort {target}",
            "container ports: " + listening,
        ]
        confidence = 0.85 if by_name else 0.75
        refused = [
            c
            for c in facts.in_cluster_health()
            if c.get("service") == name
            and c.get("error")
            and ("refused" in str(c.get("error")) or "dial" in str(c.get("error")))
        ]
        for check in refused:
            evidence.append(f"in-cluster GET {check.get('path')} via Service {name}: {check.get('error')}")
            confidence += 0.1
        failing = [p for p in facts.http_probes() if not probe_ok(p)]
        if failing:
            evidence.append(_probe_line(failing[0]))
            confidence += 0.05
        confirm = [
            kubectl(facts.context, f"get svc {name} -o jsonpath='{{.spec.ports}}'", ns),
            kubectl(
                facts.context,
                f"get pod {pods[0].get('name')} -o jsonpath='{{.spec.containers[*].ports}}'",
                ns,
            ),
        ]
        right = sorted(numbers)[0]
        fix = [
            kubectl(
                facts.context,
                f"patch svc {name} --type=json -p "
                f'\'[{{"op":"replace","path":"/spec/ports/0/targetPort","value":{right}}}]\'',
                ns,
            )
        ]
        theory = Theory(
            "targetport-mismatch", title, confidence, evidence, confirm, fix, subjects=[f"Service/{name}"]
        )
        theory.explains = facts.explain(SERVING_SECTIONS)
        return theory
    return None


# --- Ingress -------------------------------------------------------------------------------------------------


def ingress_missing_rule(facts: Facts) -> Theory | None:
    """An ingress controller runs, but no Ingress has a rule for the target host."""
    host = facts.context.host
    controllers = facts.ingress_controller_running()
    if not host or not controllers or facts.context.is_ip:
        return None
    if facts.ingresses_for_host(host):
        return None
    namespace = facts.context.namespace
    controller = controllers[0]
    evidence = [
        f"ingress controller pod {controller.get('namespace')}/{controller.get('name')} is "
        f"{controller.get('phase')}",
        f"Ingresses seen: {len(facts.of('ingress'))}; none has a rule for host {host}",
    ]
    confidence = 0.5
    balancers = facts.loadbalancer_addresses()
    controller_addresses = {
        a for a, owner in balancers.items() if f"Service {controller.get('namespace')}/" in owner
    }
    if set(facts.dns_addresses()) & controller_addresses:
        confidence = 0.85  # traffic goes to the controller, which has no route for the host
    for probe in facts.http_probes():
        if probe.get("address") in controller_addresses:
            evidence.append(_probe_line(probe))
    elsewhere = [d for d in facts.of("target_service") if not d.get("found") and d.get("found_in")]
    if elsewhere:
        # The Service lives in another namespace: its Ingress probably does too.
        confidence = 0.3
        evidence.append(
            f"the target Service is in {', '.join(elsewhere[0]['found_in'])}, not in the namespace looked at"
        )
    service = facts.target_service()
    backend = service.get("name") if service else "<service>"
    port = ((service or {}).get("ports") or [{}])[0].get("port", 80)
    class_name = (
        next((c.get("name") for c in facts.of("ingress_class") if c.get("is_default")), None) or "nginx"
    )
    title = f"no Ingress routes {host} although {controller.get('name', 'an ingress controller')} runs: the controller answers the host with its default backend"
    confirm = [
        kubectl(facts.context, "get ingress -A", ""),
        kubectl(facts.context, "get pods", controller.get("namespace")),
    ]
    manifest = (
        f"{facts.context.kubectl} apply -f - <<'EOF'\n"
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n"
        f"  name: {backend}-ingress\n  namespace: {namespace}\nspec:\n  ingressClassName: {class_name}\n"
        f"  rules:\n  - host: {host}\n    http:\n      paths:\n      - path: /\n        pathType: Prefix\n"
        f"        backend:\n          service:\n            name: {backend}\n            port:\n             "
        f" number: {port}\nEOF"
    )
    fix = [
        manifest,
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


def ingress_backend_missing(facts: Facts) -> Theory | None:
    """The Ingress rule for the host routes to a Service that does not exist."""
    host = facts.context.host
    names = {s.get("name") for s in facts.services()}
    if not names:
        return None
    for ingress in facts.ingresses_for_host(host) if host else facts.of("ingress"):
        for rule in ingress.get("rules") or []:
            for path in rule.get("paths") or []:
                service = path.get("service")
                if not service or service in names:
                    continue
                title = f"Ingress `{ingress.get('name')}` routes {rule.get('host')}{path.get('path') or '/'} to Service `{service}`, which does not exist in {ingress.get('namespace')}"
                evidence = [
                    f"Ingress {ingress.get('namespace')}/{ingress.get('name')} backend: "
                    f"{service}:{path.get('port')}",
                    f"Services in {ingress.get('namespace')}: {', '.join(sorted(n for n in names if n))}",
                ]
                confidence = 0.8
                failing = [p for p in facts.http_probes("dns") if not probe_ok(p)]
                if failing and set(facts.dns_addresses()) & set(ingress.get("addresses") or []):
                    evidence.append(_probe_line(failing[0]))
                    confidence = 0.9
                guess = facts.target_service_name() or next(iter(sorted(n for n in names if n)), "<service>")
                confirm = [
                    kubectl(
                        facts.context, f"get ingress {ingress.get('name')} -o yaml", ingress.get("namespace")
                    ),
                    # Lists by name: exits 0 with "No resources found" where `get svc NAME` would exit 1.
                    kubectl(
                        facts.context,
                        f"get svc --field-selector metadata.name={service}",
                        ingress.get("namespace"),
                    ),
                ]
                fix = [
                    kubectl(facts.context, f"edit ingress {ingress.get('name')}", ingress.get("namespace"))
                    + f"  # set the backend service name to `{guess}`"
                ]
                theory = Theory(
                    "ingress-backend-missing", title, confidence, evidence, confirm, fix, subjects=[service]
                )
                theory.explains = facts.explain(("ingress",), [service]) + _edge_failures(facts, ingress)
                return theory
    return None


def ingress_class_missing(facts: Facts) -> Theory | None:
    """The Ingress names an IngressClass that does not exist (or none, and there is no default), or one that no
    running controller serves: controllers publish their address in the status of the Ingresses they admit."""
    classes = facts.of("ingress_class")
    host = facts.context.host
    if not classes:
        return None
    known = {c.get("name") for c in classes}
    default = any(c.get("is_default") for c in classes)
    for ingress in facts.ingresses_for_host(host) if host else facts.of("ingress"):
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
        confirm = [
            kubectl(facts.context, "get ingressclass", ""),
            kubectl(facts.context, f"get ingress {ingress.get('name')}", ingress.get("namespace")),
        ]
        fix = [
            kubectl(facts.context, f"edit ingress {ingress.get('name')}", ingress.get("namespace"))
            + f"  # spec.ingressClassName: {sorted(k for k in known if k)[0]}"
        ]
        theory = Theory(
            "ingress-class-missing", title, 0.75, evidence, confirm, fix, subjects=[ingress.get("name")]
        )
        theory.explains = facts.explain(("ingress",), ["IngressClass"]) + _edge_failures(facts, ingress)
        return theory
    return None


def _ingress_class_unserved(
    facts: Facts, ingress: Mapping[str, Any], classes: list[dict[str, Any]]
) -> Theory | None:
    """The Ingress's class exists, yet no controller admitted the Ingress (no address in its status) while the
    controllers running here do publish addresses on the Ingresses of other classes."""
    if ingress.get("addresses") or not facts.ingress_controller_running():
        return None
    default = next((c.get("name") for c in classes if c.get("is_default")), None)

    def class_of(item: Mapping[str, Any]) -> str | None:
        return item.get("class_name") or default

    wanted = class_of(ingress)
    served = {class_of(i): i for i in facts.of("ingress") if i.get("addresses") and class_of(i) != wanted}
    if not served or wanted is None:
        return None  # controllers that publish no status: an empty one proves nothing
    controller = next((c.get("controller") for c in classes if c.get("name") == wanted), None)
    served_names = ", ".join(f"`{name}`" for name in sorted(n for n in served if n))
    title = (
        f"Ingress `{ingress.get('name')}` names IngressClass `{wanted}` (controller {controller}), which no "
        "running "
        f"controller serves: the Ingress has no address, while Ingresses of class {served_names} have one"
    )
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
    confidence = 0.7
    served_addresses = {str(a) for i in served.values() for a in i.get("addresses") or []}
    refused = [
        p for p in facts.http_probes() if p.get("address") in served_addresses and p.get("status") == 404
    ]
    if refused:
        evidence.append(_probe_line(refused[0]))
        confidence += 0.05
    confirm = [
        kubectl(facts.context, "get ingressclass", "") + "  # CONTROLLER of each class",
        kubectl(facts.context, f"get ingress {ingress.get('name')}", ingress.get("namespace"))
        + "  # ADDRESS stays empty",
    ]
    fix = [
        kubectl(facts.context, f"edit ingress {ingress.get('name')}", ingress.get("namespace"))
        + f"  # spec.ingressClassName: {sorted(n for n in served if n)[0]}",
        f"or install a controller started for {controller} (ingress-nginx: --controller-class={controller})",
    ]
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
        title = f"the TLS Secret `{secret}` of {('Ingress `' + ingress.get('name') + '`') if ingress else 'the Ingress'} does not exist: the controller serves its default certificate"
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


# --- network policy -------------------------------------------------------------------------------------------


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
    policies = [
        p
        for p in facts.of("network_policy")
        if p.get("namespace") == pod.get("namespace")
        and selector_matches(p.get("pod_selector"), pod.get("labels") or {})
    ]
    policies = [p for p in policies if "Ingress" in (p.get("policy_types") or [])]
    if not policies:
        return None
    port = next((cp.get("containerPort") for cp in pod.get("container_ports") or []), None)
    names = ", ".join(f"`{p.get('name')}`" for p in policies)
    title = f"NetworkPolicy {names} selects the `{service.get('name')}` pods and admits no traffic from the edge (LoadBalancer or ingress controller): the edge's connections are dropped"
    evidence = [f"{verdicts[0].nodeid}: {short(verdicts[0].reason, 300)}"] + [
        f"NetworkPolicy {p.get('name')}: podSelector {p.get('pod_selector') or '{} (every pod)'}, ingress "
        f"rules: {p.get('ingress') or 'none (deny all)'}"
        for p in policies
    ]
    confidence = 0.7
    failing = [p for p in facts.http_probes() if not probe_ok(p)]
    if failing:
        evidence.append(_probe_line(failing[0]))
        if failing[0].get("failure") in ("read_timeout", "tcp_timeout") or failing[0].get("status") in (
            502,
            503,
            504,
        ):
            confidence += 0.15
    confirm = [
        kubectl(facts.context, "get networkpolicy"),
        kubectl(facts.context, f"describe networkpolicy {policies[0].get('name')}"),
    ]
    controllers = facts.ingress_controller_running()
    peer = ""
    if controllers and controllers[0].get("namespace"):
        # kubernetes.io/metadata.name is the one namespace label every namespace carries (set by the API server).
        peer = (
            "  - from:\n    - namespaceSelector:\n        matchLabels:\n"
            f"          kubernetes.io/metadata.name: {controllers[0].get('namespace')}\n    ports:\n"
        )
    fix = [
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
    theory = Theory(
        "network-policy-denies",
        title,
        confidence,
        evidence,
        confirm,
        fix,
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
    title = f"the pod logs show only in-cluster health checks (from {clients}): requests from outside never reach the pods"
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


def _edge_failures(facts: Facts, ingress: Mapping[str, Any]) -> list[str]:
    """Failing edge checks at the Ingress's own addresses (what a broken Ingress explains)."""
    addresses = [str(a) for a in ingress.get("addresses") or []]
    if not set(addresses) & set(facts.dns_addresses()):
        return facts.explain(("api-health", "tcp", "tls"), addresses) if addresses else []
    return facts.explain(EDGE_SECTIONS)


def ingress_backend_port_missing(facts: Facts) -> Theory | None:
    """The Ingress rule for the host routes to a Service port (number or name) the Service does not have."""
    host = facts.context.host
    services = {s.get("name"): s for s in facts.services()}
    for ingress in facts.ingresses_for_host(host) if host else facts.of("ingress"):
        for rule in ingress.get("rules") or []:
            for path in rule.get("paths") or []:
                service = services.get(path.get("service"))
                port = path.get("port")
                if service is None or port is None:
                    continue
                ports = service.get("ports") or []
                if any(str(port) in (str(p.get("port")), str(p.get("name"))) for p in ports):
                    continue
                listed = ", ".join(
                    str(p.get("port")) + (f" ({p.get('name')})" if p.get("name") else "") for p in ports
                )
                kind = "named port" if not str(port).isdigit() else "port"
                title = (
                    f"Ingress `{ingress.get('name')}` routes {rule.get('host')}{path.get('path') or '/'} to "
                    f"Service `{service.get('name')}` {kind} {port}, but the Service has port "
                    f"{listed or 'none'}: "
                    "the controller has no backend for the host"
                )
                evidence = [
                    f"Ingress {ingress.get('namespace')}/{ingress.get('name')} backend: "
                    f"{service.get('name')}:{port}",
                    f"Service {service.get('name')} ports: {listed or 'none'}",
                ]
                confidence = 0.85
                failing = [p for p in facts.http_probes("dns") if not probe_ok(p)]
                if failing and set(facts.dns_addresses()) & set(ingress.get("addresses") or []):
                    evidence.append(_probe_line(failing[0]))
                    confidence = 0.9
                right = next((p.get("name") or p.get("port") for p in ports), "<port>")
                key = "name" if not str(right).isdigit() else "number"
                confirm = [
                    kubectl(
                        facts.context, f"get ingress {ingress.get('name')} -o yaml", ingress.get("namespace")
                    ),
                    kubectl(
                        facts.context,
                        f"get svc {service.get('name')} -o jsonpath='{{.spec.ports}}'",
                        ingress.get("namespace"),
                    ),
                ]
                fix = [
                    kubectl(facts.context, f"edit ingress {ingress.get('name')}", ingress.get("namespace"))
                    + f"  # set backend.service.port.{key}: {right}"
                ]
                theory = Theory(
                    "ingress-backend-port-missing",
                    title,
                    confidence,
                    evidence,
                    confirm,
                    fix,
                    subjects=[str(service.get("name"))],
                )
                theory.explains = facts.explain(("ingress",), [str(port)]) + _edge_failures(facts, ingress)
                return theory
    return None


def loadbalancer_removed(facts: Facts) -> Theory | None:
    """DNS still points at an address nothing of the cluster owns, while the target's Service is no longer a
    LoadBalancer (its type changed to ClusterIP or NodePort, which releases the load balancer)."""
    service = facts.target_service()
    addresses = facts.dns_addresses()
    if service is None or service.get("type") == "LoadBalancer" or not addresses:
        return None
    balancers = facts.loadbalancer_addresses()
    stray = [a for a in addresses if a not in balancers]
    if not stray:
        return None
    name = service.get("name")
    probes = {p.get("address"): p for p in facts.http_probes("dns") + facts.of("tcp")}
    dead = [
        a
        for a in stray
        if a in probes
        and probes[a].get("failure")
        in ("tcp_refused", "tcp_timeout", "empty_reply", "read_timeout", "tcp_unreachable")
    ]
    if not dead:
        return None
    deleted = [
        e
        for e in facts.events_for(f"Service/{name}")
        if e.get("reason") in ("DeletedLoadBalancer", "DeletingLoadBalancer")
    ]
    title = (
        f"Service `{name}` is type {service.get('type')}, so it has no LoadBalancer, while DNS still sends "
        f"{facts.context.host} to {', '.join(dead)}, where nothing answers"
    )
    title += (
        ": its load balancer was deleted when the type changed"
        if deleted
        else ": most likely the address of the load balancer released when the Service stopped being a "
        "LoadBalancer"
    )
    evidence = [
        f"Service {service.get('namespace')}/{name}: type {service.get('type')}, no LoadBalancer address",
        f"DNS {facts.context.host} -> {', '.join(addresses)}; LoadBalancer/Ingress addresses in the cluster: "
        + (", ".join(balancers) or "none"),
    ]
    evidence += [_probe_line({**probes[a], "source": probes[a].get("source", "dns")}) for a in dead[:2]]
    evidence += [f"event {e.get('reason')} on Service/{name}: {e.get('message')}" for e in deleted[:1]]
    confidence = 0.85 if deleted else 0.7
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
    theory = Theory("loadbalancer-removed", title, confidence, evidence, confirm, fix, subjects=dead)
    theory.explains = facts.explain(("dns", "k8s-services")) + [
        n
        for n in facts.explain(EDGE_SECTIONS, dead + ["tcp_refused", "tcp_timeout"])
        if n not in facts.explain(("dns",))
    ]
    return theory


def service_missing(facts: Facts) -> Theory | None:
    """The target's Service does not exist in any namespace that could be read."""
    record = next(
        (d for d in facts.of("target_service") if not d.get("found") and not d.get("found_in")), None
    )
    if record is None:
        return None
    name, ns = record.get("name"), record.get("namespace")
    deployments = [d.get("name") for d in facts.deployments(ns)]
    title = f"no Service `{name}` exists in namespace {ns} (nor in any other namespace readable): nothing routes to the pods"
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


ACCESS_FIXES = {
    "UNREACHABLE": "Check the API server address in the kubeconfig and the network path to it (VPN, firewall)",
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
    title = f"the cluster could not be read ({kind.lower()}: {failure.get('message')}): nothing of the cluster was checked"
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
