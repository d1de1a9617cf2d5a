"""pytest-html content: the run header, the section and "blocked by" cells, the per-probe waterfall, the
message first in a failed row, the ranked causes, and the Blocked result beside Skipped.

Everything here returns HTML text built from plain data (evidence dicts, RunResults, theories), so it
is the same on an xdist worker and on the controller and needs no pytest-html import. The hooks that
hand it to pytest-html live in ``report/hooks.py``.

pytest-html's page script filters rows by a fixed list of results; a row whose result is "Blocked" would
be hidden by it. :func:`blocked_result_supported` checks that the installed script has the list this module
knows how to extend, and only then are BLOCKED rows labelled "Blocked" (with their own filter and count)
and the finished page given the extended list (:func:`add_blocked_result`). Otherwise they stay "Skipped".
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from importlib import resources
from typing import Any

from ..changes import changes_html
from ..results import RunResults
from .evidence_view import distinct_records
from .verdict import Verdict, explains_text

WATERFALL_PHASES = (
    ("dns", "#8e44ad"),
    ("connect", "#2980b9"),
    ("tls", "#16a085"),
    ("ttfb", "#e67e22"),
    ("transfer", "#5f6368"),
)
# Text colours with at least 4.5:1 contrast on white (WCAG AA).
STATUS_COLOUR = {"PASS": "#137333", "FAIL": "#c5221f", "BLOCKED": "#8f4a00", "SKIPPED": "#3c4043"}
VERDICT_CLASS = {"HEALTHY": "ok", "UNREACHABLE": "bad", "DEGRADED": "bad", "NOT VERIFIED": "warn"}
BLOCKED_RESULT = "Blocked"

# The two places of pytest-html's page script that list results (filter boxes, sort order).
_FILTER_LIST = "const possibleFilters = [\n    'passed',\n    'skipped',\n"
_SORT_ORDER = "'XPassed', 'Skipped', 'Passed']"
_RUN_COUNT = re.compile(r'<p class="run-count">\d+ tests? took ([^<]*)</p>')

STYLE = """<style>
#results-table, .summary, body { color: #3c4043; }
.reachability-summary { color: #202124; font-size: 13px; max-width: 1200px; }
.reachability-summary h2, .reachability-summary h3 { color: #202124; }
.reachability-verdict { font-size: 16px; font-weight: bold; padding: 8px 12px; \
border-left: 6px solid; margin: 8px 0; }
.reachability-verdict.ok { color: #137333; border-color: #137333; background: #e6f4ea; }
.reachability-verdict.bad { color: #a50e0e; border-color: #c5221f; background: #fce8e6; }
.reachability-verdict.warn { color: #8f4a00; border-color: #b06000; background: #fef7e0; }
.reachability-run th { text-align: left; padding: 2px 12px 2px 0; color: #3c4043; font-weight: normal; }
.reachability-run td { padding: 2px 0; color: #202124; font-family: monospace; }
.reachability-sections td, .reachability-sections th { padding: 2px 8px; color: #202124; text-align: right; }
.reachability-sections td:first-child, .reachability-sections th:first-child { text-align: left; }
.reachability-theory { margin: 6px 0; padding: 4px 8px; border: 1px solid #dadce0; border-radius: 4px; }
.reachability-theory > summary { cursor: pointer; color: #202124; }
.reachability-theory pre, .reachability-probe pre { background: #f1f3f4; color: #202124; padding: 6px; \
white-space: pre-wrap; }
.reachability-symptom { margin: 4px 0 4px 16px; }
.reachability-unknowns li { color: #8f4a00; }
.reachability-message { color: #a50e0e; font-weight: bold; font-family: monospace; white-space: pre-wrap; \
margin: 4px 0 8px; }
span.blocked, .blocked .col-result { color: #8f4a00; font-weight: bold; }
</style>"""


@functools.lru_cache(maxsize=1)
def blocked_result_supported() -> bool:
    """Whether the installed pytest-html's page script has the result list this module extends."""
    try:
        script = (resources.files("pytest_html") / "resources" / "app.js").read_text(encoding="utf-8")
    except (ModuleNotFoundError, OSError):
        return False
    return script.count(_FILTER_LIST) == 1 and script.count(_SORT_ORDER) == 1


def add_blocked_result(page: str, counts: Mapping[str, int] | None = None) -> str:
    """The finished page with "blocked" among the script's results, and the run count covering every test."""
    page = page.replace(_FILTER_LIST, _FILTER_LIST + "    'blocked',\n", 1)
    page = page.replace(_SORT_ORDER, "'XPassed', 'Blocked', 'Skipped', 'Passed']", 1)
    if counts:
        ran = counts.get("passed", 0) + counts.get("failed", 0)
        total = sum(counts.values())
        text = (
            f"{total} tests ({ran} ran, {counts.get('blocked', 0)} blocked, "
            f"{counts.get('skipped', 0)} skipped) took"
        )
        page = _RUN_COUNT.sub(
            lambda match: f'<p class="run-count">{text} {match.group(1)}</p>', page, count=1
        )
    return page


def add_blocked_outcome(outcomes: dict[str, dict[str, Any]]) -> None:
    """Put a "Blocked" filter box and count right after "Skipped" in pytest-html's outcome table."""
    if "blocked" in outcomes or "skipped" not in outcomes:
        return
    entries = list(outcomes.items())
    outcomes.clear()
    for name, value in entries:
        outcomes[name] = value
        if name == "skipped":
            outcomes["blocked"] = {"label": BLOCKED_RESULT, "value": 0}


def move_blocked_count(outcomes: dict[str, dict[str, Any]], blocked: int) -> None:
    """pytest-html counted BLOCKED tests as skipped (their pytest outcome): move them to their own count."""
    if "blocked" not in outcomes:
        return
    outcomes["blocked"]["value"] = blocked
    outcomes["skipped"]["value"] = max(0, outcomes["skipped"]["value"] - blocked)


def header_cells() -> list[str]:
    return [
        '<th class="sortable" data-column-type="section">section</th>',
        '<th class="sortable" data-column-type="blocked_by">blocked by</th>',
    ]


def row_cells(section: str | None, blocked_by: str | None) -> list[str]:
    blocked = f"BLOCKED by {escape(blocked_by)}" if blocked_by else ""
    return [
        f'<td class="col-section">{escape(section or "")}</td>',
        f'<td class="col-blocked_by">{blocked}</td>',
    ]


def result_cell(result: str) -> str:
    return f'<td class="col-result">{escape(result)}</td>'


def waterfall_svg(phases: Mapping[str, Any], width: int = 480, *, tls: bool = True) -> str:
    """An inline SVG bar per phase (dns, connect, tls, ttfb, transfer).

    Each bar starts where the previous one ended."""
    shown = [
        (name, float(phases[name]), colour)
        for name, colour in WATERFALL_PHASES
        if isinstance(phases.get(name), (int, float)) and phases[name] >= 0 and (tls or name != "tls")
    ]
    total = sum(ms for _, ms, _ in shown) or 1.0
    label_width, row_height = 70, 18
    scale = (width - label_width - 80) / total
    height = row_height * max(1, len(shown)) + 4
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="reachability-waterfall" width="{width}" '
        f'height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="probe phase timings">'
    ]
    offset = 0.0
    for index, (name, ms, colour) in enumerate(shown):
        y = index * row_height + 2
        x = label_width + offset * scale
        bar = max(1.0, ms * scale)
        parts.append(f'<text x="0" y="{y + 12}" font-size="11" font-family="monospace">{escape(name)}</text>')
        parts.append(
            f'<rect x="{x:.1f}" y="{y}" width="{bar:.1f}" height="{row_height - 4}" '
            f'fill="{colour}"><title>{escape(name)} {ms:.1f} ms</title></rect>'
        )
        parts.append(
            f'<text x="{x + bar + 4:.1f}" y="{y + 12}" font-size="11" font-family="monospace">{ms:.1f} '
            "ms</text>"
        )
        offset += ms
    parts.append("</svg>")
    return "".join(parts)


def probe_extra_html(probe: Mapping[str, Any]) -> str:
    """The extra shown under a test: what the probe saw, its phase waterfall and the curl line."""
    where = f"{probe.get('address')}:{probe.get('port')}"
    source = {"dns": "DNS answer", "loadbalancer": "LoadBalancer"}.get(str(probe.get("source")), "address")
    if probe.get("service"):
        source += f" {probe['service']}"
    if probe.get("failure"):
        result = f"{probe['failure']} — {probe.get('wording') or ''} (curl exit {probe.get('curl_exit')})"
    else:
        result = f"HTTP {probe.get('status')} {probe.get('reason') or ''}"
    curl = probe.get("curl") or ""
    return (
        '<div class="reachability-probe">'
        f"<p><b>GET {escape(str(probe.get('path') or '/'))}</b> via {escape(source)} {escape(where)}: "
        f"{escape(result)}</p>"
        f"{waterfall_svg(probe.get('phases') or {}, tls=probe.get('scheme') != 'http')}"
        f'<pre class="reachability-curl">{escape(curl)}</pre>'
        "</div>"
    )


def _html_extra(name: str, content: str) -> dict[str, Any]:
    """A pytest-html extra as ``pytest_html.extras.html`` builds it (plain data: survives xdist)."""
    return {"name": name, "format_type": "html", "content": content, "mime_type": None, "extension": None}


def probe_extras(evidence: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """pytest-html extras for the http_probe evidence, one per probe (a shared probe's bare copy dropped)."""
    return [
        _html_extra("probe", probe_extra_html(data))
        for kind, data in distinct_records([list(evidence)])
        if kind == "http_probe"
    ]


def message_extra(message: str) -> dict[str, Any]:
    """The failure in one line, shown first in a failed row (before the probes and the traceback)."""
    return _html_extra("message", f'<p class="reachability-message">{escape(message)}</p>')


@dataclass
class RunHeader:
    """What the summary header states about the run (each value already masked)."""

    target: str
    namespace: str
    context: str
    started: str
    duration: str
    exit_status: str
    sandbox: str | None = None  # the scenario of a --sandbox run, whose addresses closed with the run

    def rows(self) -> list[tuple[str, str]]:
        rows = [
            ("target", self.target),
            ("namespace", self.namespace),
            ("context", self.context),
            ("started", self.started),
            ("duration", self.duration),
            ("exit status", self.exit_status),
        ]
        if self.sandbox:
            rows.append(
                (
                    "sandbox",
                    f"{self.sandbox}: its resolvers, ports and API closed with the run; the commands "
                    f"below work against `python -m pytest_reachability.sandbox {self.sandbox}` "
                    "started again, with the ports it prints",
                )
            )
        return rows


def _counts_line(results: RunResults) -> str:
    counts = {o: len(results.by_outcome(o)) for o in ("passed", "failed", "error", "blocked", "skipped")}
    parts = [
        f"{counts['passed']} passed",
        f"{counts['failed'] + counts['error']} failed",
        f"{counts['blocked']} blocked",
        f"{counts['skipped']} skipped",
    ]
    return f"{len(results.tests)} tests: " + ", ".join(parts)


def _sections_table(results: RunResults) -> str:
    parts = [
        '<table class="reachability-sections"><thead><tr><th>section</th><th>tests</th><th>passed</th>'
        "<th>failed</th><th>blocked</th><th>skipped</th><th>status</th></tr></thead><tbody>"
    ]
    for row in results.sections():
        status = (
            f"BLOCKED by {', '.join(row.blocked_by)}"
            if row.status == "BLOCKED" and row.blocked_by
            else row.status
        )
        parts.append(
            f"<tr><td>{escape(row.name)}</td><td>{row.tests}</td><td>{row.passed}</td>"
            f"<td>{row.failed + row.error}</td>"
            f"<td>{row.blocked}</td><td>{row.skipped}</td>"
            f'<td style="color:{STATUS_COLOUR[row.status]};font-weight:bold">{escape(status)}</td></tr>'
        )
    parts.append("</tbody></table>")
    return "".join(parts)


def _history(history: Mapping[str, Any] | None) -> str:
    if not history:
        return ""
    items = [
        f"<li>{escape(key.replace('_', ' '))}: {escape(_history_value(history[key]))}</li>"
        for key in ("previous_run", "newly_failing", "recovered", "last_healthy", "failing_since")
        if history.get(key)
    ]
    return "<h3>History</h3><ul>" + "".join(items) + "</ul>" if items else ""


def _theory_body(theory: Any) -> str:
    parts = ["<ul>" + "".join(f"<li>{escape(str(line))}</li>" for line in theory.evidence) + "</ul>"]
    if theory.confirm:
        parts.append("<p>Confirm:</p><pre>" + escape("\n".join(theory.confirm)) + "</pre>")
    if theory.fix:
        parts.append("<p>Fix:</p><pre>" + escape("\n".join(theory.fix)) + "</pre>")
    unknowns = list(getattr(theory, "unknowns", None) or [])
    if unknowns:
        parts.append(
            '<p>Not checked:</p><ul class="reachability-unknowns">'
            + "".join(f"<li>{escape(str(line))}</li>" for line in unknowns)
            + "</ul>"
        )
    return "".join(parts)


def theory_html(
    theory: Any, *, opened: bool, failed_ids: Sequence[str], css_class: str = "reachability-theory"
) -> str:
    """A cause as a folded block (the first one open); its symptoms folded inside it."""
    explains = explains_text(theory, failed_ids)
    symptoms = list(getattr(theory, "symptoms", None) or [])
    head = (
        f"<b>{escape(theory.title)}</b> <span>({theory.confidence:.0%}, {escape(theory.rule)})</span>"
        + (f" — {escape(explains)}" if explains else "")
        + (f" · {len(symptoms)} consequence{'s' if len(symptoms) != 1 else ''} folded in" if symptoms else "")
    )
    inner = "".join(
        theory_html(s, opened=False, failed_ids=failed_ids, css_class="reachability-symptom")
        for s in symptoms
    )
    return (
        f'<details class="{css_class}" data-rule="{escape(theory.rule)}"{" open" if opened else ""}>'
        f"<summary>{head}</summary>{_theory_body(theory)}{inner}</details>"
    )


def _theories(theories: Sequence[Any], failed_ids: Sequence[str], *, trouble: bool) -> str:
    if not theories:
        text = (
            "No rule found a cause in the evidence."
            if trouble
            else "Nothing failed or was blocked: no cause to look for."
        )
        return f"<h3>Most likely causes</h3><p>{text}</p>"
    blocks = [
        theory_html(theory, opened=index == 0, failed_ids=failed_ids) for index, theory in enumerate(theories)
    ]
    return "<h3>Most likely causes</h3>" + "".join(blocks)


def summary_html(
    results: RunResults,
    theories: Sequence[Any],
    history: Mapping[str, Any] | None = None,
    *,
    header: RunHeader | None = None,
    found: Verdict | None = None,
) -> str:
    """The block above the results table.

    Verdict, run header, health, section table, history, ranked causes."""
    failed_ids = [t.nodeid for t in results.tests.values() if t.outcome in ("failed", "error")]
    parts = [STYLE, '<div class="reachability-summary" id="reachability-summary">', "<h2>Reachability</h2>"]
    if found is not None:
        parts.append(
            '<p class="reachability-verdict '
            f'{VERDICT_CLASS.get(found.state, "bad")}">{escape(found.line)}</p>'
        )
    if header is not None:
        parts.append(
            '<table class="reachability-run">'
            + "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in header.rows())
            + "</table>"
        )
    parts.append(
        f'<p class="reachability-health"><b>{escape(results.health().describe())}</b> · '
        f"{escape(_counts_line(results))}</p>"
    )
    trouble = bool(failed_ids or results.by_outcome("blocked"))
    parts += [
        _sections_table(results),
        _history(history),
        _theories(theories, failed_ids, trouble=trouble),
        changes_html(results),
        "</div>",
    ]
    return "".join(parts)


def _history_value(value: Any) -> str:
    if isinstance(value, Mapping):
        parts = [str(value.get("time") or value.get("started") or "")]
        if value.get("health") is not None:
            parts.append(f"health {value['health']}%")
        if value.get("status"):
            parts.append(str(value["status"]))
        return ", ".join(p for p in parts if p)
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)
