"""Diagnosis: rules over evidence -> ranked theories (evidence, confirm commands, fix commands).

Example::

    from pytest_reachability.diagnosis import diagnose
    for theory in diagnose(state.results, state.settings):
        explained = len(theory.all_explained())
        print(f"{theory.confidence:.0%} {theory.title} (explains {explained} failed checks)")

Every failed check ends up explained by some theory: the rules' own, or (when none applies) one built from
the check's own evidence (:mod:`fallback`). A theory never prints a kubectl command as a way to confirm
without saying it needs cluster access when the run had none.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..results import RunResults
from .facts import Facts, RunContext
from .fallback import unexplained_failures
from .rank import fold, rank
from .rules import RULES, Rule
from .theory import Theory

__all__ = ["RULES", "Facts", "Rule", "RunContext", "Theory", "diagnose", "diagnose_facts", "evaluate"]


def _run_rule(rule: Rule, facts: Facts) -> Theory | None:
    theory = rule(facts)
    if theory is not None and not isinstance(theory, Theory):
        name = getattr(rule, "__name__", repr(rule))
        raise TypeError(f"diagnosis rule {name} returned {type(theory).__name__}, expected a Theory or None")
    return theory


def _mark_cluster_commands(theory: Theory, facts: Facts) -> None:
    """Without cluster access, a kubectl line says it needs it, and the theory says what was not checked."""
    note = facts.kubectl_note()
    if not note:
        return
    for lines in (theory.confirm, theory.fix, theory.verify):
        for index, line in enumerate(lines):
            if line.lstrip().startswith("kubectl") and "needs cluster access" not in line:
                lines[index] = (
                    line.splitlines()[0]
                    + note
                    + ("\n" + "\n".join(line.splitlines()[1:]) if "\n" in line else "")
                )
    uses_cluster = any(line.lstrip().startswith("kubectl") for line in theory.confirm + theory.fix)
    if uses_cluster and not theory.unknowns:
        namespace = facts.context.namespace or "NAMESPACE"
        theory.unknowns.append(
            f"the cluster was not checked (no cluster access) — {facts.context.kubectl} -n {namespace} get "
            f"pods,svc,endpointslices,ingress -o wide{note}"
        )
    for symptom in theory.symptoms:
        _mark_cluster_commands(symptom, facts)


def evaluate(facts: Facts, rules: Iterable[Rule] = RULES) -> tuple[list[Theory], list[tuple[Theory, str]]]:
    """Every rule over ``facts``: (ranked theories with their symptoms, contradicted theories with why)."""
    theories: list[Theory] = []
    quiet = not facts.failed_sections()
    for rule in rules:
        theory = _run_rule(rule, facts)
        if theory is not None:
            if quiet:
                # Nothing failed: a finding is worth a look, not a root cause.
                theory.confidence = round(theory.confidence / 2, 2)
            theories.append(theory)
    ranked, dropped = rank(theories, facts)
    explained = {nodeid for theory in ranked for nodeid in theory.all_explained()}
    leftovers = unexplained_failures(facts, explained)
    if leftovers:
        ranked = fold(ranked + leftovers)
    for theory in ranked:
        _mark_cluster_commands(theory, facts)
    return ranked, dropped


def diagnose_facts(facts: Facts, extra_rules: Iterable[Rule] = ()) -> list[Theory]:
    return evaluate(facts, (*RULES, *extra_rules))[0]


def diagnose(results: RunResults, settings: Any = None, extra_rules: Iterable[Rule] = ()) -> list[Theory]:
    """Ranked theories (best first) explaining the run's failures; empty when nothing points at a fault.

    ``extra_rules`` are added to the built-in :data:`RULES` (the plugin passes the rules users contribute
    through the ``pytest_reachability_rules`` hook).
    """
    facts = Facts.from_results(results, RunContext.from_settings(settings))
    return diagnose_facts(facts, extra_rules)
