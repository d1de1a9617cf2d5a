"""The targets of a run: given (``--target``, ``targets = [...]``), discovered (``--discover``), sharded.

Resolved once per session on the controller, before any xdist worker starts; workers receive the list
(:meth:`TargetSpec.to_dict`) so every process collects the same tests. This module does not import pytest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .config import DEFAULT_PORTS, Settings, SettingsError, TargetSpec, parse_target

__all__ = ["apply_shard", "from_discovered", "resolve_targets", "sandbox_port"]


def apply_shard(targets: Sequence[TargetSpec], shard: tuple[int, int] | None) -> list[TargetSpec]:
    """Shard ``I/N`` of ``targets``: those whose position in the sorted list of keys is ``I - 1`` modulo N.

    Sorted by key, so every machine given the same fleet, in any order, draws the same lines; round-robin,
    so shard sizes differ by at most one. The shards of a fleet are disjoint and together are the fleet.
    """
    if shard is None:
        return list(targets)
    index, count = shard
    ordered = sorted(targets, key=lambda spec: spec.key)
    return [spec for position, spec in enumerate(ordered) if position % count == index - 1]


def from_discovered(found: Any, port: int | None = None) -> TargetSpec | None:
    """A discovered host as a target: https when an Ingress TLS entry covers it, with the Service and
    namespace of its first source. None for a wildcard rule (a pattern, not a name DNS can answer)."""
    if found.wildcard:
        return None
    scheme = "https" if any(source.tls for source in found.sources) else "http"
    netloc = found.host if port is None or port == DEFAULT_PORTS[scheme] else f"{found.host}:{port}"
    first = found.sources[0]
    return TargetSpec(
        parse_target(f"{scheme}://{netloc}"),
        namespace=first.namespace,
        service=first.service,
        origin="discovered",
    )


def sandbox_port(spec: TargetSpec, edge_port: int, scheme: str) -> TargetSpec:
    """A target named without port against the sandbox: its edges all listen on ``edge_port``.

    ``--sandbox fleet --target svc-001.fleet.test`` means the sandbox's host, as a browser pointed at it
    through the sandbox's resolvers would reach it; a port or scheme the user wrote is kept.
    """
    target = spec.target
    if target.port != DEFAULT_PORTS[target.scheme] or _port_written(target.raw):
        return spec
    scheme = target.scheme if target.scheme_explicit else scheme
    credentials = ""
    if target.username is not None:
        from urllib.parse import quote

        credentials = quote(target.username, safe="")
        if target.password is not None:
            credentials += ":" + quote(target.password, safe="")
        credentials += "@"
    moved = parse_target(f"{scheme}://{credentials}{target.url_host}:{edge_port}{target.base_path}")
    return dataclasses.replace(spec, target=moved)


def _port_written(raw: str) -> bool:
    """Whether the text of a target names a port (``host:80`` is a choice, not the default)."""
    rest = raw.split("://", 1)[-1].rsplit("@", 1)[-1].split("/", 1)[0]
    if rest.startswith("["):
        return "]:" in rest
    return ":" in rest


def resolve_targets(
    settings: Settings,
    *,
    discover: Callable[[], Iterable[Any]] | None = None,
    port: int | None = None,
) -> list[TargetSpec]:
    """The run's targets: the given ones, then the discovered ones (a given target wins over a discovered
    one of the same key), sharded last. ``discover`` returns discovered hosts (``discover.discover``);
    ``port`` is the sandbox's edge port for discovered hosts."""
    targets = list(settings.targets)
    if discover is not None:
        known = {spec.key for spec in targets}
        for found in discover():
            spec = from_discovered(found, port)
            if spec is not None and spec.key not in known:
                known.add(spec.key)
                targets.append(spec)
    sharded = apply_shard(targets, settings.shard)
    if settings.shard is not None and targets and not sharded:
        index, count = settings.shard
        raise SettingsError(
            f"--shard {index}/{count}: this shard has no target ({len(targets)} targets in {count} shards)"
        )
    return sharded
