"""The diagnosis rules: each one small function ``rule(facts) -> Theory | None``.

A rule looks at the indexed evidence (:class:`Facts`), decides whether its fault explains what was
seen, and returns a :class:`Theory` whose confidence grows with the strength of the evidence. Rules
do not know of each other; :mod:`rank` orders their theories and drops contradicted ones.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from .facts import Facts, probe_ok
from .theory import Theory, curl, curl_of, dig, kubectl

Rule = Callable[[Facts], Theory | None]

# What an address that failed does, in words a person repeats in the incident channel.
BEHAVIOUR = {
    "empty_reply": "accepts TCP and closes without replying",
    "tcp_refused": "refuses connections (nothing listens)",
    "tcp_timeout": "does not answer TCP (SYN unanswered)",
    "tcp_unreachable": "is unreachable (no route)",
    "read_timeout": "accepts the request and never answers",
    "recv_error": "resets the connection mid-response",
    "bad_response": "does not speak HTTP",
    "tls_handshake": "fails the TLS handshake",
}


def _describe_failure(probe: Mapping[str, Any]) -> str:
    failure = probe.get("failure")
    if failure is None:
        return f"answers {probe.get('status')}"
    if failure == "http_status":
        return f"answers {probe.get('status')}"
    return BEHAVIOUR.get(failure, probe.get("wording") or failure)


def _probe_line(probe: Mapping[str, Any]) -> str:
    where = f"{probe.get('address')}:{probe.get('port')}"
    label = "LoadBalancer address" if probe.get("source") == "loadbalancer" else "DNS answer"
    if probe.get("service"):
        label += f" of `{probe['service']}`"
    if probe.get("failure") is None:
        outcome = f"HTTP {probe.get('status')} {probe.get('reason') or ''}".rstrip()
    else:
        outcome = f"{probe['failure']}"
        if probe.get("curl_exit") is not None:
            outcome += f" (curl exit {probe['curl_exit']})"
        if probe.get("failure") == "http_status":
            outcome += f", HTTP {probe.get('status')}"
    return f"GET {probe.get('path') or '/'} via {label} {where}: {outcome}"


def _service_label(service: Mapping[str, Any]) -> str:
    return f"`{service.get('name')}`"


def _dns_resolvers(facts: Facts) -> list[str]:
    dns = facts.dns or {}
    resolvers = [a.get("resolver") for a in dns.get("answers") or [] if a.get("resolver")]
    return resolvers or facts.context.resolvers or ["system"]


# --- DNS ------------------------------------------------------------------------------------------------


def dns_not_loadbalancer(facts: Facts) -> Theory | None:
    """The name resolves to an address that is no LoadBalancer or Ingress of the cluster."""
    dns = facts.dns
    answers = facts.dns_addresses()
    balancers = facts.loadbalancer_addresses()
    if not answers or not balancers:
        return None
    stray = [a for a in answers if a not in balancers]
    if not stray:
        return None
    name = dns.get("name") or facts.context.host
    ctx = facts.context
    target = facts.target_service()
    dns_probes = {p.get("address"): p for p in facts.http_probes("dns")}
    lb_probes = facts.http_probes("loadbalancer")
    healthy_lb = [p for p in lb_probes if probe_ok(p)]
    # The address to point at: the first candidate (target Service, its twins, its Ingress) that answers.
    candidates = facts.candidate_addresses()
    if not candidates:
        return None
    answered = {p.get("address") for p in healthy_lb}
    good_address, good_service = next(((a, o) for a, o in candidates if a in answered), candidates[0])
    good_answers = any(p.get("address") == good_address for p in healthy_lb)
    stray_probe = dns_probes.get(stray[0])
    stray_failed = stray_probe is not None and not probe_ok(stray_probe)
    partial = len(stray) < len(answers)
    disagree = dns.get("agree") is False

    confidence = 0.6
    if good_answers:
        confidence += 0.25
    if stray_failed:
        confidence += 0.1
    if partial or disagree:
        confidence -= 0.3  # another answer is right: propagation or a stale resolver explains it better
    if target is not None and target.get("lb_pending"):
        confidence -= 0.3  # the record likely held the pending LoadBalancer's old address

    what = f", which {_describe_failure(stray_probe)}" if stray_probe is not None else ""
    verb = "answers" if good_answers else "has its address"
    title = (
        f"the DNS A record for {name} points at {', '.join(stray)}{what}; "
        f"{_owner_phrase(good_service)} {verb} at {good_address} — update the record"
    )
    evidence = [f"DNS {name} -> {', '.join(answers)} (resolvers: {', '.join(_dns_resolvers(facts))})"]
    evidence.append(
        "LoadBalancer/Ingress addresses in the cluster: "
        + ", ".join(f"{a} ({owner})" for a, owner in balancers.items())
    )
    for address in stray:
        if address in dns_probes:
            evidence.append(_probe_line(dns_probes[address]))
    for probe in lb_probes:
        if probe.get("address") == good_address:
            evidence.append(_probe_line(probe) + " (probed directly with Host " + (name or "") + ")")
    confirm = [dig(name, r) for r in _dns_resolvers(facts)]
    if good_service.startswith("Ingress "):
        confirm.append(kubectl(ctx, f"get ingress {good_service.split(' ', 1)[1]} -o wide"))
    else:
        confirm.append(kubectl(ctx, f"get svc {good_service} -o jsonpath='{{.status.loadBalancer.ingress[*].ip}}'"))
    for address in stray:
        confirm.append(curl_of(dns_probes[address], ctx) if address in dns_probes else curl(ctx, address))
    good_probe = next((p for p in lb_probes if p.get("address") == good_address), None)
    confirm.append(curl_of(good_probe, ctx) if good_probe else curl(ctx, good_address))
    fix = [
        f"Update the DNS A record of {name}: replace {', '.join(stray)} with {good_address} ({_owner_phrase(good_service)})",
        f"{dig(name, _dns_resolvers(facts)[0])}  # expect {good_address} once the TTL has passed",
    ]
    verify = [f"{dig(name, r)}  # expect {good_address}" for r in _dns_resolvers(facts)]
    verify.append(f"{curl(ctx, good_address)}  # expect HTTP 200 from the address DNS now answers")
    return Theory("dns-not-loadbalancer", title, confidence, evidence, confirm, fix, subjects=stray, verify=verify)


def _owner_phrase(owner: str) -> str:
    if owner.startswith("Ingress "):
        return f"the Ingress `{owner.split(' ', 1)[1]}`"
    return f"the `{owner}` LoadBalancer"


def resolvers_disagree(facts: Facts) -> Theory | None:
    """Resolvers give different answers: propagation in progress or a stale secondary."""
    dns = facts.dns
    if not dns or dns.get("agree") is not False:
        return None
    answers = [a for a in dns.get("answers") or []]
    if len(answers) < 2:
        return None
    name = dns.get("name") or facts.context.host
    balancers = facts.loadbalancer_addresses()
    dns_probes = {p.get("address"): p for p in facts.http_probes("dns")}
    parts, evidence, stale = [], [], []
    for answer in answers:
        addresses = answer.get("addresses") or []
        shown = ", ".join(addresses) or (answer.get("failure") or "no answer")
        parts.append(f"{answer.get('resolver')} answers {shown}")
        evidence.append(f"resolver {answer.get('resolver')}: {name} -> {shown} (rcode {answer.get('rcode')}, ttl {answer.get('ttl')})")
        for address in addresses:
            if balancers and address not in balancers:
                stale.append((answer.get("resolver"), address))
    confidence = 0.6
    for _resolver, address in stale:
        probe = dns_probes.get(address)
        if probe is not None:
            evidence.append(_probe_line(probe))
            if not probe_ok(probe):
                confidence = 0.85
    title = f"resolvers disagree about {name}: " + "; ".join(parts)
    if stale:
        resolver, address = stale[0]
        title += f" — {resolver} still serves {address}, which is no LoadBalancer"
        if address in dns_probes and not probe_ok(dns_probes[address]):
            title += f" and {_describe_failure(dns_probes[address])}"
    confirm = [dig(name, a.get("resolver")) for a in answers]
    fix = [
        "If the record changed recently, wait for the old TTL to pass and re-check; otherwise",
        "update the zone on the resolver/secondary that serves the stale answer (check zone transfer / serial)",
    ]
    return Theory("resolvers-disagree", title, confidence, evidence, confirm, fix, subjects=[a for _, a in stale])


# --- Services and endpoints --------------------------------------------------------------------------------


def loadbalancer_pending(facts: Facts) -> Theory | None:
    """A LoadBalancer Service that never got an address."""
    pending = [s for s in facts.services() if s.get("type") == "LoadBalancer" and s.get("lb_pending")]
    if not pending:
        return None
    target_name = facts.target_service_name()
    service = next((s for s in pending if s.get("name") == target_name), pending[0])
    confidence = 0.75 if service.get("name") == target_name or target_name is None else 0.4
    evidence = [f"Service {service.get('namespace')}/{service.get('name')} type LoadBalancer has no external address (pending)"]
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
    verify = [kubectl(facts.context, f"get svc {name} -o jsonpath='{{.status.loadBalancer.ingress[*].ip}}'") + "  # expect an address"]
    return Theory("loadbalancer-pending", title, confidence, evidence, confirm, fix, subjects=[f"Service/{name}"], verify=verify)


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
    listing = " and ".join(f"{_service_label(s)} ({', '.join(s.get('lb_addresses') or ['pending'])})" for s in duplicates)
    title = f"duplicate LoadBalancer Services select the same pods: {listing} — keep {_service_label(keep)}, delete the other"
    evidence = [
        f"Service {s.get('name')}: type LoadBalancer, selector {s.get('selector')}, addresses {', '.join(s.get('lb_addresses') or []) or 'pending'}"
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
    fix = [kubectl(facts.context, f"delete svc {s.get('name')}") + "  # after checking nothing else uses it" for s in others]
    verify = [kubectl(facts.context, "get svc -o wide") + f"  # expect one LoadBalancer for these pods: {keep.get('name')}"]
    return Theory("duplicate-loadbalancers", title, confidence, evidence, confirm, fix,
                  subjects=[s.get("name") for s in duplicates], verify=verify)


def service_in_other_namespace(facts: Facts) -> Theory | None:
    """The target Service is not in the namespace looked at, but exists in another."""
    for data in facts.of("target_service"):
        if data.get("found") or not data.get("found_in"):
            continue
        name, namespace, found_in = data.get("name"), data.get("namespace"), data.get("found_in")
        title = f"Service `{name}` does not exist in namespace {namespace} but in {', '.join(found_in)} — the run (or the deploy) uses the wrong namespace"
        evidence = [f"Service {name} not found in {namespace} ({data.get('how')}); found in: {', '.join(found_in)}"]
        # The namespace where it is missing is listed by name: "No resources found", exit 0.
        confirm = [kubectl(facts.context, f"get svc --field-selector metadata.name={name}", namespace)]
        confirm += [kubectl(facts.context, f"get svc {name}", ns) for ns in found_in]
        fix = [
            f"Re-run with --namespace {found_in[0]} if that is where the service lives, or",
            f"deploy the Service to {namespace} (kubectl apply -n {namespace} -f <manifest>)",
        ]
        return Theory("service-in-other-namespace", title, 0.8, evidence, confirm, fix, subjects=[f"Service/{name}"])
    return None


def no_ready_endpoints(facts: Facts) -> Theory | None:
    """The target Service has no ready endpoints: selector matches no pods, or its pods are not ready."""
    service = facts.target_service()
    if service is None or not service.get("selector"):
        return None
    name = service.get("name")
    slices = facts.endpoint_slices_of(name, service.get("namespace"))
    proxied = [c for c in facts.in_cluster_health() if c.get("service") == name]
    if not slices and not any(c.get("no_endpoints") for c in proxied):
        return None
    ready = [a for s in slices for a in s.get("ready_addresses") or []]
    if ready:
        return None
    pods = facts.selected_pods(service)
    evidence = [f"EndpointSlices of Service {name}: {len(slices)}, ready addresses: none"]
    for check in proxied:
        if check.get("no_endpoints") or check.get("error"):
            evidence.append(f"in-cluster GET {check.get('path')} via the API server proxy: {check.get('error') or check.get('status')}")
    if not pods:
        labels = {k: v for p in facts.pods(service.get("namespace")) for k, v in (p.get("labels") or {}).items() if k == "app"}
        title = f"Service `{name}` selects {service.get('selector')}, which matches no pod: it has no endpoints"
        if labels:
            evidence.append(f"pods in {service.get('namespace')} carry app={', app='.join(sorted({p.get('labels', {}).get('app') for p in facts.pods(service.get('namespace')) if p.get('labels', {}).get('app')}))}")
        confidence = 0.85
        fix = [
            kubectl(facts.context, f"edit svc {name}") + "  # set spec.selector to the labels of the pods (see get pods --show-labels)",
        ]
    else:
        title = f"Service `{name}` has no ready endpoints: its {len(pods)} pod(s) are not ready"
        evidence.append("pods: " + ", ".join(f"{p.get('name')} ready={p.get('ready')}" for p in pods))
        confidence = 0.6
        fix = [kubectl(facts.context, f"describe pod {pods[0].get('name')}") + "  # fix why the pod is not ready"]
    confirm = [
        kubectl(facts.context, f"get endpointslices -l kubernetes.io/service-name={name}"),
        kubectl(facts.context, "get pods --show-labels"),
        kubectl(facts.context, f"get svc {name} -o jsonpath='{{.spec.selector}}'"),
    ]
    return Theory("no-ready-endpoints", title, confidence, evidence, confirm, fix, subjects=[f"Service/{name}"])


def targetport_mismatch(facts: Facts) -> Theory | None:
    """A Service port's targetPort names no port of the pods it selects."""
    service = facts.target_service()
    if service is None:
        return None
    pods = facts.selected_pods(service)
    if not pods:
        return None
    container_ports = {(cp.get("containerPort"), cp.get("name")) for p in pods for cp in p.get("container_ports") or []}
    if not container_ports:
        return None
    numbers = {n for n, _ in container_ports}
    names = {n for _, n in container_ports if n}
    for port in service.get("ports") or []:
        target = port.get("target_port", port.get("targetPort"))
        if target is None:
            continue
        matches = (int(target) in numbers) if str(target).isdigit() else (target in names)
        if matches:
            continue
        name = service.get("name")
        title = (
            f"Service `{name}` forwards port {port.get('port')} to targetPort {target}, "
            f"but its pods listen on {', '.join(str(n) for n in sorted(numbers))}"
        )
        evidence = [
            f"Service {name} port {port.get('port')} -> targetPort {target}",
            "container ports: " + ", ".join(f"{n} ({nm})" if nm else str(n) for n, nm in sorted(container_ports, key=str)),
        ]
        confidence = 0.8
        failing = [p for p in facts.http_probes() if not probe_ok(p)]
        if failing:
            evidence.append(_probe_line(failing[0]))
            confidence += 0.1
        confirm = [
            kubectl(facts.context, f"get svc {name} -o jsonpath='{{.spec.ports}}'"),
            kubectl(facts.context, f"get pod {pods[0].get('name')} -o jsonpath='{{.spec.containers[*].ports}}'"),
        ]
        right = sorted(numbers)[0]
        fix = [
            kubectl(facts.context, f"patch svc {name} --type=json -p '[{{\"op\":\"replace\",\"path\":\"/spec/ports/0/targetPort\",\"value\":{right}}}]'")
        ]
        return Theory("targetport-mismatch", title, confidence, evidence, confirm, fix, subjects=[f"Service/{name}"])
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
        f"ingress controller pod {controller.get('namespace')}/{controller.get('name')} is {controller.get('phase')}",
        f"Ingresses seen: {len(facts.of('ingress'))}; none has a rule for host {host}",
    ]
    confidence = 0.5
    balancers = facts.loadbalancer_addresses()
    controller_addresses = {a for a, owner in balancers.items() if f"Service {controller.get('namespace')}/" in owner}
    if set(facts.dns_addresses()) & controller_addresses:
        confidence = 0.85  # traffic goes to the controller, which has no route for the host
    for probe in facts.http_probes():
        if probe.get("address") in controller_addresses:
            evidence.append(_probe_line(probe))
    elsewhere = [d for d in facts.of("target_service") if not d.get("found") and d.get("found_in")]
    if elsewhere:
        # The Service lives in another namespace: its Ingress probably does too.
        confidence = 0.3
        evidence.append(f"the target Service is in {', '.join(elsewhere[0]['found_in'])}, not in the namespace looked at")
    service = facts.target_service()
    backend = service.get("name") if service else "<service>"
    port = ((service or {}).get("ports") or [{}])[0].get("port", 80)
    class_name = next((c.get("name") for c in facts.of("ingress_class") if c.get("is_default")), None) or "nginx"
    title = f"no Ingress routes {host} although {controller.get('name', 'an ingress controller')} runs: the controller answers the host with its default backend"
    confirm = [kubectl(facts.context, "get ingress -A", ""), kubectl(facts.context, "get pods", controller.get("namespace"))]
    manifest = (
        f"{facts.context.kubectl} apply -f - <<'EOF'\n"
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n"
        f"  name: {backend}-ingress\n  namespace: {namespace}\nspec:\n  ingressClassName: {class_name}\n"
        f"  rules:\n  - host: {host}\n    http:\n      paths:\n      - path: /\n        pathType: Prefix\n"
        f"        backend:\n          service:\n            name: {backend}\n            port:\n              number: {port}\nEOF"
    )
    fix = [manifest, "or, if the LoadBalancer Service is meant to serve the host directly, point DNS at it and ignore the controller"]
    verify = [kubectl(facts.context, "get ingress") + f"  # expect a rule for host {host}"]
    return Theory("ingress-missing-rule", title, confidence, evidence, confirm, fix, subjects=[host], verify=verify)


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
                    f"Ingress {ingress.get('namespace')}/{ingress.get('name')} backend: {service}:{path.get('port')}",
                    f"Services in {ingress.get('namespace')}: {', '.join(sorted(n for n in names if n))}",
                ]
                confidence = 0.8
                failing = [p for p in facts.http_probes("dns") if not probe_ok(p)]
                if failing and set(facts.dns_addresses()) & set(ingress.get("addresses") or []):
                    evidence.append(_probe_line(failing[0]))
                    confidence = 0.9
                guess = facts.target_service_name() or next(iter(sorted(n for n in names if n)), "<service>")
                confirm = [
                    kubectl(facts.context, f"get ingress {ingress.get('name')} -o yaml", ingress.get("namespace")),
                    # Lists by name: exits 0 with "No resources found" where `get svc NAME` would exit 1.
                    kubectl(facts.context, f"get svc --field-selector metadata.name={service}", ingress.get("namespace")),
                ]
                fix = [
                    kubectl(facts.context, f"edit ingress {ingress.get('name')}", ingress.get("namespace"))
                    + f"  # set the backend service name to `{guess}`"
                ]
                return Theory("ingress-backend-missing", title, confidence, evidence, confirm, fix, subjects=[service])
    return None


