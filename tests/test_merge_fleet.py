"""``merge`` of fleet runs: documents of results schema 1.2 (a ``targets`` list, ``run.shard``, ``fleet``).

The documents are built here as the schema describes them (``fleet_document``), so the merge is checked
against the contract rather than against one writer: one row per target, a target in two shards is an
error, the fleet counts are recounted, shared causes are joined across shards by (rule, title), and the
shards of a fleet merged give the targets of the unsharded run.
"""

from __future__ import annotations

import html.parser
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_merge import run_cli

from pytest_reachability import merge

SECTION_NAMES = ("dns", "tls", "api-health", "database")
COUNTED = ("passed", "failed", "error", "blocked")


def theory(rule: str, title: str) -> dict[str, Any]:
    return {
        "rule": rule,
        "title": title,
        "confidence": 0.8,
        "evidence": [f"seen for {title}"],
        "confirm": [],
        "fix": [],
        "explains": [],
        "symptoms": [],
        "unknowns": [],
    }


def target_status(sections: dict[str, dict[str, Any]]) -> str:
    statuses = {row["status"] for row in sections.values()}
    for status in ("FAIL", "BLOCKED", "PASS"):
        if status in statuses:
            return status
    return "SKIPPED"


def fleet_document(
    fleet: dict[str, dict[str, Any]],
    *,
    shard: tuple[int, int] | None = None,
    cluster_wide: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A --results-json document of schema 1.2 for ``fleet``: target display -> {"namespace",
    "outcomes": {section: outcome}, "theories": [(rule, title)]}, in the order the run verified them.

    ``fleet.causes`` groups the top theory of every target that is not healthy by (rule, title), as a fleet
    run lists them (a failing target without a theory in the no-cause-found group)."""
    tests: list[dict[str, Any]] = []
    targets = []
    for display, spec in fleet.items():
        sections: dict[str, dict[str, Any]] = {}
        nodeids = []
        for section, outcome in spec["outcomes"].items():
            nodeid = f"pytest_reachability/suites/test_{section}.py::test_{section}[{display}]"
            blocked_by = "api-health" if outcome == "blocked" else None
            tests.append(
                {
                    "nodeid": nodeid,
                    "section": section,
                    "outcome": outcome,
                    "blocked_by": blocked_by,
                    "reason": "connection refused" if outcome == "failed" else "",
                    "gate": None,
                    "duration": 0.01,
                    "evidence": [],
                    "target": display,
                }
            )
            nodeids.append(nodeid)
            counts = {name: int(outcome == name) for name in (*COUNTED, "skipped")}
            status = {"passed": "PASS", "failed": "FAIL", "error": "FAIL", "blocked": "BLOCKED"}.get(
                outcome, "SKIPPED"
            )
            sections[section] = {
                "tests": 1,
                **counts,
                "status": status,
                "blocked_by": [blocked_by] if blocked_by else [],
                "builtin_index": None,
            }
        counted = [o for o in spec["outcomes"].values() if o in COUNTED]
        score = round(100 * counted.count("passed") / len(counted)) if counted else None
        targets.append(
            {
                "target": display,
                "namespace": spec.get("namespace"),
                "status": target_status(sections),
                "verdict": None
                if target_status(sections) == "PASS"
                else f"UNREACHABLE from outside: {display}",
                "health_score": score,
                "sections": sections,
                "tests": nodeids,
                "theories": [theory(rule, title) for rule, title in spec.get("theories", [])],
            }
        )
    for nodeid, outcome in (cluster_wide or {}).items():
        tests.append(
            {
                "nodeid": nodeid,
                "section": "cluster",
                "outcome": outcome,
                "blocked_by": None,
                "reason": "nodes not ready" if outcome == "failed" else "",
                "gate": None,
                "duration": 0.01,
                "evidence": [],
                "target": None,
            }
        )
    causes: dict[tuple[str, str], list[str]] = {}
    for entry in targets:
        if entry["status"] != "PASS":
            top = entry["theories"][0] if entry["theories"] else {"rule": merge.NO_CAUSE, "title": "no cause"}
            causes.setdefault((top["rule"], top["title"]), []).append(entry["target"])
    counted_all = [t["outcome"] for t in tests if t["outcome"] in COUNTED]
    return {
        "schema_version": "1.2",
        "run": {
            "target": None,
            "namespace": None,
            "started": "2026-12-01T04:00:00Z",
            "duration": 3.0,
            "sandbox": None,
            **({"shard": {"index": shard[0], "count": shard[1]}} if shard else {}),
        },
        "health_score": round(100 * counted_all.count("passed") / len(counted_all)) if counted_all else None,
        "sections": {},
        "tests": tests,
        "theories": [t for entry in targets for t in entry["theories"]][:5],
        "targets": targets,
        "fleet": {
            "targets": len(targets),
            "healthy": sum(1 for t in targets if t["status"] == "PASS"),
            "failing": sum(1 for t in targets if t["status"] != "PASS"),
            "causes": [
                {"rule": rule, "title": title, "targets": hosts} for (rule, title), hosts in causes.items()
            ],
        },
    }


def shard_of(fleet: dict[str, dict[str, Any]], index: int, count: int) -> dict[str, dict[str, Any]]:
    """The targets ``--shard index/count`` verifies: position in the sorted keys % count == index - 1."""
    keys = sorted(fleet)
    return {key: fleet[key] for position, key in enumerate(keys) if position % count == index - 1}


HEALTHY = {"dns": "passed", "tls": "passed", "api-health": "passed", "database": "passed"}
LEGACY_LB = ("cname-to-dead-edge", "legacy-lb.fleet.test accepts and closes without a byte")


def host(n: int) -> str:
    return f"http://svc-{n:03d}.fleet.test"


def legacy_lb_fleet() -> dict[str, dict[str, Any]]:
    """Twenty hosts: twelve behind a dead load balancer (one cause), one without DNS, seven healthy."""
    fleet: dict[str, dict[str, Any]] = {}
    for n in range(20):
        if n < 12:
            outcomes = {"dns": "passed", "api-health": "failed", "database": "blocked"}
            fleet[host(n)] = {"namespace": "shop", "outcomes": outcomes, "theories": [LEGACY_LB]}
        elif n == 12:
            fleet[host(n)] = {
                "namespace": "payments",
                "outcomes": {"dns": "failed", "api-health": "blocked"},
                "theories": [("nxdomain", "svc-012.fleet.test has no DNS record")],
            }
        else:
            fleet[host(n)] = {"namespace": "shop", "outcomes": dict(HEALTHY), "theories": []}
    return fleet


def test_the_documents_built_here_are_valid_results_of_schema_1_2() -> None:
    """The builder follows the shipped JSON Schema, so the merge is tested on documents a run can write."""
    from jsonschema import Draft202012Validator

    from pytest_reachability.report.json import schema_path

    path = schema_path("1.2")
    if not path.is_file():
        pytest.skip(
            f"{path.name} is not shipped in this checkout: schema 1.2 comes with runs of several targets"
        )
    validator = Draft202012Validator(json.loads(path.read_text()))
    sharded = fleet_document(
        shard_of(legacy_lb_fleet(), 1, 2),
        shard=(1, 2),
        cluster_wide={"suites/test_c.py::test_nodes": "failed"},
    )
    for document in (sharded, fleet_document({host(1): {"outcomes": dict(HEALTHY)}})):
        errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(document)]
        assert errors == []


def write(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(json.dumps(document))
    return path


def test_one_row_per_target_with_fleet_counts_and_a_cause_joined_across_shards(tmp_path: Path) -> None:
    fleet = legacy_lb_fleet()
    first, second = shard_of(fleet, 1, 2), shard_of(fleet, 2, 2)
    # Each shard lists the dead load balancer for its own six hosts; merged it is one cause of twelve.
    assert sum(LEGACY_LB in spec["theories"] for spec in first.values()) == 6
    paths = [
        write(tmp_path / "shard-1.json", fleet_document(first, shard=(1, 2))),
        write(tmp_path / "shard-2.json", fleet_document(second, shard=(2, 2))),
    ]
    shards = merge.load_shards(paths)
    assert [s.target for s in shards] == sorted(fleet)
    summary = merge.fleet_summary(shards)
    assert (summary["targets"], summary["healthy"], summary["failing"]) == (20, 7, 13)
    cause, alone = summary["causes"]
    assert (cause["rule"], cause["title"]) == LEGACY_LB and alone["targets"] == [host(12)]
    assert cause["targets"] == [host(n) for n in range(12)]

    out = tmp_path / "out"
    done = run_cli(
        "merge",
        *map(str, paths),
        "--html",
        str(out / "fleet.html"),
        "--incident-report",
        str(out / "fleet.md"),
        "--results-json",
        str(out / "fleet.json"),
    )
    assert done.returncode == 1, done.stderr
    assert len(done.stdout.splitlines()) == 20
    assert f"FAIL {host(12)} (payments) health 0% ({paths[0]})" in done.stdout.splitlines()

    markdown = (out / "fleet.md").read_text()
    fleet_part = markdown[markdown.index("## Fleet") : markdown.index("## Overview")]
    assert "**20 target(s): 7 healthy, 13 failing**" in fleet_part
    assert f"12 targets: {host(0)}, {host(1)}" in fleet_part and LEGACY_LB[1] in fleet_part
    assert markdown.index("## Fleet") < markdown.index("## Overview")
    assert markdown.count("| Section | Tests | Passed | Failed | Blocked | Skipped | Status |") == 20
    assert f"| {host(12)} (payments) | 0% | ❌ FAIL | svc-012.fleet.test has no DNS record | " in markdown
    assert "shard-1.json (shard 1/2)" in markdown and "shard-2.json (shard 2/2)" in markdown

    page = (out / "fleet.html").read_text()
    parsed = _Collector()
    parsed.feed(page)
    assert "script" not in parsed.tags
    assert parsed.tags.count("section") == 20 and parsed.tags.count("table") == 21
    assert page.index('id="fleet"') < page.index('id="overview"')

    merged = json.loads((out / "fleet.json").read_text())
    assert merged["fleet"]["causes"][0]["targets"] == cause["targets"]
    assert [t["target"] for t in merged["targets"]] == sorted(fleet)
    assert len(merged["shards"]) == 2  # each input document once, not once per target
    row = merged["targets"][0]
    assert (
        row["status"] == "FAIL"
        and row["top_cause"] == LEGACY_LB[1]
        and row["shard"] == {"index": 1, "count": 2}
    )
    assert row["sections"]["database"]["blocked_by"] == ["api-health"]

    # The merged file merges again into the same rows.
    again = merge.load_shards([out / "fleet.json"])
    assert [(s.target, s.status) for s in again] == [(s.target, s.status) for s in shards]


def test_a_cause_of_one_host_in_each_shard_is_one_cause_of_two_merged() -> None:
    dead = ("tls-expired", "certificate of *.fleet.test expired")
    fleet = {
        host(n): {
            "outcomes": {"tls": "failed"} if n < 2 else dict(HEALTHY),
            "theories": [dead] if n < 2 else [],
        }
        for n in range(4)
    }
    documents = [(f"shard-{i}.json", fleet_document(shard_of(fleet, i, 2), shard=(i, 2))) for i in (1, 2)]
    assert [[c["targets"] for c in doc["fleet"]["causes"]] for _, doc in documents] == [
        [[host(0)]],
        [[host(1)]],
    ]
    (cause,) = merge.fleet_summary(merge.shards_from_documents(documents))["causes"]
    assert cause["targets"] == [host(0), host(1)]


def test_a_target_in_two_shards_is_one_line_and_exit_two(tmp_path: Path) -> None:
    fleet = legacy_lb_fleet()
    # Shards cut with different counts overlap: 1/2 and 1/3 share svc-000 (position 0).
    paths = [
        write(tmp_path / "a.json", fleet_document(shard_of(fleet, 1, 2), shard=(1, 2))),
        write(tmp_path / "b.json", fleet_document(shard_of(fleet, 1, 3), shard=(1, 3))),
    ]
    done = run_cli("merge", *map(str, paths), "--html", str(tmp_path / "out.html"))
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert f"target {host(0)} (shop) is also in {paths[0]}" in line and "b.json" in line
    assert not (tmp_path / "out.html").exists()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["targets"][0].update(status="GREEN"), "targets[0]: status is 'GREEN'"),
        (lambda d: d["targets"][0].pop("target"), "targets[0]: not an object with a target"),
        (lambda d: d["targets"][0].update(tests="x"), "targets[0]: tests is str"),
        (lambda d: d.update(targets={"a": 1}), "targets is dict, not a list"),
        (lambda d: d["run"].update(shard={"index": 3, "count": 2}), "run.shard is"),
        (lambda d: d["fleet"].update(causes="dns"), "fleet.causes is str, not a list"),
        (
            lambda d: d["targets"][0]["sections"]["dns"].update(passed="1"),
            "section 'dns': passed is '1'",
        ),
    ],
)
def test_a_malformed_fleet_document_is_one_line(tmp_path: Path, change: Any, expected: str) -> None:
    document = fleet_document(legacy_lb_fleet(), shard=(1, 1))
    change(document)
    done = run_cli("merge", str(write(tmp_path / "bad.json", document)))
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert expected in line and "bad.json" in line, line


def test_old_single_target_documents_merge_with_fleet_shards(tmp_path: Path) -> None:
    legacy = fleet_document({host(99): {"outcomes": dict(HEALTHY)}})
    for key in ("targets", "fleet"):
        legacy.pop(key)
    legacy["schema_version"] = "1.1"
    legacy["run"]["target"] = "http://edge.other.test"
    legacy["run"]["namespace"] = "edge"
    for test in legacy["tests"]:
        test.pop("target")
    fleet = fleet_document(shard_of(legacy_lb_fleet(), 2, 2), shard=(2, 2))
    shards = merge.shards_from_documents([("old.json", legacy), ("new.json", fleet)])
    assert len(shards) == 11 and shards[0].target == "http://edge.other.test"
    assert shards[0].status == "PASS" and shards[0].shard is None and len(shards[0].tests) == 4
    assert merge.fleet_summary(shards)["healthy"] == 5  # the old run and svc-013, 015, 017 and 019


def test_a_failed_cluster_wide_check_fails_the_merge_and_is_listed(tmp_path: Path) -> None:
    fleet = {host(0): {"outcomes": dict(HEALTHY)}}
    document = fleet_document(
        fleet, shard=(1, 1), cluster_wide={"suites/test_cluster.py::test_nodes": "failed"}
    )
    done = run_cli("merge", str(write(tmp_path / "one.json", document)))
    assert done.returncode == 1
    assert "suites/test_cluster.py::test_nodes (one.json): nodes not ready" in done.stdout
    assert "**1 target(s): 1 healthy, 0 failing**" in done.stdout


class _Collector(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)


# --------------------------------------------------------------------------- sharded == unsharded

CAUSES = [
    ("dead-edge", "edge 127.0.20.9 closes"),
    ("nxdomain", "no DNS record"),
    ("tls-expired", "cert expired"),
]
target_specs = st.fixed_dictionaries(
    {
        "namespace": st.sampled_from([None, "shop", "payments"]),
        "outcomes": st.dictionaries(
            st.sampled_from(SECTION_NAMES),
            st.sampled_from(["passed", "failed", "blocked", "skipped"]),
            min_size=1,
        ),
        "theories": st.lists(st.sampled_from(CAUSES), unique=True, max_size=2),
    }
)
fleets = st.dictionaries(
    st.integers(min_value=0, max_value=999).map(host), target_specs, min_size=1, max_size=25
)


def comparable(document: dict[str, Any]) -> dict[str, Any]:
    """What must not depend on sharding: every target's row and the fleet summary."""
    rows = [{k: v for k, v in row.items() if k not in ("source", "shard")} for row in document["targets"]]
    return {"targets": rows, "fleet": document["fleet"]}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleet=fleets, count=st.integers(min_value=1, max_value=6), shuffle=st.randoms(use_true_random=False))
