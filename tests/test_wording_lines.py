"""Evidence lines and commands say what the cluster says, and nothing a reader would take for a mistake."""

from __future__ import annotations

from pathlib import Path

import diagnosis_evidence as E
import pytest
from scenario_runs import run_suite

from pytest_reachability.diagnosis.facts import RunContext
from pytest_reachability.diagnosis.theory import kubectl
from pytest_reachability.diagnosis.wording import pod_line


def test_a_pod_whose_containers_look_ready_but_is_not_ready_says_so() -> None:
    """A node that stopped reporting: the containers' last status says ready, the node controller set the
    pod's Ready condition False. "ready 1/1" alone reads as a pod that serves."""
    pod = E.pod(ready=True)
    pod["ready"] = False
    pod["conditions"] = [{"type": "Ready", "status": "False", "reason": "NodeLost", "message": ""}]
    assert "ready 1/1 (pod Ready=False: NodeLost)" in pod_line(pod)
    pod["ready"] = True
    pod["conditions"] = [{"type": "Ready", "status": "True", "reason": None, "message": None}]
    assert "ready 1/1, restarts" in pod_line(pod)


@pytest.mark.parametrize("args", ["get certificate -A", "get svc --all-namespaces -o wide"])
def test_a_command_over_all_namespaces_names_no_namespace(args: str) -> None:
    context = RunContext(namespace="production")
    assert kubectl(context, args) == f"kubectl {args}"
    assert kubectl(context, "get pods") == "kubectl -n production get pods"


def test_a_lost_node_whose_pods_have_nowhere_to_go_says_so_before_drain(tmp_path: Path) -> None:
    """Draining a lost node moves its pods only where there is room; a pod already unschedulable for lack of
    memory says there is none. The node's two taints of one key (NoSchedule, NoExecute) are named once."""
    results, output = run_suite("node-lost-no-room-elsewhere", tmp_path)
    top = results["theories"][0]
    assert top["rule"] == "node-not-ready", output[-3000:]
    assert "(taint node.kubernetes.io/unreachable)" in top["title"]
    fix = top["fix"]
    assert "only once the other nodes have room: pod api-847495fbc4-w8r5c is already unschedulable" in fix[1]
