"""DNS rules: the name does not resolve (NXDOMAIN, NODATA, SERVFAIL, REFUSED, timeout, dangling CNAME),
resolves to an address that serves nothing of the cluster, or resolves differently on different resolvers.

The classes follow RFC 1035/2308 semantics: NXDOMAIN says the name does not exist; NOERROR with an empty
answer (NODATA) says it exists without a record of the asked type; SERVFAIL says the resolver could not
get an answer (authoritative servers failing, or DNSSEC validation failing); REFUSED is policy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..probes.dns import is_ip_literal
from .facts import Facts, probe_ok
from .theory import Theory, curl, curl_of, dig, kubectl
from .wording import (
    answer_line,
    describe_failure,
    dns_resolvers,
    owner_phrase,
    probe_line,
    record_type,
    record_types,
)

# Sections whose checks cannot pass when the name does not resolve.
RESOLVING_SECTIONS = ("dns", "tcp", "tls", "api-health", "performance")
UNRESOLVED_WORDS = ("did not resolve", "nxdomain", "servfail", "no answer", "dns_", "could not resolve")

EXTERNAL_DNS_ANNOTATIONS = (
    "external-dns.alpha.kubernetes.io/hostname",
    "external-dns.alpha.kubernetes.io/internal-hostname",
)


# What a resolver's extended DNS errors (RFC 8914, in the answers' evidence as "Name (EDE n)...") say
# about why it failed: DNSSEC validation, the authoritative servers out of reach, or its own policy.
DNSSEC_CODES = frozenset({1, 2, 5, 6, 7, 8, 9, 10, 11, 12, 25, 27})
AUTHORITY_CODES = frozenset({22, 23})  # No Reachable Authority, Network Error
POLICY_CODES = frozenset({15, 16, 17, 18})  # Blocked, Censored, Filtered, Prohibited
_EXTENDED_CODE = re.compile(r"[^(]*\(EDE (\d+)\)")


def _resolver_says(answers: list[dict]) -> tuple[set[int], str]:
    """(extended error codes, their texts joined) of these answers."""
    said = list(dict.fromkeys(str(e) for a in answers for e in a.get("extended_errors") or ()))
    codes = {int(m.group(1)) for m in map(_EXTENDED_CODE.match, said) if m}
    return codes, "; ".join(said)


def _name(facts: Facts) -> str:
    return (facts.dns or {}).get("name") or facts.context.host


def _managers(facts: Facts, name: str) -> list[str]:
    """Objects whose external-dns annotation asks for ``name`` (who is meant to create the record)."""
    found = []
    for kind, objects in (("Service", facts.all_services()), ("Ingress", facts.of("ingress"))):
        for obj in objects:
            for key in EXTERNAL_DNS_ANNOTATIONS:
                hosts = [
                    h.strip().rstrip(".").lower()
                    for h in str((obj.get("annotations") or {}).get(key, "")).split(",")
                ]
                if name.lower() in hosts:
                    found.append(f"{kind} {obj.get('namespace')}/{obj.get('name')} ({key}={name})")
    return found


def _where_it_should_point(facts: Facts) -> tuple[str, str] | None:
    candidates = facts.candidate_addresses()
    return candidates[0] if candidates else None


def _dns_failure(facts: Facts, failure: str, *, with_cname: bool = False) -> tuple[list[dict], list[dict]]:
    """(answers failing with ``failure``, answers with addresses).

    CNAME-ended failures count only when ``with_cname``.
    """
    answers = facts.dns_answers()
    failed = [a for a in answers if a.get("failure") == failure and bool(a.get("cnames")) == with_cname]
    answered = [a for a in answers if a.get("addresses")]
    return failed, answered


def _dns_class_theory(
    facts: Facts,
    failure: str,
    rule: str,
    *,
    what: str,
    cause: str,
    fix: list[str],
    confirm_extra: list[str],
    confidence: float = 0.85,
) -> Theory | None:
    failed, answered = _dns_failure(facts, failure)
    if not failed:
        return None
    name = _name(facts)
    resolvers = [a.get("resolver") for a in failed]
    evidence = [answer_line(a, name) for a in facts.dns_answers()]
    if answered:
        others = ", ".join(f"{a.get('resolver')} ({', '.join(a.get('addresses') or [])})" for a in answered)
        title = (
            f"resolver {', '.join(resolvers)} {what} for {name} while {others} answer: "
            f"{cause} on that resolver"
        )
        confidence -= 0.3
    else:
        on = "every resolver" if len(resolvers) > 1 else f"resolver {resolvers[0]}"
        title = f"{name} {what} on {on}: {cause}"
    confirm = [dig(name, r) for r in resolvers] + confirm_extra
    theory = Theory(rule, title, confidence, evidence, confirm, fix, subjects=[name])
    theory.explains = facts.explain(("dns",)) + [
        n for n in facts.explain(RESOLVING_SECTIONS[1:], UNRESOLVED_WORDS) if n not in facts.explain(("dns",))
    ]
    return theory


def dns_nxdomain(facts: Facts) -> Theory | None:
    """NXDOMAIN: the name does not exist in its zone (the record was never created, or was deleted) --
    unless the resolver says it blocks the name (extended errors Blocked, Censored, Filtered, Prohibited)."""
    name = _name(facts)
    codes, said = _resolver_says(_dns_failure(facts, "dns_nxdomain")[0])
    if codes & POLICY_CODES:
        return _dns_class_theory(
            facts,
            "dns_nxdomain",
            "dns-nxdomain",
            what="does not exist (NXDOMAIN)",
            cause=f"the resolver's own policy denies the name (it says: {said}), not the zone",
            fix=[
                f"Ask the resolver's operator to allow {name} (its block or filter list, response policy "
                "zone), or point clients at a resolver without that policy"
            ],
            confirm_extra=[f"dig {name} @1.1.1.1  # another resolver: the zone's own answer"],
            confidence=0.9,
        )
    managers = _managers(facts, name)
    point = _where_it_should_point(facts)
    fix = []
    if point:
        fix.append(
            f"Create the {record_type(point[0])} record {name} -> {point[0]} ({owner_phrase(point[1])})"
        )
    else:
        fix.append(
            f"Create the A/AAAA record for {name} in its zone, pointing at the service's public address"
        )
    if managers:
        fix.append(
            f"The record is meant to come from external-dns ({'; '.join(managers)}): check the external-dns "
            "logs for why it was not created (zone filter, ownership TXT record, provider credentials)"
        )
    else:
        fix.append(
            "Whoever manages the zone (external-dns annotations on the Service/Ingress, Terraform, the DNS "
            "provider) must create it; the TTL of the negative answer (SOA minimum) delays the fix"
        )
    theory = _dns_class_theory(
        facts,
        "dns_nxdomain",
        "dns-nxdomain",
        what="does not exist (NXDOMAIN)",
        cause="the DNS record is missing",
        fix=fix,
        confirm_extra=[f"dig {name} SOA +noall +authority  # the zone that says the name does not exist"],
        confidence=0.9,
    )
    if theory is not None:
        if managers:
            theory.evidence.append("external-dns is asked for this name by " + "; ".join(managers))
        elif not facts.cluster_checked:
            theory.unknowns.append(
                "who manages the record (external-dns annotations) was not checked: no cluster "
                f"access — {kubectl(facts.context, 'get svc,ingress -o yaml')}{facts.kubectl_note()}"
            )
        if point:
            theory.evidence.append(f"the cluster serves {name} at {point[0]} ({owner_phrase(point[1])})")
    return theory


def dns_no_data(facts: Facts) -> Theory | None:
    """NODATA: the name exists but has neither an A nor an AAAA record (NOERROR, empty answer)."""
    name = _name(facts)
    point = _where_it_should_point(facts)
    fix = [
        f"Add the A record (IPv4) and, if clients use IPv6, the AAAA record for {name}"
        + (f": {point[0]} ({owner_phrase(point[1])})" if point else "")
    ]
    return _dns_class_theory(
        facts,
        "dns_no_answer",
        "dns-no-data",
        what="exists but has no A or AAAA record (NODATA)",
        cause="the address records are missing (only other record types exist)",
        fix=fix,
        confirm_extra=[f"dig {name} ANY +noall +answer  # which record types the name has"],
        confidence=0.85,
    )


def dns_servfail(facts: Facts) -> Theory | None:
    """SERVFAIL: the resolver could not get an answer.

    The zone's authoritative servers fail, or DNSSEC validation fails.
    """
    name = _name(facts)
    zone = name.split(".", 1)[1] if "." in name else name
    codes, said = _resolver_says(_dns_failure(facts, "dns_servfail")[0])
    cause = (
        "the resolver gets no usable answer from the zone's authoritative servers (server failure, lame "
        "delegation, or a DNSSEC signature that does not validate)"
    )
    fix = [
        "If `dig +cd` answers while plain `dig` fails, DNSSEC validation fails: re-sign the zone or fix the "
        "DS record at the registrar",
        f"Otherwise make the authoritative servers of {zone} answer (dig NS {zone})",
    ]
    confidence = 0.8
    if codes & DNSSEC_CODES:
        cause, confidence = f"DNSSEC validation fails (the resolver says: {said})", 0.9
        fix = [
            f"Re-sign {zone} (expired or missing signatures) or make the DS record at the parent zone match "
            "the zone's DNSSEC key (a key rolled without updating the DS)"
        ]
    elif codes & AUTHORITY_CODES:
        cause, confidence = f"the resolver cannot reach the authoritative servers of {zone} ({said})", 0.88
        fix = [fix[1] + ", and check that the delegation at the parent names servers that exist"]
    elif codes & POLICY_CODES:
        cause, confidence = f"the resolver's own policy denies the name (it says: {said})", 0.85
        fix = [
            f"Ask the resolver's operator to allow {name}, or point clients at a resolver without that policy"
        ]
    return _dns_class_theory(
        facts,
        "dns_servfail",
        "dns-servfail",
        what="fails with SERVFAIL",
        cause=cause,
        fix=fix,
        confirm_extra=[
            f"dig {name} +cd  # checking disabled: an answer here means DNSSEC validation fails",
            f"dig {zone} NS +short",
        ],
        confidence=confidence,
    )


def dns_refused(facts: Facts) -> Theory | None:
    """REFUSED: the resolver will not answer this client (recursion not allowed, ACL)."""
    return _dns_class_theory(
        facts,
        "dns_refused",
        "dns-refused",
        what="is refused (REFUSED)",
        cause="the resolver does not serve this client or this zone (recursion or access list)",
        fix=[
            "Use a resolver that serves this client, or allow recursion/the zone for this client on that "
            "resolver"
        ],
        confirm_extra=[],
        confidence=0.8,
    )


def dns_timeout(facts: Facts) -> Theory | None:
    """Timeout: the resolver did not answer in time.

    It is down or unreachable, or the authoritative servers behind it are too slow.
    """
    failed, _answered = _dns_failure(facts, "dns_timeout")
    refused = any("connection refused" in str(a.get("error") or "") for a in failed)
    cause = (
        "nothing serves DNS at the resolver's address"
        if refused
        else "the resolver is down or unreachable, or it (or the authoritative server behind it) answers "
        "slower "
        "than the probe timeout"
    )
    return _dns_class_theory(
        facts,
        "dns_timeout",
        "dns-timeout",
        what="got no answer in time",
        cause=cause,
        fix=[
            "Check the resolver answers at all (dig with +time=10); if it answers slowly, check the "
            "authoritative "
            "servers' latency; if it does not, restart it or point clients at a working resolver"
        ],
        confirm_extra=[f"dig {_name(facts)} +time=10 +tries=1  # a slow answer vs none at all"],
        confidence=0.8,
    )


def dns_bad_answer(facts: Facts) -> Theory | None:
    """The resolver's answer is malformed, does not match the question, or is truncated without a TCP
    retry."""
    return _dns_class_theory(
        facts,
        "dns_bad_answer",
        "dns-bad-answer",
        what="gets a malformed or mismatched answer",
        cause="the resolver (or a middlebox rewriting DNS on the way) answers with a message clients cannot "
        "use",
        fix=[
            "Query another resolver to compare (dig @1.1.1.1); if only this one is broken, fix or replace "
            "it, and "
            "look for a firewall or proxy that rewrites or truncates DNS traffic"
        ],
        confirm_extra=[f"dig {_name(facts)} +tcp  # over TCP: a truncated UDP answer retried"],
        confidence=0.75,
    )


def dns_dangling_cname(facts: Facts) -> Theory | None:
    """The name is a CNAME whose target does not resolve.

    The target (often a removed load balancer) is gone.
    """
    answers = [
        a for a in facts.dns_answers() if a.get("cnames") and not a.get("addresses") and a.get("failure")
    ]
    if not answers:
        return None
    name = _name(facts)
    answer = answers[0]
    chain = list(answer["cnames"])
    target = chain[-1]
    if _same_name(target, [name, *chain[:-1]]):
        return None  # a loop: dns-cname-loop
    # In a chain the record that dangles is the last CNAME's owner, not the name asked for.
    owner = chain[-2] if len(chain) > 1 else name
    code = {
        "dns_nxdomain": "NXDOMAIN",
        "dns_no_answer": "no A/AAAA record",
        "dns_servfail": "SERVFAIL",
        "dns_timeout": "no answer",
    }.get(answer.get("failure"), answer.get("failure"))
    via = f" (through {', '.join(chain[:-1])})" if len(chain) > 1 else ""
    title = (
        f"{name} is a CNAME{via} to {target}, which does not resolve ({code}): "
        "the CNAME dangles — its target is gone"
    )
    evidence = [answer_line(a, name) for a in facts.dns_answers()]
    point = _where_it_should_point(facts)
    fix = [
        f"Point the CNAME {owner} at the current target"
        + (
            f" (or replace it with an A record -> {point[0]}, {owner_phrase(point[1])})"
            if point
            else " (the load balancer's current hostname), or delete it"
        ),
        "A dangling CNAME to a name others can register is a takeover risk: fix it promptly",
    ]
    confirm = [
        dig(name, answer.get("resolver")),
        f"{dig(target, answer.get('resolver'))}  # expect an address; nothing means it is gone",
    ]
    confidence = 0.9 if len(answers) == len(facts.dns_answers()) else 0.6
    theory = Theory("dns-dangling-cname", title, confidence, evidence, confirm, fix, subjects=[name, target])
    theory.explains = facts.explain(("dns",)) + [
        n for n in facts.explain(RESOLVING_SECTIONS[1:], UNRESOLVED_WORDS) if n not in facts.explain(("dns",))
    ]
    return theory


def _same_name(name: str, names: list[str]) -> bool:
    return name.rstrip(".").lower() in {n.rstrip(".").lower() for n in names}


def dns_cname_loop(facts: Facts) -> Theory | None:
    """The CNAME chain comes back to a name already in it: no name in it can ever have an address."""
    name = _name(facts)
    answer = next(
        (
            a
            for a in facts.dns_answers()
            if a.get("cnames")
            and not a.get("addresses")
            and _same_name(a["cnames"][-1], [name, *a["cnames"][:-1]])
        ),
        None,
    )
    if answer is None:
        return None
    chain = list(answer["cnames"])
    loop = " -> ".join([name, *chain])
    point = _where_it_should_point(facts)
    title = (
        f"the CNAME records of {name} form a loop ({loop}): no name in the chain can have an address, so "
        "nothing resolves — a record meant to point at the load balancer points back into the chain"
    )
    evidence = [answer_line(a, name) for a in facts.dns_answers()]
    names: list[str] = []
    for each in [name, *chain]:
        if not _same_name(each, names):
            names.append(each)
    confirm = [f"{dig(n, answer.get('resolver')).replace(' +short', '')} CNAME +short" for n in names]
    fix = [
        "Break the loop: point one CNAME of the chain at the load balancer's hostname"
        + (
            f", or replace {name}'s with an A record -> {point[0]} ({owner_phrase(point[1])})"
            if point
            else ""
        )
    ]
    theory = Theory("dns-cname-loop", title, 0.9, evidence, confirm, fix, subjects=names)
    theory.explains = facts.explain(("dns",)) + [
        n for n in facts.explain(RESOLVING_SECTIONS[1:], UNRESOLVED_WORDS) if n not in facts.explain(("dns",))
    ]
    return theory


@dataclass
class _StrayAnswer:
    """What DNS answers for the name against where the cluster serves the target, with the probes of both."""

    name: str
    answers: list[str]
    stray: list[str]
    balancers: dict[str, str]
    target: dict | None
    routed: list[tuple[str, str]]
    dns_probes: dict[str, dict]
    lb_probes: list[dict]
    good_address: str
    good_service: str
    good_answers: bool

    @property
    def kind(self) -> str:
        return record_types(self.stray)

    @property
    def stray_probe(self) -> dict | None:
        return self.dns_probes.get(self.stray[0])

    @property
    def good_probe(self) -> dict | None:
        return next((p for p in self.lb_probes if p.get("address") == self.good_address), None)


def _serving_addresses(
    facts: Facts, target: dict | None
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(candidates, routed): the addresses that serve the target (its LoadBalancer, LoadBalancers selecting
    the same pods, its Ingress), replaced by where the host's Ingress routes when that is another Service."""
    routed = _routed_elsewhere(facts, target)
    # The Service was picked because DNS answers its address, but the host's Ingress routes elsewhere:
    # judge DNS by where the Ingress sends the host.
    return (routed or facts.candidate_addresses()), routed


