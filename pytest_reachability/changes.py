"""What changed just before it broke: cluster facts with times, and the addresses earlier runs saw.

From the cluster (read-only): the creation time and UID of every Service, Ingress and Deployment of the
namespace, the Deployments' revisions (their ReplicaSets with images), the namespace's recent Events and each
Service's LoadBalancer addresses (:func:`cluster_changes`, evidence ``cluster_changes``). From the history
database: the DNS answers and LoadBalancer addresses each earlier run saw (:func:`addresses_seen` builds them
from a run's evidence for storing; evidence ``address_history`` carries the earlier ones). Together they say
e.g. "Service ``api`` was re-created 12 h ago and its LoadBalancer moved from 127.0.10.57 to 127.0.10.53 (seen
by the run of …); DNS still answers the old address" (:func:`moved_loadbalancers`), and give the reports a
"what changed" timeline (:func:`changes_timeline`).

No pytest here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from html import escape
from typing import Any

__all__ = [
    "addresses_seen",
    "changes_html",
    "changes_markdown",
    "changes_timeline",
    "cluster_changes",
    "describe_age",
    "moved_loadbalancers",
]

RECENT_EVENTS = timedelta(hours=24)
MAX_EVENTS = 50
MAX_TIMELINE_ROWS = 40
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    return str(value)


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00").replace(" UTC", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def describe_age(created: str | None, now: datetime | None = None) -> str:
    """``12 h ago`` / ``3 min ago`` / ``2 d ago`` for an ISO time."""
    moment = _parse(created)
    if moment is None:
        return "at an unknown time"
    seconds = max(0.0, ((now or datetime.now(timezone.utc)) - moment).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def _lb_addresses(service: Any) -> list[str]:
    ingress = getattr(getattr(getattr(service, "status", None), "load_balancer", None), "ingress", None) or []
    return [item.ip or item.hostname for item in ingress if (item.ip or item.hostname)]


_KINDS = (("services", "Service"), ("ingresses", "Ingress"), ("deployments", "Deployment"))
# What cluster_changes() lists side by side: the kinds above, the ReplicaSets and the events.
LISTS = len(_KINDS) + 2


def cluster_changes(
    cluster: Any, namespace: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """The ``cluster_changes`` evidence: objects with creation times and UIDs, revisions, recent Events.

    ``cluster`` is a :class:`pytest_reachability.cluster.Cluster` (GET only). A resource that cannot be
    read (RBAC) is named under ``unreadable`` with the reason; the others are still read.
    """
    now = now or datetime.now(timezone.utc)
    namespace = namespace or cluster.namespace
    data: dict[str, Any] = {
        "namespace": namespace,
        "read_at": _iso(now),
        "objects": [],
        "replica_sets": [],
        "events": [],
        "unreadable": {},
    }
    unreadable = data["unreadable"]
    kinds = _KINDS
    # The five lists are independent: read side by side, so a distant API server costs one round trip.
    with ThreadPoolExecutor(LISTS, thread_name_prefix="reachability-changes") as pool:
        reads = {
            resource: pool.submit(_read_or_note, unreadable, resource, cluster.objects, resource, namespace)
            for resource in (*(resource for resource, _ in kinds), "replicasets")
        }
        reads["events"] = pool.submit(_read_or_note, unreadable, "events", cluster.events, namespace)
    for resource, kind in kinds:
        data["objects"] += [_object_entry(item, kind) for item in reads[resource].result()]
    data["replica_sets"] = [_replica_set_entry(item) for item in reads["replicasets"].result()]
    events = reads["events"].result()
    # Reads noted as refused in the order they are read one by one, whatever order they ended in.
    data["unreadable"] = {
        resource: unreadable[resource]
        for resource in (*(resource for resource, _ in kinds), "replicasets", "events")
        if resource in unreadable
    }
    recent = [
        event
        for event in events
        if (_parse(event.last_seen or event.first_seen) or now) >= now - RECENT_EVENTS
    ]
    data["events"] = [event.to_evidence() for event in recent[-MAX_EVENTS:]]
    return data


def _read_or_note(
    unreadable: dict[str, str], resource: str, read: Callable[..., list[Any]], *args: Any
) -> list[Any]:
    """What ``read(*args)`` returns; when the cluster refuses, nothing, and why under ``unreadable``."""
    from .cluster import ClusterError

    try:
        return read(*args)
    except ClusterError as error:
        unreadable[resource] = error.message
        return []


def _object_entry(item: Any, kind: str) -> dict[str, Any]:
    metadata = item.metadata
    entry = {
        "kind": kind,
        "name": metadata.name,
        "namespace": metadata.namespace,
        "uid": metadata.uid,
        "created": _iso(metadata.creation_timestamp),
    }
    if kind == "Service":
        entry["type"] = getattr(item.spec, "type", None)
        entry["loadbalancer"] = _lb_addresses(item)
    if kind == "Deployment":
        entry["revision"] = (metadata.annotations or {}).get(REVISION_ANNOTATION)
    return entry


def _replica_set_entry(item: Any) -> dict[str, Any]:
    """A ReplicaSet as a Deployment revision: its owner, revision number and images."""
    metadata = item.metadata
    owner = next((ref.name for ref in metadata.owner_references or [] if ref.kind == "Deployment"), None)
    containers = (
        getattr(getattr(getattr(item.spec, "template", None), "spec", None), "containers", None) or []
    )
    return {
        "name": metadata.name,
        "deployment": owner,
        "uid": metadata.uid,
        "created": _iso(metadata.creation_timestamp),
        "revision": (metadata.annotations or {}).get(REVISION_ANNOTATION),
        "images": [container.image for container in containers],
        "replicas": getattr(item.spec, "replicas", None),
    }


# --------------------------------------------------------------------------- addresses a run saw


def addresses_seen(evidence: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, str, str]]:
    """``(kind, name, source, address)`` of the DNS answers and LoadBalancer addresses in a run's
    evidence records."""
    seen: dict[tuple[str, str, str, str], None] = {}
    for record in evidence:
        kind, data = record.get("kind"), record.get("data") or {}
        if kind == "dns" and not data.get("literal"):
            for answer in data.get("answers") or []:
                for address in answer.get("addresses") or []:
                    seen[("dns", str(data.get("name")), str(answer.get("resolver")), str(address))] = None
        elif kind == "service" and data.get("name"):
            for address in (*(data.get("lb_addresses") or ()), *(data.get("external_ips") or ())):
                seen[("loadbalancer", f"{data.get('namespace')}/{data['name']}", "", str(address))] = None
    return list(seen)


def moved_loadbalancers(
    history: Sequence[Mapping[str, Any]],
    current: Mapping[str, Sequence[str]],
    dns_addresses: Sequence[str],
    services: Sequence[Mapping[str, Any]] = (),
) -> list[dict[str, Any]]:
    """LoadBalancers whose address changed since an earlier run, and whether DNS still answers the old one.

    ``history``: :meth:`HistoryStore.addresses_seen` rows (oldest first); ``current``:
    ``namespace/name`` -> the Service's LoadBalancer addresses now; ``services``: ``cluster_changes``
    objects (creation times, UIDs).
    """
    created = {
        f"{entry.get('namespace', '')}/{entry['name']}": entry
        for entry in services
        if entry.get("kind") == "Service"
    }
    moves = []
    for service, now_addresses in current.items():
        earlier = [row for row in history if row["kind"] == "loadbalancer" and row["name"] == service]
        former = [row for row in earlier if row["address"] not in now_addresses]
        if not former or not now_addresses:
            continue
        last = former[-1]
        old = sorted({row["address"] for row in former})
        moves.append(
            {
                "service": service,
                "from": old,
                "to": sorted(now_addresses),
                "seen_by": {"run": last["run_uuid"], "started": last["started_at"]},
                "created": (created.get(service) or {}).get("created"),
                "uid": (created.get(service) or {}).get("uid"),
                "dns_still_answers": sorted(address for address in dns_addresses if address in old),
            }
        )
    return moves


def describe_move(move: Mapping[str, Any], now: datetime | None = None) -> str:
    """One line about a moved LoadBalancer.

    "Service `api` was re-created 12 h ago and its LoadBalancer moved from A to B (seen by …)"."""
    name = move["service"].split("/", 1)[-1]
    created = f" was re-created {describe_age(move['created'], now)} and" if move.get("created") else ""
    seen = move.get("seen_by") or {}
    line = (
        f"Service `{name}`{created} its LoadBalancer moved from {', '.join(move['from'])} to "
        f"{', '.join(move['to'])} "
        f"(the old address seen by the run of {seen.get('started')}, {str(seen.get('run', ''))[:8]})"
    )
    if move.get("dns_still_answers"):
        line += f"; DNS still answers the old address {', '.join(move['dns_still_answers'])}"
    return line


# --------------------------------------------------------------------------- timeline


def changes_timeline(evidence: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """``(UTC time, what happened)`` rows, oldest first.

    From ``cluster_changes`` and ``address_history`` evidence."""
    rows: dict[tuple[str, str], None] = {}
    for record in evidence:
        kind, data = record.get("kind"), record.get("data") or {}
        if kind == "cluster_changes":
            rows.update(dict.fromkeys(_cluster_change_rows(data)))
        elif kind == "address_history":
            rows.update(dict.fromkeys(_address_history_rows(data)))
    ordered = sorted(rows, key=lambda row: _parse(row[0]) or datetime.min.replace(tzinfo=timezone.utc))
    return [(_shown(time), text) for time, text in ordered[-MAX_TIMELINE_ROWS:]]


def _cluster_change_rows(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Objects and ReplicaSets at their creation, Events when last seen."""
    rows = []
    for entry in data.get("objects") or []:
        extra = f", LoadBalancer {', '.join(entry['loadbalancer'])}" if entry.get("loadbalancer") else ""
        rows.append(
            (
                entry.get("created") or "",
                f"{entry['kind']} {entry['name']} created (uid {str(entry.get('uid'))[:8]}{extra})",
            )
        )
    for entry in data.get("replica_sets") or []:
        rows.append(
            (
                entry.get("created") or "",
                f"ReplicaSet {entry['name']} created (Deployment {entry.get('deployment')} "
                f"revision {entry.get('revision')}: "
                f"{', '.join(entry.get('images') or []) or 'no image'})",
            )
        )
    for event in data.get("events") or []:
        rows.append(
            (
                event.get("last_seen") or event.get("first_seen") or "",
                f"{event.get('type')} event {event.get('reason')} on {event.get('object')}: "
                f"{event.get('message')}",
            )
        )
    return rows


