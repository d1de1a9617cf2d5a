"""--incident-report: the sections engineers expect, valid GitHub tables, atomic writing, the incident id
sequence, and confirm commands that work against the scenario they were written for."""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest
from test_diagnosis_rules import incident_records, run_builtin_suite

from pytest_reachability.config import resolve_settings
from pytest_reachability.diagnosis import Theory, diagnose
from pytest_reachability.report.incident import (
    IncidentContext,
    escape_cell,
    next_incident_id,
    render_incident_report,
    write_incident_report,
)
from pytest_reachability.results import BUILTIN_SECTIONS, RunResults, TestResult

HEADINGS = [
    "## 📋 Executive summary",
    "## 🔍 Results overview",
    "## 🧪 Details per section",
    "## 🔴 Root cause analysis",
    "## 🔧 Immediate action plan",
    "## 📊 Blocked tests tracker",
    "## 📝 Timeline",
    "## ✅ Verification checklist (after the fix)",
]
CELL_SPLIT = re.compile(r"(?<!\\)\|")


def tables(markdown: str) -> list[list[list[str]]]:
    """GitHub tables of a document as rows of cells (outside code fences)."""
    found, current, fenced = [], [], False
    for line in markdown.splitlines() + [""]:
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("|"):
            current.append([c.strip() for c in CELL_SPLIT.split(line)[1:-1]])
        elif current:
            found.append(current)
            current = []
    return found


def assert_valid_tables(markdown: str) -> None:
    for table in tables(markdown):
        header, delimiter, *rows = table
        assert all(re.fullmatch(r":?-+:?", cell) for cell in delimiter), delimiter
        assert len(delimiter) == len(header)
        for row in rows:
            assert len(row) == len(header), (header, row)


def hand_built(with_blocked: bool = True) -> RunResults:
    results = RunResults()
    tests = [
        TestResult(
            "s/test_07.py::test_dns",
            section="dns",
            outcome="passed",
            evidence=[{"kind": k, "data": d} for k, d in incident_records()],
        ),
        TestResult(
            "s/test_10.py::test_health",
            section="api-health",
            outcome="failed",
            gate="api-health",
            reason="GET /health | 127.0.10.57 empty_reply",
        ),
    ]
    if with_blocked:
        tests.append(
            TestResult(
                "s/test_12.py::test_db",
                section="database",
                outcome="blocked",
                blocked_by="api-health",
                reason="blocked by api-health: GET /health | failed",
            )
        )
    for test in tests:
        results.tests[test.nodeid] = test
    return results


def test_escape_cell_keeps_tables_intact():
    assert escape_cell("a|b") == "a\\|b"
    assert escape_cell("one\ntwo") == "one<br>two"
    assert escape_cell("") == " "
    assert escape_cell(None) == " "


def test_incident_id_increments_for_reports_of_the_same_day(tmp_path):
    day = datetime(2025, 12, 8, 8, 10, tzinfo=timezone.utc)
    assert next_incident_id(tmp_path, day) == "INC-2025-12-08-001"
    (tmp_path / "old.md").write_text("**Incident ID:** INC-2025-12-08-001\n")
    (tmp_path / "INC-2025-12-08-004.md").write_text("x")
    (tmp_path / "other-day.md").write_text("INC-2025-12-07-009")
    assert next_incident_id(tmp_path, day) == "INC-2025-12-08-005"


