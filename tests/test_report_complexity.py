"""The report package stays readable: no function of pytest_reachability/report/ is graded worse than C by
radon's cyclomatic complexity (the incident report is rendered part by part, each evidence kind by one
formatter, instead of in one long function)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPORT = Path(__file__).resolve().parents[1] / "pytest_reachability" / "report"
WORST_GRADE = "C"  # radon grades A (1-5) ... C (11-20), D (21-30), E, F (41+)


def test_no_report_function_is_graded_worse_than_c() -> None:
    complexity = pytest.importorskip(
        "radon.complexity", reason="radon is in the test extras: pip install -e '.[test]'"
    )
    graded = []
    for path in sorted(REPORT.glob("*.py")):
        blocks = list(complexity.cc_visit(path.read_text()))
        while (
            blocks
        ):  # methods of classes and closures of functions are graded on their own, as `radon cc` does
            block = blocks.pop()
            blocks += list(getattr(block, "methods", [])) + list(getattr(block, "closures", []))
            graded.append(
                (
                    complexity.cc_rank(block.complexity),
                    f"{path.name}:{block.lineno} {block.name} ({block.complexity})",
                )
            )
    assert graded, "radon graded nothing"
    assert [name for rank, name in graded if rank > WORST_GRADE] == []
