"""The last word: a theory for every failed check no rule explained, grounded in that check's own evidence.

Every check of the built-in suite records the evidence it judged, so every one of its failures gets a theory;
a check that recorded nothing (a user's test without evidence) is left to its own failure message.

No failure goes without a cause sentence, a command to confirm it and a step to fix it, even when no rule
knows the fault: the theory then says exactly what the check saw and that no deeper cause was found.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..results import TestResult
from .facts import Facts, RunContext
from .theory import Theory, curl_of, dig, kubectl
from .wording import probe_line, short

FALLBACK_RULE = "unexplained-failure"


def _recorded_request(test: TestResult, ctx: RunContext) -> str | None:
    """The request the check itself made, when its evidence recorded one (a probe's curl line, a URL)."""
    records = [r.get("data") or {} for r in test.evidence if isinstance(r, dict)]
    probes = [d for d in records if isinstance(d, dict) and d.get("curl")]
    if probes:
        return curl_of(probes[0], ctx)
    checks = [d for d in records if isinstance(d, dict) and d.get("url")]
    if checks and str(checks[0]["url"]).startswith("http"):
        return f"curl -v {checks[0]['url']}"
    return None


def _section_commands(ctx: RunContext, note: str) -> dict[str, str]:
    """Per section, the command that shows what its checks look at."""
    host = ctx.host or "<host>"
    return {
        "cluster": kubectl(ctx, "get nodes,pods -o wide") + note,
        "workloads": kubectl(ctx, "get deployments,replicasets -o wide") + note,
        "k8s-services": kubectl(ctx, "get svc -o wide") + note,
        "endpoints": kubectl(ctx, "get endpointslices -o wide") + note,
        "ingress": kubectl(ctx, "get ingress -o yaml") + note,
        "network-policy": kubectl(ctx, "get networkpolicy -o yaml") + note,
        "dns": dig(host, (ctx.resolvers or ["system"])[0]),
        "tcp": f"nc -vz -w 5 {host} {ctx.port or 80}",
        "tls": f"openssl s_client -connect {host}:{ctx.port or 443} -servername {host}",
        "api-internal": kubectl(ctx, "get pods,endpointslices -o wide") + note,
        "database": "psql <DSN> -c 'SELECT 1'",
    }


def _confirm(facts: Facts, section: str, test: TestResult) -> list[str]:
    ctx = facts.context
    request = _recorded_request(test, ctx)
    if request is not None:
        return [request]
    by_section = _section_commands(ctx, facts.kubectl_note())
    if section in by_section:
        return [by_section[section]]
    return [f"python -m pytest '{test.nodeid}' -rA  # re-run the check and read its full output"]


def _evidence(test: TestResult) -> list[str]:
    lines = [f"{test.nodeid}: {test.reason or test.outcome}"]
    for record in test.evidence[:6]:
        kind, data = record.get("kind"), record.get("data")
        if not isinstance(data, dict):
            continue
        if kind in ("http_probe", "tcp", "tls") and data.get("address"):
            lines.append(probe_line({**data, "source": data.get("source", "dns")}))
        elif kind == "app_check":
            lines.append(
                f"{data.get('check')}: observed {short(data.get('observed'), 100)}, expected "
                f"{short(data.get('expected'), 60)} ({data.get('url')})"
            )
        elif kind == "performance":
            lines.append(
                f"{data.get('requests')} requests: p95 {data.get('p95_ms')} ms, error rate "
                f"{data.get('error_rate')}"
            )
    return lines


def unexplained_failures(facts: Facts, explained: Iterable[str]) -> list[Theory]:
    """One theory per section whose failed checks no theory explains."""
    known = set(explained)
    by_section: dict[str, list[TestResult]] = {}
    for test in facts.failing_tests():
        # A check that recorded nothing gives nothing to ground a theory in beyond its own message, which the
        # reports show already ("no rule found a cause" is then the honest answer).
        if not test.evidence:
            continue
        if test.nodeid not in known:
            by_section.setdefault(test.section, []).append(test)
    theories = []
    for section, tests in by_section.items():
        first = tests[0]
        more = (
            f" (and {len(tests) - 1} more check{'s' if len(tests) > 2 else ''} of the section)"
            if len(tests) > 1
            else ""
        )
        title = (
            f"{section}: {short(first.reason or first.outcome, 200)}{more} — no rule found a deeper cause; "
            "this is what the check itself observed"
        )
        evidence = [line for test in tests[:3] for line in _evidence(test)]
        fix = [
            f"Fix what the check reports ({short(first.reason, 120)}), starting from the confirm command's "
            "output"
        ]
        theory = Theory(
            FALLBACK_RULE, title, 0.4, evidence, _confirm(facts, section, first), fix, subjects=[section]
        )
        theory.explains = [t.nodeid for t in tests]
        theories.append(theory)
    return theories
