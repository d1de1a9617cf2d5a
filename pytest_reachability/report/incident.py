"""``--incident-report PATH``: the markdown report an engineer attaches to the incident (or, when every
check passed, the verification report of the run).

Its structure follows the reports engineers write by hand (INC-2025-12-08-001): header, executive summary
(what failed and what is blocked, nothing else), results overview per section, details per section with
the observed values and curl lines, root cause analysis (consequences folded under their cause), one
action plan in order, blocked-tests tracker, timeline, verification checklist. Each part is one function
of :data:`PARTS`; each kind of evidence has one line format in :data:`OBSERVERS`. It renders as GitHub
markdown (table cells escaped) and is written atomically.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..atomic import write_atomically
from ..changes import changes_markdown
from ..redact import Redactor
from ..results import RunResults, SectionCounts, TestResult
from ..wait import timeline_events
from .evidence_view import distinct_records
from .terminal import gate_reasons
from .verdict import Verdict, explains_text, verdict

STATUS_BADGE = {"PASS": "✅ PASS", "FAIL": "❌ FAIL", "BLOCKED": "⏸️ BLOCKED", "SKIPPED": "⏭️ SKIPPED"}
STATUS_MARK = {"PASS": "✅", "FAIL": "❌", "BLOCKED": "⏸️", "SKIPPED": "⏭️"}
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
SANDBOX_COMMANDS = ("kubectl", "dig", "curl", "nc", "openssl")  # what reaches a sandbox's addresses
ACTIONABLE_CONFIDENCE = 0.4
INCIDENT_TITLE = {
    "UNREACHABLE": "unreachable from outside",
    "DEGRADED": "degraded",
    "NOT VERIFIED": "not verified",
}
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
    fleet: Any = None  # fleet.Fleet of a run of several targets


@dataclass
class Report:
    """Everything one rendering needs, computed once; each part reads from it and returns its lines."""

    results: RunResults
    settings: Any
    theories: Sequence[Any]
    context: IncidentContext
    rows: list[SectionCounts] = field(init=False)
    failing: list[TestResult] = field(init=False)
    blocked: list[TestResult] = field(init=False)
    found: Verdict | None = field(init=False)

    def __post_init__(self) -> None:
        self.rows = self.results.sections()
        self.failing = [t for t in self.results.tests.values() if t.outcome in ("failed", "error")]
        self.blocked = self.results.by_outcome("blocked")
        self.found = verdict(self.results, self.theories, self.target_text)

    @property
    def target_text(self) -> str:
        target = getattr(self.settings, "target", None)
        return target.display if target is not None else "(no target)"

    @property
    def host(self) -> str:
        if self.context.fleet is not None:
            return f"fleet of {len(self.context.fleet.targets)} targets"
        return getattr(getattr(self.settings, "target", None), "host", None) or self.target_text

    @property
    def created(self) -> str:
        return self.context.created.strftime("%Y-%m-%d %H:%M:%S UTC")

    @property
    def is_incident(self) -> bool:
        return bool(self.failing or self.blocked)

    @property
    def failed_ids(self) -> list[str]:
        return [t.nodeid for t in self.failing]

    @property
    def top(self) -> Any:
        return self.theories[0] if self.theories else None

    def tests_of(self, section: str) -> list[TestResult]:
        return [t for t in self.results.tests.values() if t.section == section]


# --------------------------------------------------------------------------- markdown helpers


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


def _row(cells: Iterable[Any]) -> str:
    return "| " + " | ".join(escape_cell(c) for c in cells) + " |"


def _is_command(line: str) -> bool:
    return line.split(" ", 1)[0] in COMMAND_WORDS


def _command_lines(lines: Iterable[str]) -> list[str]:
    """Commands as they are; prose as comments, so a block stays copy-pasteable in order."""
    return [line if _is_command(line) else "# " + line.replace("\n", "\n# ") for line in lines]


def _command_block(lines: Sequence[str], report: Report | None = None) -> list[str]:
    """A bash block; in a sandbox run, commands naming its (now closed) addresses say so first."""
    note = sandbox_block_note(report.settings) if report is not None else None
    names_sandbox = any(line.split(" ", 1)[0] in SANDBOX_COMMANDS for line in lines)
    return ["```bash", *([f"# {note}"] if note and names_sandbox else []), *_command_lines(lines), "```"]


def _field(theory: Any, name: str) -> list:
    return list(getattr(theory, name, None) or [])


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


# --------------------------------------------------------------------------- ids, severity, sandbox commands


def next_incident_id(directory: str | os.PathLike[str], day: datetime) -> str:
    """``INC-<date>-<nnn>``.

    nnn is one more than the highest number of that date among the reports in ``directory``."""
    date = day.strftime("%Y-%m-%d")
    highest = 0
    folder = Path(directory)
    if folder.is_dir():
        for path in folder.iterdir():
            for text in (path.name, _head_of(path)):
                numbers = [int(m.group(2)) for m in _ID_PATTERN.finditer(text) if m.group(1) == date]
                highest = max([highest, *numbers])
    return f"INC-{date}-{highest + 1:03d}"


def _head_of(path: Path) -> str:
    """The first 4 KiB of a markdown file (where a report names its id), or ""."""
    if not (path.is_file() and path.suffix.lower() in (".md", ".markdown")):
        return ""
    try:
        with path.open(encoding="utf-8", errors="replace") as stream:
            return stream.read(4096)
    except OSError:
        return ""


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


def sandbox_note(settings: Any) -> str | None:
    """For a ``--sandbox`` run: the commands below name addresses that lived only as long as the run."""
    scenario = getattr(settings, "sandbox", None)
    if not scenario:
        return None
    resolvers = ", ".join(r for r in getattr(settings, "resolvers", ()) if r != "system") or "none"
    target = getattr(settings, "target", None)
    port = f", edge port {target.port}" if target is not None and target.port else ""
    return (
        f"this run verified the sandbox {_code(str(scenario))}: its DNS resolvers ({resolvers}){port} and "
        "its "
        "Kubernetes API closed when the run ended, so the dig, curl and kubectl commands below work only "
        "against "
        f"a sandbox started again with {_code(f'python -m pytest_reachability.sandbox {scenario}')}, with "
        "the "
        "ports it prints (eval its export lines for kubectl)"
    )


def sandbox_block_note(settings: Any) -> str | None:
    if not getattr(settings, "sandbox", None):
        return None
    return (
        "sandbox ports of the finished run: start the sandbox again and use the ports it prints "
        "(see the note at the top)"
    )


# --------------------------------------------------------------------------- the parts, in order


def part_header(report: Report) -> list[str]:
    badge, why = severity(report.results)
    if report.is_incident:
        state = INCIDENT_TITLE.get(report.found.state if report.found else "", "failing")
        lines = [
            f"# 🚨 Incident report: {report.host} {state}",
            "",
            f"**Incident ID:** {report.context.incident_id}  ",
        ]
    else:
        state = "healthy" if report.found is not None and report.found.ok else "not verified"
        lines = [
            f"# ✅ Verification report: {report.host} {state}",
            "",
            f"**Report ID:** {report.context.incident_id}  ",
        ]
    lines += [
        f"**Date:** {report.created}  ",
        f"**Severity:** {badge} ({why})  ",
        f"**Status:** {status(report.results)}  ",
        "**Reporter:** pytest-reachability (automated post-deploy verification)  ",
    ]
    where = f"**Target:** {_code(report.target_text)}"
    namespace = getattr(report.settings, "namespace", None)
    if namespace:
        where += f" · namespace {_code(namespace)}"
    if getattr(report.settings, "sandbox", None):
        where += f" · sandbox {_code(report.settings.sandbox)}"
    lines.append(where + "  ")
    note = sandbox_note(report.settings)
    if note:
        lines += ["", f"> **Note:** {note}."]
    return lines


FLEET_ROWS = 200  # targets listed one per row; a bigger fleet's healthy ones are counted


def part_fleet(report: Report) -> list[str]:
    """A run of several targets: counts, the causes with the hosts each explains, then every target."""
    fleet = report.context.fleet
    if fleet is None:
        return []
    lines = [
        f"## 🛰️ Fleet: {len(fleet.targets)} targets — {len(fleet.healthy)} healthy, "
        f"{len(fleet.failing)} failing",
        "",
    ]
    if fleet.causes:
        lines += ["| # | cause | rule | targets |", "| ---: | --- | --- | --- |"]
        for index, cause in enumerate(fleet.causes, 1):
            hosts = ", ".join(_code(key) for key in cause.targets)
            lines.append(_row([index, cause.title, _code(cause.rule), f"{len(cause.targets)}: {hosts}"]))
        lines.append("")
    lines += ["| target | status | health | verdict |", "| --- | --- | ---: | --- |"]
    shown = fleet.failing + fleet.healthy
    for target in shown[: max(FLEET_ROWS, len(fleet.failing))]:
        score = target.health.score
        found = target.verdict
        lines.append(
            _row(
                [
                    _code(target.key),
                    target.status,
                    "n/a" if score is None else f"{score}%",
                    found.line if found is not None else "",
                ]
            )
        )
    if len(shown) > FLEET_ROWS and len(fleet.failing) < len(shown):
        lines += ["", f"… and {len(shown) - max(FLEET_ROWS, len(fleet.failing))} more healthy targets."]
    return lines


def part_summary(report: Report) -> list[str]:
    lines = ["## 📋 Executive summary", ""]
    if report.found is not None:
        lines += [f"**Verdict:** {report.found.line}", ""]
    if not report.is_incident:
        return lines + [
            "Nothing failed and nothing is blocked.",
            "",
            f"**Health:** {report.results.health().describe()}",
        ]
    failed_rows = [row for row in report.rows if row.status == "FAIL"]
    if failed_rows:
        lines += (
            ["**Failed:**", ""]
            + [f"- ❌ {row.name}: {_row_summary(row, report)}" for row in failed_rows]
            + [""]
        )
    if report.blocked:
        by_section = _blocked_by_section(report.blocked)
        sections = ", ".join(f"{name} ({len(tests)})" for name, tests in by_section.items())
        lines += [f"**Blocked (not run):** {sections}", ""]
        lines += [f"- by {_code(gate)}: {why}" for gate, why in gate_reasons(report.blocked).items()] + [""]
    lines.append(f"**Impact:** {report.results.health().describe()}")
    if report.top is not None:
        explains = explains_text(report.top, report.failed_ids)
        lines += [
            "",
            f"**Most likely root cause:** {report.top.title} (confidence {report.top.confidence:.0%})"
            + (f" — {explains}" if explains else ""),
        ]
    return lines


def part_overview(report: Report) -> list[str]:
    results, rows = report.results, report.rows
    counts = {o: len(results.by_outcome(o)) for o in ("passed", "failed", "error", "blocked", "skipped")}
    ran = [r for r in rows if r.passed or r.failed or r.error]
    outcome = "FAILED" if report.failing else "BLOCKED" if report.blocked else "PASSED"
    lines = ["## 🔍 Results overview", "", "```", f"Date:        {report.created}"]
    if report.context.duration is not None:
        lines.append(f"Duration:    {report.context.duration:.1f} s")
    lines += [
        f"Sections:    {len(ran)} of {len(rows)} ran ({sum(1 for r in rows if r.status == 'BLOCKED')} "
        "blocked)",
        f"Tests:       {len(results.tests)}",
        f"Status:      {outcome}",
        "",
        f"✅ PASSED:   {counts['passed']}",
        f"❌ FAILED:   {counts['failed'] + counts['error']}",
        f"⏸️  BLOCKED:  {counts['blocked']}",
        f"⏭️  SKIPPED:  {counts['skipped']}",
        "",
        results.health().describe(),
        "```",
        "",
        "| Section | Tests | Passed | Failed | Blocked | Skipped | Status | Details |",
        "|:--------|:-----:|:------:|:------:|:-------:|:-------:|:------:|:--------|",
    ]
    for row in rows:
        lines.append(
            _row(
                [
                    f"**{row.name}**",
                    row.tests,
                    row.passed,
                    row.failed + row.error,
                    row.blocked,
                    row.skipped,
                    STATUS_BADGE[row.status],
                    _row_summary(row, report),
                ]
            )
        )
    return lines


def part_details(report: Report) -> list[str]:
    lines = ["## 🧪 Details per section", ""]
    for index, row in enumerate(report.rows, 1):
        tests = report.tests_of(row.name)
        lines += [
            f"### {index}. {row.name} — {STATUS_BADGE[row.status]}",
            "",
            "| Test | Outcome | Detail |",
            "|:-----|:-------:|:-------|",
        ]
        lines += [_row([t.nodeid, OUTCOME_BADGE.get(t.outcome, t.outcome), t.reason or ""]) for t in tests]
        lines.append("")
        observed, curls = observations(tests)
        if observed:
            lines += ["**Observed:**", "", *(f"- {line}" for line in observed), ""]
        if curls:
            lines += ["**Reproduce:**", "", *_command_block(curls, report), ""]
    return lines[:-1]


def _theory_lines(report: Report, theory: Any, heading: str) -> list[str]:
    explains = explains_text(theory, report.failed_ids)
    lines = [
        heading,
        "",
        f"**Confidence:** {theory.confidence:.0%} · rule {_code(theory.rule)}"
        + (f" · {explains}" if explains else ""),
        "",
        "**Evidence:**",
        "",
    ]
    lines += [f"- {line}" for line in theory.evidence] + [""]
    if theory.confirm:
        lines += ["**Confirm:**", "", *_command_block(theory.confirm, report), ""]
    unknowns = _field(theory, "unknowns")
    if unknowns:
        lines += ["**Not checked:**", "", *(f"- {line}" for line in unknowns), ""]
    return lines


def _symptom_lines(report: Report, theory: Any) -> list[str]:
    symptoms = _field(theory, "symptoms")
    if not symptoms:
        return []
    lines = [
        f"<details><summary>Consequences of this cause, not rival causes ({len(symptoms)})</summary>",
        "",
    ]
    for symptom in symptoms:
        lines += [f"- **{symptom.title}** ({symptom.confidence:.0%}, rule {_code(symptom.rule)})"]
        lines += [f"  - {line}" for line in symptom.evidence]
    return lines + ["", "</details>", ""]


def part_root_cause(report: Report) -> list[str]:
    lines = ["## 🔴 Root cause analysis", ""]
    if not report.theories:
        return lines + [
            "No rule found a cause in the evidence."
            + (" See the failures above." if report.failing else " Every check passed.")
        ]
    for index, theory in enumerate(report.theories, 1):
        lines += _theory_lines(report, theory, f"### Theory {index}: {theory.title}")
        lines += _symptom_lines(report, theory)
    return lines[:-1]


def _rivals(report: Report) -> list[Any]:
    """Causes other than the first worth checking if fixing the first does not bring every check back."""
    return [t for t in report.theories[1:] if t.confidence >= ACTIONABLE_CONFIDENCE]


def part_action_plan(report: Report) -> list[str]:
    """One plan, in order: confirm the first cause, fix it, verify, re-run.

    The next causes only if that fails."""
    lines = ["## 🔧 Immediate action plan", ""]
    top = report.top
    if top is None:
        todo = (
            "re-run the verification after the next deploy"
            if not report.failing
            else "read the failures above"
        )
        return lines + [f"No cause was ranked: {todo}."]
    lines += [f"The steps are in order and address the most likely cause: **{top.title}**.", ""]
    steps: list[tuple[str, list[str]]] = [
        ("confirm the cause", list(top.confirm)),
        ("fix it", list(top.fix)),
        ("verify the fix", checklist([top])),
        ("re-run the verification; every section should PASS", [report.context.rerun_command]),
    ]
    symptoms = _field(top, "symptoms")
    number = 0
    for title, commands in steps:
        if not commands:
            continue
        number += 1
        lines += [f"### Step {number}: {title}", "", *_command_block(commands, report), ""]
    if symptoms:
        names = "; ".join(s.title for s in symptoms)
        lines += [f"Its consequences ({names}) should clear with it: the re-run shows whether they did.", ""]
    for index, rival in enumerate(_rivals(report), 1):
        lines += [f"### Only if the re-run still fails — check next ({index}): {rival.title}", ""]
        lines += _command_block(
            [*rival.confirm, *(["if that confirms it:"] if rival.fix else []), *rival.fix], report
        )
        lines.append("")
    return lines[:-1]


def part_blocked(report: Report) -> list[str]:
    lines = ["## 📊 Blocked tests tracker", ""]
    if not report.blocked:
        return lines + ["No test is blocked."]
    for gate, why in gate_reasons(report.blocked).items():
        lines += [f"**Blocked by {_code(gate)}:** {why}", ""]
    lines += ["| Section | Blocked | Blocked by | Tests |", "|:--------|:-------:|:-----------|:------|"]
    for section, tests in _blocked_by_section(report.blocked).items():
        names = "\n".join(t.nodeid.split("::", 1)[-1] for t in tests)
        gates = ", ".join(sorted({t.blocked_by or "?" for t in tests}))
        lines.append(
            f"| **{escape_cell(section)}** | {len(tests)} | {escape_cell(gates)} | {escape_cell(names)} |"
        )
    total = len(report.results.tests)
    share = round(100 * len(report.blocked) / total)
    return lines + [
        "",
        f"**Total blocked:** {len(report.blocked)} of {total} tests ({share}% of the run); "
        "they run once the gate passes.",
    ]


def part_timeline(report: Report) -> list[str]:
    lines = ["## 📝 Timeline", "", "| Time | Event |", "|:-----|:------|"]
    return lines + [_row(event) for event in timeline(report)]


def part_changes(report: Report) -> list[str]:
    return changes_markdown(report.results)  # empty (no part) when nothing was read


def part_checklist(report: Report) -> list[str]:
    lines = ["## ✅ Verification checklist (after the fix)", ""]
    lines += [f"- [ ] {_checklist_item(line)}" for line in checklist(report.theories)]
    return lines + [
        f"- [ ] {_code(report.context.rerun_command)} — re-run the verification; every section should PASS"
    ]


def part_footer(report: Report) -> list[str]:
    next_step = (
        "execute the immediate action plan above, then re-run the verification."
        if report.is_incident
        else "none: keep the verification in the deploy pipeline."
    )
    return [f"**Report created:** {report.created} by pytest-reachability  ", f"**Next step:** {next_step}"]


PARTS: tuple[Callable[[Report], list[str]], ...] = (
    part_header,
    part_fleet,
    part_summary,
    part_overview,
    part_details,
    part_root_cause,
    part_action_plan,
    part_blocked,
    part_changes,
    part_timeline,
    part_checklist,
    part_footer,
)


def render_incident_report(
    results: RunResults, settings: Any, theories: Sequence[Any], context: IncidentContext
) -> str:
    """The report as markdown (not yet redacted): every part of :data:`PARTS`, separated by rules."""
    report = Report(results, settings, theories, context)
    blocks = [block for block in ("\n".join(part(report)) for part in PARTS) if block]
    return "\n\n---\n\n".join(blocks) + "\n"


# --------------------------------------------------------------------------- section rows and observations


def _blocked_by_section(blocked: Iterable[TestResult]) -> dict[str, list[TestResult]]:
    by_section: dict[str, list[TestResult]] = {}
    for test in blocked:
        by_section.setdefault(test.section, []).append(test)
    return by_section


def _row_summary(row: SectionCounts, report: Report) -> str:
    tests = report.tests_of(row.name)
    if row.status == "FAIL":
        first = next(t for t in tests if t.outcome in ("failed", "error"))
        return first.reason or f"{first.nodeid} {first.outcome}"
    if row.status == "BLOCKED":
        return f"blocked by {', '.join(row.blocked_by)}"
    if row.status == "SKIPPED":
        reasons = sorted({t.reason for t in tests if t.reason})
        return reasons[0] if reasons else "skipped"
    return f"{row.passed} of {row.tests} passed"


def _name(data: Mapping[str, Any], key: str = "name") -> str:
    return _code(str(data.get(key)))


def _joined(values: Any, empty: str = "none") -> str:
    return ", ".join(str(v) for v in values or []) or empty


def _observe_dns(data: Mapping[str, Any]) -> str:
    answers = [
        f"{a.get('resolver')}: {_joined(a.get('addresses'), '') or a.get('failure') or 'no answer'}"
        for a in data.get("answers") or []
    ]
    agree = "" if data.get("agree", True) else " — resolvers DISAGREE"
    addresses = _joined(data.get("addresses"), "") or data.get("failure")
    return f"DNS {_name(data)} → {addresses} ({'; '.join(answers)}){agree}"


def _observe_connection(name: str) -> Callable[[Mapping[str, Any]], str]:
    def observe(data: Mapping[str, Any]) -> str:
        label = {"dns": "DNS answer", "loadbalancer": "LoadBalancer"}.get(data.get("source") or "", "address")
        if data.get("service"):
            label += f" {_name(data, 'service')}"
        if data.get("failure"):
            result = f"{data['failure']} (curl exit {data.get('curl_exit')})"
        elif name == "HTTP":
            result = f"HTTP {data.get('status')} {data.get('reason') or ''}".rstrip()
        else:
            result = "ok"
        timing = _timing(data)
        return f"{name} {label} {data.get('address')}:{data.get('port')}: {result}" + (
            f" ({timing})" if timing else ""
        )

    return observe


def _timing(data: Mapping[str, Any]) -> str:
    plain = data.get("scheme") == "http"
    return ", ".join(
        f"{k} {v:.1f} ms"
        for k, v in (data.get("phases") or {}).items()
        if isinstance(v, (int, float)) and v > 0 and k != "total" and not (plain and k == "tls")
    )


def _observe_service(data: Mapping[str, Any]) -> str:
    addresses = _joined(data.get("lb_addresses"), "pending" if data.get("lb_pending") else "none")
    ports = ", ".join(f"{p.get('port')}→{p.get('target_port')}" for p in data.get("ports") or [])
    return (
        f"Service {_name(data)} {data.get('type')} selector {data.get('selector')} ports {ports} "
        f"external {addresses}"
    )


def _observe_pod(data: Mapping[str, Any]) -> str:
    waiting = f", waiting {_joined(data.get('waiting_reasons'))}" if data.get("waiting_reasons") else ""
    return (
        f"Pod {data.get('namespace')}/{_name(data)} {data.get('phase')} ready "
        f"{data.get('containers_ready')}/{data.get('containers_total')} restarts "
        f"{data.get('restarts')}{waiting}"
    )


def _observe_ingress(data: Mapping[str, Any]) -> str:
    hosts = ", ".join(
        f"{r.get('host')}→{', '.join(str(p.get('service')) for p in r.get('paths') or [])}"
        for r in data.get("rules") or []
    )
    return f"Ingress {_name(data)} class {data.get('class_name')} rules {hosts or 'none'}"


def _observe_target_service(data: Mapping[str, Any]) -> str:
    found = "found" if data.get("found") else "NOT found"
    return (
        f"target Service {_name(data)} in {data.get('namespace')}: {found} "
        f"(found in {_joined(data.get('found_in'), 'no namespace')})"
    )


def _observe_in_cluster(data: Mapping[str, Any]) -> str:
    body = str(data.get("body") or "")[:80]
    answer = data.get("error") or data.get("status")
    return f"in-cluster GET {data.get('path')} on Service {_name(data, 'service')}: {answer} {body}".rstrip()


def _observe_logs(data: Mapping[str, Any]) -> str:
    tail = " / ".join(str(line).strip() for line in (data.get("lines") or [])[-3:])
    return (
        f"logs of {_name(data, 'pod')}: {data.get('health_requests')} health requests, "
        f"{data.get('external_requests')} external, clients {_joined(data.get('client_addresses'), '')}; "
        f"last: {tail}"
    )


def _observe_event(data: Mapping[str, Any]) -> str | None:
    if data.get("type") != "Warning":
        return None
    return (
        f"Warning event {data.get('reason')} on {data.get('object')} x{data.get('count')}: "
        f"{data.get('message')}"
    )


def _observe_access(data: Mapping[str, Any]) -> str:
    state = "ok" if data.get("ok") else "FAILED: " + str(data.get("message"))
    return f"cluster access {state} ({data.get('server')})"


# One line format per evidence kind; a kind not listed is not shown in the details.
OBSERVERS: dict[str, Callable[[Mapping[str, Any]], str | None]] = {
    "dns": _observe_dns,
    "http_probe": _observe_connection("HTTP"),
    "tcp": _observe_connection("TCP"),
    "tls": _observe_connection("TLS"),
    "service": _observe_service,
    "pod": _observe_pod,
    "ingress_controller": _observe_pod,
    "deployment": lambda d: f"Deployment {_name(d)} {d.get('available')}/{d.get('desired')} available",
    "endpoint_slice": lambda d: (
        f"EndpointSlice {_name(d)} of {d.get('service')}: ready {_joined(d.get('ready_addresses'))}"
    ),
    "ingress": _observe_ingress,
    "network_policy": lambda d: (
        f"NetworkPolicy {_name(d)} selects {d.get('pod_selector')} "
        f"ingress rules {len(d.get('ingress') or [])}"
    ),
    "target_service": _observe_target_service,
    "in_cluster_health": _observe_in_cluster,
    "pod_logs": _observe_logs,
    "event": _observe_event,
    "cluster_access": _observe_access,
    "app_check": lambda d: (
        f"{d.get('check')}: {'ok' if d.get('ok') else 'FAILED'} observed {d.get('observed')} "
        f"expected {d.get('expected')}"
    ),
    "performance": lambda d: (
        f"performance: p50 {d.get('p50_ms')} ms, p95 {d.get('p95_ms')} ms, p99 {d.get('p99_ms')} ms, "
        f"error rate {d.get('error_rate')}"
    ),
}


def observation(kind: Any, data: Mapping[str, Any]) -> str | None:
    observe = OBSERVERS.get(str(kind))
    return observe(data) if observe is not None else None


def observations(tests: Iterable[TestResult]) -> tuple[list[str], list[str]]:
    """One line per observed value of the section's evidence (each probe once).

    And the curl lines to reproduce them."""
    lines: list[str] = []
    curls: list[str] = []
    for kind, data in distinct_records(tests):
        text = observation(kind, data)
        if text and text not in lines:
            lines.append(text)
        curl = data.get("curl")
        if isinstance(curl, str) and curl.startswith("curl"):
            exit_code = data.get("curl_exit")
            line = curl + (f"   # exit {exit_code}" if exit_code is not None else "")
            if line not in curls:
                curls.append(line)
    return lines[:40], curls[:12]


# --------------------------------------------------------------------------- checklist and timeline


def checklist(theories: Sequence[Any]) -> list[str]:
    """Checklist items for the actionable theories.

    Their verify lines, else their one-line confirm commands."""
    items: list[str] = []
    actionable = [t for t in theories if t.confidence >= ACTIONABLE_CONFIDENCE] or list(theories[:1])
    for theory in actionable:
        lines = getattr(theory, "verify", None) or [
            c for c in theory.confirm if _is_command(c) and "\n" not in c
        ]
        items += [line for line in lines if line not in items]
    return items


def _checklist_item(line: str) -> str:
    command, _, expect = line.partition("  # ")
    return f"{_code(command)} → {expect}" if expect else _code(command)


def _history_events(history: Mapping[str, Any]) -> list[tuple[str, str]]:
    events: list[tuple[str, str]] = []
    if history.get("healthy_since"):
        events.append(
            (_when(history["healthy_since"]), "healthy since (every check passed from this run on)")
        )
    if history.get("last_healthy") and history.get("last_healthy") != history.get("healthy_since"):
        events.append((_when(history["last_healthy"]), "last healthy run"))
    if history.get("failing_since"):
        events.append((_when(history["failing_since"]), "failing since this run"))
    previous = history.get("previous_run")
    if previous:
        events.append((_when(previous), "previous run" + _previous_detail(previous)))
    if history.get("error"):
        events.append(("this run", f"history unavailable: {history['error']}"))
    for key, label in (("newly_failing", "newly failing"), ("recovered", "recovered")):
        items = history.get(key)
        if items:
            names = ", ".join(str(i) for i in items[:5]) if isinstance(items, (list, tuple)) else str(items)
            events.append(("this run", f"{label}: {names}"))
    return events


def _previous_detail(previous: Any) -> str:
    if not isinstance(previous, Mapping):
        return ""
    facts = [
        f"health {previous['health']}%" if previous.get("health") is not None else "",
        str(previous.get("status") or ""),
    ]
    detail = ", ".join(f for f in facts if f)
    return f" ({detail})" if detail else ""


def timeline(report: Report) -> list[tuple[str, str]]:
    events = _history_events(report.context.history or {})
    if report.context.started is not None:
        started = datetime.fromtimestamp(report.context.started, tz=timezone.utc).strftime("%H:%M:%S UTC")
        events.append((started, "verification started"))
    waited = timeline_events(getattr(report.results, "wait", None))
    events += waited  # the wait comes before the suite runs
    gate = next((t for t in report.failing if t.gate), None)
    if gate is not None:
        events.append(("during the run", f"gate {gate.gate} failed: {gate.reason}"))
    if report.top is not None:
        events.append(("at the end of the run", f"root cause ranked first: {report.top.title}"))
    events.append((report.context.created.strftime("%H:%M:%S UTC"), "this report created"))
    if report.is_incident and not any(text.startswith("resolved at") for _, text in waited):
        events.append(("TBD", "issue resolved"))
    return events


def _when(value: Any) -> str:
    if not isinstance(value, Mapping):
        return str(value)
    for key in ("started", "time", "at", "finished"):
        if value.get(key):
            run = value.get("run_id") or value.get("id")
            return str(value[key]) + (f" (run {run})" if run else "")
    return ", ".join(f"{k}={v}" for k, v in list(value.items())[:3])


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
    fleet: Any = None,
) -> tuple[Path, str]:
    """Write the report to ``path`` (secrets masked; temp file + rename); returns (path, incident id)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    created = created or datetime.now(timezone.utc)
    with _ids_taken_in_turn(target.parent):
        incident_id = next_incident_id(target.parent, created)
        context = IncidentContext(incident_id, created, started, duration, rerun_command, history, fleet)
        text = Redactor(secrets)(render_incident_report(results, settings, theories, context))
        return write_atomically(target, text), incident_id


ID_LOCK_WAIT = 10.0  # seconds: a run whose report never comes (stopped, not killed) holds up no other


@contextlib.contextmanager
def _ids_taken_in_turn(folder: Path) -> Any:
    """Runs writing reports into one folder at the same time take their ids one after the other: an
    advisory lock on the folder itself (flock, nothing left in it; released by the system when a holder
    dies) is held from reading the highest id to the report's rename, so the next run reads this one's.
    Where there is no flock, or the lock cannot be had within ID_LOCK_WAIT, the id is taken without it."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        deadline = time.monotonic() + ID_LOCK_WAIT
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.02)
        yield
    finally:
        os.close(descriptor)  # releases the lock
