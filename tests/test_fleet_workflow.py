"""examples/github-workflow-fleet.yml: a matrix of shards, each uploading its results, then one merge.

zizmor and actionlint check it with the other example (tests/test_action_lint.py); here, that its jobs
fit together: every shard of ``--shard I/N`` is a matrix value, N is the matrix's size, each shard's
results land in an artifact the merge job downloads, and the merge runs even when a shard failed.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def workflow() -> dict:
    return yaml.safe_load((ROOT / "examples" / "github-workflow-fleet.yml").read_text())


def test_every_shard_is_one_matrix_job_that_uploads_its_results() -> None:
    verify = workflow()["jobs"]["verify"]
    shards = verify["strategy"]["matrix"]["shard"]
    assert verify["strategy"]["fail-fast"] is False
    run = next(step for step in verify["steps"] if "--shard" in step.get("run", ""))
    (count,) = re.findall(r'--shard "\$SHARD/(\d+)"', run["run"])
    assert shards == list(range(1, int(count) + 1))
    assert run["env"]["SHARD"] == "${{ matrix.shard }}"
    assert "--discover" in run["run"] and "--results-json=reports/results.json" in run["run"]
    upload = next(step for step in verify["steps"] if "upload-artifact" in step.get("uses", ""))
    assert upload["if"] == "always()" and upload["with"]["path"] == "reports"
    assert upload["with"]["name"] == "reachability-shard-${{ matrix.shard }}"


def test_the_merge_job_joins_every_shard_even_when_one_failed() -> None:
    jobs = workflow()["jobs"]
    merge = jobs["merge"]
    assert merge["needs"] == "verify" and merge["if"] == "always()"
    download = next(step for step in merge["steps"] if "gh run download" in step.get("run", ""))
    assert "--pattern 'reachability-shard-*' --dir shards" in download["run"]
    joined = next(step for step in merge["steps"] if "pytest_reachability merge" in step.get("run", ""))
    assert "merge shards/*/results.json" in joined["run"]
