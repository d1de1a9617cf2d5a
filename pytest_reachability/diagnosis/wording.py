"""How theories say things: one line per probe, pod, event and DNS answer, worded the same everywhere."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from ..k8s import running_for
from ..moments import human_duration, seconds_between
from .facts import Facts

# What an address that failed does, in words a person repeats in the incident channel.
BEHAVIOUR = {
    "empty_reply": "accepts TCP and closes without replying",
    "tcp_refused": "refuses connections (nothing listens)",
    "tcp_timeout": "does not answer TCP (SYN unanswered)",
    "tcp_unreachable": "is unreachable (no route)",
    "read_timeout": "accepts the request and never answers",
    "recv_error": "resets the connection mid-response",
    "partial_body": "closes the connection before the body ends",
    "bad_response": "does not speak HTTP",
    "tls_handshake": "fails the TLS handshake",
    "tls_timeout": "does not answer the TLS handshake",
    "too_many_redirects": "redirects in a loop",
}


def describe_failure(probe: Mapping[str, Any]) -> str:
    failure = probe.get("failure")
    if failure is None or failure == "http_status":
        return f"answers {probe.get('status')}"
    return BEHAVIOUR.get(failure, probe.get("wording") or failure)


def probe_line(probe: Mapping[str, Any]) -> str:
    """``GET /health via DNS answer 127.0.10.57:80: empty_reply (curl exit 52)``."""
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
        if probe.get("detail"):
            outcome += f": {str(probe['detail'])[:160]}"
    redirects = probe.get("redirects") or []
    if redirects:
        outcome += f" (after redirects to {' -> '.join(str(r) for r in redirects[:3])})"
    method = "GET " + str(probe.get("path") or "/") if "path" in probe else "connect"
    return f"{method} via {label} {where}: {outcome}"


def record_type(address: str) -> str:
    """``A`` for an IPv4 address, ``AAAA`` for IPv6."""
    try:
        return "AAAA" if ipaddress.ip_address(address).version == 6 else "A"
    except ValueError:
        return "A"


def record_types(addresses: Iterable[str]) -> str:
    kinds = sorted({record_type(a) for a in addresses})
    return "/".join(kinds) if kinds else "A"


def dns_resolvers(facts: Facts) -> list[str]:
    resolvers = [a.get("resolver") for a in facts.dns_answers() if a.get("resolver")]
    return resolvers or facts.context.resolvers or ["system"]


def answer_line(answer: Mapping[str, Any], name: str) -> str:
    addresses = ", ".join(answer.get("addresses") or []) or "no address"
    line = f"resolver {answer.get('resolver')}: {name} -> {addresses} (rcode {answer.get('rcode')}"
    if answer.get("cnames"):
        line += f", CNAME {' -> '.join(answer['cnames'])}"
    if answer.get("error"):
        line += f", {answer['error']}"
    return line + ")"


def _history(pod: Mapping[str, Any], state: Mapping[str, Any]) -> str:
    """ " 4d ago, running and ready for 4d" — when the last termination was, as kubectl's RESTARTS column
    says it, and how long the container has run since ('' for what is unknown)."""
    text = ""
    ago = seconds_between(state.get("last_finished_at"), pod.get("read_at"))
    if ago is not None:
        text += f" {human_duration(ago)} ago"
    running = running_for(state, pod.get("read_at"))
    if running is not None:
        text += f", running and ready for {human_duration(running)}"
    return text


def _not_ready_note(pod: Mapping[str, Any]) -> str:
    """ " (pod Ready=False: NodeLost)" when the containers' last reported state says ready and the pod's own
    Ready condition says otherwise — a node that stopped reporting, a readiness gate, a pod being deleted."""
    total = pod.get("containers_total") or 0
    if pod.get("ready") or not total or pod.get("containers_ready") != total:
        return ""
    ready = next((c for c in pod.get("conditions") or [] if c.get("type") == "Ready"), None)
    if ready is None:
        return ""
    return f" (pod Ready={ready.get('status')}{': ' + str(ready['reason']) if ready.get('reason') else ''})"


def pod_line(pod: Mapping[str, Any]) -> str:
    parts = [
        f"pod {pod.get('name')}: phase {pod.get('phase')}",
        f"ready {pod.get('containers_ready')}/{pod.get('containers_total')}{_not_ready_note(pod)}",
        f"restarts {pod.get('restarts')}",
    ]
    for state in pod.get("container_states") or []:
        if state.get("state") == "waiting" and state.get("reason"):
            text = f"container {state.get('name')} waiting {state['reason']}"
            if state.get("message"):
                text += f" ({str(state['message'])[:160]})"
            parts.append(text)
        if state.get("last_reason") or state.get("last_exit_code") is not None:
            parts.append(
                f"container {state.get('name')} last terminated {state.get('last_reason')} "
                f"exit code {state.get('last_exit_code')}{_history(pod, state)}"
            )
    if pod.get("unschedulable_message"):
        parts.append(f"PodScheduled=False: {pod['unschedulable_message']}")
    if pod.get("node"):
        parts.append(f"node {pod['node']}")
    return ", ".join(parts)


def event_line(event: Mapping[str, Any]) -> str:
    return (
        f"event {event.get('reason')} x{event.get('count')} on {event.get('object')}: {event.get('message')}"
    )


def service_label(service: Mapping[str, Any]) -> str:
    return f"`{service.get('name')}`"


def owner_phrase(owner: str) -> str:
    if owner.startswith("Ingress "):
        return f"the Ingress `{owner.split(' ', 1)[1]}`"
    return f"the `{owner}` LoadBalancer"


def short(text: Any, limit: int = 160) -> str:
    value = " ".join(str(text or "").split())
    return value if len(value) <= limit else value[: limit - 3] + "..."
