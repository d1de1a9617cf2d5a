"""``--results-json PATH``: the run as one JSON document of a documented, versioned schema.

The schema is described in ``docs/results-schema.md`` and shipped as a JSON Schema,
``pytest_reachability/schemas/results-<version>.schema.json`` (:func:`schema_path`). Readers check
``schema_version``: a document of the same major version is accepted (minor versions only add fields),
any other is refused.

Example::

    write_results_json("reports/run.json", state.results, state.settings, state.theories)
    data = read_results_json("reports/run.json")
    data["health_score"], data["theories"][0]["title"]
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .. import jsontext
from ..atomic import write_atomically
from ..redact import Redactor
from ..results import BUILTIN_SECTIONS, RunResults, iso_utc

SCHEMA_VERSION = "1.2"
SCHEMA_MAJOR = 1
THEORY_FIELDS = ("rule", "title", "confidence", "evidence", "confirm", "fix")
OUTCOMES = ("passed", "failed", "error", "skipped", "blocked")
_OUTCOME_OF = {"xfailed": "skipped", "xpassed": "passed"}


class ResultsFileError(ValueError):
    """A results file that cannot be read: one line naming the file and what is wrong."""


def _section_order(results: RunResults) -> dict[str, int]:
    return {row.name: i for i, row in enumerate(results.sections())}


def _sections(results: RunResults) -> dict[str, Any]:
    sections: dict[str, Any] = {}
    for row in results.sections():
        sections[row.name] = {
            "tests": row.tests,
            "passed": row.passed,
            "failed": row.failed,
            "error": row.error,
            "skipped": row.skipped,
            "blocked": row.blocked,
            "status": row.status,
            "blocked_by": list(row.blocked_by),
            "builtin_index": BUILTIN_SECTIONS.index(row.name) + 1 if row.name in BUILTIN_SECTIONS else None,
        }
    return sections


def _target_entry(
    key: str, namespace: str | None, results: RunResults, theories: Sequence[Any], status: str
) -> dict[str, Any]:
    from .verdict import verdict

    found = verdict(results, theories, key)
    order = _section_order(results)
    tests = sorted(results.tests.values(), key=lambda t: (order.get(t.section, len(order)), t.nodeid))
    return {
        "target": key,
        "namespace": namespace,
        "status": status,
        "verdict": found.line if found is not None else None,
        "health_score": results.health().score,
        "sections": _sections(results),
        "tests": [t.nodeid for t in tests],
        "theories": [_theory(t) for t in theories],
    }


def _targets(results: RunResults, settings: Any, theories: Sequence[Any], fleet: Any) -> list[dict[str, Any]]:
    """Every target with its own sections, status and theories (a run of one target: the whole run)."""
    if fleet is not None:
        return [_target_entry(t.key, t.namespace, t.results, t.theories, t.status) for t in fleet.targets]
    target = getattr(settings, "target", None)
    if target is None or not results.tests:
        return []
    status = results.status()
    return [_target_entry(target.display, getattr(settings, "namespace", None), results, theories, status)]


def build_results(
    results: RunResults,
    settings: Any = None,
    theories: Sequence[Any] | None = None,
    *,
    started: float | None = None,
    duration: float | None = None,
    fleet: Any = None,
) -> dict[str, Any]:
    """The document (plain data, not yet redacted). ``theories`` default to :func:`diagnosis.diagnose`;
    ``fleet`` is the :class:`~pytest_reachability.fleet.Fleet` of a run of several targets."""
    if theories is None:
        from ..diagnosis import diagnose

        theories = diagnose(results, settings)
    target = getattr(settings, "target", None)
    order = _section_order(results)
    tests = sorted(results.tests.values(), key=lambda t: (order.get(t.section, len(order)), t.nodeid))
    targets = _targets(results, settings, theories, fleet)
    shard = getattr(settings, "shard", None)
    healthy = sum(1 for entry in targets if entry["status"] == "PASS")
    return {
        "schema_version": SCHEMA_VERSION,
        "run": {
            "target": target.display if target is not None else None,
            "namespace": getattr(settings, "namespace", None),
            "started": iso_utc(started),
            "duration": None if duration is None else round(duration, 3),
            "sandbox": getattr(settings, "sandbox", None),
            "targets": len(targets),
            **({"shard": {"index": shard[0], "count": shard[1]}} if shard else {}),
            **({"wait": results.wait} if getattr(results, "wait", None) else {}),
        },
        "health_score": results.health().score,
        "sections": _sections(results),
        "tests": [
            {
                "nodeid": t.nodeid,
                "section": t.section,
                "outcome": _OUTCOME_OF.get(t.outcome, t.outcome),
                "blocked_by": t.blocked_by,
                "reason": t.reason,
                "gate": t.gate,
                "duration": round(t.duration, 3),
                "evidence": t.evidence,
                "target": t.target,
            }
            for t in tests
        ],
        "theories": [_theory(t) for t in theories],
        "targets": targets,
        "fleet": fleet.to_dict()
        if fleet is not None
        else {"targets": len(targets), "healthy": healthy, "failing": len(targets) - healthy, "causes": []},
    }


def _theory(theory: Any) -> dict[str, Any]:
    """A theory as the schema has it.

    Since 1.1 with the failed checks it explains, its symptoms and unknowns."""
    data = theory.to_dict() if hasattr(theory, "to_dict") else dict(theory)
    out = {key: data.get(key) for key in THEORY_FIELDS}
    out["explains"] = [str(nodeid) for nodeid in data.get("explains") or []]
    out["symptoms"] = [_theory(symptom) for symptom in data.get("symptoms") or []]
    out["unknowns"] = [str(line) for line in data.get("unknowns") or []]
    return out


def schema_path(version: str = SCHEMA_VERSION) -> Path:
    """The JSON Schema (draft 2020-12) of a results document, shipped with the package."""
    return Path(__file__).resolve().parents[1] / "schemas" / f"results-{version}.schema.json"


def write_json_atomically(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as JSON to ``path`` via a temporary file and rename: never a half-written file."""
    return write_atomically(path, jsontext.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_results_json(
    path: str | os.PathLike[str],
    results: RunResults,
    settings: Any = None,
    theories: Sequence[Any] | None = None,
    *,
    started: float | None = None,
    duration: float | None = None,
    secrets: Iterable[str] = (),
    fleet: Any = None,
) -> Path:
    """Write the run's results document to ``path`` (secrets masked, atomically); returns the path."""
    data = build_results(results, settings, theories, started=started, duration=duration, fleet=fleet)
    return write_json_atomically(path, Redactor(secrets)(data))


def read_results_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A results document, checked.

    A JSON object, a known major ``schema_version``, the top-level keys present."""
    shown = str(path)
    try:
        data = jsontext.loads(Path(path).read_text(encoding="utf-8"), numbers_only=True)
    except FileNotFoundError:
        raise ResultsFileError(f"results file {shown!r} not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ResultsFileError(
            f"results file {shown!r} cannot be read: {getattr(error, 'strerror', None) or error}"
        ) from None
    except json.JSONDecodeError as error:
        raise ResultsFileError(
            f"results file {shown!r} is not JSON: {error.msg} at line {error.lineno}"
        ) from None
    except jsontext.NotJSON as error:
        raise ResultsFileError(f"results file {shown!r} is not JSON: {error}") from None
    if not isinstance(data, dict):
        raise ResultsFileError(f"results file {shown!r} is not a JSON object")
    version = data.get("schema_version")
    try:
        major = int(str(version).split(".", 1)[0])
    except ValueError:
        major = None
    if major != SCHEMA_MAJOR:
        raise ResultsFileError(
            f"results file {shown!r} has schema_version {version!r}; this version reads {SCHEMA_MAJOR}.x"
        )
    missing = [key for key in ("run", "health_score", "sections", "tests", "theories") if key not in data]
    if missing:
        raise ResultsFileError(f"results file {shown!r} lacks {', '.join(missing)}")
    for test in data["tests"]:
        if not isinstance(test, dict) or test.get("outcome") not in OUTCOMES:
            raise ResultsFileError(
                f"results file {shown!r}: test {test.get('nodeid') if isinstance(test, dict) else test!r} "
                "has an unknown outcome"
            )
    return data
