"""Diagnosis: rules over the run's evidence -> ranked theories (evidence, confirm and fix commands).

Example::

    from pytest_reachability.diagnosis import diagnose
    for theory in diagnose(state.results, state.settings):
        print(f"{theory.confidence:.0%} {theory.title}")
"""

from __future__ import annotations

from typing import Any

from ..results import RunResults
from .facts import Facts, RunContext
from .rank import rank
from .rules import RULES, Rule
from .theory import Theory

__all__ = ["RULES", "Facts", "RunContext", "Theory", "diagnose", "diagnose_facts", "evaluate"]


def evaluate(facts: Facts, rules: tuple[Rule, ...] = RULES) -> tuple[list[Theory], list[tuple[Theory, str]]]:
    """Every rule over ``facts``: (ranked theories, contradicted theories with why)."""
    theories: list[Theory] = []
    quiet = not facts.failed_sections()
    for rule in rules:
        theory = rule(facts)
        if theory is not None:
            if quiet:
                # Nothing failed: a finding is worth a look, not a root cause.
                theory.confidence = round(theory.confidence / 2, 2)
            theories.append(theory)
    return rank(theories, facts)


def diagnose_facts(facts: Facts) -> list[Theory]:
    return evaluate(facts)[0]


def diagnose(results: RunResults, settings: Any = None) -> list[Theory]:
    """Ranked theories (best first) explaining the run's failures; empty when nothing points at a fault."""
    facts = Facts.from_results(results, RunContext.from_settings(settings))
    return diagnose_facts(facts)
