"""Merge ``--results-json`` files of several jobs (regions, clusters, fleet shards) into one report.

    python -m pytest_reachability merge eu.json us.json --html merged.html --incident-report merged.md
    python -m pytest_reachability merge shard-1.json shard-2.json shard-3.json --html fleet.html
    python -m pytest_reachability merge --history "$DATABASE_URL" --run-group reachability-fleet-29012345

Every target of every input is one row (a :class:`Shard`): a results document of schema 1.2 contributes
one row per entry of its ``targets`` list (a ``--shard I/N`` run verifies part of a fleet), an older
document one row, its ``run.target``. The same target (display form and namespace) in two inputs is an
error: two shards of one fleet never verify the same target. The merged report starts with the fleet
summary (how many targets are healthy and failing, and the causes shared by several targets), then a
table of every target (health, status, top cause) and a section table per target. Outputs: a
self-contained HTML page (no scripts, no external resources), a GitHub-markdown report, and a merged
JSON document (``kind: reachability-merge``) that ``merge`` also accepts as input.

Causes are joined across inputs by ``(rule, title)``: a fleet run lists in ``fleet.causes`` the top cause
of each failing target, grouped (the title with the host left out), so a cause listed by shard 1 for 5
hosts and by shard 2 for 7 is one cause of 12 hosts in the merge.

Results files are read by ``report.json.read_results_json`` (the schema has one owner); a hand-edited
file with a wrong value type is one ``MergeInputError`` line, not a traceback. Every string shown
passes through ``redact`` once more. This module does not import pytest.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import jsontext
from .atomic import write_atomically
from .redact import redact
from .report.json import SCHEMA_MAJOR, SCHEMA_VERSION, ResultsFileError, read_results_json
from .results import COUNTED_OUTCOMES, SectionCounts, section_status

__all__ = [
    "MERGE_KIND",
    "MergeInputError",
    "Shard",
    "SectionCounts",
    "fleet_summary",
    "load_shard",
    "load_shards",
    "load_targets",
    "shards_from_history",
    "shards_from_documents",
    "read_document",
    "merged_document",
    "render_html",
    "render_markdown",
    "section_table_markdown",
    "write_atomically",
]

MERGE_KIND = "reachability-merge"
NO_TARGET = "(no target)"
NO_CAUSE = "no-cause-found"  # the fleet's group of failing targets no rule explained
MERGE_SCHEMA_VERSION = 1
STATUS_MARK = {"PASS": "✅ PASS", "FAIL": "❌ FAIL", "BLOCKED": "⏸️ BLOCKED", "SKIPPED": "➖ SKIPPED"}
TARGET_STATUSES = ("PASS", "FAIL", "BLOCKED", "SKIPPED")
FAILING_STATUSES = ("FAIL", "BLOCKED")


class MergeInputError(Exception):
    """An input that cannot be merged; ``str()`` is one line naming the file."""


@dataclass
class Shard:
    """One job's results, reduced to what the merged report shows."""

    source: str
    target: str
    namespace: str | None
    started: str | None
    health_score: int | None
    sections: list[SectionCounts]
    tests: list[dict[str, Any]]
    theories: list[dict[str, Any]]
    history: dict[str, Any] | None
    document: dict[str, Any]
    declared_status: str | None = None  # a fleet document's per-target status, else derived
    shard: dict[str, int] | None = None  # the input's run.shard: {"index": I, "count": N}

    @property
    def label(self) -> str:
        return f"{self.target} ({self.namespace})" if self.namespace else self.target

    @property
    def failed(self) -> bool:
        if self.declared_status is not None:
            return self.declared_status in FAILING_STATUSES
        return any(t.get("outcome") in ("failed", "error", "blocked") for t in self.tests) or any(
            s.failed or s.error or s.blocked for s in self.sections
        )

    @property
    def status(self) -> str:
        if self.declared_status is not None:
            return self.declared_status
        if self.failed:
            return "FAIL"
        return "PASS" if any(s.passed for s in self.sections) else "NO CHECKS"

    @property
    def top_cause(self) -> str:
        return str(self.theories[0].get("title") or "") if self.theories else ""

    def counts(self) -> tuple[int, int]:
        """(passed, counted) as the health score counts them."""
        passed = sum(s.passed for s in self.sections)
        counted = sum(s.passed + s.failed + s.error + s.blocked for s in self.sections)
        return passed, counted


