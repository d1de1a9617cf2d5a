"""What changed: a Service re-created by a timed change of the sandbox, read back through the official client
from the sandbox's API server; the addresses each run saw stored in the history and used by the next run's
diagnosis (real runs of the built-in suite with an SQLite history); the rules' wording on their own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import diagnosis_evidence as E
from diagnosis_change_evidence import MOVED, STALE_CACHE

from pytest_reachability import history
from pytest_reachability.changes import addresses_seen, changes_markdown, changes_timeline, cluster_changes
from pytest_reachability.cluster import Cluster
from pytest_reachability.diagnosis import rules_changes as C
from pytest_reachability.results import RunResults, TestResult
from pytest_reachability.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[1]

RECREATED = """
name: api-recreated
description: the api Service is re-created four seconds after the start and its LoadBalancer moves
base: healthy
edges:
  - {address: 127.0.10.57, behaviour: healthy, hosts: [97v.test]}
kubernetes:
  objects:
    - apiVersion: v1
      kind: Service
      metadata:
        {name: api, namespace: production, uid: 11111111-1111-4111-8111-111111111111, creationTimestamp: -3d}
      status: {loadBalancer: {ingress: [{ip: 127.0.10.57}]}}
    - apiVersion: apps/v1
      kind: Deployment
      metadata: {name: api, namespace: production, annotations: {deployment.kubernetes.io/revision: "3"}}
    - apiVersion: apps/v1
      kind: ReplicaSet
      metadata:
        name: api-847495fbc4
        namespace: production
        annotations: {deployment.kubernetes.io/revision: "3"}
      spec:
        template:
          metadata: {labels: {app: api, pod-template-hash: 847495fbc4}}
          spec: {containers: [{name: api, image: registry.97v.test/api:1.4.2}]}
changes:
  - after: 4s
    kubernetes:
      objects:
        - apiVersion: v1
          kind: Service
          metadata: {name: api, namespace: production, labels: {app: api}}
          spec:
            type: LoadBalancer
            selector: {app: api}
            ports: [{name: http, port: 80, targetPort: 8000, protocol: TCP}]
          status: {loadBalancer: {ingress: [{ip: 127.0.10.53}]}}
expect: {top: null}
"""


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_a_recreated_service_shows_in_the_changes_timeline(tmp_path):
    scenario = tmp_path / "recreated.yaml"
    scenario.write_text(RECREATED)
    sandbox = Sandbox(scenario, postgres=False)
    with sandbox as info:
        with Cluster.connect(
            kubeconfig=info.kubeconfig, context=info.context, namespace=info.namespace, timeout=5
        ) as view:
            before = cluster_changes(view)
            wait_for(lambda: sandbox.changes.applied)
            after = cluster_changes(view)

    def api(changes):
        return next(
            entry for entry in changes["objects"] if entry["kind"] == "Service" and entry["name"] == "api"
        )

    old, new = api(before), api(after)
    assert old["uid"] == "11111111-1111-4111-8111-111111111111" and old["loadbalancer"] == ["127.0.10.57"]
    assert new["uid"] != old["uid"] and new["loadbalancer"] == ["127.0.10.53"]
    assert new["created"] > old["created"]
    assert [(rs["revision"], rs["images"]) for rs in after["replica_sets"] if rs["deployment"] == "api"] == [
        ("3", ["registry.97v.test/api:1.4.2"])
    ]
    assert (
        next(e for e in after["objects"] if e["kind"] == "Deployment" and e["name"] == "api")["revision"]
        == "3"
    )

    rows = changes_timeline([{"kind": "cluster_changes", "data": after}])
    created = [text for _time, text in rows if text.startswith("Service api created")]
    assert created == [f"Service api created (uid {new['uid'][:8]}, LoadBalancer 127.0.10.53)"]
    assert rows[-1][1] == created[0]  # the newest change comes last
    results = RunResults()
    results.tests["t"] = TestResult(
        "t", section="dns", outcome="passed", evidence=[{"kind": "cluster_changes", "data": after}]
    )
    markdown = "\n".join(changes_markdown(results))
    assert "## 🔁 What changed" in markdown and "Service api created" in markdown


def test_the_addresses_a_run_saw_are_taken_from_its_evidence():
    records = [
        {
            "kind": "dns",
            "data": E.dns(
                answers=[
                    E.answer("127.0.0.1:5301", ["127.0.10.57"]),
                    E.answer("127.0.0.1:5302", ["127.0.10.57", "127.0.10.58"]),
                ]
            ),
        },
        {"kind": "service", "data": E.service("api", ("127.0.10.53",))},
        {"kind": "service", "data": E.service("api", ("127.0.10.53",))},
    ]
    assert addresses_seen(records) == [
        ("dns", "97v.test", "127.0.0.1:5301", "127.0.10.57"),
        ("dns", "97v.test", "127.0.0.1:5302", "127.0.10.57"),
        ("dns", "97v.test", "127.0.0.1:5302", "127.0.10.58"),
        ("loadbalancer", "production/api", "", "127.0.10.53"),
    ]


def test_history_stores_addresses_and_time_to_healthy_and_migrates_a_version_2_database(tmp_path):
    path = tmp_path / "history.sqlite"
    store = history.open_history(str(path), migrate=False)
    store.migrate(2)
    # A run stored by a release whose schema was version 2.
    store.connection.execute(
        "INSERT INTO runs (started_at, target, status, run_uuid, target_key, healthy)"
        " VALUES ('2025-12-07T10:00:00Z', 'http://97v.test', 'passed', 'old', '97v.test|production', 1)"
    )
    store.migrate()
    assert store.schema_version() == history.SCHEMA_VERSION >= 3
    run = history.RunRecord(
        target_key="97v.test|production",
        target="http://97v.test",
        seconds_to_healthy=12.5,
        wait_outcome="healthy",
        addresses=[("loadbalancer", "production/api", "", "127.0.10.57")] * 2,
    )
    store.record(run)
    rows = store.addresses_seen("97v.test|production")
    assert [(r["kind"], r["name"], r["address"], r["run_uuid"]) for r in rows] == [
        ("loadbalancer", "production/api", "127.0.10.57", run.run_uuid)
    ]
    assert store.addresses_seen("97v.test|production", before=run.run_uuid) == []
    older, newest = store.runs("97v.test|production")
    assert older["run_uuid"] == "old" and older["seconds_to_healthy"] is None
    assert newest["seconds_to_healthy"] == 12.5 and newest["wait_outcome"] == "healthy"
    store.close()


def test_the_rules_say_when_the_last_cache_expires_and_where_the_loadbalancer_went():
    cached = C.dns_still_cached(
        E.facts_of(*STALE_CACHE, failed={"dns": "changed at the source, still cached"})
    )
    assert cached.confidence == 0.9
    assert cached.title.startswith(
        "97v.test changed at the source, still cached: the authoritative servers answer "
        "127.0.10.53 (serial 2) while 127.0.0.1:5353 still serves 127.0.10.57"
    )
    assert cached.title.endswith("the last cache expires at 2025-12-08T10:34:02Z")
    assert any("dig @127.0.20.1 97v.test +norec" in line for line in cached.confirm)
    moved = C.loadbalancer_moved(E.facts_of(*MOVED))
    assert "Service `api` was re-created" in moved.title
    assert (
        "its LoadBalancer moved from 127.0.10.57 to 127.0.10.53 (the old address seen by the run of "
        "2025-12-07T22:00:00+00:00, a1b2c3d4); DNS still answers the old address 127.0.10.57"
    ) in moved.title
    assert moved.confidence == 0.93


RUN_BEFORE = """
name: lb-at-57
description: the api LoadBalancer at 127.0.10.57, DNS pointing at it
base: healthy
dns:
  primary:
    records:
      97v.test: {A: [127.0.10.57]}
