"""A pod held out of Ready by a readiness gate (``spec.readinessGates``; the kubelet's Ready condition says
``ReadinessGatesNotReady`` while every container is ready), as the AWS Load Balancer Controller's
target-health gate does while the target group's health check fails. The diagnosis names the gate, its
status and the controller's message, not a pod "Running, ready 1/1, and not Ready" with nothing to go on."""

from __future__ import annotations

from pytest_reachability.diagnosis.rules_workloads import _gates_not_ready
from pytest_reachability.sandbox.evaluate import evaluate

GATE = "target-health.elbv2.k8s.aws/k8s-payments-checkout-3f9a1c2b7d"


def test_the_bundled_scenario_names_the_gate_and_the_controllers_message() -> None:
    (row,) = evaluate(["shop-readiness-gate-target-health"])
    assert row.hit, row.problem()
    assert f"readiness gate {GATE} is False" in row.title
    assert "Target.Timeout: Target registration is in progress but health checks timed out" in row.title


def test_a_pod_not_ready_for_its_own_containers_is_not_called_a_gate() -> None:
    pod = {
        "name": "api-1",
        "namespace": "production",
        "phase": "Running",
        "ready": False,
        "conditions": [
            {"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady", "message": ""},
            {"type": "Ready", "status": "False", "reason": "ContainersNotReady", "message": ""},
            {"type": "example.com/gate", "status": "False", "reason": "", "message": ""},
        ],
    }

    assert _gates_not_ready(pod) == []
    pod["conditions"][1] = {
        "type": "Ready",
        "status": "False",
        "reason": "ReadinessGatesNotReady",
        "message": "",
    }
    assert [g["type"] for g in _gates_not_ready(pod)] == ["example.com/gate"]