def _redact(value: Any) -> Any:
    return redact(value)


def _merged_document(path: Path) -> dict[str, Any] | None:
    """The file as a merged document, or None when it is not one (or not readable JSON)."""
    try:
        document = jsontext.loads(path.read_text(encoding="utf-8"), numbers_only=True)
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return document if isinstance(document, dict) and document.get("kind") == MERGE_KIND else None


def read_document(path: Path) -> dict[str, Any]:
    """A results document (checked by ``read_results_json``) or a merged document.

    A results file, the usual input, is read and parsed once; only a file the results reader refuses is
    looked at again, to accept a merged document.
    """
    try:
        return read_results_json(path)
    except ResultsFileError as error:
        merged = _merged_document(path)
        if merged is not None:
            return merged
        message = _one_line(error)
        raise MergeInputError(message if str(path) in message else f"{path}: {message}") from None


def current_schema_version() -> str:
    """The ``schema_version`` that ``--results-json`` writes."""
    return SCHEMA_VERSION


def schema_version_supported(version: Any) -> bool:
    """Same major version as the writer's (``report.json.SCHEMA_MAJOR``): minor versions only add fields."""
    if version is None or isinstance(version, bool):
        return False
    try:
        return int(str(version).split(".", 1)[0]) == SCHEMA_MAJOR
    except ValueError:
        return False


def load_shards(paths: Sequence[str | Path]) -> list[Shard]:
    """Every target of every file (a merged document contributes all of its inputs' targets)."""
    documents: list[tuple[str, dict[str, Any]]] = []
    for name in paths:
        path = Path(name)
        if not path.exists():
            raise MergeInputError(f"{path}: no such file")
        if not path.is_file():
            raise MergeInputError(f"{path}: not a file")
        document = read_document(path)
        if document.get("kind") == MERGE_KIND:
            if document.get("schema_version") != MERGE_SCHEMA_VERSION:
                raise MergeInputError(
                    f"{path}: merged report schema version {document.get('schema_version')!r} is not "
                    f"supported; expected {MERGE_SCHEMA_VERSION}"
                )
            inner_documents = document.get("shards") or []
            if not isinstance(inner_documents, list):
                raise MergeInputError(f"{path}: shards is {type(inner_documents).__name__}, not a list")
            for index, inner in enumerate(inner_documents):
                if not isinstance(inner, dict):
                    raise MergeInputError(
                        f"{path}#{index + 1}: a shard is {type(inner).__name__}, not an object"
                    )
                documents.append((f"{path}#{index + 1}", inner))
        else:
            documents.append((str(path), document))
    return shards_from_documents(documents)


def shards_from_documents(documents: Sequence[tuple[str, dict[str, Any]]]) -> list[Shard]:
    """One row per target of the ``(source, results document)`` pairs, sorted by target.

    The same target (display form and namespace) in two documents is a MergeInputError."""
    shards: list[Shard] = []
    seen: dict[tuple[str, str | None], str] = {}
    for source, document in documents:
        for shard in _load_checked(document, source):
            key = (shard.target, shard.namespace)
            if shard.target != NO_TARGET and key in seen:
                raise MergeInputError(
                    f"{source}: target {shard.label} is also in {seen[key]}; "
                    "each target belongs to one shard (same --shard count, different index?)"
                )
            seen[key] = source
            shards.append(shard)
    if not documents:
        raise MergeInputError("no results to merge")
    return sorted(shards, key=lambda shard: (shard.target, shard.namespace or ""))


def _load_checked(document: dict[str, Any], source: str) -> list[Shard]:
    """``load_targets``, with a value of a wrong type left unchecked turned into one line naming the file."""
    try:
        return load_targets(document, source)
    except (ValueError, TypeError, AttributeError, KeyError) as error:
        raise MergeInputError(f"{source}: malformed results: {_one_line(error)}") from None


