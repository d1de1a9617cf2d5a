"""Order theories, drop the ones other evidence contradicts, and fold symptoms under their cause.

A theory whose fault is a consequence of another theory's fault (no ready endpoints because the pods crash;
a refused connection at the address DNS wrongly points to) is not a rival cause: it is folded under that
cause as a symptom, and the cause accounts for the failed checks the symptom explained. Which rule's fault
can cause which is declared in :data:`CAUSES`, a graph without cycles. The order is the same every run:
confidence, then how many failed checks a theory explains, then :data:`PRECEDENCE`, then rule id and title.
"""

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

# What a backend that cannot serve shows further out.
SERVING_SYMPTOMS = (
    "no-ready-endpoints",
    "http-5xx",
    "read-timeout",
    "edge-empty-reply",
    "edge-reset",
    "edge-partial-body",
    "in-cluster-unhealthy",
    "intermittent-failures",
    "only-in-cluster-traffic",
    "slow-responses",
    "rollout-stuck",
    "pods-not-ready",
)
# What an address serving something else (or nothing) shows to a client.
ADDRESS_SYMPTOMS = (
    "tcp-refused",
    "tcp-timeout",
    "tcp-unreachable",
    "edge-empty-reply",
    "edge-reset",
    "edge-partial-body",
    "edge-not-http",
    "read-timeout",
    "redirect-loop",
    "http-5xx",
    "http-404",
    "http-auth",
    "http-4xx",
    "body-mismatch",
    "tls-expired",
    "tls-not-yet-valid",
    "tls-wrong-host",
    "tls-untrusted",
    "tls-incomplete-chain",
    "tls-handshake",
    "tls-timeout",
    "only-in-cluster-traffic",
)
POD_CAUSES = (
    "image-pull-failed",
    "container-config-error",
    "volume-attach-failed",
    "container-oom-killed",
    "liveness-probe-failing",
    "startup-probe-failing",
    "pods-crashing",
    "readiness-probe-failing",
    "pod-unschedulable",
    "node-not-ready",
    "deployment-scaled-to-zero",
    "selector-matches-no-pods",
    "targetport-mismatch",
    "service-missing",
    "service-in-other-namespace",
)
LOADBALANCER_SYMPTOMS = (
    "dns-not-loadbalancer",
    "tcp-refused",
    "tcp-timeout",
    "tcp-unreachable",
    "edge-empty-reply",
    "read-timeout",
    "http-5xx",
    "only-in-cluster-traffic",
)


def _without(items: tuple[str, ...], *drop: str) -> tuple[str, ...]:
    return tuple(item for item in items if item not in drop)


