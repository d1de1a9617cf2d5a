"""Runs of several targets through the real plugin against the running ``fleet`` sandbox (200 hosts).

What is asserted is what an SRE reads: every host verified, its own sections and status, one cause listed
once with every host it explains, a failed gate of one host blocking that host's checks only, checks not
about one host run once, shards that together are the unsharded run, and one-line errors for bad input.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_reachability.config import SettingsError, TargetSpec, parse_target, resolve_settings
from pytest_reachability.fleet import generic_title
from pytest_reachability.report.json import schema_path
from pytest_reachability.targets import apply_shard, sandbox_port

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "suites"
RUN_TIMEOUT = 600
FLEET = {f"svc-{number:03d}.fleet.test" for number in range(200)}
SHARED_CAUSE = {f"svc-{number:03d}.fleet.test" for number in range(180, 192)}  # CNAMEs of a dead legacy LB
SINGLE_FAULTS = {"svc-013.fleet.test", "svc-142.fleet.test", "svc-150.fleet.test", "svc-197.fleet.test"}


def run_pytest(folder: Path, *args: str, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess:
    """The built-in suite in its own process group (killed whole past ``timeout``)."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REACHABILITY_", "PYTEST_"))}
    env.pop("KUBECONFIG", None)
    env.update(HOME=str(folder), COLUMNS="400")
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        f"--rootdir={ROOT}",
        str(SUITE),
        *args,
    ]
    process = subprocess.Popen(
        command,
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"run {' '.join(args)} did not finish within {timeout}s:\n{output[-3000:]}")
    return subprocess.CompletedProcess(command, process.returncode, output, "")


def host_of(key: str) -> str:
    return parse_target(key).host


def read_document(path: Path) -> dict:
    document = json.loads(path.read_text())
    errors = list(
        jsonschema.Draft202012Validator(json.loads(schema_path().read_text())).iter_errors(document)
    )
    assert not errors, [error.message for error in errors[:3]]
    return document


@pytest.fixture(scope="module")
def fleet_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fleet")
    run = run_pytest(folder, "--sandbox", "fleet", "--discover", "--results-json=fleet.json", "-q")
    assert run.returncode == 1, run.stdout[-3000:]
    return run, read_document(folder / "fleet.json")


def test_discover_verifies_every_public_host_of_the_fleet(fleet_run):
    run, document = fleet_run
    targets = {host_of(entry["target"]): entry for entry in document["targets"]}
    assert set(targets) == FLEET  # the wildcard rule is a pattern, not a host: it is not verified
    assert document["run"]["targets"] == 200 and document["fleet"]["targets"] == 200
    failing = {host for host, entry in targets.items() if entry["status"] != "PASS"}
    assert failing == SHARED_CAUSE | SINGLE_FAULTS, sorted(failing ^ (SHARED_CAUSE | SINGLE_FAULTS))
    assert document["fleet"]["healthy"] == 200 - len(failing) and document["fleet"]["failing"] == len(failing)
    for host, entry in targets.items():
        assert entry["sections"], host
        assert entry["verdict"].startswith("HEALTHY" if host not in failing else ("UNREACHABLE", "DEGRADED"))
        # Each entry holds only its own target's tests, and the node ids say which target.
        assert all(host in nodeid for nodeid in entry["tests"]), host
    # The terminal puts the fleet first: counts, then the causes with their hosts.
    assert f"200 targets: {200 - len(failing)} healthy, {len(failing)} failing" in run.stdout