def load_targets(document: dict[str, Any], source: str) -> list[Shard]:
    """One row per verified target: the entries of the ``targets`` list (schema 1.2), else the whole run."""
    targets = document.get("targets")
    if targets is None:
        return [load_shard(document, source)]
    _check_version(document, source)
    if not isinstance(targets, list):
        raise MergeInputError(f"{source}: targets is {type(targets).__name__}, not a list")
    fleet = document.get("fleet")
    causes = fleet.get("causes") if isinstance(fleet, dict) else None
    if fleet is not None and not isinstance(causes, list | None):
        raise MergeInputError(f"{source}: fleet.causes is {type(causes).__name__}, not a list")
    run = document.get("run") if isinstance(document.get("run"), dict) else {}
    tests_by_id = {str(t.get("nodeid")): t for t in document.get("tests") or [] if isinstance(t, dict)}
    shard = _shard_of(run, source)
    return [
        _target_row(
            entry, f"{source}: targets[{index}]", source, document, tests_by_id, run.get("started"), shard
        )
        for index, entry in enumerate(targets)
    ]


def _target_row(
    entry: Any,
    where: str,
    source: str,
    document: dict[str, Any],
    tests_by_id: dict[str, dict[str, Any]],
    started: Any,
    shard: dict[str, int] | None,
) -> Shard:
    """One entry of a document's ``targets`` list as a row; ``where`` names it in errors."""
    if not isinstance(entry, dict) or not entry.get("target"):
        raise MergeInputError(f"{where}: not an object with a target")
    status = entry.get("status")
    if status not in TARGET_STATUSES:
        raise MergeInputError(f"{where}: status is {status!r}, not one of {', '.join(TARGET_STATUSES)}")
    nodeids = entry.get("tests") or []
    if not isinstance(nodeids, list):
        raise MergeInputError(f"{where}: tests is {type(nodeids).__name__}, not a list of node ids")
    tests = [tests_by_id[str(nodeid)] for nodeid in nodeids if str(nodeid) in tests_by_id]
    score = entry.get("health_score")
    return Shard(
        source=source,
        target=str(_redact(str(entry["target"]))),
        namespace=entry.get("namespace"),
        started=started,
        health_score=int(score) if isinstance(score, int | float) else None,
        sections=_sections(entry.get("sections"), tests, f"{source}: {entry['target']}"),
        tests=tests,
        theories=[t for t in entry.get("theories") or [] if isinstance(t, dict)],
        history=entry.get("history") if isinstance(entry.get("history"), dict) else None,
        document=document,
        declared_status=status,
        shard=shard,
    )


def _shard_of(run: dict[str, Any], source: str) -> dict[str, int] | None:
    shard = run.get("shard")
    if not isinstance(shard, dict):
        return None
    index, count = shard.get("index"), shard.get("count")
    if not (isinstance(index, int) and isinstance(count, int) and 1 <= index <= count):
        raise MergeInputError(
            f"{source}: run.shard is {shard!r}, not {{'index': I, 'count': N}} with 1 <= I <= N"
        )
    return {"index": index, "count": count}


def _check_version(document: dict[str, Any], source: str) -> None:
    version = document.get("schema_version")
    if not schema_version_supported(version):
        raise MergeInputError(
            f"{source}: results schema version {version!r} is not supported; expected {SCHEMA_MAJOR}.x"
        )


def load_shard(document: dict[str, Any], source: str) -> Shard:
    """The whole run of one ``--results-json`` document as one row; a wrong schema version is a
    MergeInputError."""
    _check_version(document, source)
    run = document.get("run") if isinstance(document.get("run"), dict) else {}
    tests = [t for t in document.get("tests") or [] if isinstance(t, dict)]
    sections = _sections(document.get("sections"), tests, source)
    score = document.get("health_score")
    if score is None and isinstance(document.get("health"), dict):
        score = document["health"].get("score")
    history = document.get("history") if isinstance(document.get("history"), dict) else None
    theories = [t for t in document.get("theories") or [] if isinstance(t, dict)]
    target = run.get("target") or document.get("target") or NO_TARGET
    return Shard(
        source=source,
        target=str(_redact(str(target))),
        namespace=run.get("namespace"),
        started=run.get("started"),
        health_score=int(score) if isinstance(score, int | float) else None,
        sections=sections,
        tests=tests,
        theories=theories,
        history=history,
        document=document,
        shard=_shard_of(run, source),
    )


