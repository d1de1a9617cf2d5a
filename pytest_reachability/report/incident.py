"""``--incident-report PATH``: the markdown incident report an engineer attaches to the incident.

Its structure follows the reports engineers write by hand (INC-2025-12-08-001): header, executive
summary, results overview per section, details per section with the observed values and curl lines,
root cause analysis, immediate action plan, blocked-tests tracker, timeline, verification checklist.
It renders as GitHub markdown (table cells escaped) and is written atomically.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..atomic import write_atomically
from ..redact import Redactor
from ..results import RunResults, SectionRow, TestResult

STATUS_BADGE = {"PASS": "✅ PASS", "FAIL": "❌ FAIL", "BLOCKED": "⏸️ BLOCKED", "SKIPPED": "⏭️ SKIPPED"}
OUTCOME_BADGE = {
    "passed": "✅ passed",
    "failed": "❌ failed",
    "error": "💥 error",
    "blocked": "⏸️ BLOCKED",
    "skipped": "⏭️ skipped",
    "xfailed": "⏭️ xfailed",
    "xpassed": "✅ xpassed",
}
COMMAND_WORDS = ("kubectl", "dig", "curl", "nc", "openssl", "pytest", "python")
_ID_PATTERN = re.compile(r"INC-(\d{4}-\d{2}-\d{2})-(\d{3})")


@dataclass
class IncidentContext:
    """What the report says besides results and theories."""

    incident_id: str
    created: datetime
    started: float | None = None
    duration: float | None = None
    rerun_command: str = "pytest"
    history: Mapping[str, Any] | None = None


def escape_cell(value: Any) -> str:
    """Text safe inside a GitHub table cell: pipes escaped, line breaks as <br>, never empty."""
    text = "" if value is None else str(value)
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", "")
    text = "<br>".join(part for part in text.split("\n"))
    return text or " "


def _code(text: str) -> str:
    """Inline code that survives backticks inside."""
    fence = "``" if "`" in text else "`"
    pad = " " if "`" in text else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def next_incident_id(directory: str | os.PathLike[str], day: datetime) -> str:
    """``INC-<date>-<nnn>``: nnn one more than the highest number of that date among the reports in ``directory``."""
    date = day.strftime("%Y-%m-%d")
    highest = 0
    folder = Path(directory)
    if folder.is_dir():
        for path in folder.iterdir():
            texts = [path.name]
            if path.is_file() and path.suffix.lower() in (".md", ".markdown"):
                try:
                    with path.open(encoding="utf-8", errors="replace") as stream:
                        texts.append(stream.read(4096))
                except OSError:
                    pass
            for text in texts:
                for match in _ID_PATTERN.finditer(text):
                    if match.group(1) == date:
                        highest = max(highest, int(match.group(2)))
    return f"INC-{date}-{highest + 1:03d}"


def severity(results: RunResults) -> tuple[str, str]:
    """(badge, why): a failed gate is critical, other failures high, nothing failed none."""
    failed = [t for t in results.tests.values() if t.outcome in ("failed", "error")]
    gates = sorted({t.gate for t in failed if t.gate})
    if gates:
        return "🔴 **CRITICAL**", f"gate {', '.join(gates)} failed: dependent sections are blocked"
    if failed:
        return "🟠 **HIGH**", f"{len(failed)} check(s) failed"
    if results.by_outcome("blocked"):
        return "🟠 **HIGH**", "checks are blocked"
    if not results.tests:
        return "⚪ **UNKNOWN**", "no checks ran"
    return "🟢 **NONE**", "every check that ran passed"


def status(results: RunResults) -> str:
    if any(t.outcome in ("failed", "error", "blocked") for t in results.tests.values()):
        return "🟡 **UNDER INVESTIGATION** — requires action"
    return "🟢 **RESOLVED** — all checks passed"


def render_incident_report(
    results: RunResults,
    settings: Any,
    theories: Sequence[Any],
    context: IncidentContext,
) -> str:
    """The report as markdown (not yet redacted)."""
    target = getattr(settings, "target", None)
    target_text = target.display if target is not None else "(no target)"
    host = getattr(target, "host", None) or target_text
    namespace = getattr(settings, "namespace", None)
    sandbox = getattr(settings, "sandbox", None)
    rows = results.sections()
    health = results.health()
    badge, why = severity(results)
    created = context.created.strftime("%Y-%m-%d %H:%M:%S UTC")
    failing = [t for t in results.tests.values() if t.outcome in ("failed", "error")]
    blocked = results.by_outcome("blocked")
    top = theories[0] if theories else None

    out: list[str] = []
    add = out.append
    title = f"{host} fails verification" if failing or blocked else f"{host} verified healthy"
    add(f"# 🚨 INCIDENT REPORT: {title}")
    add("")
    add(f"**Incident ID:** {context.incident_id}  ")
    add(f"**Date:** {created}  ")
    add(f"**Severity:** {badge} ({why})  ")
    add(f"**Status:** {status(results)}  ")
    add("**Reporter:** pytest-reachability (automated post-deploy verification)  ")
    where = f"**Target:** {_code(target_text)}"
    if namespace:
        where += f" · namespace {_code(namespace)}"
    if sandbox:
        where += f" · sandbox {_code(sandbox)}"
    add(where + "  ")
    add("")
    add("---")
    add("")

    # -- executive summary
    add("## 📋 Executive summary")
    add("")
    if top is not None:
        add(f"**Issue:** {top.title}")
    elif failing:
        add(f"**Issue:** {len(failing)} check(s) failed; first: {failing[0].nodeid} — {failing[0].reason}")
    else:
        add("**Issue:** none — every check that ran passed.")
    add("")
    for row in rows:
        mark = {"PASS": "✅", "FAIL": "❌", "BLOCKED": "⏸️", "SKIPPED": "⏭️"}[row.status]
        add(f"- {mark} {row.name}: {_row_summary(row, results)}")
    add("")
    add("**Impact:**")
    add(f"- {health.describe()}")
    if blocked:
        add(f"- {len(blocked)} test(s) blocked and not run: {', '.join(sorted(health.blocked_by))} failed")
    add("")
    if top is not None:
        add(f"**Most likely root cause:** {top.title} (confidence {top.confidence:.0%})")
        add("")
    add("---")
    add("")

    # -- overview
    add("## 🔍 Results overview")
    add("")
    counts = {o: len(results.by_outcome(o)) for o in ("passed", "failed", "error", "blocked", "skipped")}
    ran = [r for r in rows if r.passed or r.failed or r.error]
    add("```")
    add(f"Date:        {created}")
    if context.duration is not None:
        add(f"Duration:    {context.duration:.1f} s")
    add(f"Sections:    {len(ran)} of {len(rows)} ran ({sum(1 for r in rows if r.status == 'BLOCKED')} blocked)")
    add(f"Tests:       {len(results.tests)}")
    add(f"Status:      {'FAILED' if failing else 'BLOCKED' if blocked else 'PASSED'}")
    add("")
    add(f"✅ PASSED:   {counts['passed']}")
    add(f"❌ FAILED:   {counts['failed'] + counts['error']}")
    add(f"⏸️  BLOCKED:  {counts['blocked']}")
    add(f"⏭️  SKIPPED:  {counts['skipped']}")
    add("")
    add(health.describe())
    add("```")
    add("")
    add("| Section | Tests | Passed | Failed | Blocked | Skipped | Status | Details |")
    add("|:--------|:-----:|:------:|:------:|:-------:|:-------:|:------:|:--------|")
    for row in rows:
        cells = [f"**{row.name}**", row.tests, row.passed, row.failed + row.error, row.blocked, row.skipped,
                 STATUS_BADGE[row.status], _row_summary(row, results)]
        add("| " + " | ".join(escape_cell(c) for c in cells) + " |")
    add("")
    add("---")
    add("")

    # -- details per section
    add("## 🧪 Details per section")
    add("")
    for index, row in enumerate(rows, 1):
        add(f"### {index}. {row.name} — {STATUS_BADGE[row.status]}")
        add("")
        tests = [t for t in results.tests.values() if t.section == row.name]
        add("| Test | Outcome | Detail |")
        add("|:-----|:-------:|:-------|")
        for test in tests:
            add(f"| {escape_cell(test.nodeid)} | {escape_cell(OUTCOME_BADGE.get(test.outcome, test.outcome))} | {escape_cell(test.reason or '')} |")
        add("")
        observed, curls = _observations(tests)
        if observed:
            add("**Observed:**")
            add("")
            out.extend(f"- {line}" for line in observed)
            add("")
        if curls:
            add("**Reproduce:**")
            add("")
            add("```bash")
            out.extend(curls)
            add("```")
            add("")
    add("---")
    add("")

    # -- root cause analysis
    add("## 🔴 Root cause analysis")
    add("")
    if not theories:
        add("No rule found a cause in the evidence." + (" Every check passed." if not failing else " See the failures above."))
        add("")
    for index, theory in enumerate(theories, 1):
        add(f"### Theory {index}: {theory.title}")
        add("")
        add(f"**Confidence:** {theory.confidence:.0%} · rule {_code(theory.rule)}")
        add("")
        add("**Evidence:**")
        add("")
        out.extend(f"- {line}" for line in theory.evidence)
        add("")
        add("**Confirm:**")
        add("")
        out.extend(_command_block(theory.confirm))
        add("")
    add("---")
    add("")

    # -- action plan
    add("## 🔧 Immediate action plan")
    add("")
    actionable = [t for t in theories if t.confidence >= 0.4] or list(theories[:1])
    if not actionable:
        add("Nothing to do: re-run the verification after the next deploy.")
        add("")
    for index, theory in enumerate(actionable, 1):
        add(f"### PRIORITY {index}: {theory.title}")
        add("")
        add("```bash")
        add("# 1. confirm")
        out.extend(_command_lines(theory.confirm))
        add("# 2. fix")
        out.extend(_command_lines(theory.fix))
        add("```")
        add("")
    add("---")
    add("")

    # -- blocked tracker
    add("## 📊 Blocked tests tracker")
    add("")
    if blocked:
        gates: dict[str, str] = {}
        for test in blocked:
            gate = test.blocked_by or "?"
            gates.setdefault(gate, test.reason.removeprefix(f"blocked by {gate}: "))
        for gate, why in gates.items():
            add(f"**Blocked by {_code(gate)}:** {why}")
            add("")
        add("| Section | Blocked | Blocked by | Tests |")
        add("|:--------|:-------:|:-----------|:------|")
        by_section: dict[str, list[TestResult]] = {}
        for test in blocked:
            by_section.setdefault(test.section, []).append(test)
        for section, tests in by_section.items():
            names = "\n".join(t.nodeid.split("::", 1)[-1] for t in tests)
            gates_of = ", ".join(sorted({t.blocked_by or "?" for t in tests}))
            add(f"| **{escape_cell(section)}** | {len(tests)} | {escape_cell(gates_of)} | {escape_cell(names)} |")
        add("")
        total = len(results.tests)
        add(f"**Total blocked:** {len(blocked)} of {total} tests ({round(100 * len(blocked) / total)}% of the run); they run once the gate passes.")
    else:
        add("No test is blocked.")
    add("")
    add("---")
    add("")

    # -- timeline
    add("## 📝 Timeline")
    add("")
    add("| Time | Event |")
    add("|:-----|:------|")
    for time_text, event in _timeline(results, context, top):
        add(f"| {escape_cell(time_text)} | {escape_cell(event)} |")
    add("")
    add("---")
    add("")

    # -- verification
    add("## ✅ Verification checklist (after the fix)")
    add("")
    for line in _checklist(theories):
        add(f"- [ ] {_checklist_item(line)}")
    add(f"- [ ] {_code(context.rerun_command)} — re-run the verification; every section should PASS")
    add("")
    add("---")
    add("")
    add(f"**Report created:** {created} by pytest-reachability  ")
    add("**Next step:** execute the immediate action plan above, then re-run the verification.")
    add("")
    return "\n".join(out)


def _row_summary(row: SectionRow, results: RunResults) -> str:
    tests = [t for t in results.tests.values() if t.section == row.name]
    if row.status == "FAIL":
        first = next(t for t in tests if t.outcome in ("failed", "error"))
        return first.reason or f"{first.nodeid} {first.outcome}"
    if row.status == "BLOCKED":
        return f"blocked by {', '.join(row.blocked_by)}"
    if row.status == "SKIPPED":
        reasons = sorted({t.reason for t in tests if t.reason})
        return reasons[0] if reasons else "skipped"
    return f"{row.passed} of {row.tests} passed"


def _observations(tests: Iterable[TestResult]) -> tuple[list[str], list[str]]:
    """One line per observed value of the section's evidence, and the curl lines to reproduce."""
    lines: list[str] = []
    curls: list[str] = []
    seen: set[str] = set()

    def note(text: str) -> None:
        if text not in seen:
            seen.add(text)
            lines.append(text)

    tests = list(tests)
    # A shared probe is recorded once without a source and again by the section that knows its source.
    sourced = {(r.get("kind"), (r.get("data") or {}).get("address"), (r.get("data") or {}).get("port"))
               for t in tests for r in t.evidence if isinstance(r.get("data"), Mapping) and r["data"].get("source")}
    for test in tests:
        for record in test.evidence:
            kind, data = record.get("kind"), record.get("data") or {}
            if not isinstance(data, Mapping):
                continue
            if not data.get("source") and (kind, data.get("address"), data.get("port")) in sourced:
                continue
            text = _observation(kind, data)
            if text:
                note(text)
            curl = data.get("curl")
            if isinstance(curl, str) and curl.startswith("curl") and curl not in curls:
                exit_code = data.get("curl_exit")
                curls.append(curl + (f"   # exit {exit_code}" if exit_code is not None else ""))
    return lines[:40], curls[:12]