edges:
  - {address: 127.0.10.57, behaviour: healthy, hosts: [97v.test, www.97v.test]}
kubernetes:
  objects:
    - apiVersion: v1
      kind: Service
      metadata:
        {name: api, namespace: production, uid: 11111111-1111-4111-8111-111111111111, creationTimestamp: -3d}
      status: {loadBalancer: {ingress: [{ip: 127.0.10.57}]}}
expect: {top: null}
"""

RUN_AFTER = """
name: lb-moved
description: >-
  the api Service re-created a minute ago with its LoadBalancer at 127.0.10.53;
  DNS still answers 127.0.10.57
base: healthy
dns:
  primary:
    records:
      97v.test: {A: [127.0.10.57]}
edges:
  - {address: 127.0.10.57, behaviour: empty_reply}
kubernetes:
  objects:
    - apiVersion: v1
      kind: Service
      metadata:
        {name: api, namespace: production, uid: 22222222-2222-4222-8222-222222222222, creationTimestamp: -1m}
expect: {top: loadbalancer-moved, failing: [dns, api-health]}
"""


def run_suite(tmp_path: Path, scenario: str, name: str) -> tuple[subprocess.CompletedProcess, dict]:
    path = tmp_path / f"{name}.yaml"
    path.write_text(scenario)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REACHABILITY_")}
    env["REACHABILITY_HISTORY_KEY"] = "97v.test|production"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "suites",
            f"--sandbox={path}",
            f"--results-db={tmp_path / 'history.sqlite'}",
            f"--results-json={tmp_path / (name + '.json')}",
            f"--incident-report={tmp_path / (name + '.md')}",
            f"--html={tmp_path / (name + '.html')}",
            "--self-contained-html",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result, json.loads((tmp_path / (name + ".json")).read_text())


def test_the_history_of_addresses_names_the_move_in_the_next_runs_diagnosis(tmp_path):
    first, _ = run_suite(tmp_path, RUN_BEFORE, "before")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    second, results = run_suite(tmp_path, RUN_AFTER, "after")
    output = second.stdout + second.stderr
    assert second.returncode == 1, output[-3000:]
    check = next(
        t
        for t in results["tests"]
        if t["nodeid"].endswith("test_dns_does_not_answer_a_former_loadbalancer_address")
    )
    assert check["outcome"] == "failed"
    assert "its LoadBalancer moved from 127.0.10.57 to 127.0.10.53" in check["reason"]
    assert "DNS still answers the old address 127.0.10.57" in check["reason"]
    moved = next(t for t in results["theories"] if t["rule"] == "loadbalancer-moved")
    assert "Service `api` was re-created" in moved["title"] and moved["confidence"] >= 0.9
    report = (tmp_path / "after.md").read_text()
    assert "## 🔁 What changed" in report and "Service api created (uid 22222222" in report
    assert "LoadBalancer production/api at 127.0.10.57" in report  # what the earlier run saw
    page = (tmp_path / "after.html").read_text()
    assert "<h3>What changed</h3>" in page and "Service api created (uid 22222222" in page
