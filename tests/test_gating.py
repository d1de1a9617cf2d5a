"""Gates, requirements and the BLOCKED outcome, through real pytest runs (pytester)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

GATE_FAILS = """
import pytest

@pytest.mark.gate("api-health")
def test_health():
    assert False, "empty reply from 127.0.10.57:80"
"""

GATE_PASSES = """
import pytest

@pytest.mark.gate("api-health")
def test_health():
    pass
"""

DEPENDENTS = """
import pytest

pytestmark = pytest.mark.section("database", requires=["api-health"])

def test_db_connects():
    pass

def test_db_latency():
    pass

@pytest.mark.requires("api-health")
def test_explicit():
    pass
"""


def outcomes_of(result: pytest.RunResult) -> dict[str, str]:
    """nodeid -> PASSED/FAILED/SKIPPED/BLOCKED/ERROR from the -rA short summary and -v lines."""
    found: dict[str, str] = {}
    for line in result.outlines:
        m = re.match(r"^(\S+::\S+) (PASSED|FAILED|SKIPPED|BLOCKED|ERROR)", line)
        if m:
            found[m.group(1)] = m.group(2)
        m = re.match(r"^(?:\[gw\d+\] \[\s*\d+%\] )?(PASSED|FAILED|SKIPPED|BLOCKED|ERROR) (\S+::\S+)", line)
        if m:
            found[m.group(2)] = m.group(1)
    return found


def test_failed_gate_blocks_dependents_with_reason(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a_db=DEPENDENTS, test_z_gate=GATE_FAILS)
    result = pytester.runpytest("-v", "-p", "no:cacheprovider")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*1 failed, 3 blocked*"])
    result.stdout.fnmatch_lines(
        ["*BLOCKED test_a_db.py::test_db_connects - blocked by api-health: empty reply from 127.0.10.57:80*"]
    )
    outcomes = outcomes_of(result)
    assert outcomes["test_a_db.py::test_db_connects"] == "BLOCKED"
    assert outcomes["test_a_db.py::test_explicit"] == "BLOCKED"
    # The gate ran first although its file sorts last.
    order = [
        line
        for line in result.outlines
        if "::" in line and ("PASSED" in line or "FAILED" in line or "BLOCKED" in line)
    ]
    assert order[0].startswith("test_z_gate.py::test_health")


def test_passed_gate_lets_dependents_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a_db=DEPENDENTS, test_z_gate=GATE_PASSES)
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == 0
    result.assert_outcomes(passed=4)
    assert "blocked" not in result.stdout.str().splitlines()[-1]


def test_skipped_gate_skips_dependents_naming_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_a_db=DEPENDENTS,
        test_z_gate="""
import pytest

@pytest.mark.gate("api-health")
def test_health():
    pytest.skip("no target configured")
""",
    )
    result = pytester.runpytest("-rs", "-p", "no:cacheprovider")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*gate api-health skipped: no target configured*"])
    assert "blocked" not in result.stdout.lines[-1]
    result.assert_outcomes(skipped=4)


def test_dependent_fixtures_are_not_set_up_when_blocked(pytester: pytest.Pytester) -> None:
    marker = pytester.path / "fixture-ran"
    pytester.makepyfile(
        test_z_gate=GATE_FAILS,
        test_a_dep=f"""
import pytest

@pytest.fixture
def expensive():
    open({str(marker)!r}, "w").write("ran")
    yield

@pytest.mark.requires("api-health")
def test_uses_it(expensive):
    pass
""",
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*1 failed, 1 blocked*"])
    assert not marker.exists()


def test_error_in_gate_setup_blocks(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_gate="""
import pytest

@pytest.fixture
def broken():
    raise RuntimeError("kubeconfig unreadable")

@pytest.mark.gate("cluster-access")
def test_access(broken):
    pass

@pytest.mark.requires("cluster-access")
def test_nodes():
    pass
""",
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(
        [
            "*blocked by cluster-access: error in setup: RuntimeError: kubeconfig unreadable*",
            "*1 error, 1 blocked*",
        ]
    )


def test_parametrized_gate_fails_if_any_parameter_fails(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_gate="""
import pytest

@pytest.mark.gate("api-health")
@pytest.mark.parametrize("address", ["127.0.10.53", "127.0.10.57"])
def test_health(address):
    assert address.endswith("53"), f"{address} empty reply"

@pytest.mark.requires("api-health")
def test_after():
    pass
