"""The user test in examples/user_tests runs on the plugin's public fixtures alone, against the sandbox:
it passes where the service is healthy and fails (its gate) and is BLOCKED (its dependents) where not."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "user_tests" / "test_my_service.py"


def run_example(tmp_path: Path, scenario: str) -> tuple[subprocess.CompletedProcess, dict[str, str]]:
    # Outside the checkout: only the installed plugin provides the fixtures, as for a user's project.
    shutil.copy(EXAMPLE, tmp_path / EXAMPLE.name)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            EXAMPLE.name,
            f"--sandbox={scenario}",
            "-p",
            "no:cacheprovider",
            "-rA",
            "--results-json=results.json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    results = json.loads((tmp_path / "results.json").read_text())
    outcomes = {test["nodeid"].rpartition("::")[2]: test["outcome"] for test in results["tests"]}
    return run, outcomes


def test_example_user_tests_pass_on_a_healthy_service(tmp_path):
    run, outcomes = run_example(tmp_path, "healthy")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert outcomes == {
        "test_health_answers_on_every_address": "passed",
        "test_service_has_ready_pods": "passed",
        "test_name_resolves_to_the_loadbalancer": "passed",
        "test_no_pod_restarts_often": "passed",
    }


def test_example_user_tests_fail_and_block_on_the_incident(tmp_path):
    run, outcomes = run_example(tmp_path, "incident-2025-12-08")
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-2000:]
    assert outcomes == {
        "test_health_answers_on_every_address": "failed",
        "test_service_has_ready_pods": "blocked",
        "test_name_resolves_to_the_loadbalancer": "blocked",
        "test_no_pod_restarts_often": "passed",
    }
    assert "empty_reply" in run.stdout and "blocked by my-api" in run.stdout