def test_rendered_report_has_every_section_and_valid_tables():
    settings = resolve_settings({"target": "http://97v.test", "namespace": "production"}, {})
    results = hand_built()
    theories = diagnose(results, settings)
    history = {
        "previous_run": {"started": "2025-12-08T07:00:00Z", "run_id": "r41"},
        "newly_failing": ["s/test_10.py::test_health"],
        "recovered": [],
        "last_healthy": {"started": "2025-12-07T20:00:00Z"},
        "failing_since": {"started": "2025-12-08T07:00:00Z"},
    }
    context = IncidentContext(
        "INC-2025-12-08-001",
        datetime(2025, 12, 8, 8, 30, tzinfo=timezone.utc),
        None,
        12.0,
        "pytest --target 97v.test",
        history,
    )
    text = render_incident_report(results, settings, theories, context)
    positions = [text.index(h) for h in HEADINGS]
    assert positions == sorted(positions)
    assert "**Incident ID:** INC-2025-12-08-001" in text
    assert "**Severity:** 🔴 **CRITICAL** (gate api-health failed" in text
    assert "GET /health \\| 127.0.10.57 empty_reply" in text
    assert_valid_tables(text)
    assert "| 2025-12-07T20:00:00Z | last healthy run |" in text
    assert "newly failing: s/test_10.py::test_health" in text
    assert "- [ ] `pytest --target 97v.test` — re-run the verification" in text
    assert "### Theory 1: " + theories[0].title in text
    # nothing failed: no severity, resolved, no action to take
    quiet = RunResults()
    quiet.tests["t"] = TestResult("t", section="dns", outcome="passed")
    calm = render_incident_report(quiet, settings, [], context)
    assert "🟢 **NONE**" in calm and "🟢 **RESOLVED**" in calm and "No test is blocked." in calm
    # A healthy run is a verification report, not an incident.
    assert (
        calm.startswith("# ✅ Verification report: 97v.test healthy\n")
        and "INCIDENT" not in calm.upper().split("\n")[0]
    )
    assert "**Verdict:** HEALTHY: http://97v.test reachable from outside; 1 of 1 checks passed" in calm
    assert "Nothing failed and nothing is blocked." in calm and "issue resolved" not in calm
    # Not a sandbox run: the commands are the real ones and carry no note about closed ports.
    assert "sandbox" not in text.lower()


@dataclass
class FoldingTheory(Theory):
    """A theory carrying what the diagnosis may say besides the base fields."""

    explains: list[str] = field(default_factory=list)
    symptoms: list = field(default_factory=list)
    unknowns: list[str] = field(default_factory=list)


def test_symptoms_fold_under_their_cause_and_the_plan_stays_one():
    settings = resolve_settings({"target": "http://97v.test", "namespace": "production"}, {})
    results = hand_built()
    symptom = Theory(
        "edge-empty-reply",
        "127.0.10.57 closes connections without a reply",
        0.3,
        ["GET /health: empty_reply"],
        ["curl -v --resolve 97v.test:80:127.0.10.57 http://97v.test/health"],
        ["find what owns 127.0.10.57"],
    )
    cause = FoldingTheory(
        "dns-not-loadbalancer",
        "DNS points at a dead edge",
        0.95,
        ["DNS 97v.test -> 127.0.10.57"],
        ["dig 97v.test +short"],
        ["Update the DNS A record"],
        explains=["s/test_10.py::test_health"],
        symptoms=[symptom],
        unknowns=["TTL of the record at the authoritative server: dig @ns1.example 97v.test +ttlid"],
    )
    rival = Theory(
        "ingress-missing-rule",
        "no Ingress routes 97v.test",
        0.5,
        ["controller runs"],
        ["kubectl get ingress -A"],
        ["kubectl apply -f ingress.yaml"],
    )
    context = IncidentContext("INC-2025-12-08-002", datetime(2025, 12, 8, 9, 0, tzinfo=timezone.utc))
    text = render_incident_report(results, settings, [cause, rival], context)
    assert "**Confidence:** 95% · rule `dns-not-loadbalancer` · explains 1 of 1 failed check" in text
    assert "— explains 1 of 1 failed check" in text.split("## 🔍")[0]  # the executive summary says it too
    folded = text[text.index("<details><summary>Consequences of this cause") : text.index("</details>")]
    assert "127.0.10.57 closes connections without a reply" in folded
    assert "### Theory 2: no Ingress routes 97v.test" in text and "### Theory 2: 127.0.10.57" not in text
    assert (
        "**Not checked:**\n\n- TTL of the record at the authoritative server: dig @ns1.example 97v.test "
        "+ttlid" in text
    )
    plan = text[text.index("## 🔧 Immediate action plan") : text.index("## 📊 Blocked tests tracker")]
    assert "find what owns 127.0.10.57" not in plan  # a consequence is not fixed on its own
    assert "Its consequences (127.0.10.57 closes connections without a reply) should clear with it" in plan
    assert plan.index("Update the DNS A record") < plan.index("kubectl apply -f ingress.yaml")
    assert_valid_tables(text)