def _stray_answer(facts: Facts) -> _StrayAnswer | None:
    """The DNS answers that are none of the target's addresses, or None when DNS answers right."""
    answers = facts.dns_addresses()
    balancers = facts.loadbalancer_addresses()
    if not answers or not balancers:
        return None
    target = facts.target_service()
    candidates, routed = _serving_addresses(facts, target)
    if not candidates:
        return None
    own = {address for address, _owner in candidates}
    # A stray answer is none of those; when the target's Service is not known, no LoadBalancer/Ingress at all.
    known = own if target is not None else balancers
    stray = [a for a in answers if a not in known]
    if not stray:
        return None
    lb_probes = facts.http_probes("loadbalancer")
    answered = {p.get("address") for p in lb_probes if probe_ok(p)}
    good_address, good_service = next(((a, o) for a, o in candidates if a in answered), candidates[0])
    return _StrayAnswer(
        name=facts.dns.get("name") or facts.context.host,
        answers=answers,
        stray=stray,
        balancers=balancers,
        target=target,
        routed=routed,
        dns_probes={p.get("address"): p for p in facts.http_probes("dns")},
        lb_probes=lb_probes,
        good_address=good_address,
        good_service=good_service,
        good_answers=good_address in answered,
    )


def _stray_confidence(found: _StrayAnswer, disagree: bool) -> float:
    confidence = 0.6
    if found.good_answers:
        confidence += 0.25
    if found.stray_probe is not None and not probe_ok(found.stray_probe):
        confidence += 0.1
    if len(found.stray) < len(found.answers) or disagree:
        confidence -= 0.3  # another answer is right: propagation or a stale resolver explains it better
    if found.target is not None and found.target.get("lb_pending"):
        confidence -= 0.3  # the record likely held the pending LoadBalancer's old address
    return confidence