def test_the_shards_of_a_fleet_merge_into_the_unsharded_run(fleet: dict, count: int, shuffle: Any) -> None:
    run_order = list(fleet)
    shuffle.shuffle(run_order)  # a run verifies in its own order; the merge does not depend on it
    unsharded = fleet_document({key: fleet[key] for key in run_order})
    expected = comparable(merge.merged_document(merge.shards_from_documents([("all.json", unsharded)])))

    pieces = [
        (f"shard-{index}.json", fleet_document(shard_of(fleet, index, count), shard=(index, count)))
        for index in range(1, count + 1)
    ]
    shuffle.shuffle(pieces)  # the files may be named in any order
    merged = comparable(merge.merged_document(merge.shards_from_documents(pieces)))
    assert merged == expected
    assert merged["fleet"]["targets"] == len(fleet)
    # Every target sits in exactly one shard.
    assert sum(len(doc["targets"]) for _, doc in pieces) == len(fleet)


def test_older_documents_are_grouped_by_their_top_theory_with_the_host_left_out() -> None:
    """Results of schema 1.1 list no causes: each failing run's top theory is its target's cause."""

    def old_run(display: str, outcome: str, theories: list[tuple[str, str]]) -> dict[str, Any]:
        document = fleet_document({display: {"outcomes": {"api-health": outcome}, "theories": theories}})
        for key in ("targets", "fleet"):
            document.pop(key)
        document["schema_version"] = "1.1"
        document["run"]["target"] = display
        for test in document["tests"]:
            test.pop("target")
        return document

    edge = [("dns-not-loadbalancer", "eu.api.test answers 127.0.10.57, a dead edge")]
    documents = [
        ("eu.json", old_run("http://eu.api.test", "failed", edge)),
        (
            "us.json",
            old_run("http://us.api.test", "failed", [(edge[0][0], edge[0][1].replace("eu.", "us."))]),
        ),
        ("ap.json", old_run("http://ap.api.test", "failed", [])),
        ("sa.json", old_run("http://sa.api.test", "passed", [])),
    ]
    summary = merge.fleet_summary(merge.shards_from_documents(documents))
    assert (summary["healthy"], summary["failing"]) == (1, 3)
    shared, unexplained = summary["causes"]
    assert shared == {
        "rule": "dns-not-loadbalancer",
        "title": "<host> answers 127.0.10.57, a dead edge",
        "targets": ["http://eu.api.test", "http://us.api.test"],
    }
    assert unexplained["rule"] == merge.NO_CAUSE and unexplained["targets"] == ["http://ap.api.test"]
