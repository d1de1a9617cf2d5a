"""A diagnosis rule of your own: copy this file to your project's ``conftest.py`` (or a plugin module).

It recognises a fault the built-in rules do not know: the site answers with its maintenance page (503 with
"maintenance" in the body) because a maintenance window was left on. The rule reads the same evidence as
the built-in ones (``facts``: see ``pytest_reachability.diagnosis.Facts``), states only what that evidence
shows, and says which failed checks it explains; the plugin ranks its theory with the others and folds
the generic "answers 503" theory under it when it ranks higher.

    pytest --pyargs pytest_reachability.suites --target https://example.com
    ...
    1. [90%] https://example.com shows its maintenance page (503 "Down for maintenance") on 203.0.113.7
"""

from __future__ import annotations

from pytest_reachability.diagnosis import Facts, Theory

MARKERS = ("maintenance", "be right back", "scheduled downtime")


def maintenance_page(facts: Facts) -> Theory | None:
    """The health check gets the site's maintenance page (503 and a maintenance text in the body)."""
    pages = [
        probe
        for probe in facts.http_probes()
        if probe.get("status") == 503
        and any(marker in str(probe.get("body_excerpt", "")).lower() for marker in MARKERS)
    ]
    if not pages:
        return None
    addresses = sorted({str(probe.get("address")) for probe in pages})
    excerpt = " ".join(str(pages[0].get("body_excerpt", "")).split())[:60]
    theory = Theory(
        rule="maintenance-page",
        title=f"{facts.context.host} shows its maintenance page (503 {excerpt!r}) on {', '.join(addresses)}",
        confidence=0.9,
        evidence=[
            f"GET {probe.get('path')} at {probe.get('address')}: 503, body {excerpt!r}" for probe in pages[:3]
        ],
        confirm=[str(pages[0].get("curl") or f"curl -v https://{facts.context.host}/")],
        fix=["End the maintenance window (turn the maintenance mode off in the load balancer or the app)"],
        subjects=addresses,
    )
    theory.explains = facts.explain(("api-health", "performance"), ["503"])
    return theory


def pytest_reachability_rules(config):
    """The hook the plugin calls for rules of your own: return a list of them."""
    return [maintenance_page]
