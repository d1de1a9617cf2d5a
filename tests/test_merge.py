"""``python -m pytest_reachability merge``: shards of several jobs into one HTML / markdown / JSON report."""

from __future__ import annotations

import html.parser
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_reachability import merge

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest_reachability", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def shard_document(
    target: str, namespace: str, outcomes: dict[str, tuple[str, str, str | None]], theories: list[dict]
) -> dict:
    """A --results-json document of the documented schema (issue
    6: run, health_score, sections, tests, theories)."""
    tests = [
        {
            "nodeid": nodeid,
            "section": section,
            "outcome": outcome,
            "blocked_by": blocked_by,
            "reason": f"blocked by {blocked_by}: empty reply"
            if blocked_by
            else ("empty reply from 127.0.10.57:80" if outcome == "failed" else ""),
            "evidence": [],
        }
        for nodeid, (section, outcome, blocked_by) in outcomes.items()
    ]
    sections: dict[str, dict] = {}
    for test in tests:
        row = sections.setdefault(
            test["section"], {"passed": 0, "failed": 0, "error": 0, "skipped": 0, "blocked": 0}
        )
        row[test["outcome"]] += 1
    counted = [t for t in tests if t["outcome"] in ("passed", "failed", "error", "blocked")]
    score = round(100 * sum(t["outcome"] == "passed" for t in counted) / len(counted))
    return {
        "schema_version": merge.current_schema_version(),
        "run": {"target": target, "namespace": namespace, "started": "2026-11-28T04:10:03Z", "duration": 7.5},
        "health_score": score,
        "sections": sections,
        "tests": tests,
        "theories": theories,
    }


EU = shard_document(
    "http://97v.test",
    "production",
    {
        "s/test_07_dns.py::test_resolves": ("dns", "passed", None),
        "s/test_10_api_health.py::test_health": ("api-health", "failed", None),
        "s/test_12_database.py::test_db": ("database", "blocked", "api-health"),
    },
    [
        {
            "rule": "dns_not_loadbalancer",
            "title": "DNS answers 127.0.10.57, not the LoadBalancer 127.0.10.53",
            "confidence": 0.9,
            "evidence": [
                "A 97v.test -> 127.0.10.57",
                "Service api LoadBalancer 127.0.10.53 answers /health 200",
            ],
            "confirm": ["dig +short 97v.test"],
            "fix": ["point the A record at 127.0.10.53"],
        }
    ],
)
US = shard_document(
    "https://user:hunter22@us.97v.test",
    "production-us",
    {
        "s/test_07_dns.py::test_resolves": ("dns", "passed", None),
        "s/test_10_api_health.py::test_health": ("api-health", "passed", None),
        "s/test_12_database.py::test_db": ("database", "passed", None),
    },
    [],
)


@pytest.fixture
def shard_files(tmp_path: Path) -> tuple[Path, Path]:
    eu, us = tmp_path / "eu.json", tmp_path / "us.json"
    eu.write_text(json.dumps(EU))
    us.write_text(json.dumps(US))
    return eu, us


class _Collector(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)
        self.attrs += attrs

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_merge_writes_html_markdown_and_json_with_a_table_per_target(
    shard_files: tuple[Path, Path], tmp_path: Path
) -> None:
    eu, us = shard_files
    out = tmp_path / "out"
    done = run_cli(
        "merge",
        str(eu),
        str(us),
        "--html",
        str(out / "m.html"),
        "--incident-report",
        str(out / "m.md"),
        "--results-json",
        str(out / "m.json"),
    )
    assert done.returncode == 1, done.stderr  # one shard failed
    assert done.stdout.splitlines() == [
        f"FAIL http://97v.test (production) health 33% ({eu})",
        f"PASS https://***:***@us.97v.test (production-us) health 100% ({us})",
    ]

    markdown = (out / "m.md").read_text()
    assert "**Overall health:** 67%" in markdown  # 4 of 6 counted checks, across both targets
    assert markdown.count("| Section | Tests | Passed | Failed | Blocked | Skipped | Status |") == 2
    assert (
        "## http://97v.test (production)" in markdown
        and "## https://***:***@us.97v.test (production-us)" in markdown
    )
    assert "| api-health | 1 | 0 | 1 | 0 | 0 | ❌ FAIL |" in markdown
    assert "| database | 1 | 0 | 0 | 1 | 0 | ⏸️ BLOCKED by api-health |" in markdown
    assert "1. DNS answers 127.0.10.57, not the LoadBalancer 127.0.10.53 (90%)" in markdown
    assert "hunter22" not in markdown

    page = (out / "m.html").read_text()
    parsed = _Collector()
    parsed.feed(page)
    assert "script" not in parsed.tags and not any(name in ("src",) for name, _ in parsed.attrs)
    assert parsed.tags.count("section") == 2 and parsed.tags.count("table") == 3  # overview + one per target
    text = " ".join(parsed.text)
    assert "DNS answers 127.0.10.57" in text and "BLOCKED by api-health" in text and "hunter22" not in page

    merged = json.loads((out / "m.json").read_text())
    assert merged["kind"] == merge.MERGE_KIND and merged["health_score"] == 67
    assert [t["status"] for t in merged["targets"]] == ["FAIL", "PASS"]
    assert "hunter22" not in json.dumps(merged)


