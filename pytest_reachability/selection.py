"""Selection support: find the tests of gates that a selection (node ids, ``--lf``) left uncollected."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def collect_gates_elsewhere(session: pytest.Session, gates: set[str], have: set[str]) -> list[pytest.Item]:
    """Collect test files outside the selection that declare ``gates`` (node-id selection, --lf).

    Candidates are the test files under ``testpaths`` and beside the selected files whose text
    mentions a gate name; collected directly so that --lf's file skipping does not hide them.
    """
    config = session.config
    found: list[pytest.Item] = []
    # A required test (key ``path.py::name``) lives in the dependent's own module: collect that file.
    modules = sorted({gate.partition("::")[0] for gate in gates if "::" in gate})
    for module in modules:
        path = config.rootpath / module
        if path.is_file():
            found += _new_items(session, path, have)
    gates = {gate for gate in gates if "::" not in gate}
    if not gates:
        return found
    seen: set[Path] = {config.rootpath / module for module in modules}
    for path in _candidate_files(_candidate_roots(session), config.getini("python_files"), seen):
        if _mentions_gate(path, gates):
            found += _new_items(session, path, have)
    return found


def _candidate_roots(session: pytest.Session) -> list[Path]:
    """The ``testpaths`` folders, then the folders of the selected tests."""
    config = session.config
    roots: list[Path] = [config.rootpath / p for p in config.getini("testpaths")]
    return roots + sorted({Path(str(item.path)).parent for item in session.items})


def _candidate_files(roots: list[Path], patterns: list[str], seen: set[Path]) -> Iterator[Path]:
    """Each test file under ``roots`` not ``seen`` yet, once, in a stable order."""
    for root in roots:
        if not root.is_dir():
            continue
        for pattern in patterns or ["test_*.py"]:
            for path in sorted(root.rglob(pattern)):
                if path not in seen and path.is_file():
                    seen.add(path)
                    yield path


def _mentions_gate(path: Path, gates: set[str]) -> bool:
    """Whether the file names one of ``gates`` as a quoted string (an unreadable file does not)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return False
    return any(f'"{g}"' in text or f"'{g}'" in text for g in gates)


def _new_items(session: pytest.Session, path: Path, have: set[str]) -> list[pytest.Item]:
    return [i for i in _items_of_file(session, path) if i.nodeid not in have]


def _items_of_file(session: pytest.Session, path: Path) -> list[pytest.Item]:
    def expand(node: Any) -> list[pytest.Item]:
        if isinstance(node, pytest.Item):
            return [node]
        out: list[pytest.Item] = []
        for child in node.collect():
            out += expand(child)
        return out

    items: list[pytest.Item] = []
    try:
        for collector in session._collect_path(path, {}):  # noqa: SLF001 - no public API collects one file
            items += expand(collector)
    except Exception:  # a broken candidate file must not break the run it was not selected for
        return []
    return items