def _stray_title(found: _StrayAnswer) -> str:
    stray_probe = found.stray_probe
    what = f", which {describe_failure(stray_probe)}" if stray_probe is not None else ""
    others = [found.balancers[a] for a in found.stray if a in found.balancers]
    if others:
        what = f" ({others[0]}, not the target's){what}"
    verb = "answers" if found.good_answers else "has its address"
    if found.good_address in found.answers:
        # Both are in the record set: clients that pick the stray address fail, the others do not.
        return (
            f"the DNS {found.kind} records for {found.name} hold {', '.join(found.stray)}{what}, beside "
            f"{found.good_address}, where {owner_phrase(found.good_service)} {verb} — remove the stray record"
        )
    return (
        f"the DNS {found.kind} record for {found.name} points at {', '.join(found.stray)}{what}; "
        f"{owner_phrase(found.good_service)} {verb} at {found.good_address} — update the record"
    )


def _stray_evidence(facts: Facts, found: _StrayAnswer) -> list[str]:
    name = found.name
    evidence = [f"DNS {name} -> {', '.join(found.answers)} (resolvers: {', '.join(dns_resolvers(facts))})"]
    if found.routed:
        services = sorted({o for _a, o in found.routed if not o.startswith("Ingress ")})
        evidence.append(
            f"the Ingress rules for {name} route to Service {', '.join(services)}, "
            f"not to {found.target.get('name')}, whose LoadBalancer DNS answers"
        )
    evidence.append(
        "LoadBalancer/Ingress addresses in the cluster: "
        + ", ".join(f"{a} ({owner})" for a, owner in found.balancers.items())
    )
    evidence += [probe_line(found.dns_probes[a]) for a in found.stray if a in found.dns_probes]
    evidence += [
        probe_line(probe) + " (probed directly with Host " + (name or "") + ")"
        for probe in found.lb_probes
        if probe.get("address") == found.good_address
    ]
    return evidence