def test_written_atomically_with_the_next_id(tmp_path):
    settings = resolve_settings({"target": "http://user:pw1234567@97v.test"}, {})
    day = datetime(2026, 1, 2, tzinfo=timezone.utc)
    path, first = write_incident_report(
        tmp_path / "incident.md", hand_built(), settings, [], created=day, secrets=["pw1234567"]
    )
    _, second = write_incident_report(
        tmp_path / "incident.md", hand_built(), settings, [], created=day, secrets=["pw1234567"]
    )
    assert (first, second) == ("INC-2026-01-02-001", "INC-2026-01-02-002")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["incident.md"]
    assert "pw1234567" not in path.read_text()
    assert "INC-2026-01-02-002" in path.read_text()


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is required in CI")
        pytest.skip(f"{name} is not installed")
    return path


@pytest.fixture(scope="module")
def incident_run(tmp_path_factory):
    """The built-in suite against incident-2025-12-08, and
    every confirm command run while the sandbox is up."""
    for tool in ("kubectl", "dig", "curl"):
        _tool(tool)
    from pytest_reachability.sandbox import Sandbox

    workdir = tmp_path_factory.mktemp("incident")
    with Sandbox("incident-2025-12-08") as info:
        run = run_builtin_suite(
            workdir,
            "--incident-report",
            "reports/incident.md",
            "--results-json",
            "reports/r.json",
            "-q",
            env=info.environment(),
        )
        theories = json.loads((workdir / "reports" / "r.json").read_text())["theories"]
        executed = {}
        env = {**os.environ, "KUBECONFIG": info.kubeconfig}
        for theory in theories[:3]:
            for command in theory["confirm"]:
                executed[command] = _run_confirm(command, env)
    return run, (workdir / "reports" / "incident.md").read_text(), theories, executed, info


def _run_confirm(command: str, env: dict) -> subprocess.CompletedProcess:
    argv = shlex.split(command)
    # Bounded versions of the same commands: the report's commands carry no timeouts.
    if argv[0] == "curl":
        argv[1:1] = ["--max-time", "5", "-s"]
    elif argv[0] == "dig":
        argv += ["+time=2", "+tries=1"]
    elif argv[0] == "kubectl":
        argv[1:1] = ["--request-timeout=5s"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)