def _count(value: Any, source: str, section: str, outcome: str) -> int:
    """A section count as a whole number.

    Anything else is a MergeInputError naming file, section and field."""
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    raise MergeInputError(f"{source}: section {section!r}: {outcome} is {value!r}, not a count")


def _gates(value: Any, source: str, section: str) -> list[str]:
    """``blocked_by`` of a section row: a list of section names (or absent)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise MergeInputError(
            f"{source}: section {section!r}: blocked_by is {value!r}, not a list of sections"
        )
    return [str(gate) for gate in value]


def _sections(raw: Any, tests: list[dict[str, Any]], source: str) -> list[SectionCounts]:
    """Sections as the JSON gives them (a mapping name -> counts, or a list of rows), else from the tests."""
    rows: list[SectionCounts] = []
    if isinstance(raw, dict):
        items = list(raw.items())
    elif isinstance(raw, list):
        items = [(row.get("name") or row.get("section"), row) for row in raw if isinstance(row, dict)]
    else:
        items = []
    for name, counts in items:
        if not name or not isinstance(counts, dict):
            continue
        row = SectionCounts(str(name), blocked_by=tuple(_gates(counts.get("blocked_by"), source, str(name))))
        for outcome in (*COUNTED_OUTCOMES, "xfailed", "xpassed"):
            row.count(outcome, times=_count(counts.get(outcome), source, row.name, outcome))
        rows.append(row)
    if rows or not tests:
        _fill_blocked_by(rows, tests)
        return rows
    by_name: dict[str, SectionCounts] = {}
    for test in tests:
        name = str(test.get("section") or "other")
        by_name.setdefault(name, SectionCounts(name)).count(test.get("outcome"))
    rows = list(by_name.values())
    _fill_blocked_by(rows, tests)
    return rows


def _fill_blocked_by(rows: list[SectionCounts], tests: list[dict[str, Any]]) -> None:
    by_name = {row.name: row for row in rows}
    for test in tests:
        row = by_name.get(str(test.get("section")))
        if row is not None and test.get("blocked_by"):
            row.count(None, blocked_by=str(test["blocked_by"]))


def shards_from_history(url: str, group: str) -> list[Shard]:
    """The rows a run group stored in the history (every target of every shard of a sharded Job), as
    results documents of one target each: sections, outcomes, health, status and top cause.

    What the history does not keep is not shown: evidence, and theories beyond each target's top one
    (grouped across targets by its title with the target's host left out)."""
    from .history import HistoryError, format_time, open_history, sqlite_path

    try:
        if not re.match(r"^postgres(ql)?://", url.strip(), re.IGNORECASE) and not sqlite_path(url).is_file():
            raise MergeInputError(f"history database {sqlite_path(url)}: no such file")
        store = open_history(url, migrate=False)
    except HistoryError as error:
        raise MergeInputError(str(error)) from None
    with store:
        try:
            version = store.schema_version()
            if version < 4:
                raise MergeInputError(
                    f"history database {store.where}: schema version {version} stores no run groups "
                    "(a run of this version adds them)"
                )
            runs = store.runs_of_group(group)
        except MergeInputError:
            raise
        except Exception as error:  # noqa: BLE001 - a database error is one line
            raise MergeInputError(f"history database {store.where}: {_one_line(error)}") from None
    if not runs:
        raise MergeInputError(f"history database {store.where}: no runs of run group {group!r}")
    documents = []
    for run in runs:
        shard = {"index": run.shard_index, "count": run.shard_count} if run.shard_index else None
        totals = [
            sum(getattr(row, name) for row in run.sections)
            for name in ("passed", "failed", "error", "blocked")
        ]
        status = section_status(*totals)
        tests = [
            {
                "nodeid": nodeid,
                "section": section,
                "outcome": _HISTORY_OUTCOME.get(outcome, outcome),
                "blocked_by": None,
                "reason": reason,
                "target": run.target,
            }
            for nodeid, (section, outcome, reason) in run.tests.items()
        ]
        theories = [{"rule": "", "title": run.top_theory}] if run.top_theory else []
        rule, title = target_cause(run.target, theories[0] if theories else None)
        cause = {"rule": rule, "title": title}
        entry = {
            "target": run.target,
            "namespace": run.namespace,
            "status": status,
            "health_score": run.health_score,
            "sections": {row.name: _section_object(row) for row in run.sections},
            "tests": [test["nodeid"] for test in tests],
            "theories": theories,
        }
        documents.append(
            (
                group,
                {
                    "schema_version": SCHEMA_VERSION,
                    "run": {
                        "target": run.target,
                        "namespace": run.namespace,
                        "started": format_time(run.started_at),
                        **({"shard": shard} if shard else {}),
                    },
                    "health_score": run.health_score,
                    "sections": entry["sections"],
                    "tests": tests,
                    "theories": theories,
                    "targets": [entry],
                    "fleet": {"causes": [] if status == "PASS" else [{**cause, "targets": [run.target]}]},
                },
            )
        )
    return shards_from_documents(documents)


_HISTORY_OUTCOME = {"xfailed": "skipped", "xpassed": "passed"}


# --------------------------------------------------------------------------- the fleet


def _documents(shards: Sequence[Shard]) -> list[tuple[str, dict[str, Any]]]:
    """The input documents behind the rows, once each, in input order."""
    found: dict[int, tuple[str, dict[str, Any]]] = {}
    for shard in sorted(shards, key=lambda s: s.source):
        found.setdefault(id(shard.document), (shard.source, shard.document))
    return list(found.values())


def shared_causes(shards: Sequence[Shard]) -> list[dict[str, Any]]:
    """The inputs' ``fleet.causes`` joined by ``(rule, title)``: a cause listed by two shards is one cause
    with the targets of both. Causes of most targets first (the "no cause found" group last); each
    cause's targets in the rows' order."""
    order = {shard.target: index for index, shard in enumerate(shards)}
    groups: dict[tuple[str, str], list[str]] = {}

    def add(rule: Any, title: Any, target: Any) -> None:
        members = groups.setdefault((str(rule or ""), str(_redact(str(title or "")))), [])
        shown = str(_redact(str(target)))
        if shown not in members:
            members.append(shown)

    for _, document in _documents(shards):
        fleet = document.get("fleet") if isinstance(document.get("fleet"), dict) else {}
        for cause in fleet.get("causes") or []:
            if isinstance(cause, dict) and isinstance(cause.get("targets"), list):
                for target in cause["targets"]:
                    add(cause.get("rule"), cause.get("title"), target)
    for shard in shards:  # an older document lists no causes: its top theory is its target's
        if "targets" not in shard.document and shard.status not in ("PASS", "NO CHECKS"):
            add(*target_cause(shard.target, shard.theories[0] if shard.theories else None), shard.target)
    joined = [
        {"rule": rule, "title": title, "targets": sorted(targets, key=lambda t: order.get(t, len(order)))}
        for (rule, title), targets in groups.items()
    ]
    return sorted(joined, key=lambda c: (c["rule"] == NO_CAUSE, -len(c["targets"]), c["title"], c["rule"]))


def target_cause(target: str, theory: dict[str, Any] | None) -> tuple[str, str]:
    """A failing target's cause as a fleet run groups them: its top theory's rule and title, the target's
    host in the title replaced by ``<host>`` (so one cause of many hosts has one title); no theory is
    the no-cause group."""
    from .history import host_and_path

    if not theory or not theory.get("title"):
        return NO_CAUSE, "no rule found a cause: see the target's failed checks"
    host = host_and_path(target)[0]
    title = str(theory["title"])
    if host:
        title = re.sub(re.escape(host), "<host>", title, flags=re.IGNORECASE)
    return str(theory.get("rule") or ""), title


def cluster_wide_failures(shards: Sequence[Shard]) -> list[tuple[str, dict[str, Any]]]:
    """Failed checks that belong to no target (``"target": null``: run once per input), with their input."""
    failures = []
    for source, document in _documents(shards):
        if "targets" not in document:
            continue  # an older document's tests all belong to its one target
        for test in document.get("tests") or []:
            if isinstance(test, dict) and "target" in test and test["target"] is None:
                if test.get("outcome") in ("failed", "error"):
                    failures.append((source, test))
    return failures


def fleet_summary(shards: Sequence[Shard]) -> dict[str, Any]:
    """``{"targets", "healthy", "failing", "causes"}`` over every row, as a fleet run's ``fleet`` object
    counts them: healthy is PASS, failing every other status."""
    return {
        "targets": len(shards),
        "healthy": sum(1 for shard in shards if shard.status == "PASS"),
        "failing": sum(1 for shard in shards if shard.status != "PASS"),
        "causes": shared_causes(shards),
    }


def merge_failed(shards: Sequence[Shard]) -> bool:
    """A target failed, or a check that belongs to no target did."""
    return any(shard.failed for shard in shards) or bool(cluster_wide_failures(shards))


def _fleet_lines(shards: Sequence[Shard]) -> tuple[str, list[str], list[str]]:
    """The fleet summary as (headline, one line per shared cause, one line per failed cluster-wide check)."""
    fleet = fleet_summary(shards)
    headline = f"{fleet['targets']} target(s): {fleet['healthy']} healthy, {fleet['failing']} failing"
    causes = []
    for cause in fleet["causes"]:
        shown = ", ".join(cause["targets"][:20]) + (", ..." if len(cause["targets"]) > 20 else "")
        rule = f" ({cause['rule']})" if cause["rule"] else ""
        count = len(cause["targets"])
        causes.append(f"{cause['title']}{rule}: {count} target{'' if count == 1 else 's'}: {shown}")
    cluster = [
        f"{test.get('nodeid', '')} ({Path(source).name}): {test.get('reason') or test.get('outcome')}"
        for source, test in cluster_wide_failures(shards)
    ]
    return headline, causes, cluster


def _shard_text(shard: Shard) -> str:
    """Where a row came from: the file, and the shard when the run was one."""
    name = Path(shard.source).name
    return f"{name} (shard {shard.shard['index']}/{shard.shard['count']})" if shard.shard else name


# --------------------------------------------------------------------------- rendering


def _status_text(row: SectionCounts) -> str:
    text = STATUS_MARK.get(row.status, row.status)
    if row.status == "BLOCKED" and row.blocked_by:
        text += f" by {', '.join(row.blocked_by)}"
    return text


def _cell(text: Any) -> str:
    """A markdown table cell: pipes escaped, one line."""
    return " ".join(str(_redact(str(text))).split()).replace("|", "\\|")


def section_table_markdown(sections: Iterable[SectionCounts]) -> list[str]:
    """The section table as GitHub-markdown lines."""
    lines = [
        "| Section | Tests | Passed | Failed | Blocked | Skipped | Status |",
        "|:--|--:|--:|--:|--:|--:|:--|",
    ]
    for row in sections:
        lines.append(
            f"| {_cell(row.name)} | {row.tests} | {row.passed} | {row.failed + row.error} | {row.blocked} | "
            f"{row.skipped} | {_cell(_status_text(row))} |"
        )
    return lines


def _score(score: int | None) -> str:
    return "n/a" if score is None else f"{score}%"


def overall_health(shards: Sequence[Shard]) -> int | None:
    passed = counted = 0
    for shard in shards:
        p, c = shard.counts()
        passed, counted = passed + p, counted + c
    return None if counted == 0 else round(100 * passed / counted)


def _history_line(shard: Shard) -> str | None:
    if not shard.history:
        return None
    from .history import describe_summary

    return describe_summary(shard.history)


def render_markdown(shards: Sequence[Shard], *, title: str = "Reachability report (merged)") -> str:
    """One markdown report: an overview of every shard, then each shard's section table and theories."""
    failing = sum(1 for shard in shards if shard.status != "PASS")
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    headline, causes, cluster = _fleet_lines(shards)
    lines = [
        f"# {title}",
        "",
        f"**Generated:** {now}  ",
        f"**Targets:** {len(shards)} ({failing} failing)  ",
        f"**Overall health:** {_score(overall_health(shards))}",
        "",
        "## Fleet",
        "",
        f"**{_cell(headline)}**",
    ]
    if causes:
        lines += ["", "**Causes**", "", *(f"- {_cell(line)}" for line in causes)]
    if cluster:
        lines += ["", "**Failed cluster-wide checks**", "", *(f"- {_cell(line)}" for line in cluster[:50])]
    lines += [
        "",
        "## Overview",
        "",
        "| Target | Health | Status | Top cause | Source |",
        "|:--|--:|:--|:--|:--|",
    ]
    for shard in shards:
        lines.append(
            f"| {_cell(shard.label)} | {_score(shard.health_score)} | "
            f"{STATUS_MARK.get(shard.status, shard.status)} | {_cell(shard.top_cause) or '—'} | "
            f"{_cell(_shard_text(shard))} |"
        )
    for shard in shards:
        lines += _shard_markdown(shard)
    return "\n".join(lines) + "\n"


def _shard_markdown(shard: Shard) -> list[str]:
    """One shard's part of the merged markdown: when, history, section table, theories, failed and blocked."""
    lines = ["", f"## {_cell(shard.label)}", ""]
    if shard.started:
        lines += [f"Started {_cell(shard.started)}; health {_score(shard.health_score)}.", ""]
    history_line = _history_line(shard)
    if history_line:
        lines += [_cell(history_line), ""]
    lines += section_table_markdown(shard.sections)
    if shard.theories:
        lines += ["", "**Ranked theories**", ""]
        for rank, theory in enumerate(shard.theories[:5], start=1):
            lines += _theory_markdown(rank, theory)
    blocked = [t for t in shard.tests if t.get("outcome") == "blocked"]
    failing = [t for t in shard.tests if t.get("outcome") in ("failed", "error")]
    if failing:
        lines += ["", "**Failed**", ""]
        lines += [
            f"- `{_cell(t.get('nodeid', '')).replace('`', '')}`: {_cell(t.get('reason', ''))}"
            for t in failing[:50]
        ]
    if blocked:
        lines += [
            "",
            f"**Blocked:** {len(blocked)} test(s), by "
            f"{', '.join(sorted({str(t.get('blocked_by')) for t in blocked}))}",
        ]
    return lines


def _theory_markdown(rank: int, theory: dict[str, Any]) -> list[str]:
    confidence = theory.get("confidence")
    shown = f" ({round(float(confidence) * 100)}%)" if isinstance(confidence, int | float) else ""
    lines = [f"{rank}. {_cell(theory.get('title', ''))}{shown}"]
    lines += [f"   - {_cell(evidence)}" for evidence in (theory.get("evidence") or [])[:3]]
    confirm = theory.get("confirm") or []
    if confirm:
        lines.append(f"   - confirm: `{_cell(confirm[0]).replace('`', '')}`")
    return lines


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1f2328;max-width:72rem}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #d0d7de;padding-bottom:.3rem}
table{border-collapse:collapse;margin:.5rem 0 1rem}\
th,td{border:1px solid #d0d7de;padding:.3rem .6rem;text-align:left}
td.n{text-align:right}th{background:#f6f8fa}.PASS{color:#1a7f37}.FAIL{color:#cf222e;font-weight:600}
.BLOCKED{color:#9a6700}.SKIPPED{color:#656d76}.muted{color:#656d76}li{margin:.2rem 0}\
code{background:#f6f8fa;padding:0 .2rem}
"""


def _e(text: Any) -> str:
    return html.escape(str(_redact(str(text))), quote=True)


def render_html(shards: Sequence[Shard], *, title: str = "Reachability report (merged)") -> str:
    """A self-contained HTML page: inline CSS, no scripts, every value escaped."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="muted">Generated {now}; {len(shards)} target(s); overall health '
        f"{_score(overall_health(shards))}.</p>",
        *_fleet_html(shards),
        '<table id="overview"><thead><tr><th>Target</th><th>Health</th><th>Status</th><th>Top '
        "cause</th><th>Source</th></tr></thead><tbody>",
    ]
    for index, shard in enumerate(shards):
        status = shard.status
        out.append(
            f'<tr><td><a href="#shard-{index + 1}">{_e(shard.label)}</a></td><td '
            f'class="n">{_score(shard.health_score)}</td>'
            f'<td class="{_e(status.split()[0])}">{_e(status)}</td><td>{_e(shard.top_cause) or "—"}</td>'
            f"<td>{_e(_shard_text(shard))}</td></tr>"
        )
    out.append("</tbody></table>")
    for index, shard in enumerate(shards):
        out.append(f'<section class="shard" id="shard-{index + 1}"><h2>{_e(shard.label)}</h2>')
        meta = [f"health {_score(shard.health_score)}"]
        if shard.started:
            meta.insert(0, f"started {_e(shard.started)}")
        out.append(f'<p class="muted">{"; ".join(meta)}</p>')
        history_line = _history_line(shard)
        if history_line:
            out.append(f'<p class="history">{_e(history_line)}</p>')
        out.append(
            '<table class="sections"><thead><tr><th>Section</th><th>Tests</th><th>Passed</th><th>Failed</th>'
            "<th>Blocked</th><th>Skipped</th><th>Status</th></tr></thead><tbody>"
        )
        for row in shard.sections:
            status = row.status + (
                f" by {', '.join(row.blocked_by)}" if row.status == "BLOCKED" and row.blocked_by else ""
            )
            out.append(
                f'<tr><td>{_e(row.name)}</td><td class="n">{row.tests}</td><td class="n">{row.passed}</td>'
                f'<td class="n">{row.failed + row.error}</td><td class="n">{row.blocked}</td><td '
                f'class="n">{row.skipped}</td>'
                f'<td class="{row.status}">{_e(status)}</td></tr>'
            )
        out.append("</tbody></table>")
        if shard.theories:
            out.append('<h3>Ranked theories</h3><ol class="theories">')
            for theory in shard.theories[:5]:
                confidence = theory.get("confidence")
                shown = f" ({round(float(confidence) * 100)}%)" if isinstance(confidence, int | float) else ""
                evidence = "".join(f"<li>{_e(line)}</li>" for line in (theory.get("evidence") or [])[:3])
                out.append(
                    f"<li><strong>{_e(theory.get('title', ''))}</strong>{shown}<ul>{evidence}</ul></li>"
                )
            out.append("</ol>")
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _fleet_html(shards: Sequence[Shard]) -> list[str]:
    headline, causes, cluster = _fleet_lines(shards)
    out = ['<div id="fleet">', f"<h2>Fleet</h2><p><strong>{_e(headline)}</strong></p>"]
    if causes:
        out.append('<h3>Causes</h3><ul class="causes">')
        out += [f"<li>{_e(line)}</li>" for line in causes]
        out.append("</ul>")
    if cluster:
        out.append('<h3>Failed cluster-wide checks</h3><ul class="cluster">')
        out += [f"<li>{_e(line)}</li>" for line in cluster[:50]]
        out.append("</ul>")
    out.append("</div>")
    return out


def _section_object(row: SectionCounts) -> dict[str, Any]:
    """A section row with the fields of the results document's section objects."""
    counts = {name: getattr(row, name) for name in ("tests", *COUNTED_OUTCOMES)}
    return {**counts, "status": row.status, "blocked_by": list(row.blocked_by)}


def merged_document(shards: Sequence[Shard]) -> dict[str, Any]:
    """The merged JSON: the fleet summary, one row per target, and every input's original document."""
    return {
        "kind": MERGE_KIND,
        "schema_version": MERGE_SCHEMA_VERSION,
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "health_score": overall_health(shards),
        "fleet": fleet_summary(shards),
        "targets": [
            {
                "target": s.target,
                "namespace": s.namespace,
                "health_score": s.health_score,
                "status": s.status,
                "top_cause": s.top_cause or None,
                "sections": {row.name: _section_object(row) for row in s.sections},
                "tests": [str(t.get("nodeid")) for t in s.tests],
                "source": s.source,
                "shard": s.shard,
            }
            for s in shards
        ],
        "shards": [_redact(document) for _, document in _documents(shards)],
    }


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__
