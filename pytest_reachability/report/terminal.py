"""Terminal output: the verdict first, the BLOCKED sections (each gate's reason once), the section table
and the health score.

Each BLOCKED section is one line; the failure of the gate that blocked it is printed once above them. The
blocked tests one by one, each with its reason, are listed on request: ``-v`` or ``-r`` with ``s``, ``a``
or ``A`` (pytest's own switches for skip reasons).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..results import RunResults, TestResult
from .verdict import explains_text, verdict

COLUMNS = ("section", "tests", "passed", "failed", "blocked", "skipped", "status")
STATUS_MARKUP = {
    "PASS": {"green": True},
    "FAIL": {"red": True, "bold": True},
    "BLOCKED": {"yellow": True},
    "SKIPPED": {},
}
VERDICT_MARKUP = {"HEALTHY": {"green": True, "bold": True}, "NOT VERIFIED": {"yellow": True, "bold": True}}


def section_table(results: RunResults) -> list[tuple[list[str], str]]:
    """Rows (cells, status) of the section table, header first."""
    rows: list[tuple[list[str], str]] = [(list(COLUMNS), "")]
    for row in results.sections():
        status = row.status
        status_text = (
            f"BLOCKED by {', '.join(row.blocked_by)}" if status == "BLOCKED" and row.blocked_by else status
        )
        cells = [
            row.name,
            str(row.tests),
            str(row.passed),
            str(row.failed + row.error),
            str(row.blocked),
            str(row.skipped),
            status_text,
        ]
        rows.append((cells, status))
    return rows


def gate_reasons(blocked: Sequence[TestResult]) -> dict[str, str]:
    """Gate -> why it blocked its dependents, in one line, as the first dependent reported it."""
    reasons: dict[str, str] = {}
    for test in blocked:
        gate = test.blocked_by or "?"
        reasons.setdefault(gate, test.reason.removeprefix(f"blocked by {gate}: "))
    return reasons


def blocked_lines(blocked: Sequence[TestResult], *, each_test: bool = False) -> list[str]:
    """The BLOCKED block: each gate's reason once, then one line per section (or per test on request)."""
    lines = [f"blocked by {gate}: {reason}" for gate, reason in gate_reasons(blocked).items()]
    if each_test:
        return lines + [f"BLOCKED {test.nodeid} - {test.reason}" for test in blocked]
    by_section: dict[str, list[TestResult]] = {}
    for test in blocked:
        by_section.setdefault(test.section, []).append(test)
    width = max(len(name) for name in by_section)
    for section, tests in by_section.items():
        gates = ", ".join(dict.fromkeys(t.blocked_by or "?" for t in tests))
        count = f"{len(tests):>3} {'test' if len(tests) == 1 else 'tests':<5}"
        lines.append(f"BLOCKED {section.ljust(width)}  {count}  by {gates}")
    return lines


def wants_each_blocked_test(config: Any) -> bool:
    """-v, or -r asking for skip reasons (s, a, A): the user asked for the tests one by one."""
    if config is None:
        return False
    chars = str(getattr(config.option, "reportchars", "") or "")
    return config.get_verbosity() > 0 or any(char in chars for char in "saA")


def write_verdict(reporter: Any, results: RunResults, theories: Sequence[Any], target: str | None) -> None:
    found = verdict(results, theories, target)
    if found is None:
        return
    reporter.write_sep("=", "reachability")
    reporter.write_line(found.line, **VERDICT_MARKUP.get(found.state, {"red": True, "bold": True}))


def write_summary(
    reporter: Any,
    results: RunResults,
    *,
    pulled: dict[str, int] | None = None,
    theories: Sequence[Any] = (),
    target: str | None = None,
    show_verdict: bool = True,
) -> None:
    if show_verdict:  # a fleet's verdicts are per target, in its summary
        write_verdict(reporter, results, theories, target)
    blocked = results.by_outcome("blocked")
    if blocked:
        sections = len({test.section for test in blocked})
        title = (
            f"BLOCKED: {len(blocked)} test{'s' if len(blocked) != 1 else ''} "
            f"in {sections} section{'s' if sections != 1 else ''}"
        )
        reporter.write_sep("=", title, yellow=True)
        for line in blocked_lines(
            blocked, each_test=wants_each_blocked_test(getattr(reporter, "config", None))
        ):
            reporter.write_line(line)
    rows = section_table(results)
    if len(rows) == 1:
        return
    reporter.write_sep("=", "reachability: sections")
    widths = [max(len(cells[i]) for cells, _ in rows) for i in range(len(COLUMNS))]
    for index, (cells, status) in enumerate(rows):
        left = "  ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(cells[:-1])
        )
        reporter.write(left + "  ")
        markup = {"bold": True} if index == 0 else STATUS_MARKUP.get(status, {})
        reporter.write_line(cells[-1], **markup)
    reporter.write_line("")
    reporter.write_line(results.health().describe(), bold=True)
    if pulled:
        parts = ", ".join(f"{gate} ({n})" for gate, n in sorted(pulled.items()))
        reporter.write_line(f"Gates pulled back into the run for the selected tests: {parts}")


def theory_lines(index: int, theory: Any, failed_ids: Sequence[str]) -> list[str]:
    """A cause in a few lines.

    Title, what it explains, its folded consequences, evidence, confirm, unknowns."""
    lines = [f"{index}. [{theory.confidence:.0%}] {theory.title}"]
    explains = explains_text(theory, failed_ids)
    if explains:
        lines.append(f"   {explains}")
    symptoms = list(getattr(theory, "symptoms", None) or [])
    if symptoms:
        lines.append("   consequences: " + "; ".join(str(getattr(s, "title", s)) for s in symptoms))
    if theory.evidence:
        lines.append(f"   evidence: {theory.evidence[0]}")
    if theory.confirm:
        lines.append(f"   confirm:  {theory.confirm[0].splitlines()[0]}")
    unknowns = list(getattr(theory, "unknowns", None) or [])
    if unknowns:
        lines.append(
            f"   not checked: {unknowns[0]}" + (f" (+{len(unknowns) - 1} more)" if len(unknowns) > 1 else "")
        )
    return lines


def more_causes_line(count: int, written: Sequence[str]) -> str:
    """Where the causes not shown are: only reports that were written, else how to get one."""
    places = [
        line.split(":", 1)[0] for line in written if line.startswith(("incident report", "results JSON"))
    ]
    causes = f"{count} more cause{'s' if count != 1 else ''}"
    if not places:
        return f"{causes}: no report was written; --incident-report PATH lists them all"
    return f"{causes} in the {' and the '.join(places)}"
