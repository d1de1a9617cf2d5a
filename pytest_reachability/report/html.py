"""pytest-html content: the section and "blocked by" cells, the per-probe waterfall extra, the summary block.

Everything here returns HTML text built from plain data (evidence dicts, RunResults, theories), so it
is the same on an xdist worker and on the controller and needs no pytest-html import. The hooks that
hand it to pytest-html live in ``report/hooks.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from ..results import RunResults

WATERFALL_PHASES = (("dns", "#8e44ad"), ("connect", "#2980b9"), ("tls", "#16a085"), ("ttfb", "#e67e22"), ("transfer", "#7f8c8d"))
STATUS_COLOUR = {"PASS": "#1e8e3e", "FAIL": "#d93025", "BLOCKED": "#b06000", "SKIPPED": "#5f6368"}


def header_cells() -> list[str]:
    return [
        '<th class="sortable" data-column-type="section">section</th>',
        '<th class="sortable" data-column-type="blocked_by">blocked by</th>',
    ]


def row_cells(section: str | None, blocked_by: str | None) -> list[str]:
    blocked = f"BLOCKED by {escape(blocked_by)}" if blocked_by else ""
    return [f'<td class="col-section">{escape(section or "")}</td>', f'<td class="col-blocked_by">{blocked}</td>']


def waterfall_svg(phases: Mapping[str, Any], width: int = 480, *, tls: bool = True) -> str:
    """An inline SVG bar per phase (dns, connect, tls, ttfb, transfer), each starting where the previous ended."""
    shown = [(name, float(phases[name]), colour) for name, colour in WATERFALL_PHASES
             if isinstance(phases.get(name), (int, float)) and phases[name] >= 0 and (tls or name != "tls")]
    total = sum(ms for _, ms, _ in shown) or 1.0
    label_width, row_height = 70, 18
    scale = (width - label_width - 80) / total
    height = row_height * max(1, len(shown)) + 4
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="reachability-waterfall" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="probe phase timings">']
    offset = 0.0
    for index, (name, ms, colour) in enumerate(shown):
        y = index * row_height + 2
        x = label_width + offset * scale
        bar = max(1.0, ms * scale)
        parts.append(f'<text x="0" y="{y + 12}" font-size="11" font-family="monospace">{escape(name)}</text>')
        parts.append(f'<rect x="{x:.1f}" y="{y}" width="{bar:.1f}" height="{row_height - 4}" fill="{colour}"><title>{escape(name)} {ms:.1f} ms</title></rect>')
        parts.append(f'<text x="{x + bar + 4:.1f}" y="{y + 12}" font-size="11" font-family="monospace">{ms:.1f} ms</text>')
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
        f"<p><b>GET {escape(str(probe.get('path') or '/'))}</b> via {escape(source)} {escape(where)}: {escape(result)}</p>"
        f"{waterfall_svg(probe.get('phases') or {}, tls=probe.get('scheme') != 'http')}"
        f"<pre class=\"reachability-curl\">{escape(curl)}</pre>"
        "</div>"
    )


def probe_extras(evidence: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """pytest-html extras (plain dicts, as ``pytest_html.extras.html`` builds them) for the http_probe evidence."""
    out = []
    for record in evidence:
        if record.get("kind") == "http_probe" and isinstance(record.get("data"), Mapping):
            out.append({"name": "probe", "format_type": "html", "content": probe_extra_html(record["data"]),
                        "mime_type": None, "extension": None})
    return out


def summary_html(results: RunResults, theories: Sequence[Any], history: Mapping[str, Any] | None = None) -> str:
    """The block above the results table: health score, section table and the ranked theories."""
    health = results.health()
    parts = ['<div class="reachability-summary" id="reachability-summary">', "<h2>Reachability</h2>",
             f'<p class="reachability-health"><b>{escape(health.describe())}</b></p>']
    parts.append('<table class="reachability-sections"><thead><tr><th>section</th><th>tests</th><th>passed</th>'
                 "<th>failed</th><th>blocked</th><th>skipped</th><th>status</th></tr></thead><tbody>")
    for row in results.sections():
        status = row.status if not (row.status == "BLOCKED" and row.blocked_by) else f"BLOCKED by {', '.join(row.blocked_by)}"
        colour = STATUS_COLOUR[row.status]
        parts.append(
            f"<tr><td>{escape(row.name)}</td><td>{row.tests}</td><td>{row.passed}</td><td>{row.failed + row.error}</td>"
            f"<td>{row.blocked}</td><td>{row.skipped}</td><td style=\"color:{colour};font-weight:bold\">{escape(status)}</td></tr>"
        )
    parts.append("</tbody></table>")
    if history:
        items = []
        for key in ("previous_run", "newly_failing", "recovered", "last_healthy", "failing_since"):
            if history.get(key):
                items.append(f"<li>{escape(key.replace('_', ' '))}: {escape(_history_value(history[key]))}</li>")
        if items:
            parts.append("<h3>History</h3><ul>" + "".join(items) + "</ul>")
    parts.append("<h3>Most likely causes</h3>")
    if not theories:
        parts.append("<p>No rule found a cause in the evidence.</p>")
    else:
        parts.append('<ol class="reachability-theories">')
        for theory in theories:
            parts.append(
                f'<li class="reachability-theory" data-rule="{escape(theory.rule)}"><b>{escape(theory.title)}</b> '
                f"<span>({theory.confidence:.0%}, {escape(theory.rule)})</span>"
                "<ul>" + "".join(f"<li>{escape(line)}</li>" for line in theory.evidence) + "</ul>"
                "<p>Confirm:</p><pre>" + escape("\n".join(theory.confirm)) + "</pre>"
                "<p>Fix:</p><pre>" + escape("\n".join(theory.fix)) + "</pre></li>"
            )
        parts.append("</ol>")
    parts.append("</div>")
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