def _observation(kind: str | None, data: Mapping[str, Any]) -> str | None:
    if kind == "dns":
        parts = [f"{a.get('resolver')}: {', '.join(a.get('addresses') or []) or a.get('failure') or 'no answer'}" for a in data.get("answers") or []]
        agree = "" if data.get("agree", True) else " — resolvers DISAGREE"
        return f"DNS {_code(str(data.get('name')))} → {', '.join(data.get('addresses') or []) or data.get('failure')} ({'; '.join(parts)}){agree}"
    if kind in ("http_probe", "tcp", "tls"):
        where = f"{data.get('address')}:{data.get('port')}"
        source = data.get("source")
        label = {"dns": "DNS answer", "loadbalancer": "LoadBalancer"}.get(source or "", "address")
        if data.get("service"):
            label += f" {_code(str(data.get('service')))}"
        if data.get("failure"):
            result = f"{data['failure']} (curl exit {data.get('curl_exit')})"
        elif kind == "http_probe":
            result = f"HTTP {data.get('status')} {data.get('reason') or ''}".rstrip()
        else:
            result = "ok"
        phases = data.get("phases") or {}
        plain = data.get("scheme") == "http"
        timing = ", ".join(f"{k} {v:.1f} ms" for k, v in phases.items()
                           if isinstance(v, (int, float)) and v > 0 and k != "total" and not (plain and k == "tls"))
        name = {"http_probe": "HTTP", "tcp": "TCP", "tls": "TLS"}[kind]
        return f"{name} {label} {where}: {result}" + (f" ({timing})" if timing else "")
    if kind == "service":
        addresses = ", ".join(data.get("lb_addresses") or []) or ("pending" if data.get("lb_pending") else "none")
        ports = ", ".join(f"{p.get('port')}→{p.get('target_port')}" for p in data.get("ports") or [])
        return f"Service {_code(str(data.get('name')))} {data.get('type')} selector {data.get('selector')} ports {ports} external {addresses}"
    if kind in ("pod", "ingress_controller"):
        waiting = f", waiting {', '.join(data.get('waiting_reasons'))}" if data.get("waiting_reasons") else ""
        return (f"Pod {data.get('namespace')}/{_code(str(data.get('name')))} {data.get('phase')} ready "
                f"{data.get('containers_ready')}/{data.get('containers_total')} restarts {data.get('restarts')}{waiting}")
    if kind == "deployment":
        return f"Deployment {_code(str(data.get('name')))} {data.get('available')}/{data.get('desired')} available"
    if kind == "endpoint_slice":
        return f"EndpointSlice {_code(str(data.get('name')))} of {data.get('service')}: ready {', '.join(data.get('ready_addresses') or []) or 'none'}"
    if kind == "ingress":
        hosts = ", ".join(f"{r.get('host')}→{', '.join(str(p.get('service')) for p in r.get('paths') or [])}" for r in data.get("rules") or [])
        return f"Ingress {_code(str(data.get('name')))} class {data.get('class_name')} rules {hosts or 'none'}"
    if kind == "network_policy":
        return f"NetworkPolicy {_code(str(data.get('name')))} selects {data.get('pod_selector')} ingress rules {len(data.get('ingress') or [])}"
    if kind == "target_service":
        return f"target Service {_code(str(data.get('name')))} in {data.get('namespace')}: {'found' if data.get('found') else 'NOT found'} (found in {', '.join(data.get('found_in') or []) or 'no namespace'})"
    if kind == "in_cluster_health":
        return f"in-cluster GET {data.get('path')} on Service {_code(str(data.get('service')))}: {data.get('error') or data.get('status')} {str(data.get('body') or '')[:80]}".rstrip()
    if kind == "pod_logs":
        tail = " / ".join(str(line).strip() for line in (data.get("lines") or [])[-3:])
        return (f"logs of {_code(str(data.get('pod')))}: {data.get('health_requests')} health requests, "
                f"{data.get('external_requests')} external, clients {', '.join(data.get('client_addresses') or [])}; last: {tail}")
    if kind == "event" and data.get("type") == "Warning":
        return f"Warning event {data.get('reason')} on {data.get('object')} x{data.get('count')}: {data.get('message')}"
    if kind == "cluster_access":
        return f"cluster access {'ok' if data.get('ok') else 'FAILED: ' + str(data.get('message'))} ({data.get('server')})"
    if kind == "app_check":
        return f"{data.get('check')}: {'ok' if data.get('ok') else 'FAILED'} observed {data.get('observed')} expected {data.get('expected')}"
    if kind == "performance":
        return f"performance: p50 {data.get('p50_ms')} ms, p95 {data.get('p95_ms')} ms, p99 {data.get('p99_ms')} ms, error rate {data.get('error_rate')}"
    return None


