"""The built-in suite run against a sandbox scenario in a fresh process, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pytest_reachability.sandbox.evaluate import SUITE_ARGS, suite_environment


def run_suite(scenario: str, folder: Path) -> tuple[dict, str]:
    """(the results JSON, the terminal output) of ``pytest --sandbox=SCENARIO`` run in ``folder``."""
    results = folder / "results.json"
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            *SUITE_ARGS,
            f"--sandbox={scenario}",
            "--results-json",
            str(results),
        ],
        cwd=folder,
        env=suite_environment(folder),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert results.exists(), process.stdout[-3000:] + process.stderr[-2000:]
    return json.loads(results.read_text()), process.stdout