def ingress_class_missing(facts: Facts) -> Theory | None:
    """The Ingress names an IngressClass that does not exist (or none, and there is no default)."""
    classes = facts.of("ingress_class")
    host = facts.context.host
    if not classes:
        return None
    known = {c.get("name") for c in classes}
    default = any(c.get("is_default") for c in classes)
    for ingress in facts.ingresses_for_host(host) if host else facts.of("ingress"):
        wanted = ingress.get("class_name")
        if wanted in known or (wanted is None and default):
            continue
        what = f"IngressClass `{wanted}`, which does not exist" if wanted else "no IngressClass, and none is the default"
        title = f"Ingress `{ingress.get('name')}` names {what}: no controller serves it"
        evidence = [f"Ingress {ingress.get('name')} class: {wanted}", f"IngressClasses: {', '.join(sorted(k for k in known if k))}"]
        confirm = [kubectl(facts.context, "get ingressclass", ""), kubectl(facts.context, f"get ingress {ingress.get('name')}", ingress.get("namespace"))]
        fix = [kubectl(facts.context, f"edit ingress {ingress.get('name')}", ingress.get("namespace")) + f"  # spec.ingressClassName: {sorted(k for k in known if k)[0]}"]
        return Theory("ingress-class-missing", title, 0.75, evidence, confirm, fix, subjects=[ingress.get("name")])
    return None