def test_incident_report_reads_like_the_reference(incident_run):
    run, text, theories, _, info = incident_run
    assert run.returncode == 1, run.stdout[-3000:]
    positions = [text.index(h) for h in HEADINGS]
    assert positions == sorted(positions)
    assert re.search(r"\*\*Incident ID:\*\* INC-\d{4}-\d{2}-\d{2}-001  $", text, re.MULTILINE)
    assert "🔴 **CRITICAL** (gate api-health failed" in text
    assert_valid_tables(text)
    overview = next(t for t in tables(text) if t[0][0] == "Section")
    assert [row[0].strip("*") for row in overview[2:]] == list(BUILTIN_SECTIONS)
    statuses = {row[0].strip("*"): row[6] for row in overview[2:]}
    assert (
        statuses["api-health"] == "❌ FAIL"
        and statuses["database"] == "⏸️ BLOCKED"
        and statuses["cluster"] == "✅ PASS"
    )
    for index, theory in enumerate(theories[:3], 1):
        assert f"### Theory {index}: {theory['title']}" in text
    assert text.startswith("# 🚨 Incident report: 97v.test unreachable from outside\n")
    # One plan in order: the first cause confirmed, fixed,
    # verified, the run repeated; the next causes only after.
    plan = text[text.index("## 🔧 Immediate action plan") : text.index("## 📊 Blocked tests tracker")]
    steps = [plan.index(f"### Step {n}: ") for n in (1, 2, 3, 4)]
    assert steps == sorted(steps) and "### Step 4: re-run the verification" in plan
    assert plan.index(theories[0]["confirm"][0]) < steps[1]
    rivals = [
        plan.index(f"### Only if the re-run still fails — check next ({n}): {theories[n]['title']}")
        for n in (1, 2)
    ]
    assert steps[3] < rivals[0] < rivals[1]
    assert (
        plan.count("kubectl -n production delete svc api-service") == 1
        and plan.index("delete svc api-service") > rivals[0]
    )
    # The executive summary names what failed and what is blocked, not the sections that passed.
    summary = text[text.index("## 📋 Executive summary") : text.index("## 🔍 Results overview")]
    assert (
        "**Verdict:** UNREACHABLE from outside: DNS 97v.test → 127.0.10.57 → empty reply (curl 52)" in summary
    )
    assert "- ❌ api-health:" in summary and "- ❌ dns:" in summary
    assert "✅" not in summary and "cluster:" not in summary and "tls:" not in summary
    assert (
        "**Blocked (not run):** api-health (1), database (3), services (2), integration (1), performance "
        "(2), "
        "results-storage (2)"
    ) in summary
    # Pointed at the sandbox through the environment, not
    # --sandbox: real addresses, no note about closed ports.
    assert "> **Note:**" not in text and "sandbox ports of the finished run" not in text
    assert [t["rule"] for t in theories[:3]] == [
        "dns-not-loadbalancer",
        "duplicate-loadbalancers",
        "ingress-missing-rule",
    ]
    port = info.edge_port
    assert f"curl -v --resolve 97v.test:{port}:127.0.10.57 http://97v.test:{port}/health   # exit 52" in text
    tracker = next(t for t in tables(text) if t[0] == ["Section", "Blocked", "Blocked by", "Tests"])
    blocked_in_details = [
        row
        for t in tables(text)
        if t[0] == ["Test", "Outcome", "Detail"]
        for row in t[2:]
        if row[1] == "⏸️ BLOCKED"
    ]
    assert sum(int(row[1]) for row in tracker[2:]) == len(blocked_in_details) > 0
    assert [row[0].strip("*") for row in tracker[2:]] == [
        "api-health",
        "database",
        "services",
        "integration",
        "performance",
        "results-storage",
    ]
    # The health body is read only where every address
    # answered: that check is blocked by the one that did not.
    assert tracker[2][2] == "test_health_answers_on_every_resolved_address"
    assert all(row[2] == "api-health" for row in tracker[3:])
    assert "**Blocked by `api-health`:** GET /health failed on 127.0.10.57" in text
    assert (
        f"- [ ] `dig @{info.resolvers[0].split(':')[0]} -p {info.resolvers[0].split(':')[1]} 97v.test "
        "+short` → expect 127.0.10.53" in text
    )
    assert "- [ ] `kubectl -n production get ingress` → expect a rule for host 97v.test" in text
    assert (
        "`pytest -p no:cacheprovider suites --incident-report reports/incident.md --results-json "
        "reports/r.json -q`" in text
    )
    assert "kubectl -n production delete svc api-service" in text


def test_confirm_commands_work_against_the_scenario(incident_run):
    _, _, theories, executed, _ = incident_run
    top = theories[0]
    assert executed, "no confirm command ran"
    for command, result in executed.items():
        if command.startswith(("kubectl", "dig")):
            assert result.returncode == 0, (command, result.stderr[-500:])
    digs = [c for c in top["confirm"] if c.startswith("dig ")]
    assert digs and all(executed[c].stdout.split() == ["127.0.10.57"] for c in digs)
    lb = next(c for c in top["confirm"] if "jsonpath" in c)
    assert executed[lb].stdout.strip() == "127.0.10.53"
    curls = {c: executed[c].returncode for c in top["confirm"] if c.startswith("curl ")}
    assert sorted(curls.values()) == [0, 52], (
        curls
    )  # the DNS answer replies nothing, the LoadBalancer answers


