"""Order theories by confidence and drop the ones other evidence contradicts."""

from __future__ import annotations

from collections.abc import Callable

from .facts import Facts, probe_ok
from .theory import Theory

# rule id -> check returning why the theory is contradicted (one line), or None when it stands.
Contradiction = Callable[[Theory, Facts], str | None]


def _firewall_but_connected(theory: Theory, facts: Facts) -> str | None:
    connected = [a for a in theory.subjects if facts.connected(a)]
    if connected and len(connected) == len(theory.subjects):
        return f"TCP connected to {', '.join(connected)}"
    return None


def _policy_but_edge_answers(theory: Theory, facts: Facts) -> str | None:
    dns_probes = facts.http_probes("dns")
    if dns_probes and all(probe_ok(p) for p in dns_probes):
        return "every resolved address answered the health check"
    return None


def _empty_reply_but_app_down(theory: Theory, facts: Facts) -> str | None:
    return "in-cluster health fails too" if facts.in_cluster_ok() is False else None


CONTRADICTIONS: dict[str, Contradiction] = {
    "tcp-timeout": _firewall_but_connected,
    "network-policy-denies": _policy_but_edge_answers,
    "edge-empty-reply": _empty_reply_but_app_down,
}

# Ties are broken by how directly a rule names a fix: earlier in this list ranks higher.
PRECEDENCE = (
    "dns-not-loadbalancer",
    "resolvers-disagree",
    "pods-crashing",
    "loadbalancer-pending",
    "service-in-other-namespace",
    "targetport-mismatch",
    "no-ready-endpoints",
    "ingress-backend-missing",
    "ingress-class-missing",
    "ingress-tls-secret-missing",
    "network-policy-denies",
    "tls-expired",
    "tls-wrong-host",
    "tls-untrusted",
    "tcp-timeout",
    "edge-empty-reply",
    "ingress-missing-rule",
    "duplicate-loadbalancers",
    "only-in-cluster-traffic",
)


def rank(theories: list[Theory], facts: Facts) -> tuple[list[Theory], list[tuple[Theory, str]]]:
    """(kept theories best first, dropped theories with the reason they were dropped)."""
    kept: list[Theory] = []
    dropped: list[tuple[Theory, str]] = []
    for theory in theories:
        check = CONTRADICTIONS.get(theory.rule)
        reason = check(theory, facts) if check else None
        if reason:
            dropped.append((theory, reason))
        else:
            kept.append(theory)
    order = {rule: i for i, rule in enumerate(PRECEDENCE)}
    kept.sort(key=lambda t: (-t.confidence, order.get(t.rule, len(order)), t.rule))
    return kept, dropped