# "TLS secrets missing: production/letsencrypt-prod, ..." (the ingress section), or "secret X ... missing".
_SECRETS_MISSING_LIST = re.compile(r"secrets? missing:\s*([\w./-]+)", re.IGNORECASE)
_SECRET_MISSING = re.compile(r"secret\s+`?([a-z0-9][a-z0-9./-]*)`?[^;]*?(?:is missing|not found|does not exist)", re.IGNORECASE)


def ingress_tls_secret_missing(facts: Facts) -> Theory | None:
    """An Ingress TLS section names a Secret the ingress section found missing."""
    for test in facts.failing_tests("ingress"):
        match = _SECRETS_MISSING_LIST.search(test.reason or "") or _SECRET_MISSING.search(test.reason or "")
        if not match:
            continue
        namespace, _, secret = match.group(1).rpartition("/")
        ingress = next((i for i in facts.of("ingress") if any(t.get("secret") == secret for t in i.get("tls") or [])), None)
        namespace = namespace or (ingress or {}).get("namespace") or facts.context.namespace
        title = f"the TLS Secret `{secret}` of {('Ingress `' + ingress.get('name') + '`') if ingress else 'the Ingress'} does not exist: the controller serves its default certificate"
        evidence = [f"{test.nodeid}: {test.reason}"]
        confirm = [kubectl(facts.context, f"get secret {secret}", namespace), kubectl(facts.context, "get certificate", namespace)]
        fix = [f"Create the certificate Secret {secret} in {namespace} (cert-manager Certificate or kubectl create secret tls {secret} --cert=... --key=...)"]
        return Theory("ingress-tls-secret-missing", title, 0.7, evidence, confirm, fix, subjects=[secret])
    return None


