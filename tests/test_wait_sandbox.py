"""Timed scenarios against the sandbox's own authoritative servers and TTL-honouring caching resolvers.

A cached stale answer seen against the authoritative one (by the probe, by the built-in check and by the
diagnosis), and ``pytest --sandbox incident-2025-12-08-fix --wait 60`` ending healthy with the time to
healthy in every output."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from pytest_reachability.probes.propagation import check_propagation
from pytest_reachability.sandbox import Sandbox, ScenarioError, load_scenario

ROOT = Path(__file__).resolve().parents[1]

# The fix lands half a second after the start, while the resolvers hold the old answer for a minute.
LONG_TTL = """
name: fix-long-ttl
description: the incident fixed at the source as the run starts while caches hold the dead edge for 60 s
base: incident-2025-12-08-fix
dns:
  authoritative:
    records:
      97v.test: {A: [127.0.10.57], ttl: 60}
# At once: the suite reads the resolvers and the authoritative servers as its session starts, so a later
# fix could land after its observation.
changes:
  - after: 0ms
    dns:
      authoritative:
        records:
          97v.test: {A: [127.0.10.53], ttl: 60}
"""


def clean_environment() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("REACHABILITY_") and k not in ("CI", "GITHUB_ACTIONS")
    }


def test_a_cached_stale_answer_is_seen_against_the_authoritative_one(tmp_path):
    path = tmp_path / "fix-long-ttl.yaml"
    path.write_text(LONG_TTL)
    sandbox = Sandbox(path, postgres=False)
    with sandbox as info:
        deadline = time.monotonic() + 20
        while not sandbox.changes.applied:
            assert time.monotonic() < deadline, "the change was never applied"
            time.sleep(0.05)
        report = check_propagation(
            "97v.test", info.resolvers, timeout=3, authoritative_port=info.authoritative_port
        )
    assert report.zone == "97v.test." and report.nameservers == ["ns1.97v.test", "ns2.97v.test"]
    assert [a.server for a in report.authoritative_answers] == [
        f"127.0.20.1:{info.authoritative_port}",
        f"127.0.20.2:{info.authoritative_port}",
    ]
    assert all(
        a.authoritative and a.addresses == ["127.0.10.53"] and a.serial == 2025120802
        for a in report.authoritative_answers
    )
    assert not report.agree and [a.server for a in report.stale()] == info.resolvers
    for answer in report.stale():
        assert answer.addresses == ["127.0.10.57"] and answer.serial == 2025120801 and 50 <= answer.ttl <= 60
    expiry = report.last_cache_expiry
    assert 50 <= expiry - time.time() <= 61
    lines = report.disagreements()
    assert lines[0].startswith(
        f"resolver {info.resolvers[0]} still answers 127.0.10.57 (authoritative ns1.97v.test: "
        "127.0.10.53, serial 2025120802 vs 2025120801), cached "
    )
    expected = datetime.fromtimestamp(report.checked_at + report.stale()[0].ttl, tz=timezone.utc)
    assert f"(until {expected.strftime('%Y-%m-%dT%H:%M:%SZ')})" in lines[0]


def test_the_built_in_check_and_the_diagnosis_name_the_stale_cache(tmp_path):
    path = tmp_path / "fix-long-ttl.yaml"
    path.write_text(LONG_TTL)
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
            f"--results-json={tmp_path / 'results.json'}",
        ],
        cwd=ROOT,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stdout[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    check = next(
        t
        for t in results["tests"]
        if t["nodeid"].endswith("test_resolvers_serve_what_the_authoritative_servers_answer")
    )
    assert check["outcome"] == "failed" and "changed at the source, still cached" in check["reason"]
    assert "still answers 127.0.10.57 (authoritative ns1.97v.test: 127.0.10.53" in check["reason"]
    theory = next(t for t in results["theories"] if t["rule"] == "dns-still-cached")
    assert theory["confidence"] >= 0.9 and "the last cache expires at 20" in theory["title"]
    assert results["theories"][0]["rule"] == "dns-still-cached", [t["rule"] for t in results["theories"]]


def test_the_fix_scenario_waits_until_healthy_and_reports_when(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "suites",
            "--sandbox",
            "incident-2025-12-08-fix",
            "--wait",
            "60",
            f"--results-json={tmp_path / 'results.json'}",
            f"--incident-report={tmp_path / 'incident.md'}",
            f"--results-db={tmp_path / 'history.sqlite'}",
        ],
        cwd=ROOT,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    wait = json.loads((tmp_path / "results.json").read_text())["run"]["wait"]
    assert wait["outcome"] == "healthy" and wait["caches_agreed_at"] and wait["healthy_at"]
    # Warm caches hold the dead edge for the 10 s TTL from the start; the fix landed at 3 s.
    assert 5 <= wait["seconds_to_healthy"] <= 40, wait
    assert wait["first_reason"].startswith("api-health: 97v.test → 127.0.10.57 empty reply")
    assert f"healthy after {wait['seconds_to_healthy']:.1f} s of --wait 60 s" in output
    assert f"resolvers agreed with the authoritative servers at {wait['caches_agreed_at']}" in output
    report = (tmp_path / "incident.md").read_text()
    assert (
        "resolved at: healthy after" in report
        and "every resolver agreed with the authoritative servers" in report
    )
    assert "| TBD |" not in report
    from pytest_reachability import history

    store = history.open_history(str(tmp_path / "history.sqlite"))
    run = store.runs()[-1]
    store.close()
    assert run["wait_outcome"] == "healthy" and run["seconds_to_healthy"] == pytest.approx(
        wait["seconds_to_healthy"], abs=0.01
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("[{after: soon}]", "changes[0].after: expected a duration"),
        (
            "[{after: 1s, dns: {tertiary: {records: {97v.test: {A: [127.0.10.53]}}}}}]",
            "changes[0].dns.tertiary: expected one of the keys authoritative, got 'tertiary'",
        ),
        ("[{after: 1s, dns: [primary]}]", "changes[0].dns: expected a mapping"),
        ("[{after: 1s, edges: {address: 127.0.10.57}}]", "changes[0].edges: expected a list"),
        ("[{after: 1s, edges: [{address: 127.0.10.99, behaviour: healthy}]}]", "changes[0].edges[0].address"),
        (
            "[{after: 1s, edges: [{address: 127.0.10.57, behaviour: refuse}]}]",
            "a behaviour of a listening server",
        ),
    ],
)
def test_bad_timed_changes_are_refused_with_their_path(tmp_path, change, message):
    path = tmp_path / "bad.yaml"
    path.write_text(f"name: bad\ndescription: bad\nbase: incident-2025-12-08-fix\nchanges: {change}\n")
    with pytest.raises(ScenarioError, match=re.escape(message)):
        load_scenario(path)


def test_caching_resolvers_need_the_authoritative_servers(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\ndescription: bad\nbase: healthy\ndns: {primary: {cache: true}}\n")
    with pytest.raises(ScenarioError, match="dns: expected dns.authoritative"):
        load_scenario(path)


def test_a_cname_out_of_the_zone_is_compared_by_its_target(tmp_path):
    path = tmp_path / "cname.yaml"
    path.write_text(
        "name: cname\ndescription: a CNAME out of the zone\nbase: incident-2025-12-08-fix\n"
        "dns: {authoritative: {records: {api.97v.test: {CNAME: lb.provider.test, ttl: 30}}}}\n"
    )
    with Sandbox(path, postgres=False) as info:
        report = check_propagation(
            "api.97v.test", info.resolvers, timeout=3, authoritative_port=info.authoritative_port
        )
    assert (
        report.source is not None
        and report.source.cnames == ["lb.provider.test"]
        and report.source.addresses == []
    )
    assert all(answer.cnames == ["lb.provider.test"] for answer in report.resolver_answers)
    assert report.agree and report.disagreements() == []