""",
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(
        ["*blocked by api-health: 127.0.10.57 empty reply*", "*1 failed, 1 passed, 1 blocked*"]
    )


def test_gate_on_class_and_module(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_gates="""
import pytest

@pytest.mark.gate("cluster-access")
class TestAccess:
    def test_api(self):
        pass
    def test_namespace(self):
        assert 0, "forbidden: list pods"

@pytest.mark.requires("cluster-access")
def test_nodes():
    pass
""",
        test_mod_gate="""
import pytest
pytestmark = pytest.mark.gate("dns-ok")
def test_one():
    pass
def test_two():
    pass
""",
        test_mod_dep="""
import pytest
@pytest.mark.requires("dns-ok")
def test_dependent():
    pass
""",
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-rA")
    result.stdout.fnmatch_lines(
        ["*BLOCKED test_gates.py::test_nodes - blocked by cluster-access: forbidden: list pods*"]
    )
    assert result.parseoutcomes() == {"passed": 4, "failed": 1, "blocked": 1}


def test_blocked_counts_as_skipped_outcome_and_in_final_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a_db=DEPENDENTS, test_z_gate=GATE_FAILS)
    pytester.makeconftest(
        """
seen = []
def pytest_runtest_logreport(report):
    if report.when == "setup" and report.skipped:
        seen.append(report.outcome)
def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(f"OUTCOMES={seen!r}")
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    # pytest's own outcome of a BLOCKED test stays "skipped" (other plugins rely on it).
    result.stdout.fnmatch_lines(["OUTCOMES=['skipped', 'skipped', 'skipped']"])
    assert re.search(r"=+ 1 failed, 3 blocked in [\d.]+s", result.stdout.lines[-1])


@pytest.mark.parametrize(
    "files, message",
    [
        (
            {"test_x": 'import pytest\n@pytest.mark.requires("nope")\ndef test_a():\n    pass\n'},
            "unknown gate 'nope' required by test_x.py::test_a",
        ),
        (
            {
                "test_x": 'import pytest\n@pytest.mark.gate("a")\n@pytest.mark.requires("b")\ndef '
                "test_a():\n    pass\n"
                '@pytest.mark.gate("b")\n@pytest.mark.requires("a")\ndef test_b():\n    pass\n'
            },
            "gate dependency cycle: a -> b -> a",
        ),
        (
            {"test_x": "import pytest\n@pytest.mark.gate()\ndef test_a():\n    pass\n"},
            "@pytest.mark.gate takes one name",
        ),
        (
            {"test_x": "import pytest\n@pytest.mark.requires(3)\ndef test_a():\n    pass\n"},
            "@pytest.mark.requires takes gate names as strings",
        ),
    ],
)
def test_graph_errors_are_usage_errors(
    pytester: pytest.Pytester, files: dict[str, str], message: str
) -> None:
    pytester.makepyfile(**files)
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert len(errors) == 1 and message in errors[0], result.errlines
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_markers_are_registered_for_strict_markers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a_db=DEPENDENTS, test_z_gate=GATE_PASSES)
    result = pytester.runpytest("--strict-markers", "-p", "no:cacheprovider")
    assert result.ret == 0
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.section(name, requires=()):*",
            "@pytest.mark.gate(name):*",
            "@pytest.mark.requires(*gates, test=NAME):*",
        ]
    )


@pytest.mark.parametrize(
    "args",
    [
        ["-k", "db_latency"],
        ["-m", "not gate"],
        ["test_a_db.py::test_db_latency"],
        ["test_a_db.py"],
    ],
    ids=["keyword", "mark", "nodeid-other-file", "file-other-file"],
)
def test_selection_pulls_the_gate_back(pytester: pytest.Pytester, args: list[str]) -> None:
    pytester.makepyfile(test_a_db=DEPENDENTS, test_z_gate=GATE_FAILS)
    pytester.makeini("[pytest]\nmarkers =\n    gate\n")
    result = pytester.runpytest("-v", "-p", "no:cacheprovider", *args)
    outcomes = outcomes_of(result)
    assert outcomes.get("test_z_gate.py::test_health") == "FAILED", result.stdout.str()
    assert outcomes.get("test_a_db.py::test_db_latency") == "BLOCKED"
    result.stdout.fnmatch_lines(["*gates pulled back into the run*api-health (1 test)*"])