def _stray_confirm(facts: Facts, found: _StrayAnswer) -> list[str]:
    ctx = facts.context
    confirm = [dig(found.name, r) for r in dns_resolvers(facts)]
    good_service = found.good_service
    if good_service.startswith("Ingress "):
        confirm.append(kubectl(ctx, f"get ingress {good_service.split(' ', 1)[1]} -o wide"))
    else:
        confirm.append(
            kubectl(ctx, f"get svc {good_service} -o jsonpath='{{.status.loadBalancer.ingress[*].ip}}'")
        )
    confirm += [
        curl_of(found.dns_probes[a], ctx) if a in found.dns_probes else curl(ctx, a) for a in found.stray
    ]
    good_probe = found.good_probe
    confirm.append(curl_of(good_probe, ctx) if good_probe else curl(ctx, found.good_address))
    return confirm


def _stray_fix(facts: Facts, found: _StrayAnswer) -> list[str]:
    name, kind, stray = found.name, found.kind, ", ".join(found.stray)
    service = owner_phrase(found.good_service)
    if found.good_address in found.answers:
        # The record set already holds the right address beside the stray one(s): half the clients fail.
        change = (
            f"Remove {stray} from the DNS {kind} records of {name}; keep {found.good_address} ({service}), "
            "which it already answers"
        )
    elif not is_ip_literal(found.good_address):  # a load balancer published as a hostname (AWS's ELB/NLB)
        change = (
            f"Point {name} at {found.good_address} ({service}): a CNAME to it, or an alias record as "
            f"Route 53 and external-dns write for a load balancer, in place of the {kind} record {stray}"
        )
    elif record_type(found.good_address) == record_type(found.stray[0]):
        change = (
            f"Update the DNS {kind} record of {name}: replace {stray} with {found.good_address} ({service})"
        )
    else:
        change = f"Remove the DNS {kind} record {stray} of {name} (or point it at an address of {service})"
    return [
        change,
        f"{dig(name, dns_resolvers(facts)[0])}  # expect {found.good_address} once the TTL has passed",
    ]