def _address_history_rows(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What each earlier run saw (only runs that saw something new), then the LoadBalancers that moved."""
    rows = []
    previous = None
    for (started, run), labels in sorted(_labels_by_run(data.get("rows") or []).items()):
        if labels != previous:
            rows.append((started, f"run {run[:8]} saw {'; '.join(labels)}"))
        previous = labels
    for move in data.get("moves") or []:
        rows.append((data.get("read_at") or "", describe_move(move)))
    return rows


def _labels_by_run(history: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], list[str]]:
    """(started, run) -> the addresses that run saw, in words, each once."""
    by_run: dict[tuple[str, str], list[str]] = {}
    for row in history:
        label = (
            f"DNS {row['name']} → {row['address']}"
            if row["kind"] == "dns"
            else f"LoadBalancer {row['name']} at {row['address']}"
        )
        labels = by_run.setdefault((row["started_at"], row["run_uuid"]), [])
        if label not in labels:
            labels.append(label)
    return by_run


def _shown(value: str) -> str:
    moment = _parse(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment is not None else (value or "?")


def _all_evidence(results: Any) -> list[Mapping[str, Any]]:
    return [record for test in results.tests.values() for record in test.evidence]


def changes_markdown(results: Any) -> list[str]:
    """The incident report's "What changed" part (empty when nothing was read)."""
    rows = changes_timeline(_all_evidence(results))
    if not rows:
        return []
    lines = [
        "## 🔁 What changed (cluster objects, recent events, addresses earlier runs saw)",
        "",
        "| Time | Change |",
        "|:-----|:-------|",
    ]
    return lines + ["| {} | {} |".format(time, text.replace("|", "\\|")) for time, text in rows]


def changes_html(results: Any) -> str:
    """The HTML summary's "What changed" table ("" when nothing was read); text is escaped here."""
    rows = changes_timeline(_all_evidence(results))
    if not rows:
        return ""
    body = "".join(f"<tr><td>{escape(time)}</td><td>{escape(text)}</td></tr>" for time, text in rows)
    return (
        '<h3>What changed</h3><table class="reachability-changes">'
        f"<tr><th>Time</th><th>Change</th></tr>{body}</table>"
    )