def test_a_merged_file_merges_again(shard_files: tuple[Path, Path], tmp_path: Path) -> None:
    eu, us = shard_files
    first = tmp_path / "first.json"
    assert run_cli("merge", str(eu), "--results-json", str(first)).returncode == 1
    done = run_cli("merge", str(first), str(us))
    assert done.returncode == 1
    assert done.stdout.count("| Section | Tests |") == 2  # markdown on stdout without output options


def test_all_shards_passing_exits_zero(shard_files: tuple[Path, Path]) -> None:
    _, us = shard_files
    assert run_cli("merge", str(us)).returncode == 0


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file"),
        ("{not json", "not JSON"),
        (json.dumps({**EU, "schema_version": 999}), "999"),
        (json.dumps([1, 2]), "JSON object"),
        # Hand-edited files: a wrong value type is one line naming the section and field, not a traceback.
        (json.dumps({**EU, "sections": {"api": {"xfailed": "x"}}}), "'api': xfailed is 'x'"),
        (json.dumps({**EU, "sections": {"api": {"passed": "3"}}}), "'api': passed is '3'"),
        (json.dumps({**EU, "sections": {"api": {"passed": 1, "blocked_by": 5}}}), "blocked_by is 5"),
        (
            json.dumps(
                {
                    "kind": merge.MERGE_KIND,
                    "schema_version": 1,
                    "shards": [{**EU, "sections": {"api": {"skipped": [1]}}}],
                }
            ),
            "bad.json#1: section 'api': skipped is [1]",
        ),
        (json.dumps({"kind": merge.MERGE_KIND, "schema_version": 1, "shards": "EU"}), "shards is str"),
    ],
)
def test_bad_input_is_one_line_and_exit_two(tmp_path: Path, content: str | None, expected: str) -> None:
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    done = run_cli("merge", str(path), "--html", str(tmp_path / "out.html"))
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "bad.json" in lines[0], done.stderr
    assert not (tmp_path / "out.html").exists()


def test_merge_of_real_runs(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """Shards written by real pytest runs with --results-json."""
    pytest.importorskip(
        "pytest_reachability.report.json", reason="--results-json is written by report/json.py"
    )
    pytester.makepyfile(
        test_gate="""
import os, pytest
pytestmark = pytest.mark.section("api-health")
@pytest.mark.gate("api-health")
def test_health():
    assert os.environ.get("FAKE_HEALTH") != "down", "empty reply"
""",
        test_db="""
import pytest
pytestmark = pytest.mark.section("database", requires=["api-health"])
def test_db():
    pass
""",
    )
    assert (
        pytester.runpytest(
            "-p", "no:cacheprovider", "--target", "eu.97v.test", "--results-json", "eu.json"
        ).ret
        == 0
    )
    monkeypatch.setenv("FAKE_HEALTH", "down")
    assert (
        pytester.runpytest(
            "-p", "no:cacheprovider", "--target", "us.97v.test", "--results-json", "us.json"
        ).ret
        == 1
    )
    done = run_cli("merge", "eu.json", "us.json", "--incident-report", "merged.md", cwd=pytester.path)
    assert done.returncode == 1, done.stderr
    markdown = (pytester.path / "merged.md").read_text()
    assert "## http://eu.97v.test" in markdown and "## http://us.97v.test" in markdown
    assert "BLOCKED by api-health" in markdown