def dns_not_loadbalancer(facts: Facts) -> Theory | None:
    """The name resolves to an address that is no LoadBalancer or Ingress of the cluster."""
    found = _stray_answer(facts)
    if found is None:
        return None
    verify = [f"{dig(found.name, r)}  # expect {found.good_address}" for r in dns_resolvers(facts)]
    verify.append(
        f"{curl(facts.context, found.good_address)}  # expect HTTP 200 from the address DNS now answers"
    )
    theory = Theory(
        "dns-not-loadbalancer",
        _stray_title(found),
        _stray_confidence(found, facts.dns.get("agree") is False),
        _stray_evidence(facts, found),
        _stray_confirm(facts, found),
        _stray_fix(facts, found),
        subjects=found.stray,
        verify=verify,
    )
    theory.explains = facts.explain(("dns",)) + facts.explain(
        ("tcp", "tls", "api-health", "performance"), found.stray
    )
    return theory


def _routed_elsewhere(facts: Facts, target: dict | None) -> list[tuple[str, str]]:
    """(address, owner) of the Services the Ingress rules for the host route to, when the target Service
    is not one of them (DNS answers another Service's LoadBalancer); empty otherwise."""
    host = facts.context.host
    if target is None or not host:
        return []
    backends = {
        path.get("service")
        for ingress in facts.ingresses_for_host(host)
        for rule in ingress.get("rules") or []
        for path in rule.get("paths") or []
        if path.get("service")
    }
    if not backends or target.get("name") in backends:
        return []
    found = [
        (a, str(s.get("name")))
        for s in facts.services()
        if s.get("name") in backends
        for a in s.get("lb_addresses") or []
    ]
    found += [
        (a, f"Ingress {i.get('name')}")
        for i in facts.ingresses_for_host(host)
        for a in i.get("addresses") or []
    ]
    return found


