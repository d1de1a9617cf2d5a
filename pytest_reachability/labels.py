"""Kubernetes label selectors, matched the way the API server matches them (no client needed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector in wire form (``matchLabels``, ``matchExpressions``) matches ``labels``; ``{}`` matches all."""
    selector = selector or {}
    if not (selector.get("matchLabels") or {}).items() <= dict(labels).items():
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True
