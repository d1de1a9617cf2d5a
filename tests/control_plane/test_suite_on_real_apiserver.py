"""The built-in suite gives the same verdicts whether the sandbox's own server or kube-apiserver serves a
scenario.

For each bundled scenario the suite runs twice against the same sandbox servers (DNS, edges, database):
once reading the cluster from the scenario loaded into the real control plane, once from the sandbox's own
API server. Every test must end the same way, and the diagnosis must name the same causes. Then every
kubectl command the diagnosis prints to confirm a cause runs, with the run's kubeconfig, against the real
server while the scenario is loaded, and must exit 0.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pytest_reachability.sandbox import Sandbox
from pytest_reachability.sandbox.control_plane import ControlPlane
from pytest_reachability.sandbox.control_plane_sandbox import READER
from pytest_reachability.sandbox.scenario import load_scenario, scenario_names

from .suite_runs import SuiteRun, loaded_sandbox, run_suite

pytestmark = pytest.mark.control_plane

KUBECTL_TIMEOUT = 30


def verdicts(run: SuiteRun) -> dict[str, str]:
    return {test["nodeid"]: test["outcome"] for test in run.results["tests"]}


def causes(run: SuiteRun) -> list[str]:
    return [theory["rule"] for theory in run.results.get("theories", [])]


# A timed scenario's verdict depends on when the run looks (its changes land during the run): left out, as the
# corpus leaves it out; tests/test_wait_sandbox.py runs it with --wait.
@pytest.mark.parametrize("scenario", [name for name in scenario_names() if not load_scenario(name).changes])
def test_same_verdicts_and_confirm_lines_exit_zero(
    scenario: str, control_plane: ControlPlane, tmp_path: Path
) -> None:
    embedded_sandbox = Sandbox(scenario)
    embedded_info = embedded_sandbox.start()
    try:
        embedded = run_suite(
            embedded_info, control_plane, embedded_info.kubeconfig or "", "", tmp_path / "embedded"
        )
    finally:
        embedded_sandbox.stop()
    with loaded_sandbox(scenario, control_plane) as info:
        assert info.kubeconfig is not None
        real = run_suite(info, control_plane, info.kubeconfig, READER, tmp_path / "real")
        lines = [
            line
            for theory in real.results.get("theories", [])
            for line in theory.get("confirm", [])
            if line.startswith("kubectl")
        ]
        failures = []
        for line in lines:
            env = dict(os.environ, KUBECONFIG=info.kubeconfig)
            done = subprocess.run(
                ["bash", "-c", line],
                env=env,
                capture_output=True,
                text=True,
                timeout=KUBECTL_TIMEOUT,
                check=False,
                stdin=subprocess.DEVNULL,
            )
            if done.returncode != 0:
                failures.append(
                    f"{line}\n  exit {done.returncode}: {(done.stderr or done.stdout).strip()[:300]}"
                )
    # A scenario's own deny rules (an identity that lost a grant) are the only refusals expected.
    denied = {(rule["resource"], rule["verb"]) for rule in load_scenario(scenario).deny}
    refused = {entry for entry in real.refused() if (entry[1], entry[2]) not in denied}
    assert refused == set(), f"the sandbox's reader was refused: {sorted(refused)}"
    different = {
        nodeid: (outcome, verdicts(real).get(nodeid))
        for nodeid, outcome in verdicts(embedded).items()
        if verdicts(real).get(nodeid) != outcome
    }
    reasons = {t["nodeid"]: t["reason"] for t in real.results["tests"]}
    assert not different, "embedded vs real: " + "; ".join(
        f"{nodeid}: {a} vs {b} ({reasons.get(nodeid, '')[:200]})" for nodeid, (a, b) in different.items()
    )
    evidence = {
        t["rule"]: t["evidence"]
        for t in real.results.get("theories", []) + embedded.results.get("theories", [])
    }
    assert causes(real) == causes(embedded), {
        rule: evidence[rule] for rule in set(causes(real)) ^ set(causes(embedded))
    }
    assert not failures, "\n".join(failures)