def test_last_failed_reruns_the_gate_too(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_a_db="""
import pytest
import os

@pytest.mark.requires("api-health")
def test_db():
    assert os.environ.get("DB_OK") == "1", "database down"
""",
        test_z_gate=GATE_PASSES,
    )
    first = pytester.runpytest()
    first.assert_outcomes(passed=1, failed=1)
    again = pytester.runpytest("--lf", "-v")
    outcomes = outcomes_of(again)
    assert outcomes.get("test_z_gate.py::test_health") == "PASSED", again.stdout.str()
    assert outcomes.get("test_a_db.py::test_db") == "FAILED"


def test_junitxml_has_blocked_message_and_suite_counts(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a_db=DEPENDENTS, test_z_gate=GATE_FAILS)
    pytester.runpytest("-p", "no:cacheprovider", "--junitxml=out.xml")
    tree = ET.parse(pytester.path / "out.xml")
    case = next(c for c in tree.iter("testcase") if c.get("name") == "test_db_connects")
    skipped = case.find("skipped")
    assert skipped is not None
    assert skipped.get("message") == "blocked by api-health: empty reply from 127.0.10.57:80"
    # The skip names the blocked test's own place, not the plugin's code.
    assert skipped.text.startswith("test_a_db.py:") and "plugin.py" not in skipped.text
    # pytest's schema allows properties on the suite only: the counts are there, none on a test case.
    assert case.find("properties") is None
    suite = tree.getroot().find("testsuite")
    props = {p.get("name"): p.get("value") for p in suite.find("properties").iter("property")}
    assert props["reachability.blocked"] == "3" and props["reachability.blocked_by.api-health"] == "3"
    assert props["reachability.skipped"] == "0" and suite.get("skipped") == "3"
    gate_case = next(c for c in tree.iter("testcase") if c.get("name") == "test_health")
    assert gate_case.find("failure") is not None


def test_html_report_renders_blocked_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a_db=DEPENDENTS, test_z_gate=GATE_FAILS)
    result = pytester.runpytest("-p", "no:cacheprovider", "--html=report.html", "--self-contained-html")
    assert result.ret == 1
    assert "INTERNALERROR" not in result.stdout.str()
    html = (pytester.path / "report.html").read_text()
    assert "blocked by api-health: empty reply from 127.0.10.57:80" in html