def _each_answer(
    answers: list[dict], name: str, balancers: dict[str, str]
) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """(what each resolver answers, their evidence lines, (resolver, address) answers that are no
    LoadBalancer)."""
    parts, evidence, stale = [], [], []
    for answer in answers:
        addresses = answer.get("addresses") or []
        shown = ", ".join(addresses) or (answer.get("failure") or "no answer")
        parts.append(f"{answer.get('resolver')} answers {shown}")
        evidence.append(answer_line(answer, name))
        if balancers:
            stale += [(answer.get("resolver"), address) for address in addresses if address not in balancers]
    return parts, evidence, stale


def _stale_probes(stale: list[tuple[str, str]], dns_probes: dict[str, dict]) -> tuple[list[str], bool]:
    """(probe lines of the stale addresses, whether one of those probes failed)."""
    probes = [dns_probes[address] for _resolver, address in stale if address in dns_probes]
    return [probe_line(probe) for probe in probes], any(not probe_ok(probe) for probe in probes)


def _disagree_title(
    name: str,
    parts: list[str],
    stale: list[tuple[str, str]],
    stale_zone: list[dict],
    dns_probes: dict[str, dict],
) -> str:
    title = f"resolvers disagree about {name}: " + "; ".join(parts)
    if stale:
        resolver, address = stale[0]
        title += f" — {resolver} still serves {address}, which is no LoadBalancer"
        if address in dns_probes and not probe_ok(dns_probes[address]):
            title += f" and {describe_failure(dns_probes[address])}"
    elif stale_zone:
        title += f" — {', '.join(a.get('resolver') for a in stale_zone)} serves a zone without the record"
    return title