def test_history_summary_reaches_timeline_and_terminal(pytester):
    pytester.makeconftest("""
        import pytest

        @pytest.hookimpl(tryfirst=True)
        def pytest_sessionfinish(session):
            from pytest_reachability.plugin import state_of
            state_of(session.config).history_summary = {
                "previous_run": {
                    "id": 41, "time": "2025-12-08 07:00:00 UTC", "health": 100, "status": "passed"
                },
                "newly_failing": ["test_x.py::test_health"], "recovered": [],
                "last_healthy": "2025-12-08 07:00:00 UTC", "failing_since": "2025-12-08 08:00:00 UTC",
            }
    """)
    pytester.makepyfile(
        test_x="""
        import pytest

        @pytest.mark.section("api-health")
        @pytest.mark.gate("api-health")
        def test_health():
            assert False, "empty reply"

        @pytest.mark.section("database")
        @pytest.mark.requires("api-health")
        def test_db():
            pass
    """
    )
    result = pytester.runpytest_subprocess(
        "--incident-report", "reports/inc.md", "--target", "http://97v.test", "-p", "no:cacheprovider"
    )
    # The terminal's history line belongs to --results-db (report.history_hooks), not to this summary.
    result.stdout.fnmatch_lines(["reachability: incident report INC-*-001: reports/inc.md"])
    text = (pytester.path / "reports" / "inc.md").read_text()
    assert "| 2025-12-08 07:00:00 UTC (run 41) | previous run (health 100%, passed) |" in text
    assert "| 2025-12-08 08:00:00 UTC | failing since this run |" in text
    assert "| this run | newly failing: test_x.py::test_health |" in text
    assert "| **database** | 1 | api-health | test_db |" in text
    assert "**Blocked by `api-health`:** empty reply" in text
    assert_valid_tables(text)


def test_a_sandbox_run_says_its_commands_name_closed_ports():
    settings = resolve_settings(
        {
            "target": "http://97v.test:41234",
            "namespace": "production",
            "sandbox": "incident-2025-12-08",
            "resolvers": ["127.0.0.1:45678"],
        },
        {},
    )
    results = hand_built()
    context = IncidentContext("INC-2025-12-08-003", datetime(2025, 12, 8, 9, 0, tzinfo=timezone.utc))
    text = render_incident_report(results, settings, diagnose(results, settings), context)
    note = next(line for line in text.splitlines() if line.startswith("> **Note:**"))
    assert "127.0.0.1:45678" in note and "edge port 41234" in note
    assert "`python -m pytest_reachability.sandbox incident-2025-12-08`" in note
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    naming = [b for b in blocks if re.search(r"^(dig|curl|kubectl) ", b, re.M)]
    assert naming and all(b.startswith("# sandbox ports of the finished run") for b in naming)
    assert all(
        not b.startswith("# sandbox") for b in blocks if b not in naming
    )  # the re-run line works as it is


def _write_one(folder: str, name: str, start_at: float) -> str:
    settings = resolve_settings({"target": "http://97v.test"}, {})
    while time.time() < start_at:  # every writer starts at once
        time.sleep(0.001)
    _, incident_id = write_incident_report(
        Path(folder) / name, hand_built(), settings, [], created=datetime(2026, 1, 2, tzinfo=timezone.utc)
    )
    return incident_id


def test_runs_writing_into_one_folder_at_once_get_different_ids(tmp_path):
    """Parallel CI jobs sharing a reports folder: each report gets its own id, one after the last."""
    start_at = time.time() + 1.0
    with concurrent.futures.ProcessPoolExecutor(max_workers=6) as pool:
        ids = list(pool.map(_write_one, [str(tmp_path)] * 6, [f"r{n}.md" for n in range(6)], [start_at] * 6))
    assert sorted(ids) == [f"INC-2026-01-02-{n:03d}" for n in range(1, 7)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"r{n}.md" for n in range(6)]
