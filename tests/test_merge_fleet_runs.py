"""Shards of a real fleet run merged equal the unsharded run: ``pytest --sandbox fleet --discover`` over
the 20 hosts of namespace ``payments`` (12 behind a decommissioned load balancer, one refusing), once
whole and once as ``--shard 1/3`` .. ``3/3``, each shard storing its rows in one history run group.

Each run starts its own sandbox, whose edges listen on a port chosen at start, so targets are compared
by host: the port is the sandbox's, not the fleet's.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from test_merge import run_cli

from pytest_reachability import merge

SHARDS = 3


def verify(tmp_path: Path, name: str, *extra: str, env: dict[str, str] | None = None) -> Path:
    out = tmp_path / f"{name}.json"
    suite = [
        sys.executable,
        "-m",
        "pytest",
        "--pyargs",
        "pytest_reachability.suites",
        "-p",
        "no:cacheprovider",
    ]
    fleet = ["--sandbox", "fleet", "--discover", "--namespace", "payments", f"--results-json={out}"]
    done = subprocess.run(
        [*suite, "-q", *fleet, *extra],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-2000:]  # the fleet has failing hosts
    return out


def host(display: str) -> str:
    return re.sub(r":\d+$", "", display)


def by_host(document: dict[str, Any]) -> dict[str, Any]:
    rows = {
        host(row["target"]): (row["status"], row["health_score"], row["sections"])
        for row in document["targets"]
    }
    causes = sorted((c["rule"], sorted(map(host, c["targets"]))) for c in document["fleet"]["causes"])
    counts = {key: document["fleet"][key] for key in ("targets", "healthy", "failing")}
    return {"rows": rows, "causes": causes, "counts": counts}


def test_the_shards_of_a_sandbox_fleet_merge_into_the_unsharded_run(tmp_path: Path) -> None:
    whole = verify(tmp_path, "whole")
    history = tmp_path / "history.sqlite"
    shards = [
        verify(
            tmp_path,
            f"shard-{index}",
            "--shard",
            f"{index}/{SHARDS}",
            f"--results-db={history}",
            env={"REACHABILITY_RUN_GROUP": "fleet-job-1"},
        )
        for index in range(1, SHARDS + 1)
    ]
    expected = by_host(merge.merged_document(merge.load_shards([whole])))
    assert expected["counts"] == {"targets": 20, "healthy": 7, "failing": 13}
    assert ("dns-not-loadbalancer", [f"http://svc-{n}.fleet.test" for n in range(180, 192)]) in expected[
        "causes"
    ]

    # The shards split the hosts without overlap, and no shard alone holds the whole shared cause.
    documents = [json.loads(path.read_text()) for path in shards]
    assert sum(len(doc["targets"]) for doc in documents) == 20
    assert all(len(cause["targets"]) < 12 for doc in documents for cause in doc["fleet"]["causes"])

    out = tmp_path / "merged.json"
    done = run_cli("merge", *map(str, shards), "--results-json", str(out), cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert by_host(json.loads(out.read_text())) == expected

    # The same shards read back from the history they wrote: the same targets and verdicts.
    stored = merge.shards_from_history(str(history), "fleet-job-1")
    assert {host(s.target): s.status for s in stored} == {
        name: row[0] for name, row in expected["rows"].items()
    }
    assert {s.shard["index"] for s in stored} == set(range(1, SHARDS + 1))
