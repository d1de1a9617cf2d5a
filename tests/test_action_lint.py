"""The action and the example workflow checked by linters nobody on this project wrote: zizmor (default
persona, offline) reports no finding and actionlint no error -- and a control shows each would report a real
one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKED = (
    ROOT / "action.yml",
    ROOT / "examples" / "github-workflow.yml",
    ROOT / "examples" / "github-workflow-fleet.yml",
)


def tool(name: str) -> str:
    """The linter from the test extras (installed beside this Python), else from PATH; CI fails without it."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is required in CI (pip install -e '.[test]')")
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return found


def zizmor(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [tool("zizmor"), "--offline", "--no-progress", "--format", "plain", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def actionlint(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [tool("actionlint"), "-no-color", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_zizmor_finds_nothing_in_the_action_and_the_example() -> None:
    done = zizmor(*CHECKED)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No findings to report" in done.stdout + done.stderr


def test_zizmor_would_report_an_unpinned_action(tmp_path: Path) -> None:
    action = tmp_path / "action.yml"
    text = (ROOT / "action.yml").read_text()
    action.write_text(
        text.replace(
            "actions/upload-artifact@bbbca2ddaa5d8feaa63e36b76fdaad77386f024f", "actions/upload-artifact@v7"
        )
    )
    done = zizmor(action)
    assert done.returncode != 0 and "unpinned-uses" in done.stdout + done.stderr


def test_actionlint_finds_nothing_in_the_example_workflows() -> None:
    done = actionlint(*CHECKED[1:])
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_would_report_a_mistake(tmp_path: Path) -> None:
    workflow = tmp_path / ".github" / "workflows" / "deploy.yml"
    workflow.parent.mkdir(parents=True)
    text = CHECKED[1].read_text()
    workflow.write_text(
        text.replace(
            "steps.reachability.outputs.incident-report", "steps.no_such_step.outputs.incident-report"
        )
    )
    done = actionlint(workflow)
    assert done.returncode != 0 and "no_such_step" in done.stdout