# --- network policy -------------------------------------------------------------------------------------------


def _selects(policy: Mapping[str, Any], pod: Mapping[str, Any]) -> bool:
    selector = policy.get("pod_selector") or {}
    labels = pod.get("labels") or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def _admits_edge(rule: Mapping[str, Any], port: int | None) -> bool:
    """Whether an ingress rule admits traffic from outside the cluster on ``port``."""
    peers = rule.get("from") or []
    from_anywhere = not peers or any(
        (p.get("ipBlock") or {}).get("cidr") in ("0.0.0.0/0", "::/0") for p in peers if isinstance(p, Mapping)
    )
    ports = rule.get("ports") or []
    port_ok = not ports or port is None or any(str(p.get("port")) == str(port) or p.get("port") is None for p in ports)
    return from_anywhere and port_ok


def network_policy_denies(facts: Facts) -> Theory | None:
    """NetworkPolicies select the API pods and none admits traffic from the edge."""
    service = facts.target_service()
    pods = facts.selected_pods(service) if service else []
    if not pods:
        return None
    pod = pods[0]
    policies = [p for p in facts.of("network_policy") if p.get("namespace") == pod.get("namespace") and _selects(p, pod)]
    policies = [p for p in policies if "Ingress" in (p.get("policy_types") or [])]
    if not policies:
        return None
    port = next((cp.get("containerPort") for cp in pod.get("container_ports") or []), None)
    if any(_admits_edge(rule, port) for p in policies for rule in p.get("ingress") or []):
        return None
    names = ", ".join(f"`{p.get('name')}`" for p in policies)
    title = f"NetworkPolicy {names} selects the `{service.get('name')}` pods and admits no traffic from outside the cluster: the edge's connections are dropped"
    evidence = [
        f"NetworkPolicy {p.get('name')}: podSelector {p.get('pod_selector')}, ingress rules: {p.get('ingress') or 'none (deny all)'}"
        for p in policies
    ]
    confidence = 0.7
    failing = [p for p in facts.http_probes() if not probe_ok(p)]
    if failing:
        evidence.append(_probe_line(failing[0]))
        if failing[0].get("failure") in ("read_timeout", "tcp_timeout") or failing[0].get("status") in (502, 503, 504):
            confidence += 0.15
    confirm = [kubectl(facts.context, "get networkpolicy"), kubectl(facts.context, f"describe networkpolicy {policies[0].get('name')}")]
    fix = [
        "Admit the edge: add an ingress rule to the policy for the pods' port from the LoadBalancer/ingress controller, e.g.",
        kubectl(
            facts.context,
            "apply -f - <<'EOF'\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n"
            f"  name: {service.get('name')}-allow-http\nspec:\n  podSelector:\n    matchLabels: {dict(service.get('selector') or {})}\n"
            f"  policyTypes: [Ingress]\n  ingress:\n  - ports:\n    - port: {port}\n      protocol: TCP\nEOF",
        ),
    ]
    return Theory("network-policy-denies", title, confidence, evidence, confirm, fix, subjects=[p.get("name") for p in policies])


