"""One module per protocol, each with the same entry point ``probe(target, settings, **options)``.

:data:`PROBES` is the one registry of them: the fixtures and ``python -m pytest_reachability probe``
call probes through it, so a new protocol is a new module and one line here. Every probe logs each
phase at DEBUG under its module's logger (``pytest_reachability.probes.http``, ...): pytest shows the
records per test under "captured log", and live with ``--log-cli-level=DEBUG``.
"""

from __future__ import annotations

import importlib
from typing import Any

# kind -> module of this package; imported on first use, so loading the plugin does not load every protocol.
PROBES: dict[str, str] = {"dns": "dns", "tcp": "tcp", "tls": "tls", "http": "http"}


def run_probe(kind: str, target: Any, settings: Any, **options: Any) -> Any:
    """Run the ``kind`` probe (``dns``, ``tcp``, ``tls``, ``http``) of ``target`` with ``settings``."""
    if kind not in PROBES:
        raise ValueError(f"unknown probe {kind!r} (known: {', '.join(PROBES)})")
    module = importlib.import_module(f"{__name__}.{PROBES[kind]}")
    return module.probe(target, settings, **options)