def test_a_cause_shared_by_twelve_hosts_is_reported_once_with_the_twelve(fleet_run):
    _, document = fleet_run
    causes = document["fleet"]["causes"]
    by_hosts = {frozenset(host_of(key) for key in cause["targets"]): cause for cause in causes}
    shared = by_hosts.get(frozenset(SHARED_CAUSE))
    assert shared is not None, [(c["rule"], len(c["targets"])) for c in causes]
    assert shared["rule"] == "dns-not-loadbalancer" and "<host>" in shared["title"]
    assert causes[0] is shared  # the cause of most hosts first
    # Every single fault is a cause of its own, and no healthy host is named by any cause.
    for host in SINGLE_FAULTS:
        assert frozenset({host}) in by_hosts, host
    named = {host_of(key) for cause in causes for key in cause["targets"]}
    assert named == SHARED_CAUSE | SINGLE_FAULTS
    # The representative theory explains the failed checks of all twelve hosts.
    theory = next(t for t in document["theories"] if t["rule"] == "dns-not-loadbalancer")
    assert {
        host for host in SHARED_CAUSE if any(host in nodeid for nodeid in theory["explains"])
    } == SHARED_CAUSE


def test_single_faults_are_diagnosed_per_host(fleet_run):
    _, document = fleet_run
    targets = {host_of(entry["target"]): entry for entry in document["targets"]}
    expected = {
        "svc-013.fleet.test": "dns-nxdomain",
        "svc-142.fleet.test": "ingress-class-missing",
        # A stale A record where nothing listens, for a host published through an Ingress: DNS points away
        # from the Ingress's address (its Service was never a LoadBalancer, so none was "removed").
        "svc-150.fleet.test": "dns-not-loadbalancer",
        "svc-197.fleet.test": "tcp-refused",
    }
    assert {host: targets[host]["theories"][0]["rule"] for host in expected} == expected


def test_checks_not_about_one_host_run_once_per_namespace(fleet_run):
    _, document = fleet_run
    once = [test for test in document["tests"] if test["target"] is None]
    nodes = [test["nodeid"] for test in once if "test_nodes_are_ready" in test["nodeid"]]
    assert len(nodes) == 3, nodes  # the fleet's three namespaces: shop, media, payments
    per_host = [test for test in document["tests"] if "test_target_resolves[" in test["nodeid"]]
    assert len(per_host) == 200


@pytest.fixture(scope="module")
def two_targets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("two")
    run = run_pytest(
        folder,
        "--sandbox",
        "fleet",
        "--target",
        "svc-001.fleet.test",
        "--target",
        "svc-013.fleet.test",
        "--results-json=two.json",
        "--incident-report=two.md",
        "--html=two.html",
        "-rA",
    )
    assert run.returncode == 1, run.stdout[-3000:]
    return run, read_document(folder / "two.json"), folder


def test_repeated_target_parametrizes_the_suite_per_target(two_targets):
    run, document, _ = two_targets
    assert [host_of(entry["target"]) for entry in document["targets"]] == [
        "svc-001.fleet.test",
        "svc-013.fleet.test",
    ]
    # A bare host against the sandbox keeps the sandbox's edge port.
    assert all(parse_target(entry["target"]).port not in (80, 443) for entry in document["targets"])
    ids = [test["nodeid"] for test in document["tests"]]
    assert any("::test_target_resolves[svc-001.fleet.test:" in nodeid for nodeid in ids)
    assert "PASSED" in run.stdout and "[svc-013.fleet.test:" in run.stdout


def test_a_failed_gate_blocks_only_its_own_targets_dependents(two_targets):
    _, document, _ = two_targets
    by_target: dict[str, list[dict]] = {}
    for test in document["tests"]:
        by_target.setdefault(test["target"] and host_of(test["target"]), []).append(test)
    healthy, broken = by_target["svc-001.fleet.test"], by_target["svc-013.fleet.test"]
    assert not [t["nodeid"] for t in healthy if t["outcome"] in ("failed", "blocked", "error")]
    blocked = [t for t in broken if t["outcome"] == "blocked"]
    assert blocked and {t["blocked_by"] for t in blocked} <= {
        "api-health",
        "test_target_resolves",
        "test_health_answers_on_every_resolved_address",
    }
    assert all("svc-013.fleet.test" in t["nodeid"] for t in blocked)
    # The same check passed for one host and is blocked for the other.
    names = {t["nodeid"].split("[")[0] for t in blocked}
    assert names & {t["nodeid"].split("[")[0] for t in healthy if t["outcome"] == "passed"}


