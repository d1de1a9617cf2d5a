"""--results-json: the documented schema, atomic writing,
version checks, and the same document under xdist."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest
from test_diagnosis_rules import incident_records, run_builtin_suite

from pytest_reachability.config import resolve_settings
from pytest_reachability.diagnosis import diagnose
from pytest_reachability.report.json import (
    SCHEMA_VERSION,
    ResultsFileError,
    build_results,
    read_results_json,
    schema_path,
    write_results_json,
)
from pytest_reachability.results import RunResults, TestResult

DOC = Path(__file__).resolve().parents[1] / "docs" / "results-schema.md"


def hand_built() -> RunResults:
    results = RunResults()
    for test in [
        TestResult(
            "s/test_07_dns.py::test_dns",
            section="dns",
            outcome="passed",
            evidence=[{"kind": k, "data": d} for k, d in incident_records()],
        ),
        TestResult(
            "s/test_10_api_health.py::test_health",
            section="api-health",
            outcome="failed",
            gate="api-health",
            reason="GET /health failed on 127.0.10.57 empty_reply",
        ),
        TestResult(
            "s/test_12_database.py::test_db",
            section="database",
            outcome="blocked",
            blocked_by="api-health",
            reason="blocked by api-health: GET /health failed",
        ),
        TestResult("s/test_09_tls.py::test_tls", section="tls", outcome="skipped", reason="target is http"),
        TestResult("s/test_x.py::test_flaky", section="other", outcome="xfailed", reason="known"),
        TestResult("s/test_x.py::test_fixed", section="other", outcome="xpassed"),
    ]:
        results.tests[test.nodeid] = test
    return results


def settings():
    return resolve_settings({"target": "http://user:s3cretpw@97v.test", "namespace": "production"}, {})


def test_document_has_the_documented_fields():
    data = build_results(hand_built(), settings(), started=1764900000.0, duration=2.5)
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["run"] == {
        "target": "http://***:***@97v.test",
        "namespace": "production",
        "started": "2025-12-05T02:00:00Z",
        "duration": 2.5,
        "sandbox": None,
        "targets": 1,
    }
    # A run of one target is a fleet of one: its entry holds the whole run.
    (entry,) = data["targets"]
    assert entry["target"] == "http://***:***@97v.test" and entry["health_score"] == data["health_score"]
    assert entry["status"] == "FAIL" and entry["sections"] == data["sections"]
    assert data["fleet"] == {"targets": 1, "healthy": 0, "failing": 1, "causes": []}
    assert data["health_score"] == 50  # passed + xpassed of passed + xpassed + failed + blocked
    assert list(data["sections"]) == ["dns", "tls", "api-health", "database", "other"]
    assert data["sections"]["database"] == {
        "tests": 1,
        "passed": 0,
        "failed": 0,
        "error": 0,
        "skipped": 0,
        "blocked": 1,
        "status": "BLOCKED",
        "blocked_by": ["api-health"],
        "builtin_index": 12,
    }
    outcomes = {t["nodeid"].rsplit("::", 1)[1]: t["outcome"] for t in data["tests"]}
    assert outcomes == {
        "test_dns": "passed",
        "test_health": "failed",
        "test_db": "blocked",
        "test_tls": "skipped",
        "test_flaky": "skipped",
        "test_fixed": "passed",
    }
    assert [t["section"] for t in data["tests"]] == ["dns", "tls", "api-health", "database", "other", "other"]
    assert data["theories"][0]["rule"] == "dns-not-loadbalancer"
    assert set(data["theories"][0]) == {
        "rule",
        "title",
        "confidence",
        "evidence",
        "confirm",
        "fix",
        "explains",
        "symptoms",
        "unknowns",
    }
    assert schema_errors(data) == []
    # every field named in the doc's tables exists in the document
    documented = set(re.findall(r"^\| `(\w+)` \|", DOC.read_text(), re.MULTILINE))
    present = set(data["run"]) | set(data["tests"][0]) | set(data["theories"][0]) | set(data["targets"][0])
    assert documented <= present, documented - present
    assert f'"schema_version": "{SCHEMA_VERSION}"' in DOC.read_text()


def test_write_is_atomic_masked_and_reads_back(tmp_path):
    results = hand_built()
    results.tests["s/test_07_dns.py::test_dns"].evidence.append(
        {
            "kind": "http_probe",
            "data": {
                "headers": {"Set-Cookie": "sid=abc123456"},
                "curl": "curl -H 'Authorization: Bearer tok123456' http://97v.test/?token=qwerty99",
            },
        }
    )
    path = write_results_json(
        tmp_path / "out" / "run.json",
        results,
        settings(),
        diagnose(results, settings()),
        secrets=["s3cretpw"],
    )
    text = path.read_text()
    for secret in ("s3cretpw", "abc123456", "tok123456", "qwerty99"):
        assert secret not in text
    assert [p.name for p in path.parent.iterdir()] == ["run.json"]  # no temporary file left
    data = read_results_json(path)
    assert data["tests"][0]["evidence"][-1]["data"]["headers"]["Set-Cookie"] == "***"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            '{"schema_version": "2.0", "run": {}, "health_score": 1, "sections": {}, "tests": [], '
            '"theories": []}',
            "has schema_version '2.0'; this version reads 1.x",
        ),
        ("[1, 2]", "is not a JSON object"),
        ("{not json", "is not JSON"),
        ('{"schema_version": "1.3", "run": {}}', "lacks health_score, sections, tests, theories"),
        (
            '{"schema_version": "1.0", "run": {}, "health_score": 1, "sections": {}, "tests": [{"nodeid": '
            '"x", "outcome": "odd"}], "theories": []}',
            "test 'x' has an unknown outcome",
        ),
    ],
)
def test_read_refuses_bad_documents_with_one_line(tmp_path, content, message):
    path = tmp_path / "r.json"
    path.write_text(content)
    with pytest.raises(ResultsFileError) as caught:
        read_results_json(path)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(ResultsFileError, match="not found"):
        read_results_json(tmp_path / "missing.json")


def test_minor_versions_are_read(tmp_path):
    data = build_results(hand_built(), settings())
    data["schema_version"] = "1.7"
    data["new_field"] = {"ignored": True}
    (tmp_path / "r.json").write_text(json.dumps(data))
    assert read_results_json(tmp_path / "r.json")["new_field"] == {"ignored": True}


def _comparable(data: dict) -> dict:
    """The document without what legitimately differs between two runs (times, the sandbox's ports)."""
    ports = re.compile(r":\d{4,5}\b")
    return {
        "schema_version": data["schema_version"],
        "run": {
            k: ports.sub(":PORT", str(v)) for k, v in data["run"].items() if k not in ("started", "duration")
        },
        "health_score": data["health_score"],
        "sections": data["sections"],
        "tests": [
            (t["nodeid"], t["section"], t["outcome"], t["blocked_by"], ports.sub(":PORT", t["reason"]))
            for t in data["tests"]
        ],
        "evidence_kinds": sorted(r["kind"] for t in data["tests"] for r in t["evidence"]),
        "theories": [(t["rule"], ports.sub(":PORT", t["title"]), t["confidence"]) for t in data["theories"]],
    }


def test_builtin_suite_writes_the_same_document_serially_and_under_xdist(tmp_path):
    serial_dir, xdist_dir = tmp_path / "serial", tmp_path / "xdist"
    serial_dir.mkdir()
    xdist_dir.mkdir()
    serial = run_builtin_suite(
        serial_dir,
        "--sandbox",
        "incident-2025-12-08",
        "--results-json",
        "r.json",
        "-q",
        "--junitxml",
        "junit.xml",
        "--html",
        "report.html",
        "--incident-report",
        "incident.md",
    )
    xdist = run_builtin_suite(
        xdist_dir, "--sandbox", "incident-2025-12-08", "--results-json", "r.json", "-q", "-n", "2"
    )
    assert serial.returncode == xdist.returncode == 1, xdist.stdout[-2000:]
    first, second = read_results_json(serial_dir / "r.json"), read_results_json(xdist_dir / "r.json")
    assert _comparable(first)["theories"][0][0] == "dns-not-loadbalancer"
    a, b = _comparable(first), _comparable(second)
    # Name the tests whose outcome or reason differs: a score alone does not say which check flipped.
    only_serial = [test for test in a["tests"] if test not in b["tests"]]
    only_xdist = [test for test in b["tests"] if test not in a["tests"]]
    assert only_serial == only_xdist == [], (only_serial, only_xdist)
    for key in a:
        assert a[key] == b[key], key
    assert first["run"]["sandbox"] == "incident-2025-12-08" and first["run"]["namespace"] == "production"
    assert "reachability: results JSON: r.json" in xdist.stdout
    # Real outputs match the shipped JSON Schema.
    assert schema_errors(first) == [] and schema_errors(second) == []
    # Written like every report of the run: the mode open() gives under this umask, no temporary file left.
    modes = {
        name: stat.S_IMODE((serial_dir / name).stat().st_mode)
        for name in ("r.json", "junit.xml", "report.html", "incident.md")
    }
    assert set(modes.values()) == {0o666 & ~current_umask()}, modes
    assert not [p.name for p in serial_dir.iterdir() if p.name.endswith(".tmp")]


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def schema_errors(document: dict) -> list[str]:
    """Errors of a document against the shipped JSON Schema (jsonschema, from the test extras)."""
    jsonschema = pytest.importorskip(
        "jsonschema", reason="jsonschema is in the test extras: pip install -e '.[test]'"
    )
    schema = json.loads(schema_path().read_text())
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def test_shipped_schema_is_valid_names_its_version_and_is_packaged():
    jsonschema = pytest.importorskip(
        "jsonschema", reason="jsonschema is in the test extras: pip install -e '.[test]'"
    )
    schema = json.loads(schema_path().read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$id"].endswith(f":results:{SCHEMA_VERSION}") and SCHEMA_VERSION in schema["title"]
    assert schema_path().name == f"results-{SCHEMA_VERSION}.schema.json"
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '"pytest_reachability.schemas" = ["*.json"]' in pyproject  # shipped in the wheel beside its writer
    assert f"results-{SCHEMA_VERSION}.schema.json" in DOC.read_text()


def test_schema_refuses_what_the_reader_refuses():
    """The check can fail: a wrong outcome, a missing field,
    a blocked test without its gate, a bad confidence."""
    good = build_results(hand_built(), settings(), started=1764900000.0, duration=2.5)
    assert schema_errors(good) == []
    broken = json.loads(json.dumps(good))
    broken["tests"][0]["outcome"] = "odd"
    del broken["run"]["target"]
    next(t for t in broken["tests"] if t["outcome"] == "blocked")["blocked_by"] = None
    broken["theories"][0]["confidence"] = 1.5
    errors = schema_errors(broken)
    assert len(errors) == 4, errors


def test_theories_carry_what_they_explain_their_symptoms_and_unknowns(tmp_path):
    from dataclasses import dataclass, field

    from pytest_reachability.diagnosis import Theory

    @dataclass
    class FoldingTheory(Theory):
        explains: list[str] = field(default_factory=list)
        symptoms: list = field(default_factory=list)
        unknowns: list[str] = field(default_factory=list)

    symptom = Theory("edge-empty-reply", "127.0.10.57 closes connections", 0.3, ["empty_reply"])
    cause = FoldingTheory(
        "dns-not-loadbalancer",
        "DNS points at a dead edge",
        0.95,
        ["DNS -> 127.0.10.57"],
        explains=["s/test_10_api_health.py::test_health"],
        symptoms=[symptom],
        unknowns=["the record's TTL: dig @ns1.example 97v.test"],
    )
    path = write_results_json(tmp_path / "r.json", hand_built(), settings(), [cause])
    data = read_results_json(path)
    (theory,) = data["theories"]
    assert theory["explains"] == ["s/test_10_api_health.py::test_health"]
    assert theory["symptoms"][0]["rule"] == "edge-empty-reply" and theory["symptoms"][0]["symptoms"] == []
    assert theory["unknowns"] == ["the record's TTL: dig @ns1.example 97v.test"]
    assert schema_errors(data) == []