def _is_command(line: str) -> bool:
    return line.split(" ", 1)[0] in COMMAND_WORDS


def _command_lines(lines: Iterable[str]) -> list[str]:
    """Commands as they are; prose as comments, so a block stays copy-pasteable in order."""
    out = []
    for line in lines:
        out.append(line if _is_command(line) else "# " + line.replace("\n", "\n# "))
    return out


def _command_block(lines: Sequence[str]) -> list[str]:
    return ["```bash", *_command_lines(lines), "```"]


def _checklist(theories: Sequence[Any]) -> list[str]:
    """Checklist items for the actionable theories: their verify lines, else their one-line confirm commands."""
    items: list[str] = []
    actionable = [t for t in theories if t.confidence >= 0.4] or list(theories[:1])
    for theory in actionable:
        lines = getattr(theory, "verify", None) or [c for c in theory.confirm if _is_command(c) and "\n" not in c]
        items += [line for line in lines if line not in items]
    return items


def _checklist_item(line: str) -> str:
    command, _, expect = line.partition("  # ")
    return f"{_code(command)} → {expect}" if expect else _code(command)


def _timeline(results: RunResults, context: IncidentContext, top: Any) -> list[tuple[str, str]]:
    events: list[tuple[str, str]] = []
    history = context.history or {}
    if history.get("healthy_since"):
        events.append((_when(history["healthy_since"]), "healthy since (every check passed from this run on)"))
    if history.get("last_healthy") and history.get("last_healthy") != history.get("healthy_since"):
        events.append((_when(history["last_healthy"]), "last healthy run"))
    if history.get("failing_since"):
        events.append((_when(history["failing_since"]), "failing since this run"))
    previous = history.get("previous_run")
    if previous:
        detail = ""
        if isinstance(previous, Mapping):
            facts = [f"health {previous['health']}%" if previous.get("health") is not None else "", str(previous.get("status") or "")]
            detail = ", ".join(f for f in facts if f)
        events.append((_when(previous), "previous run" + (f" ({detail})" if detail else "")))
    if history.get("error"):
        events.append(("this run", f"history unavailable: {history['error']}"))
    for key, label in (("newly_failing", "newly failing"), ("recovered", "recovered")):
        if history.get(key):
            items = history[key]
            names = ", ".join(str(i) for i in items[:5]) if isinstance(items, (list, tuple)) else str(items)
            events.append(("this run", f"{label}: {names}"))
    started = context.started
    if started is not None:
        events.append((datetime.fromtimestamp(started, tz=timezone.utc).strftime("%H:%M:%S UTC"), "verification started"))
    for test in results.tests.values():
        if test.outcome in ("failed", "error") and test.gate:
            events.append(("during the run", f"gate {test.gate} failed: {test.reason}"))
            break
    if top is not None:
        events.append(("at the end of the run", f"root cause ranked first: {top.title}"))
    events.append((context.created.strftime("%H:%M:%S UTC"), "this incident report created"))
    events.append(("TBD", "issue resolved"))
    return events


def _when(value: Any) -> str:
    if isinstance(value, Mapping):
        for key in ("started", "time", "at", "finished"):
            if value.get(key):
                text = str(value[key])
                extra = f" (run {value.get('run_id') or value.get('id')})" if value.get("run_id") or value.get("id") else ""
                return text + extra
        return ", ".join(f"{k}={v}" for k, v in list(value.items())[:3])
    return str(value)


def write_incident_report(
    path: str | os.PathLike[str],
    results: RunResults,
    settings: Any,
    theories: Sequence[Any],
    *,
    started: float | None = None,
    duration: float | None = None,
    rerun_command: str = "pytest",
    history: Mapping[str, Any] | None = None,
    created: datetime | None = None,
    secrets: Iterable[str] = (),
) -> tuple[Path, str]:
    """Write the report to ``path`` (secrets masked; temp file + rename); returns (path, incident id)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    created = created or datetime.now(timezone.utc)
    incident_id = next_incident_id(target.parent, created)
    context = IncidentContext(incident_id, created, started, duration, rerun_command, history)
    text = Redactor(secrets)(render_incident_report(results, settings, theories, context))
    return write_atomically(target, text), incident_id