def test_section_table_and_health_score(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_infra="""
import pytest
pytestmark = pytest.mark.section("cluster")
def test_nodes(): pass
def test_pods(): pass
""",
        test_api="""
import pytest
@pytest.mark.section("api-health")
@pytest.mark.gate("api-health")
def test_health():
    assert 0, "empty reply"
""",
        test_db="""
import pytest
pytestmark = pytest.mark.section("database", requires=["api-health"])
def test_db_one(): pass
def test_db_two(): pass
""",
        test_plain="def test_untagged(): pass\n",
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    out = result.stdout.str()
    table = out[out.index("reachability: sections") :]
    rows = {
        line.split()[0]: line.split()
        for line in table.splitlines()[1:]
        if line and line.split()[0] in {"cluster", "api-health", "database", "other"}
    }
    assert rows["cluster"][1:7] == ["2", "2", "0", "0", "0", "PASS"]
    assert rows["api-health"][1:7] == ["1", "0", "1", "0", "0", "FAIL"]
    assert rows["database"][1:] == ["2", "0", "0", "2", "0", "BLOCKED", "by", "api-health"]
    assert rows["other"][1:7] == ["1", "1", "0", "0", "0", "PASS"]
    # Order: built-in sections in the suite's order, 'other' last.
    names = [line.split()[0] for line in table.splitlines()[1:] if line.strip() and line.split()[0] in rows]
    assert names == ["cluster", "api-health", "database", "other"]
    result.stdout.fnmatch_lines(["Health score: 50% (3 of 6 checks passed; 2 blocked by api-health)"])


def test_no_summary_for_plain_test_runs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_untagged(): pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert "reachability: sections" not in result.stdout.str()
    assert "Health score" not in result.stdout.str()


def test_evidence_reaches_the_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_ev="""
import pytest

@pytest.mark.section("dns")
def test_records(evidence):
    evidence.record("dns", {"resolver": "system", "answers": ["127.0.10.57"]})
"""
    )
    pytester.makeconftest(
        """
collected = []
def pytest_runtest_logreport(report):
    if report.when == "call":
        collected.append(getattr(report, "reachability_evidence", None))
def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(f"EVIDENCE={collected!r}")
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(
        ["EVIDENCE=[[{'kind': 'dns', 'data': {'resolver': 'system', 'answers': ['127.0.10.57']}}]]"]
    )


# --------------------------------------------------------------------------- xdist

XDIST_FILES = {
    "test_a_first": """
import pytest

pytestmark = pytest.mark.section("database", requires=["api-health"])

@pytest.mark.parametrize("n", range(6))
def test_db(n):
    pass
""",
    "test_b_services": """
import pytest

@pytest.mark.requires("api-health")
@pytest.mark.parametrize("n", range(6))
def test_service(n):
    pass

def test_independent():
    pass
""",
    "test_m_gate": """
import os
import time
import pytest

@pytest.mark.gate("api-health")
@pytest.mark.parametrize("address", ["127.0.10.53", "127.0.10.57"])
def test_health(address):
    time.sleep(0.3)  # the dependents on other workers must wait, not guess
    assert os.environ["GATE_OK"] == "1" or address.endswith("53"), f"{address}: empty reply"
""",
    "test_z_perf": """
import pytest

class TestPerf:
    pytestmark = pytest.mark.requires("api-health")

    @pytest.mark.parametrize("n", range(4))
    def test_latency(self, n):
        pass
""",
}


def _xdist_outcomes(
    pytester: pytest.Pytester, *args: str, gate_ok: bool
) -> tuple[dict[str, str], pytest.RunResult]:
    pytester.makepyfile(**XDIST_FILES)
    import os

    os.environ["GATE_OK"] = "1" if gate_ok else "0"
    try:
        result = pytester.runpytest_subprocess("-rA", "-p", "no:cacheprovider", *args, timeout=120)
    finally:
        del os.environ["GATE_OK"]
    return outcomes_of(result), result


@pytest.mark.parametrize("gate_ok", [True, False], ids=["gate-passes", "gate-fails"])
def test_xdist_matches_serial(pytester: pytest.Pytester, gate_ok: bool) -> None:
    serial, serial_result = _xdist_outcomes(pytester, gate_ok=gate_ok)
    assert len(serial) == 19
    assert ("BLOCKED" in serial.values()) is (not gate_ok)
    for workers in ("2", "4"):
        for dist in ("load", "worksteal", "loadfile", "loadscope"):
            parallel, result = _xdist_outcomes(pytester, "-n", workers, "--dist", dist, gate_ok=gate_ok)
            assert parallel == serial, f"-n {workers} --dist {dist}:\n{result.stdout.str()}"
            assert result.parseoutcomes() == serial_result.parseoutcomes()
            if not gate_ok:
                result.stdout.fnmatch_lines(
                    [
                        "*BLOCKED test_a_first.py::test_db?0? - blocked by api-health: 127.0.10.57: empty "
                        "reply*"
                    ]
                )
                result.stdout.fnmatch_lines(["Health score: *blocked by api-health)"])


def test_xdist_gate_wait_is_bounded(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_gate="""
import time
import pytest

@pytest.mark.gate("api-health")
def test_slow_gate():
    time.sleep(8)
""",
        test_dep="""
import pytest

@pytest.mark.requires("api-health")
def test_dependent():
    pass
""",
    )
    result = pytester.runpytest_subprocess(
        "-n", "2", "--dist", "loadfile", "--gate-timeout", "1", "-rA", "-p", "no:cacheprovider", timeout=60
    )
    result.stdout.fnmatch_lines(
        ["*BLOCKED test_dep.py::test_dependent - blocked by api-health: result unknown after waiting 1s*"]
    )


def test_failed_gate_outweighs_skipped_gate(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_gates="""
import pytest

@pytest.mark.gate("cluster-access")
def test_cluster():
    pytest.skip("no kubeconfig")

@pytest.mark.gate("api-health")
def test_health():
    pytest.fail("empty reply")

@pytest.mark.requires("cluster-access", "api-health")
def test_both():
    pass
""",
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(
        ["blocked by api-health: empty reply", "BLOCKED other *1 test *by api-health"]
    )


def test_invalid_application_table_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_x(): pass\n")
    pytester.makepyprojecttoml('[tool.reachability.performance]\npath = "/health"\nrequests = "lots"\n')
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert len(errors) == 1 and "[tool.reachability.performance] requests" in errors[0], result.errlines


def test_pull_back_follows_gates_of_pulled_files(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_pb_cluster='import pytest\n@pytest.mark.gate("cluster-access")\ndef test_access():\n    pass\n',
        test_api="""
import pytest

@pytest.mark.gate("api-health")
def test_health():
    pass

@pytest.mark.requires("cluster-access")
def test_loadbalancer():
    pass
""",
        test_perf='import pytest\n@pytest.mark.requires("api-health")\ndef test_latency():\n    pass\n',
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-v", "test_perf.py")
    assert result.ret == 0, result.stdout.str()
    outcomes = outcomes_of(result)
    assert outcomes == {"test_api.py::test_health": "PASSED", "test_perf.py::test_latency": "PASSED"}


def test_setup_only_counts_no_test_as_passed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_never="import pytest\n@pytest.mark.section('dns')\ndef test_fails():\n    assert 0\n"
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--setup-only", "--results-json", "out.json")
    import json

    document = json.loads((pytester.path / "out.json").read_text())
    assert document["tests"] == [] and document["health_score"] is None, document
    assert "Health score: 100%" not in result.stdout.str()


def test_section_requires_must_name_gates(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_bad="import pytest\npytestmark = pytest.mark.section('db', requires=5)\ndef test_a():\n    "
        "pass\n"
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert any("requires=...) takes gate names" in line for line in result.errlines), result.errlines


def test_teardown_error_does_not_replace_the_gates_failure(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_td="""
import pytest

@pytest.fixture
def noisy():
    yield
    raise RuntimeError("teardown noise")

@pytest.mark.gate("api-health")
def test_health(noisy):
    assert 0, "empty reply"

@pytest.mark.requires("api-health")
def test_after():
    pass
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(
        ["blocked by api-health: empty reply", "BLOCKED other *1 test *by api-health"]
    )


# --------------------------------------------------------------------------- requires(test=...): observations

OBSERVATION = """
import os
import pytest

pytestmark = pytest.mark.section("tls")

@pytest.fixture
def handshake():
    mode = os.environ.get("HANDSHAKE", "ok")
    if mode == "skip":
        pytest.skip("target is plain HTTP")
    return mode

def test_handshake(handshake):
    assert handshake == "ok", "127.0.0.1:1 tcp_refused (curl 7): connection refused"

@pytest.mark.requires(test="test_handshake")
def test_trusted(handshake):
    pass

@pytest.mark.requires(test="test_handshake")
def test_not_expired(handshake):
    pass

def test_independent():
    pass
"""


def _observation_run(pytester: pytest.Pytester, mode: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_tls=OBSERVATION)
    import os

    os.environ["HANDSHAKE"] = mode
    try:
        return pytester.runpytest_subprocess("-v", "-rA", "-p", "no:cacheprovider", *args, timeout=120)
    finally:
        del os.environ["HANDSHAKE"]


def test_failed_observation_blocks_the_checks_that_read_it(pytester: pytest.Pytester) -> None:
    result = _observation_run(pytester, "refused")
    outcomes = outcomes_of(result)
    assert outcomes == {
        "test_tls.py::test_handshake": "FAILED",
        "test_tls.py::test_trusted": "BLOCKED",
        "test_tls.py::test_not_expired": "BLOCKED",
        "test_tls.py::test_independent": "PASSED",
    }
    result.stdout.fnmatch_lines(
        [
            "*BLOCKED test_tls.py::test_trusted - blocked by test_handshake: "
            "127.0.0.1:1 tcp_refused (curl 7): connection refused*"
        ]
    )
    # The health score counts the blocked checks, never as passed: 1 of 4.
    result.stdout.fnmatch_lines(["Health score: 25% (1 of 4 checks passed; 2 blocked by test_handshake)"])
    result.stdout.fnmatch_lines(["tls * 4 * 1 * 1 * 2 * 0 * FAIL"])


def test_passed_observation_lets_the_checks_run(pytester: pytest.Pytester) -> None:
    result = _observation_run(pytester, "ok")
    assert result.ret == 0
    assert set(outcomes_of(result).values()) == {"PASSED"}


def test_skipped_observation_skips_the_checks_naming_it(pytester: pytest.Pytester) -> None:
    result = _observation_run(pytester, "skip")
    assert outcomes_of(result)["test_tls.py::test_trusted"] == "SKIPPED"
    result.stdout.fnmatch_lines(["SKIPPED * test_handshake skipped: target is plain HTTP"])


@pytest.mark.parametrize(
    "args", [["-k", "trusted"], ["test_tls.py::test_trusted"]], ids=["keyword", "nodeid"]
)
def test_selecting_a_check_pulls_its_observation_back(pytester: pytest.Pytester, args: list[str]) -> None:
    result = _observation_run(pytester, "refused", *args)
    outcomes = outcomes_of(result)
    assert outcomes.get("test_tls.py::test_handshake") == "FAILED", result.stdout.str()
    assert outcomes.get("test_tls.py::test_trusted") == "BLOCKED"
    assert "test_tls.py::test_not_expired" not in outcomes


@pytest.mark.parametrize("workers", ["2"])
def test_observation_blocks_across_xdist_workers(pytester: pytest.Pytester, workers: str) -> None:
    serial = outcomes_of(_observation_run(pytester, "refused"))
    for dist in ("load", "worksteal"):
        parallel = outcomes_of(_observation_run(pytester, "refused", "-n", workers, "--dist", dist))
        assert parallel == serial, dist


def test_every_parametrization_of_the_observation_must_pass(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_p="""
import pytest

@pytest.mark.parametrize("address", ["127.0.10.53", "127.0.10.57"])
def test_answers(address):
    assert address.endswith("53"), f"{address}: empty reply"

class TestBody:
    def test_status(self):
        assert False, "503"

    @pytest.mark.requires(test="test_status")
    def test_body(self):
        pass

@pytest.mark.requires(test=["test_answers", "TestBody::test_status"])
def test_reads_both():
    pass
"""
    )
    result = pytester.runpytest("-v", "-rA", "-p", "no:cacheprovider")
    outcomes = outcomes_of(result)
    assert outcomes["test_p.py::TestBody::test_body"] == "BLOCKED"
    assert outcomes["test_p.py::test_reads_both"] == "BLOCKED"
    result.stdout.fnmatch_lines(
        ["*BLOCKED test_p.py::TestBody::test_body - blocked by TestBody::test_status: 503*"]
    )
    result.stdout.fnmatch_lines(
        ["*BLOCKED test_p.py::test_reads_both - blocked by test_answers: 127.0.10.57: empty reply*"]
    )


@pytest.mark.parametrize(
    "source, message",
    [
        (
            '@pytest.mark.requires(test="test_nope")\ndef test_a():\n    pass\n',
            "unknown test 'test_nope' required by test_x.py::test_a (no such test in test_x.py)",
        ),
        (
            '@pytest.mark.requires(test="test_a")\ndef test_a():\n    pass\n',
            "test_x.py::test_a requires itself",
        ),
        (
            "@pytest.mark.requires(test=3)\ndef test_a():\n    pass\n",
            "@pytest.mark.requires(test=...) takes test names",
        ),
        (
            '@pytest.mark.requires(tests="test_b")\ndef test_a():\n    pass\n',
            "not tests= on test_x.py::test_a",
        ),
    ],
    ids=["unknown", "itself", "not-a-name", "misspelt-keyword"],
)
def test_test_requirement_errors_are_usage_errors(
    pytester: pytest.Pytester, source: str, message: str
) -> None:
    pytester.makepyfile(test_x="import pytest\n" + source)
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert len(errors) == 1 and message in errors[0], result.errlines


def test_plan_keys_a_required_test_by_module_and_shows_its_name() -> None:
    from pytest_reachability.gating import GatePlan

    class Marker:
        def __init__(self, name: str, *args: object, **kwargs: object) -> None:
            self.name, self.args, self.kwargs = name, args, kwargs

    class Item:
        def __init__(self, nodeid: str, *markers: Marker) -> None:
            self.nodeid, self.markers = nodeid, markers

        def iter_markers(self):
            return iter(self.markers)

    plan = GatePlan.build(
        [
            Item("a.py::test_shake[v4]"),
            Item("a.py::test_shake[v6]"),
            Item("a.py::test_cert", Marker("requires", test="test_shake")),
            Item("b.py::test_shake"),
            Item("b.py::test_cert", Marker("requires", "api", test="test_shake")),
            Item("c.py::test_health", Marker("gate", "api")),
        ]
    )
    plan.check()
    assert plan.requires["a.py::test_cert"] == ("a.py::test_shake",)
    assert plan.members["a.py::test_shake"] == ["a.py::test_shake[v4]", "a.py::test_shake[v6]"]
    assert plan.requires["b.py::test_cert"] == ("api", "b.py::test_shake")
    assert plan.label("a.py::test_shake") == "test_shake" and plan.label("api") == "api"
    assert plan.member_of["a.py::test_shake[v6]"] == ("a.py::test_shake",)