def _disagreement(dns: dict | None) -> tuple[list[dict], list[dict]] | None:
    """(every resolver's answer, those saying the name has no address) when resolvers disagree about
    its addresses; None otherwise."""
    if not dns or dns.get("agree") is not False:
        return None
    answers = list(dns.get("answers") or [])
    # Disagreement means answers that differ; a resolver that fails outright is its class's rule (timeout,
    # ...), unless it says the name does not exist (or has no address) while another has it: a stale zone.
    stale_zone = [a for a in answers if a.get("failure") in ("dns_nxdomain", "dns_no_answer")]
    with_addresses = [a for a in answers if a.get("addresses")]
    if len(with_addresses) < 2 and not (with_addresses and stale_zone):
        return None
    return answers, stale_zone


def resolvers_disagree(facts: Facts) -> Theory | None:
    """Resolvers give different answers: propagation in progress or a stale secondary."""
    dns = facts.dns
    disagreement = _disagreement(dns)
    if disagreement is None:
        return None
    answers, stale_zone = disagreement
    name = dns.get("name") or facts.context.host
    dns_probes = {p.get("address"): p for p in facts.http_probes("dns")}
    parts, evidence, stale = _each_answer(answers, name, facts.loadbalancer_addresses())
    probe_lines, stale_failed = _stale_probes(stale, dns_probes)
    evidence += probe_lines
    if stale_failed:
        confidence = 0.85
    else:
        confidence = 0.75 if stale_zone and not stale else 0.6
    confirm = [dig(name, a.get("resolver")) for a in answers]
    fix = [
        "If the record changed recently, wait for the old TTL to pass and re-check; otherwise",
        "update the zone on the resolver/secondary that serves the stale answer (check zone transfer / "
        "serial)",
    ]
    theory = Theory(
        "resolvers-disagree",
        _disagree_title(name, parts, stale, stale_zone, dns_probes),
        confidence,
        evidence,
        confirm,
        fix,
        subjects=[a for _, a in stale] or [str(a.get("resolver")) for a in stale_zone],
    )
    theory.explains = facts.explain(("dns",)) + facts.explain(
        ("tcp", "tls", "api-health"), [a for _, a in stale]
    )
    return theory
