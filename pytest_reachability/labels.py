"""Kept importable for code written before label selectors moved to :mod:`pytest_reachability.k8s`."""

from __future__ import annotations

from .k8s import selector_matches, service_selects

__all__ = ["selector_matches", "service_selects"]