# cause rule -> rules whose theories it may fold as symptoms
CAUSES: dict[str, tuple[str, ...]] = {
    **{cause: _without(SERVING_SYMPTOMS, cause) for cause in POD_CAUSES},
    "container-oom-killed": SERVING_SYMPTOMS + ("pods-crashing", "liveness-probe-failing"),
    "liveness-probe-failing": SERVING_SYMPTOMS + ("pods-crashing", "readiness-probe-failing"),
    "node-not-ready": SERVING_SYMPTOMS + ("readiness-probe-failing", "pod-unschedulable"),
    "rollout-stuck": _without(SERVING_SYMPTOMS, "rollout-stuck", "pods-not-ready"),
    # Without the Service the address it had answers nothing (or something else).
    "service-missing": SERVING_SYMPTOMS + ("tcp-refused", "tcp-timeout", "dns-not-loadbalancer"),
    "pods-not-ready": _without(SERVING_SYMPTOMS, "pods-not-ready", "rollout-stuck"),
    "no-ready-endpoints": _without(SERVING_SYMPTOMS, "no-ready-endpoints", "rollout-stuck", "pods-not-ready"),
    # A change at the source still cached, a LoadBalancer moved under its record: why DNS answers a stray
    # address.
    "dns-still-cached": ADDRESS_SYMPTOMS + ("dns-not-loadbalancer", "resolvers-disagree"),
    "loadbalancer-moved": ADDRESS_SYMPTOMS + ("dns-not-loadbalancer",),
    "dns-not-loadbalancer": ADDRESS_SYMPTOMS,
    # A private address in the answer: every failure at that address, and the "no LoadBalancer" reading of it.
    "dns-private-address": ADDRESS_SYMPTOMS + ("dns-not-loadbalancer",),
    "resolvers-disagree": ADDRESS_SYMPTOMS + ("dns-nxdomain", "dns-no-data", "dns-not-loadbalancer"),
    "loadbalancer-pending": LOADBALANCER_SYMPTOMS,
    "loadbalancer-removed": LOADBALANCER_SYMPTOMS,
    "loadbalancer-no-local-endpoints": LOADBALANCER_SYMPTOMS + ("edge-reset", "tls-timeout"),
    "network-policy-denies": (
        "read-timeout",
        "http-5xx",
        "tcp-timeout",
        "edge-empty-reply",
        "only-in-cluster-traffic",
    ),
    "ingress-missing-rule": ("http-404", "only-in-cluster-traffic"),
    "ingress-backend-missing": ("http-5xx", "http-404", "read-timeout", "only-in-cluster-traffic"),
    "ingress-backend-port-missing": ("http-5xx", "http-404", "read-timeout", "only-in-cluster-traffic"),
    "external-name-unresolvable": ("http-5xx", "read-timeout", "only-in-cluster-traffic"),
    # The new release's pods answer their share of the requests badly; the rollout itself is unfinished.
    "rollout-new-pods-failing": (
        "intermittent-failures",
        "http-5xx",
        "http-4xx",
        "body-mismatch",
        "in-cluster-unhealthy",
        "slow-responses",
    ),
    # Requests that land on another app's pods fail the way that app answers them.
    "service-selector-overlap": (
        "intermittent-failures",
        "http-404",
        "http-4xx",
        "http-5xx",
        "body-mismatch",
        "in-cluster-unhealthy",
        "read-timeout",
        "edge-reset",
        "slow-responses",
    ),
    # Nothing in the namespace: every check of what should be there fails with it.
    "namespace-empty": (
        "ingress-missing-rule",
        "tls-untrusted",
        "tls-wrong-host",
        "http-404",
        "http-5xx",
        "tcp-refused",
        "tcp-timeout",
        "read-timeout",
        "only-in-cluster-traffic",
    ),
    "ingress-class-missing": ("http-5xx", "http-404", "only-in-cluster-traffic"),
    "ingress-tls-secret-missing": ("tls-wrong-host", "tls-untrusted"),
    "ingress-tls-host-missing": ("tls-wrong-host", "tls-untrusted"),
    # An annotation that makes ingress-nginx fail the request itself: what the client meets at the edge.
    "ingress-annotation": (
        "http-5xx",
        "http-404",
        "http-4xx",
        "body-mismatch",
        "tls-handshake",
        "edge-reset",
        "only-in-cluster-traffic",
    ),
    "tls-incomplete-chain": ("tls-untrusted",),
    "dns-dangling-cname": ("dns-nxdomain", "dns-no-data", "dns-servfail", "dns-timeout", "dns-bad-answer"),
    **{
        rule: (
            "dependency-unhealthy",
            "http-5xx",
            "in-cluster-unhealthy",
            "database-slow",
            "intermittent-failures",
            "body-mismatch",
        )
        for rule in ("database-refused", "database-timeout", "database-auth-failed", "database-missing")
    },
    "dependency-unhealthy": ("http-5xx", "in-cluster-unhealthy", "body-mismatch", "intermittent-failures"),
    "app-reports-unhealthy": ("http-5xx", "in-cluster-unhealthy", "body-mismatch"),
    "in-cluster-unhealthy": ("http-5xx", "body-mismatch"),
    "database-slow": ("slow-responses",),
    **{
        rule: ("only-in-cluster-traffic",)
        for rule in (
            "tcp-refused",
            "tcp-timeout",
            "tcp-unreachable",
            "edge-empty-reply",
            "edge-reset",
            "edge-not-http",
            "read-timeout",
            "http-5xx",
        )
    },
}
# Causes whose symptoms must be about the same addresses (a wrong DNS answer explains failures at that
# answer only).
SAME_SUBJECTS = frozenset(
    {
        "dns-not-loadbalancer",
        "dns-private-address",
        "resolvers-disagree",
        "dns-still-cached",
        "loadbalancer-moved",
    }
)
MIN_CAUSE_CONFIDENCE = 0.4

