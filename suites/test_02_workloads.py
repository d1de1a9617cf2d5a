"""Section 2, workloads: every Deployment of the namespace has its replicas available and its rollout done."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.section("workloads", requires=["cluster-access"])


def test_deployments_have_desired_replicas_available(cluster_reads, evidence):
    deployments = cluster_reads.deployments()
    for deployment in deployments:
        evidence.record("deployment", deployment)
    if not deployments:
        pytest.skip(f"no Deployments in namespace {cluster_reads.namespace}")
    short = [
        f"{d.name} has {d.available} of {d.desired} replicas available"
        for d in deployments
        if d.available < d.desired
    ]
    assert not short, f"{'; '.join(short)}; expected available == desired"


def test_rollouts_are_complete(cluster_reads, evidence):
    deployments = cluster_reads.deployments()
    for deployment in deployments:
        if not deployment.rollout_complete:
            evidence.record("deployment", deployment)
    if not deployments:
        pytest.skip(f"no Deployments in namespace {cluster_reads.namespace}")
    unfinished = [f"{d.name}: {d.rollout_message}" for d in deployments if not d.rollout_complete]
    assert not unfinished, f"rollouts not finished: {'; '.join(unfinished)}; expected every rollout complete"