# --- traffic -----------------------------------------------------------------------------------------------------


def tcp_timeout(facts: Facts) -> Theory | None:
    """SYNs to a resolved address go unanswered: a firewall drops them, or the address is wrong."""
    timeouts = [p for p in facts.http_probes("dns") + facts.of("tcp") if p.get("failure") == "tcp_timeout"]
    if not timeouts:
        return None
    addresses = sorted({p.get("address") for p in timeouts})
    balancers = facts.loadbalancer_addresses()
    known = [a for a in addresses if a in balancers]
    title = f"connections to {', '.join(addresses)} time out (SYN unanswered): a firewall drops them, or the address is wrong"
    evidence = [_probe_line({**p, "source": p.get("source", "dns")}) for p in timeouts[:3]]
    confidence = 0.55 if known else 0.45
    if known:
        evidence.append(f"{', '.join(known)} is the address of {balancers[known[0]]}: suspect a firewall in front of it")
    else:
        evidence.append("the address is not a LoadBalancer of the cluster: suspect a wrong address")
    confirm = [curl_of(p, facts.context) for p in timeouts[:2]]
    confirm.append(f"nc -vz -w 5 {addresses[0]} {timeouts[0].get('port') or facts.context.port or 80}")
    fix = ["Allow inbound TCP on the port in the cloud firewall / security group of the address", "or point DNS at the right address"]
    return Theory("tcp-timeout", title, confidence, evidence, confirm, fix, subjects=addresses)


