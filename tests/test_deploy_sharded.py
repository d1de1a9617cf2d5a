"""deploy/cronjob-sharded.yaml: an Indexed Job whose pods each verify one shard of the discovered fleet.

The same checks as the other Job manifests (tests/test_rbac.py: the ServiceAccount of deploy/rbac.yaml,
Never restarted, read-only root, /reports and /tmp mounted, no kubeconfig), then what sharding adds: one
pod per shard, a shard's failure ending no other shard, every shard in the run group of its Job, and the
shell computing ``--shard I/N`` from the completion index (run here by a real ``sh``).
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


def load(name: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all((DEPLOY / name).read_text()) if doc]


def sharded() -> tuple[dict, dict, dict]:
    (doc,) = load("cronjob-sharded.yaml")
    job = doc["spec"]["jobTemplate"]["spec"]
    (container,) = job["template"]["spec"]["containers"]
    return doc, job, container


def test_the_sharded_cronjob_runs_the_suite_like_the_other_jobs() -> None:
    doc, job, container = sharded()
    account = next(d for d in load("rbac.yaml") if d["kind"] == "ServiceAccount")["metadata"]
    assert doc["apiVersion"] == "batch/v1" and doc["kind"] == "CronJob"
    assert doc["metadata"]["namespace"] == account["namespace"]
    assert doc["spec"]["concurrencyPolicy"] == "Forbid" and job["activeDeadlineSeconds"] > 0
    pod = job["template"]["spec"]
    assert pod["serviceAccountName"] == account["name"] and pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert {"/reports", "/tmp"} <= {m["mountPath"] for m in container["volumeMounts"]}
    env = {e["name"]: e for e in container["env"]}
    assert "KUBECONFIG" not in env  # in-cluster configuration from the ServiceAccount
    assert "REACHABILITY_TARGET" not in env  # the targets are discovered
    assert {"REACHABILITY_NAMESPACE", "REACHABILITY_RESULTS_DB"} <= set(env)
    # The merge reads the shards from the history: a missing Secret stops the pod rather than losing rows.
    assert "optional" not in env["REACHABILITY_RESULTS_DB"]["valueFrom"]["secretKeyRef"]
    argv = shlex.split(container["args"][0])
    assert container["command"] == ["sh", "-c"] and argv[:4] == ["exec", "python", "-m", "pytest"]
    assert argv[argv.index("--pyargs") + 1] == "pytest_reachability.suites" and "--discover" in argv


def test_one_pod_per_shard_and_a_failed_shard_ends_no_other() -> None:
    _, job, container = sharded()
    assert job["completionMode"] == "Indexed"
    shards = job["completions"]
    assert shards > 1 and job["parallelism"] == shards
    # Per index: a shard whose targets fail (exit 1) fails its index only; a Job-wide backoffLimit of 0
    # would end the shards still running.
    assert job["backoffLimitPerIndex"] == 0 and job["maxFailedIndexes"] == shards
    assert "backoffLimit" not in job
    group = next(e for e in container["env"] if e["name"] == "REACHABILITY_RUN_GROUP")
    assert group["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['batch.kubernetes.io/job-name']"


def test_the_pods_shell_turns_completion_indexes_into_every_shard_once() -> None:
    _, job, container = sharded()
    script = container["args"][0]
    assert script.startswith("exec python ")
    # The same script with its program replaced by printf: what the shell hands to python, one per line.
    echo = script.replace("exec python ", "exec printf '%s\\n' python ", 1)
    seen = []
    for index in range(job["completions"]):
        done = subprocess.run(
            ["sh", "-c", echo],
            env={"JOB_COMPLETION_INDEX": str(index), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        argv = done.stdout.splitlines()
        seen.append(argv[argv.index("--shard") + 1])
    count = job["completions"]
    assert seen == [f"{index}/{count}" for index in range(1, count + 1)]