def test_reports_open_with_the_fleet_and_list_every_target(two_targets):
    run, _, folder = two_targets
    markdown = (folder / "two.md").read_text()
    assert "# 🚨 Incident report: fleet of 2 targets" in markdown
    fleet = markdown.split("## 🛰️ Fleet: 2 targets — 1 healthy, 1 failing", 1)[1].split("\n---\n", 1)[0]
    assert "`dns-nxdomain`" in fleet and "svc-013.fleet.test" in fleet
    rows = [line for line in fleet.splitlines() if line.startswith("| `http")]
    assert [row.split("|")[2].strip() for row in rows] == ["FAIL", "PASS"]  # failing targets first
    page = (folder / "two.html").read_text()
    assert '<div class="reachability-fleet">' in page and "2 targets: 1 healthy, 1 failing" in page
    terminal = run.stdout.split("reachability: fleet", 1)[1]
    assert terminal.index("2 targets: 1 healthy, 1 failing") < terminal.index("reachability: sections")


def test_targets_table_gives_each_target_its_own_health_path(tmp_path):
    config = tmp_path / "reachability.toml"
    config.write_text(
        "[tool.reachability]\n"
        'targets = ["svc-002.fleet.test", {target = "svc-003.fleet.test", health-path = "/no-such-health"}]\n'
    )
    run = run_pytest(
        tmp_path,
        "--sandbox",
        "fleet",
        f"--reachability-config={config}",
        "--results-json=table.json",
        "-q",
        "-k",
        "api_health",
    )
    assert run.returncode == 1, run.stdout[-3000:]
    document = read_document(tmp_path / "table.json")
    status = {host_of(entry["target"]): entry["status"] for entry in document["targets"]}
    assert status == {"svc-002.fleet.test": "PASS", "svc-003.fleet.test": "FAIL"}
    failed = [t for t in document["tests"] if t["outcome"] == "failed"]
    assert failed and all("/no-such-health" in t["reason"] for t in failed if "health" in t["nodeid"])


def test_shards_together_are_the_unsharded_run(tmp_path):
    hosts = [
        "svc-004.fleet.test",
        "svc-013.fleet.test",
        "svc-150.fleet.test",
        "svc-060.fleet.test",
        "svc-120.fleet.test",
    ]
    args = [arg for host in hosts for arg in ("--target", host)]
    documents = {}
    for name, extra in (("all", []), ("one", ["--shard", "1/2"]), ("two", ["--shard=2/2"])):
        run = run_pytest(
            tmp_path / name, "--sandbox", "fleet", *args, *extra, f"--results-json={name}.json", "-q"
        )
        assert run.returncode == 1, run.stdout[-3000:]
        documents[name] = read_document(tmp_path / name / f"{name}.json")
    keyed = {
        name: {host_of(e["target"]): (e["status"], e["sections"]) for e in doc["targets"]}
        for name, doc in documents.items()
    }
    assert not set(keyed["one"]) & set(keyed["two"])
    assert {**keyed["one"], **keyed["two"]} == keyed["all"]
    assert documents["one"]["run"]["shard"] == {"index": 1, "count": 2}
    assert len(keyed["one"]) == 3 and len(keyed["two"]) == 2  # round robin over the sorted keys


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--target", "a.example.com", "--shard", "3/2"], "--shard: shard 3/2 does not exist"),
        (["--target", "a.example.com", "--shard", "x"], "is not a shard; expected I/N"),
        (["--target", "a.example.com", "--concurrency", "0"], "is not a concurrency"),
        (["--target", "a.example.com", "--target", "http://"], "--target:"),
        (["--discover", "--kubeconfig=/nonexistent/kubeconfig"], "--kubeconfig:"),
        (
            ["--target", "a.example.com", "--target", "b.example.com", "--shard", "3/3"],
            "this shard has no target",
        ),
    ],
)
def test_bad_fleet_input_is_one_line_and_exit_4(tmp_path, args, expected):
    run = run_pytest(tmp_path, *args, timeout=120)
    assert run.returncode == 4, run.stdout[-2000:]
    lines = [line for line in run.stdout.splitlines() if line.startswith("ERROR:")]
    assert len(lines) == 1 and expected in lines[0], run.stdout[-2000:]
    assert "Traceback" not in run.stdout