def edge_empty_reply(facts: Facts) -> Theory | None:
    """The edge accepts connections but closes them without a reply, while the app is healthy in-cluster."""
    empties = [p for p in facts.http_probes("dns") if p.get("failure") == "empty_reply"]
    if not empties:
        return None
    inside = facts.in_cluster_ok()
    if inside is False:
        return None
    address = empties[0].get("address")
    title = f"{address} accepts connections and closes them without a reply while the app is healthy inside the cluster: that edge has no healthy backend (or expects another port/protocol)"
    evidence = [_probe_line(p) for p in empties[:3]]
    for check in facts.in_cluster_health():
        evidence.append(f"in-cluster GET {check.get('path')} on Service {check.get('service')}: {check.get('status')} {(check.get('body') or '')[:60]}".rstrip())
    confidence = 0.45 + (0.15 if inside else 0.0)
    balancers = facts.loadbalancer_addresses()
    if balancers and address not in balancers:
        # The address is no LoadBalancer of the cluster: the DNS theory explains the silence better.
        confidence = 0.3
        evidence.append(f"{address} is not an address of any LoadBalancer or Ingress of the cluster")
    confirm = [curl_of(empties[0], facts.context), kubectl(facts.context, "get svc -o wide")]
    fix = ["Find what owns the address (load balancer / node / proxy) and give it the Service's healthy backend, or move DNS to an address that serves the app"]
    return Theory("edge-empty-reply", title, confidence, evidence, confirm, fix, subjects=[address])


