"""Terminal output: the BLOCKED list, the section table with the health score, and a theory's folded symptoms."""

from __future__ import annotations

from typing import Any

from ..results import RunResults

COLUMNS = ("section", "tests", "passed", "failed", "blocked", "skipped", "status")
STATUS_MARKUP = {"PASS": {"green": True}, "FAIL": {"red": True, "bold": True}, "BLOCKED": {"yellow": True}, "SKIPPED": {}}


def section_table(results: RunResults) -> list[tuple[list[str], str]]:
    """Rows (cells, status) of the section table, header first."""
    rows: list[tuple[list[str], str]] = [(list(COLUMNS), "")]
    for row in results.sections():
        status = row.status
        if status == "BLOCKED" and row.blocked_by:
            status_text = f"BLOCKED by {', '.join(row.blocked_by)}"
        else:
            status_text = status
        cells = [row.name, str(row.tests), str(row.passed), str(row.failed + row.error), str(row.blocked), str(row.skipped), status_text]
        rows.append((cells, status))
    return rows


def write_summary(reporter: Any, results: RunResults, *, pulled: dict[str, int] | None = None) -> None:
    blocked = results.by_outcome("blocked")
    if blocked:
        reporter.write_sep("=", f"BLOCKED ({len(blocked)})", yellow=True)
        for test in blocked:
            reporter.write_line(f"BLOCKED {test.nodeid} - {test.reason}")
    rows = section_table(results)
    if len(rows) == 1:
        return
    reporter.write_sep("=", "reachability: sections")
    widths = [max(len(cells[i]) for cells, _ in rows) for i in range(len(COLUMNS))]
    for index, (cells, status) in enumerate(rows):
        left = "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(cells[:-1]))
        reporter.write(left + "  ")
        markup = {"bold": True} if index == 0 else STATUS_MARKUP.get(status, {})
        reporter.write_line(cells[-1], **markup)
    health = results.health()
    reporter.write_line("")
    reporter.write_line(health.describe(), bold=True)
    if pulled:
        parts = ", ".join(f"{gate} ({n})" for gate, n in sorted(pulled.items()))
        reporter.write_line(f"Gates pulled back into the run for the selected tests: {parts}")


def symptom_lines(theory: Any, indent: str = "   ", limit: int = 3) -> list[str]:
    """Lines naming the symptoms folded under a theory (consequences of its cause, not rival causes)."""
    symptoms = list(getattr(theory, "symptoms", None) or [])
    lines = [f"{indent}explains also: {symptom.title}" for symptom in symptoms[:limit]]
    if len(symptoms) > limit:
        lines.append(f"{indent}... and {len(symptoms) - limit} more consequence(s) of this cause")
    return lines