def test_discover_without_a_readable_cluster_is_one_line(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
        "users: [{name: u, user: {token: abcdefgh12345678}}]\n"
    )
    run = run_pytest(tmp_path, "--discover", f"--kubeconfig={kubeconfig}", "--probe-timeout=2", timeout=120)
    assert run.returncode == 4, run.stdout[-2000:]
    (line,) = [line for line in run.stdout.splitlines() if line.startswith("ERROR:")]
    assert line.startswith("ERROR: --discover:") and "abcdefgh12345678" not in run.stdout


# --------------------------------------------------------------------------- units


@given(st.lists(st.integers(0, 10_000), unique=True, max_size=60), st.integers(1, 9), st.randoms())
@settings(max_examples=80, deadline=None)
def test_shards_are_disjoint_cover_the_fleet_and_ignore_its_order(numbers, count, random):
    specs = [TargetSpec(parse_target(f"h{n}.example.com")) for n in numbers]
    shards = [apply_shard(specs, (index, count)) for index in range(1, count + 1)]
    keys = [spec.key for shard in shards for spec in shard]
    assert sorted(keys) == sorted(spec.key for spec in specs)  # every target once
    assert max(map(len, shards)) - min(map(len, shards)) <= 1  # balanced
    shuffled = list(specs)
    random.shuffle(shuffled)
    assert [apply_shard(shuffled, (i, count)) for i in range(1, count + 1)] == shards


def test_given_targets_keep_their_order_drop_repeats_and_cli_wins(tmp_path):
    config = tmp_path / "pyproject.toml"
    config.write_text('[tool.reachability]\ntarget = "file.example.com"\ntargets = ["b.example.com"]\n')
    from_file = resolve_settings({}, {}, rootpath=tmp_path)
    assert [spec.key for spec in from_file.targets] == ["http://file.example.com", "http://b.example.com"]
    given_twice = resolve_settings(
        {"target": ["b.example.com", "a.example.com", "b.example.com"]}, {}, rootpath=tmp_path
    )
    assert [spec.key for spec in given_twice.targets] == ["http://b.example.com", "http://a.example.com"]
    assert given_twice.target == parse_target("b.example.com")
    from_env = resolve_settings(
        {}, {"REACHABILITY_TARGET": "x.example.com  y.example.com"}, rootpath=tmp_path
    )
    assert [spec.origin for spec in from_env.targets] == ["env", "env"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("42", "targets[0] in"),
        ('{namespace = "x"}', "has no 'target'"),
        ('{target = "a.example.com", port = 1}', "unknown key 'port'"),
        ('{target = "a.example.com", namespace = "Not_A_Namespace"}', "is not a Kubernetes namespace"),
        ('{target = "a.example.com", health-path = "health"}', "does not start with '/'"),
        ('{target = "a.example.com", service = 7}', "expected a string"),
        ('"http://"', "targets[0]"),
    ],
)
def test_bad_targets_entries_are_refused_with_their_place(tmp_path, entry, message):
    (tmp_path / "pyproject.toml").write_text(f"[tool.reachability]\ntargets = [{entry}]\n")
    with pytest.raises(SettingsError) as error:
        resolve_settings({}, {}, rootpath=tmp_path)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("svc.fleet.test", "https://svc.fleet.test:8443"),
        ("http://svc.fleet.test", "http://svc.fleet.test:8443"),
        ("svc.fleet.test:80", "http://svc.fleet.test"),  # a port written is kept
        ("https://u:p4ssw0rd-long@svc.fleet.test/api", "https://***:***@svc.fleet.test:8443/api"),
    ],
)
def test_a_bare_host_against_the_sandbox_takes_its_edge_port(given, expected):
    moved = sandbox_port(TargetSpec(parse_target(given)), 8443, "https")
    assert moved.key == expected


