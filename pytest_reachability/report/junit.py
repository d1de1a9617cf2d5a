"""Suite-level JUnit properties: what a JUnit reader cannot tell apart otherwise.

pytest's JUnit XML (xunit2, its ``junit-10.xsd``) allows ``<properties>`` on the ``<testsuite>`` only, and
counts BLOCKED tests as ``skipped`` (their pytest outcome). These properties give the split:
``reachability.blocked`` + ``reachability.skipped`` = the suite's ``skipped`` attribute.
"""

from __future__ import annotations

from ..results import RunResults


def suite_properties(results: RunResults, target: str | None = None) -> list[tuple[str, str]]:
    """(name, value) pairs: target, health score, blocked and plainly skipped counts, blocked per gate."""
    blocked = results.by_outcome("blocked")
    skipped = len(results.by_outcome("skipped")) + len(results.by_outcome("xfailed"))
    health = results.health()
    properties = [("reachability.target", target or "")] if target else []
    properties += [
        ("reachability.health_score", "" if health.score is None else str(health.score)),
        ("reachability.blocked", str(len(blocked))),
        ("reachability.skipped", str(skipped)),
    ]
    per_gate: dict[str, int] = {}
    for test in blocked:
        per_gate[test.blocked_by or "?"] = per_gate.get(test.blocked_by or "?", 0) + 1
    properties += [
        (f"reachability.blocked_by.{gate}", str(count)) for gate, count in sorted(per_gate.items())
    ]
    return properties
