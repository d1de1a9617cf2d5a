"""The hook through which a ``conftest.py`` or a plugin package adds diagnosis rules of its own.

A rule is a callable ``rule(facts) -> Theory | None`` over the same indexed evidence as the built-in rules
(:class:`~pytest_reachability.diagnosis.Facts`); its theories are ranked, folded and printed with theirs.
Example (``examples/diagnosis_rule_conftest.py`` is a complete one)::

    from pytest_reachability.diagnosis import Theory

    def maintenance_page(facts):
        pages = [p for p in facts.http_probes()
                 if p.get("status") == 503 and "maintenance" in p.get("body_excerpt", "")]
        if not pages:
            return None
        theory = Theory("maintenance-page", "the site shows its maintenance page", 0.9,
                        evidence=[f"{p['address']}: 503 maintenance page" for p in pages],
                        confirm=["curl -s https://example.com/health"], fix=["end the maintenance window"])
        theory.explains = facts.explain(("api-health",))
        return theory

    def pytest_reachability_rules(config):
        return [maintenance_page]

A package registers the same hook in a module named by its ``pytest11`` entry point.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest


@pytest.hookspec
def pytest_reachability_rules(config: pytest.Config) -> list[Callable[..., Any]]:
    """Diagnosis rules to run besides the built-in ones: callables ``rule(facts) -> Theory | None``."""


def user_rules(config: pytest.Config) -> list[Callable[..., Any]]:
    """Every rule the run's conftests and plugins contribute, each wrapped so that one that raises is reported
    as a warning and skipped instead of ending the run's reports."""
    rules: list[Callable[..., Any]] = []
    for contributed in config.hook.pytest_reachability_rules(config=config):
        for rule in contributed or []:
            if not callable(rule):
                raise pytest.UsageError(
                    f"pytest_reachability_rules returned {rule!r}, which is not a callable rule"
                )
            rules.append(_guarded(rule))
    return rules


def _guarded(rule: Callable[..., Any]) -> Callable[..., Any]:
    name = getattr(rule, "__qualname__", None) or repr(rule)

    def guarded(facts: Any) -> Any:
        try:
            return rule(facts)
        except Exception as error:  # noqa: BLE001 - a user's rule must not cost the run its reports
            warnings.warn(
                f"diagnosis rule {name} failed and was skipped: {type(error).__name__}: {error}", stacklevel=1
            )
            return None

    guarded.__name__ = getattr(rule, "__name__", "rule")
    return guarded