def test_a_cause_title_without_its_host_is_the_same_for_every_host():
    one = generic_title("the DNS A record for svc-1.example.com points at 10.0.0.9", ["svc-1.example.com"])
    two = generic_title("the DNS A record for SVC-2.example.com points at 10.0.0.9", ["svc-2.example.com"])
    other = generic_title("the DNS A record for svc-3.example.com points at 10.0.0.8", ["svc-3.example.com"])
    assert one == two == "the DNS A record for <host> points at 10.0.0.9" and other != one


def test_xdist_keeps_each_targets_tests_on_one_worker_and_agrees_with_a_serial_run(tmp_path):
    hosts = ["svc-005.fleet.test", "svc-013.fleet.test", "svc-181.fleet.test", "svc-061.fleet.test"]
    args = [arg for host in hosts for arg in ("--target", host)]
    serial = run_pytest(tmp_path / "serial", "--sandbox", "fleet", *args, "--results-json=s.json", "-q")
    parallel = run_pytest(
        tmp_path / "xdist", "--sandbox", "fleet", *args, "--results-json=x.json", "-n", "2", "-v", timeout=300
    )
    assert serial.returncode == parallel.returncode == 1, parallel.stdout[-3000:]

    def outcomes(path: Path) -> dict:
        document = read_document(path)
        # Each run's sandbox listens on a port of its own: compare node ids without it.
        return {
            (re.sub(r":\d+\]$", "]", test["nodeid"]), test["outcome"], test["blocked_by"])
            for test in document["tests"]
        }

    assert outcomes(tmp_path / "xdist" / "x.json") == outcomes(tmp_path / "serial" / "s.json")
    workers: dict[str, set[str]] = {}
    for line in parallel.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith("[gw") and "[svc-" in parts[-1]:
            host = parts[-1].split("[", 1)[1].split(":", 1)[0]
            workers.setdefault(host, set()).add(parts[0])
    assert set(workers) == set(hosts), parallel.stdout[-2000:]
    assert all(len(found) == 1 for found in workers.values()), workers


def test_wait_waits_for_every_target_and_names_the_one_still_failing(tmp_path):
    run = run_pytest(
        tmp_path,
        "--sandbox",
        "fleet",
        "--target",
        "svc-001.fleet.test",
        "--target",
        "svc-013.fleet.test",
        "--wait=3s",
        "--results-json=wait.json",
        "-q",
        "-k",
        "api_health",
        timeout=180,
    )
    assert run.returncode == 1, run.stdout[-3000:]
    wait = read_document(tmp_path / "wait.json")["run"]["wait"]
    assert wait["outcome"] == "deadline" and wait["attempts"] >= 1
    assert "svc-013.fleet.test" in wait["last_reason"] and "svc-001.fleet.test" not in wait["last_reason"]


def test_one_attempt_over_several_targets_is_healthy_only_when_every_target_is():
    from pytest_reachability.wait import CheckResult, combine

    healthy = CheckResult(reasons=[], caches_agree=True, retry_at=None)
    stale = CheckResult(reasons=["dns: b still cached"], caches_agree=False, notes=["expires"], retry_at=12.0)
    failing = CheckResult(reasons=["api-health: c refused"], retry_at=30.0)
    assert combine([healthy, healthy]).reasons == [] and combine([healthy]).caches_agree is True
    both = combine([healthy, stale, failing])
    assert both.reasons == ["dns: b still cached", "api-health: c refused"]
    assert both.caches_agree is False and both.retry_at == 12.0 and both.notes == ["expires"]
    assert combine([failing]).caches_agree is None