def _tls_failures(facts: Facts, classes: tuple[str, ...]) -> list[dict[str, Any]]:
    found = [p for p in facts.http_probes() + facts.of("tls") if p.get("failure") in classes]
    return found


def _tls_theory(facts: Facts, rule: str, classes: tuple[str, ...], title: str, confidence: float, fix: list[str]) -> Theory | None:
    failures = _tls_failures(facts, classes)
    if not failures:
        return None
    first = failures[0]
    info = first.get("tls") or {}
    evidence = [_probe_line({**first, "source": first.get("source", "dns")})]
    if first.get("detail"):
        evidence.append(f"detail: {first['detail']}")
    if info:
        evidence.append(f"certificate: subject names {info.get('subject_names')}, issuer {info.get('issuer')}, not after {info.get('expires')}")
    host = facts.context.host or first.get("host")
    port = first.get("port") or facts.context.port or 443
    confirm = [
        f"openssl s_client -connect {first.get('address')}:{port} -servername {host} </dev/null 2>/dev/null | openssl x509 -noout -subject -issuer -dates -ext subjectAltName",
        curl_of(first, facts.context),
    ]
    return Theory(rule, title.format(host=host, address=first.get("address"), expires=info.get("expires")), confidence, evidence, confirm, fix, subjects=[first.get("address")])


def tls_expired(facts: Facts) -> Theory | None:
    """The server certificate is expired (or not yet valid)."""
    return _tls_theory(
        facts,
        "tls-expired",
        ("tls_cert_expired",),
        "the TLS certificate served for {host} at {address} has expired (not after {expires}) — renew it",
        0.9,
        [
            "kubectl describe certificate -A  # cert-manager: see why renewal failed",
            "Renew the certificate (cert-manager: kubectl delete secret <tls-secret> to force re-issue) and reload the edge",
        ],
    )


def tls_wrong_host(facts: Facts) -> Theory | None:
    """The server certificate does not name the host."""
    return _tls_theory(
        facts,
        "tls-wrong-host",
        ("tls_hostname",),
        "the TLS certificate at {address} does not name {host} — the edge serves another site's (or the default) certificate",
        0.85,
        ["Issue a certificate whose subjectAltName includes the host and reference it from the Ingress/LoadBalancer TLS settings"],
    )