# Ties are broken by how directly a rule names a fix: earlier in this list ranks higher.
PRECEDENCE = (
    "dns-still-cached",
    "loadbalancer-moved",
    "dns-private-address",
    "dns-not-loadbalancer",
    "resolvers-disagree",
    "dns-cname-loop",
    "dns-dangling-cname",
    "dns-nxdomain",
    "dns-no-data",
    "dns-servfail",
    "dns-refused",
    "dns-timeout",
    "dns-bad-answer",
    "cluster-access-failed",
    "loadbalancer-removed",
    "loadbalancer-no-local-endpoints",
    "loadbalancer-pending",
    "namespace-empty",
    "service-in-other-namespace",
    "service-missing",
    "node-not-ready",
    "image-pull-failed",
    "container-config-error",
    "volume-attach-failed",
    "container-oom-killed",
    "liveness-probe-failing",
    "pods-crashing",
    "pod-unschedulable",
    "deployment-scaled-to-zero",
    "selector-matches-no-pods",
    "service-selector-overlap",
    "rollout-new-pods-failing",
    "readiness-probe-failing",
    "targetport-mismatch",
    "rollout-stuck",
    "ingress-backend-missing",
    "ingress-backend-port-missing",
    "external-name-unresolvable",
    "ingress-class-missing",
    "ingress-tls-secret-missing",
    "ingress-tls-host-missing",
    "ingress-annotation",
    "network-policy-denies",
    "database-missing",
    "database-auth-failed",
    "database-refused",
    "database-timeout",
    "database-slow",
    "dependency-unhealthy",
    "app-reports-unhealthy",
    "tls-expired",
    "tls-not-yet-valid",
    "tls-wrong-host",
    "tls-incomplete-chain",
    "tls-untrusted",
    "tls-handshake",
    "tls-timeout",
    "redirect-loop",
    "redirect-unsafe",
    "redirect-elsewhere",
    "redirect-target-fails",
    "headers-too-large",
    "no-ready-endpoints",
    "pods-not-ready",
    "in-cluster-unhealthy",
    "tcp-timeout",
    "tcp-refused",
    "tcp-unreachable",
    "edge-empty-reply",
    "edge-not-http",
    "edge-reset",
    "edge-partial-body",
    "read-timeout",
    "http-5xx",
    "http-404",
    "http-auth",
    "http-4xx",
    "body-mismatch",
    "slow-responses",
    "intermittent-failures",
    "ingress-missing-rule",
    "duplicate-loadbalancers",
    "only-in-cluster-traffic",
)
_ORDER = {rule: index for index, rule in enumerate(PRECEDENCE)}


def rank_key(theory: Theory) -> tuple:
    return (
        -theory.confidence,
        -len(theory.all_explained()),
        _ORDER.get(theory.rule, len(_ORDER)),
        theory.rule,
        theory.title,
    )


def _may_fold(cause: Theory, symptom: Theory) -> bool:
    if cause is symptom or cause.rule == symptom.rule or symptom.rule not in CAUSES.get(cause.rule, ()):
        return False
    if cause.confidence < MIN_CAUSE_CONFIDENCE:
        return False
    if (
        cause.rule in SAME_SUBJECTS
        and symptom.rule in ADDRESS_SYMPTOMS + ("dns-not-loadbalancer",)
        and symptom.rule != "only-in-cluster-traffic"
    ):
        return bool(set(cause.subjects) & set(symptom.subjects))
    return True


def fold(theories: list[Theory]) -> list[Theory]:
    """Fold each theory under its best-ranked cause; return the top-level theories, best first.

    A cause is at least as confident as the symptoms folded under it, and accounts for what they explain.
    """
    ordered = sorted(theories, key=rank_key)
    parent: dict[int, Theory] = {}
    for symptom in ordered:
        causes = [cause for cause in ordered if _may_fold(cause, symptom)]
        if causes:
            parent[id(symptom)] = causes[0]
    children: dict[int, list[Theory]] = {}
    for symptom in ordered:
        cause = parent.get(id(symptom))
        if cause is not None:
            children.setdefault(id(cause), []).append(symptom)

    def attach(theory: Theory, seen: frozenset[int]) -> Theory:
        for child in children.get(id(theory), []):
            if id(child) in seen:
                continue  # CAUSES has no cycle; this only guards against a malformed user rule set
            attach(child, seen | {id(child)})
            theory.symptoms.append(child)
            theory.confidence = max(theory.confidence, child.confidence)
        return theory

    top = [attach(theory, frozenset({id(theory)})) for theory in ordered if id(theory) not in parent]
    return sorted(top, key=rank_key)


def rank(theories: list[Theory], facts: Facts) -> tuple[list[Theory], list[tuple[Theory, str]]]:
    """(kept theories best first, symptoms folded under them; dropped theories with the reason they were
    dropped)."""
    kept: list[Theory] = []
    dropped: list[tuple[Theory, str]] = []
    for theory in theories:
        check = CONTRADICTIONS.get(theory.rule)
        reason = check(theory, facts) if check else None
        if reason:
            dropped.append((theory, reason))
        else:
            kept.append(theory)
    return fold(kept), dropped
