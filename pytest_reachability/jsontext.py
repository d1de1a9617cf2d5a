"""JSON read from others and JSON written for others.

``json.loads`` lets two things through that a reader of someone else's bytes (a target's body, an API
server's answer, a results file given to ``merge``) must not meet: a document nested deeper than Python's
recursion limit raises ``RecursionError``, not ``ValueError`` (a 2 kB body of ``[`` is enough), and
``NaN``/``Infinity`` are read as numbers although JSON (RFC 8259) has no such values. ``json.dumps`` writes
those values back, so a results file holding a user's ``float("nan")`` evidence was refused by every strict
reader (JavaScript's ``JSON.parse``, Go, ``jq --seq``).
"""

from __future__ import annotations

import json
import math
from typing import Any


class NotJSON(ValueError):
    """A text ``json.loads`` would read, or crash on, that is not a JSON document we accept."""


def loads(text: str | bytes, *, numbers_only: bool = False) -> Any:
    """``json.loads(text)``, raising :class:`NotJSON` (a ``ValueError``) for a document nested too deeply
    for Python and, with ``numbers_only``, for ``NaN``/``Infinity``. Other decode errors are the usual
    ``json.JSONDecodeError`` (a ``ValueError`` too)."""
    try:
        return json.loads(text, parse_constant=_refuse_constant if numbers_only else None)
    except RecursionError:
        raise NotJSON("nested too deeply to read") from None


def response_json(response: Any) -> Any:
    """``response.json()`` of a requests response, raising :class:`NotJSON` (a ``ValueError``) rather
    than ``RecursionError`` for a body nested too deeply: callers catch ``ValueError`` alone."""
    try:
        return response.json()
    except RecursionError:
        raise NotJSON("nested too deeply to read") from None


def _refuse_constant(name: str) -> Any:
    raise NotJSON(f"{name} is not a JSON number")


def dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps(value, **kwargs)`` that writes JSON: a float that is not finite (a test's evidence,
    a value read leniently from a peer) is written as the string ``"NaN"``, ``"Infinity"`` or
    ``"-Infinity"``. The document is walked only when it holds such a value."""
    try:
        return json.dumps(value, allow_nan=False, **kwargs)
    except ValueError:
        return json.dumps(finite(value), allow_nan=False, **kwargs)


def finite(value: Any, _depth: int = 0) -> Any:
    """``value`` with every float that is not finite replaced by its name as a string (containers copied)."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if _depth > 200:  # deeper than any document this project writes; left for json.dumps to refuse
        return value
    if isinstance(value, dict):
        return {key: finite(item, _depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item, _depth + 1) for item in value]
    return value
