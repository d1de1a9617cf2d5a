"""The cluster view reads the same snapshots from the sandbox's own API server as from kube-apiserver.

For every bundled scenario (and the edge cases in ``scenarios/`` here) the scenario is loaded into the
real control plane and served by the sandbox's server; each read of the cluster view must give equal
snapshots. The documented exceptions (docs/control-plane.md) are applied in ``snapshots.comparable``:
cluster IPs and node ports that the manifest leaves to the server, and the server's own ``kubernetes``
Service.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_reachability.sandbox.control_plane import ControlPlane
from pytest_reachability.sandbox.scenario import load_scenario, scenario_names

from .snapshots import differences, embedded_server, real_server, snapshot

pytestmark = pytest.mark.control_plane

EDGE_CASES = sorted((Path(__file__).parent / "scenarios").glob("*.yaml"))


@pytest.mark.parametrize(
    "name",
    [*scenario_names(), *map(str, EDGE_CASES)],
    ids=[*scenario_names(), *(path.stem for path in EDGE_CASES)],
)
def test_snapshots_equal(name: str, control_plane: ControlPlane, tmp_path: Path) -> None:
    scenario = load_scenario(name)
    with embedded_server(scenario, tmp_path) as embedded_kubeconfig:
        embedded = snapshot(embedded_kubeconfig)
    with real_server(scenario, control_plane, tmp_path) as (real_kubeconfig, loaded):
        real = snapshot(real_kubeconfig)
    assert any(embedded.values()), f"{scenario.name}: the scenario serves nothing to compare"
    found = differences(scenario, embedded, real)
    adjustments = "\n".join(loaded.report.adjustments) if loaded.report else ""
    assert not found, f"{scenario.name}:\n" + "\n".join(found) + f"\nload adjustments:\n{adjustments}"
