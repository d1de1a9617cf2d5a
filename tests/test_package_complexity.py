"""The whole package stays readable: no function of pytest_reachability/ (the sandbox's API server and its
table rendering included) is graded worse than C by radon's cyclomatic complexity; methods and closures are
graded on their own, as ``radon cc`` does."""

from __future__ import annotations

from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pytest_reachability"
WORST_GRADE = "C"  # radon grades A (1-5) ... C (11-20), D (21-30), E, F (41+)


def graded_worse_than_c() -> dict[str, str]:
    complexity = pytest.importorskip(
        "radon.complexity", reason="radon is in the test extras: pip install -e '.[test]'"
    )
    worse = {}
    seen = 0
    for path in sorted(PACKAGE.rglob("*.py")):
        where = path.relative_to(PACKAGE).as_posix()
        blocks = list(complexity.cc_visit(path.read_text()))
        while (
            blocks
        ):  # methods of classes and closures of functions are graded on their own, as `radon cc` does
            block = blocks.pop()
            blocks += list(getattr(block, "methods", [])) + list(getattr(block, "closures", []))
            seen += 1
            rank = complexity.cc_rank(block.complexity)
            if rank > WORST_GRADE:
                worse[f"{where}:{block.fullname}"] = f"{rank} ({block.complexity}) at line {block.lineno}"
    assert seen > 500, f"radon graded only {seen} blocks"
    return worse


def test_no_function_is_graded_worse_than_c() -> None:
    worse = graded_worse_than_c()
    assert worse == {}