def tls_untrusted(facts: Facts) -> Theory | None:
    """The server certificate chain does not lead to a trusted CA."""
    return _tls_theory(
        facts,
        "tls-untrusted",
        ("tls_untrusted",),
        "the TLS certificate for {host} at {address} is not issued by a trusted CA (self-signed, staging issuer or missing intermediate)",
        0.75,
        ["Serve the full chain from a public CA (cert-manager: a production ClusterIssuer), or pass --ca-bundle for a private CA"],
    )


def pods_crashing(facts: Facts) -> Theory | None:
    """The app's pods crash or are not ready: an application fault, not a network one."""
    service = facts.target_service()
    pods = facts.selected_pods(service) if service else facts.pods()
    bad = [
        p
        for p in pods
        if not p.get("ready") or set(p.get("waiting_reasons") or []) & {"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError"}
    ]
    if not bad:
        return None
    pod = bad[0]
    reasons = ", ".join(pod.get("waiting_reasons") or []) or (pod.get("phase") or "not ready")
    inside = facts.in_cluster_ok()
    title = f"the `{pod.get('name')}` pod is {reasons} ({pod.get('restarts', 0)} restarts): an application fault"
    if inside is False:
        title += f" — in-cluster {facts.context.health_path} fails too"
    evidence = [f"pod {p.get('name')}: phase {p.get('phase')}, ready {p.get('containers_ready')}/{p.get('containers_total')}, restarts {p.get('restarts')}, waiting {list(p.get('waiting_reasons') or [])}, last terminated {list(p.get('terminated_reasons') or [])}" for p in bad[:3]]
    for check in facts.in_cluster_health():
        evidence.append(f"in-cluster GET {check.get('path')} on Service {check.get('service')}: {check.get('error') or check.get('status')}")
    for logs in facts.of("pod_logs"):
        if logs.get("pod") == pod.get("name"):
            errors = [line for line in logs.get("lines") or [] if re.search(r"error|exception|fatal|traceback", line, re.IGNORECASE)]
            if errors:
                evidence.append(f"last log error: {errors[-1].strip()}")
    for event in facts.of("event"):
        if event.get("object") == f"Pod/{pod.get('name')}" and event.get("type") == "Warning":
            evidence.append(f"event {event.get('reason')} x{event.get('count')}: {event.get('message')}")
            break
    confidence = 0.7
    if set(pod.get("waiting_reasons") or []) & {"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull"}:
        confidence += 0.1
    if inside is False:
        confidence += 0.15
    ns = pod.get("namespace")
    confirm = [
        kubectl(facts.context, f"get pods {pod.get('name')}", ns),
        kubectl(facts.context, f"logs {pod.get('name')} --previous --tail=50", ns),
        kubectl(facts.context, f"describe pod {pod.get('name')}", ns),
    ]
    owner = (pod.get("owner") or "").split("/")[-1]
    deployment = owner.rsplit("-", 1)[0] if owner.count("-") else (service or {}).get("name", "app")
    fix = [
        "Fix the start-up failure shown in the previous container's logs (configuration, dependency, image), then",
        kubectl(facts.context, f"rollout restart deployment/{deployment}", ns),
    ]
    return Theory("pods-crashing", title, confidence, evidence, confirm, fix, subjects=[pod.get("name")])


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
        f"pod {data.get('namespace')}/{data.get('pod')}: last {data.get('tail')} lines, {data.get('health_requests')} health requests, {data.get('external_requests')} external",
        _probe_line(failing[0]),
    ]
    confirm = [kubectl(facts.context, f"logs {data.get('pod')} --tail=50", data.get("namespace")), curl_of(failing[0], facts.context)]
    fix = ["Follow the public path hop by hop (DNS -> LoadBalancer -> Service -> pod) to where the request stops; the theories above name the likely hop"]
    return Theory("only-in-cluster-traffic", title, 0.35, evidence, confirm, fix, subjects=[data.get("pod")])


RULES: tuple[Rule, ...] = (
    dns_not_loadbalancer,
    resolvers_disagree,
    loadbalancer_pending,
    duplicate_loadbalancers,
    service_in_other_namespace,
    no_ready_endpoints,
    targetport_mismatch,
    ingress_missing_rule,
    ingress_backend_missing,
    ingress_class_missing,
    ingress_tls_secret_missing,
    network_policy_denies,
    tcp_timeout,
    edge_empty_reply,
    tls_expired,
    tls_wrong_host,
    tls_untrusted,
    pods_crashing,
    only_in_cluster_traffic,
)
