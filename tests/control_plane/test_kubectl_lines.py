"""Every kubectl command the diagnosis prints to confirm a cause runs against kube-apiserver and exits 0.

For each bundled scenario the built-in suite runs against the scenario loaded into the real control
plane; the confirm lines of the run's theories (results JSON) that call kubectl are then run, with the
same kubeconfig, while the scenario is still loaded.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pytest_reachability.sandbox.control_plane import ControlPlane
from pytest_reachability.sandbox.control_plane_sandbox import READER
from pytest_reachability.sandbox.scenario import scenario_names

from .suite_runs import loaded_sandbox, run_suite

pytestmark = pytest.mark.control_plane

KUBECTL_TIMEOUT = 30


@pytest.mark.parametrize("scenario", scenario_names())
def test_confirm_lines_exit_zero(scenario: str, control_plane: ControlPlane, tmp_path: Path) -> None:
    with loaded_sandbox(scenario, control_plane) as info:
        assert info.kubeconfig is not None
        run = run_suite(info, control_plane, info.kubeconfig, READER, tmp_path)
        lines = [line for theory in run.results.get("theories", []) for line in theory.get("confirm", [])
                 if line.startswith("kubectl")]
        failures = []
        for line in lines:
            env = dict(os.environ, KUBECONFIG=info.kubeconfig)
            done = subprocess.run(["bash", "-c", line], env=env, capture_output=True, text=True,
                                  timeout=KUBECTL_TIMEOUT, check=False, stdin=subprocess.DEVNULL)
            if done.returncode != 0:
                failures.append(f"{line}\n  exit {done.returncode}: {(done.stderr or done.stdout).strip()[:300]}")
    assert not failures, "\n".join(failures)
