"""Sandbox scenarios: a YAML file describing one world to verify against.

Schema (every key except ``name``, ``description``, ``target``, ``dns`` is optional)::

    name: incident-2025-12-08          # [a-z0-9.-], conventionally the file name without .yaml
    description: one line              # shown by `python -m pytest_reachability.sandbox --list`
    base: healthy                      # start from another scenario (shipped name or path), see below
    target: {host: 97v.test, scheme: http}     # scheme http|https; the URL gets the edges' shared port
    namespace: production              # default production
    dns:                               # one DNS server per resolver, in this order
      primary:
        records:                       # name -> one record spec:
          97v.test: {A: [127.0.10.57]} #   A / AAAA (lists of addresses), CNAME (a name), TXT (list of
                                       #   strings), optional ttl (seconds, default 300)
          gone.test: {rcode: NXDOMAIN} #   or rcode NXDOMAIN | SERVFAIL | REFUSED
          empty.test: {no_answer: true}  # or NOERROR with no answer
          slow.test: {A: [127.0.10.9], delay_ms: 3000}   # delay_ms may accompany any of the above
          signed.test: {rcode: SERVFAIL, ede: [{code: 7, text: "signature expired"}]}
          #   ede (RFC 8914 extended DNS errors, to queries with EDNS) may accompany any of the above too
          "*.apps.test": {A: [127.0.10.53]}  # a wildcard (RFC 4592), see below
    edges:                             # addresses in 127.0.0.0/8 except 127.0.0.53, or ::1;
                                       # all share one port
      - {address: 127.0.10.53, behaviour: healthy, hosts: [97v.test]}  # other Host headers get 404
      - {address: 127.0.10.57, behaviour: empty_reply}
      - {address: 127.0.10.60, behaviour: {http_status: 503}}
      - {address: 127.0.10.61, behaviour: {slow: 300ms}}               # ms or s
      - {address: 127.0.10.62, behaviour: healthy, tls: expired}
      - {address: 127.0.10.69, behaviour: healthy, tls: good, plain_http: true, hosts: [a.test, b.test]}
      - {address: 127.0.10.63, behaviour: blackhole}                   # SYNs dropped: connect times out
      - address: 127.0.10.64
        behaviour: {redirect: {location: "https://97v.test:{port}/health", status: 301}}
      - {address: 127.0.10.65, behaviour: {intermittent: {share: 0.25, fail_with: 503}}}
      - {address: "::1", behaviour: healthy}                           # the one IPv6 edge (see below)
      - {address: 127.0.10.67, behaviour: {http_status: 429}, headers: {Retry-After: 30}}
                                       # headers are sent on every answer
      - {address: 127.0.10.68, behaviour: {http_status: 502}, server: nginx}   # nginx's HTML error pages
      - address: 127.0.10.66
        behaviour: healthy
        health: {status: 503, body: {status: DOWN, components: {db: {status: DOWN}}}}
      # other behaviours: refuse, reset_mid_body, hang, garbage (see edges.py)
    in_cluster: {behaviour: healthy, health: {body: {status: fail}}}   # what the API server's service
                                       # proxy reaches behind ready pods (``health`` as for an edge)
    kubernetes:
      objects: [...]                   # ordinary manifests; Pods carry status; Secrets carry no data
      logs: {production/api-847495fbc4-686tk: "INFO: ...\\n"}   # namespace/pod -> log text
      deny: [{verb: list, resource: secrets}]                  # answered 403 by the API server
      remove: [Ingress/production/api]  # only with base: drop base objects (Kind/name if cluster-wide)
    application:                       # the application sections' configuration, the same tables as
      database: {field: dependencies.database.status, expect: ok}   # [tool.reachability.<table>]
      results-storage: {write-path: /api/v1/results, read-path: "/api/v1/results/${id}"}
    postgres: true                     # run a real PostgreSQL for the API where the machine has one
                                       # (default true; false keeps the database simulated), or a state:
    postgres: {state: slow, delay: 400ms}   # running | down | slow | wrong_password | missing_database
    latency: 50ms                      # one way, added to every DNS server, edge and API server; or
                                       # {dns: 50ms, edges: 20ms, apiserver: 80ms} (missing parts: 0)
    expect:                            # what the diagnosis must find (the corpus test and --evaluate)
      top: dns-not-loadbalancer        # the top theory's rule, or null for a healthy world
      failing: [dns, api-health]       # exactly the sections that fail
      may_fail: [performance]          # sections allowed to fail too (timing-dependent checks)
      cluster: false                   # judge a run without cluster access (no kubeconfig; default true)

Edge behaviours, beyond the plain ones:

* ``blackhole``: the address and port are bound but never answer a SYN (a real DROP: an nftables rule in
  the sandbox's network namespace drops TCP to exactly that address and port in the input hook), so a
  client's connect times out (curl 28), as behind a firewall that drops. On loopback no socket trick does
  this (a SYN to a bound, non-listening socket gets an RST; a full listen backlog still completes the
  handshake on Linux), so it needs root (CAP_NET_ADMIN) and the ``nft`` tool; without them starting the
  sandbox fails with one line saying so. The rule lives in one nft table named after the sandbox's process
  and port, removed on stop; tables left by a killed sandbox are removed by the next one to start.
* ``{redirect: {location: URL, status: 301}}``: every request is answered with that status and Location
  (``{host}`` and ``{port}`` in the URL are replaced by the target's host and the edges' port); the scheme
  of the Location is the edge's to choose, so http -> https and https -> http redirects and loops
  (a Location pointing back at itself) are all written this way.
* ``{intermittent: {share: 0.25, fail_with: 503}}``: that share of requests fails, deterministically (the
  n-th request fails when ``floor((n + 1) * share)`` grows), with an HTTP status or ``empty_reply`` /
  ``reset_mid_body``; the others are served healthy.

``server: nginx`` makes an edge answer like an ingress-nginx controller: every response carries
``Server: nginx`` and every error status (its behaviour's, an intermittent failure, the 404 for a host
it does not serve, the "default backend") has nginx's own HTML page (``<title>502 Bad Gateway</title>``)
instead of the API's JSON.
``headers`` adds those headers to every response of the edge (``Retry-After`` beside a 429 or 503).

``health: {path: /health, status: 200, body: ...}`` on an edge (or on ``in_cluster``) replaces what that
edge answers on the health path (a body mapping is sent as JSON), to write health bodies in any shape
(IETF health+json, Spring Boot actuator, flat) and any status.

IPv6: only ``::1`` is a loopback address, so a scenario has at most one IPv6 edge, ``::1``, sharing the
port of the others; AAAA records may point at ``::1`` or at addresses no edge serves (a client then
meets "no route" or a timeout, as for a stale AAAA record).

TLS (``tls`` of an edge): ``good``, ``expired``, ``wrong_host``, ``untrusted`` (signed by a CA the client
does not trust), ``intermediate`` (signed by an intermediate CA, served with the full chain),
``missing_intermediate`` (signed by the intermediate, served without it: clients trusting only the root
cannot verify it), ``not_yet_valid`` (``notBefore`` tomorrow) and ``wildcard_parent`` (only ``*.`` and the
host's parent's parent, e.g. ``*.shop.test`` for ``pay.eu.shop.test``: one label too high to match).

An edge with ``tls`` and ``hosts`` serves each of those hosts its own certificate of the edge's kind, chosen
by the SNI name of the handshake, as an ingress controller picks the Secret of the Ingress ``spec.tls`` entry
listing the host (``expired`` is then expired for every host behind that edge); a handshake naming no host or
another one gets the certificate for the scenario's target. ``tls_hosts: {expired: [a.test, b.test]}`` gives
those hosts of the edge one certificate of another kind naming them all (one Secret, expired, behind several
hosts of a controller). ``plain_http: true`` beside ``tls`` answers plain
HTTP on the same port as well (a controller's port 80 beside its 443, folded into the sandbox's one port):
the first byte of a connection tells a TLS ClientHello (0x16) from a request line.

Wildcard records (``*.apps.test``) answer as RFC 4592 says: for a name that does not exist, whose closest
existing ancestor (a record's owner or an empty non-terminal above one) is the wildcard's parent, the
wildcard's data is synthesised under the name asked (``x.apps.test``, ``a.b.apps.test``); not for the parent
itself (``apps.test``), not for a name with a record of its own (an explicit record wins), and not under one
(``x.api.apps.test`` when ``api.apps.test`` exists). A name that owns nothing but has records below it (an
empty non-terminal) blocks the wildcard as well; like every name without records it answers NXDOMAIN.

``latency`` adds a one-way delay in user space (there is no netem here), so each exchange costs a round trip
(twice the delay) more: a DNS answer (UDP or TCP) is sent that much later, plus one round trip when a TCP
connection is accepted; an edge waits a round trip after accepting a connection (the TCP handshake the
kernel already completed), one more before its side of a TLS handshake and one before each answer; the API
server likewise (TCP, TLS, each response). A client's own ``connect()`` still returns at once: the cost of
the handshake shows in its first answer. The embedded API server only: a real kube-apiserver has none.

``postgres`` as a state (it needs PostgreSQL's server binaries, like ``postgres: true``): ``down`` gives
the API and the exported DSN an address where nothing listens (connection refused); ``slow`` puts a proxy in
front of the server that holds every answer for ``delay``; ``wrong_password`` hands both a DSN whose
password the server refuses; ``missing_database`` a DSN naming a database that does not exist.

In manifests, a time field (a key ending in ``Timestamp``, ``Time`` or ``At``, or like ``timeAdded``)
may be written relative to the moment the scenario is loaded: ``creationTimestamp: -12h`` (units d, h,
m, s; ``-2d21h``), so ``kubectl`` shows the ages the scenario means whenever it runs.

With ``base`` the scenario is an overlay: ``target``, ``namespace``, ``in_cluster``, ``postgres`` and ``deny``
replace the base's; ``application`` merges as a JSON merge patch (a table set to ``null`` is removed);
``dns`` merges resolvers by name and records by name (a record or resolver set to ``null`` is
removed); ``edges`` merge by address (an entry replaces the base's edge at that address); ``logs``
merge by key (``null`` removes); ``objects`` merge by kind, namespace and name as a JSON merge patch
(RFC 7386: mappings merge, ``null`` deletes a key, lists replace), new objects are appended.

Every LoadBalancer address in a Service's or Ingress's ``status.loadBalancer.ingress`` must be one of the
scenario's edges, so a client reaching that address meets the behaviour the scenario promises.

Every manifest is validated against the official Kubernetes client's model of its kind (types of every
known field, required fields), as the API server would: a wrong type anywhere is a schema error.

A schema error is one line, ``<file>: <path.in.file>: expected <what>, got <what>``
(:class:`ScenarioError`, a ``ValueError``).
"""

from __future__ import annotations

import copy
import datetime
import ipaddress
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..results import BUILTIN_SECTIONS
from .certs import TLS_KINDS

SCENARIOS_DIR = Path(__file__).with_name("scenarios")

BEHAVIOUR_KINDS = (
    "healthy",
    "empty_reply",
    "refuse",
    "reset_mid_body",
    "hang",
    "garbage",
    "blackhole",
    "http_status",
    "slow",
    "redirect",
    "intermittent",
)
ARGUMENT_BEHAVIOURS = ("http_status", "slow", "redirect", "intermittent")
SIMPLE_BEHAVIOURS = tuple(kind for kind in BEHAVIOUR_KINDS if kind not in ARGUMENT_BEHAVIOURS)
INTERMITTENT_FAILURES = ("empty_reply", "reset_mid_body")
EDGE_SERVERS = ("nginx",)
LATENCY_PARTS = ("dns", "edges", "apiserver")
MAX_LATENCY = 2.0  # one way, seconds: a run against the other side of the planet is 0.15
DATABASE_STATES = ("running", "down", "slow", "wrong_password", "missing_database")
IPV6_EDGE = ipaddress.ip_address("::1")
SECTION_NAMES = BUILTIN_SECTIONS  # the names an `expect:` may give
_RULE_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
RCODES = ("NXDOMAIN", "SERVFAIL", "REFUSED")
DENY_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Node",
        "Namespace",
        "IngressClass",
        "PersistentVolume",
        "StorageClass",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PriorityClass",
        "APIService",
    }
)
OS_RESOLVER_ADDRESS = ipaddress.ip_address("127.0.0.53")
LOOPBACK_V4 = ipaddress.ip_network("127.0.0.0/8")
MAX_BASE_DEPTH = 5

_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$")
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s)\s*$")
_RELATIVE_TIME = re.compile(r"^-(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_TIME_KEY = re.compile(r"(Timestamp|Time|At)$|^time[A-Z]")


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message is one line naming file, path and problem."""


# -- the validated model ------------------------------------------------------------------------


@dataclass(frozen=True)
class Behaviour:
    """How an edge (or the in-cluster backend) answers.

    ``status``: the answer of http_status, the redirect's status; ``delay`` (s) for slow; ``location`` of a
    redirect; ``share`` of failing requests and ``fail_with`` (a status or a behaviour) for intermittent.
    """

    kind: str
    status: int | None = None
    delay: float = 0.0
    location: str | None = None
    share: float = 0.0
    fail_with: int | str | None = None

    def __str__(self) -> str:
        if self.kind == "http_status":
            return f"http_status {self.status}"
        if self.kind == "slow":
            return f"slow {self.delay * 1000:g}ms"
        if self.kind == "redirect":
            return f"redirect {self.status} {self.location}"
        if self.kind == "intermittent":
            return f"intermittent {self.share:g} {self.fail_with}"
        return self.kind


@dataclass(frozen=True)
class HealthSpec:
    """What an edge answers on its health path instead of the application's own health check."""

    path: str = "/health"
    status: int = 200
    body: str = ""  # JSON text when the scenario gave a mapping or list
    content_type: str = "application/json"


@dataclass(frozen=True)
class EdgeSpec:
    address: str
    behaviour: Behaviour
    hosts: tuple[str, ...] | None = None
    tls: str | None = None
    health: HealthSpec | None = None
    headers: tuple[tuple[str, str], ...] = ()  # added to every response of the edge
    server: str | None = None  # "nginx": error statuses answered with nginx's own HTML pages
    plain_http: bool = False  # with tls: plain HTTP is answered on the same port too (a controller's :80)
    tls_hosts: tuple[tuple[str, str], ...] = ()  # (host, TLS kind) where a host's certificate is not `tls`


@dataclass(frozen=True)
class LatencySpec:
    """One-way delays (seconds) added in user space to every DNS server, edge and API server: each
    exchange with them costs two of these (a round trip) more."""

    dns: float = 0.0
    edges: float = 0.0
    apiserver: float = 0.0

    def __bool__(self) -> bool:
        return bool(self.dns or self.edges or self.apiserver)


@dataclass(frozen=True)
class DatabaseSpec:
    """The sandbox PostgreSQL's state: ``running``, ``down``, ``slow`` (``delay`` s per answer),
    ``wrong_password`` or ``missing_database``."""

    state: str = "running"
    delay: float = 0.0


@dataclass(frozen=True)
class ExpectSpec:
    """What the diagnosis of the scenario must find: the top theory's rule (None: no theory above 50 %)
    and the sections that fail (``may_fail``: sections that may fail too)."""

    top: str | None
    failing: tuple[str, ...] = ()
    may_fail: tuple[str, ...] = ()
    cluster: bool = True  # False: the suite runs without a kubeconfig, as a user without cluster access would


@dataclass(frozen=True)
class RecordSpec:
    """What a resolver answers for one name."""

    a: tuple[str, ...] = ()
    aaaa: tuple[str, ...] = ()
    cname: str | None = None
    txt: tuple[str, ...] = ()
    rcode: str | None = None
    no_answer: bool = False
    delay: float = 0.0
    ttl: int = 300
    ede: tuple[tuple[int, str], ...] = ()  # (info code, text): extended DNS errors sent with the answer


@dataclass(frozen=True)
class ResolverSpec:
    name: str
    records: dict[str, RecordSpec]
    cache: bool = False  # a caching resolver in front of the scenario's authoritative servers (timed.py)


@dataclass(frozen=True)
class TargetSpec:
    host: str
    scheme: str = "http"

    def url(self, port: int) -> str:
        return f"{self.scheme}://{self.host}:{port}"


@dataclass
class Scenario:
    name: str
    description: str
    path: str
    target: TargetSpec
    namespace: str
    resolvers: list[ResolverSpec]
    edges: list[EdgeSpec]
    in_cluster: Behaviour = field(default_factory=lambda: Behaviour("healthy"))
    in_cluster_health: HealthSpec | None = None
    objects: list[dict[str, Any]] = field(default_factory=list)
    logs: dict[str, str] = field(default_factory=dict)
    deny: list[dict[str, str]] = field(default_factory=list)
    application: dict[str, Any] = field(default_factory=dict)  # [tool.reachability.<table>] tables
    postgres: bool = True
    database: DatabaseSpec = field(default_factory=DatabaseSpec)
    expect: ExpectSpec | None = None
    authoritative: Any = None  # timed.AuthoritativeSpec: the zone's authoritative servers, if described
    changes: list[Any] = field(default_factory=list)  # timed.ChangeSpec, applied while the sandbox runs
    latency: LatencySpec = field(default_factory=LatencySpec)

    def objects_of_kind(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return [
            obj
            for obj in self.objects
            if obj["kind"] == kind and (namespace is None or obj["metadata"].get("namespace") == namespace)
        ]


# -- finding and loading ------------------------------------------------------------------------


def scenario_names() -> list[str]:
    return sorted(path.stem for path in SCENARIOS_DIR.glob("*.yaml"))


def list_scenarios() -> list[tuple[str, str]]:
    """``(name, description)`` of every shipped scenario, sorted by name."""
    return [(name, load_scenario(name).description) for name in scenario_names()]


def resolve_scenario_path(name_or_path: str | Path) -> Path:
    """A shipped scenario's name, or a path to a YAML file."""
    text = str(name_or_path)
    candidate = Path(text)
    if candidate.suffix in (".yaml", ".yml") or "/" in text or candidate.is_file():
        if not candidate.is_file():
            raise ScenarioError(f"{text}: expected a scenario file, got no such file")
        return candidate
    shipped = SCENARIOS_DIR / f"{text}.yaml"
    if not shipped.is_file():
        raise ScenarioError(f"unknown scenario {text!r}; known: {', '.join(scenario_names())}")
    return shipped


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load, merge over its base and validate a scenario; :class:`ScenarioError` on any problem."""
    path = resolve_scenario_path(name_or_path)
    document = _load_merged(path, depth=0)
    scenario = _Validator(path.name if path.parent == SCENARIOS_DIR else str(path)).scenario(
        document, str(path)
    )
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    scenario.objects = [resolve_relative_times(obj, now) for obj in scenario.objects]
    return scenario


def resolve_relative_times(value: Any, now: datetime.datetime, key: str = "") -> Any:
    """Replace time fields written as ``-12h`` by RFC 3339 timestamps that far before ``now``."""
    if isinstance(value, dict):
        return {name: resolve_relative_times(item, now, name) for name, item in value.items()}
    if isinstance(value, list):
        return [resolve_relative_times(item, now, key) for item in value]
    if isinstance(value, str) and _TIME_KEY.search(key):
        match = _RELATIVE_TIME.match(value)
        if match and any(match.groups()):
            days, hours, minutes, seconds = (int(group or 0) for group in match.groups())
            moment = now - datetime.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
            return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def _read_yaml(path: Path) -> dict[str, Any]:
    label = path.name if path.parent == SCENARIOS_DIR else str(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(document)"
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ScenarioError(f"{label}: {where}: expected valid YAML, got {problem}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ScenarioError(f"{label}: expected a readable UTF-8 file, got {error}") from None
    if not isinstance(document, dict):
        raise ScenarioError(f"{label}: (document): expected a mapping, got {_describe(document)}")
    return document


def _load_merged(path: Path, depth: int) -> dict[str, Any]:
    document = _read_yaml(path)
    base = document.pop("base", None)
    if base is None:
        return document
    label = path.name if path.parent == SCENARIOS_DIR else str(path)
    if not isinstance(base, str):
        raise ScenarioError(f"{label}: base: expected a scenario name or path, got {_describe(base)}")
    if depth >= MAX_BASE_DEPTH:
        raise ScenarioError(f"{label}: base: expected at most {MAX_BASE_DEPTH} levels of base, got more")
    base_path = path.parent / base if base.endswith((".yaml", ".yml")) else None
    try:
        base_document = _load_merged(base_path or resolve_scenario_path(base), depth + 1)
    except ScenarioError as error:
        raise ScenarioError(f"{label}: base: expected a loadable scenario, got {error}") from None
    return _overlay(base_document, document, label)


# -- overlays -----------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: mappings merge recursively, ``None`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def object_identity(obj: Any) -> str | None:
    """``Kind/namespace/name`` (``Kind/name`` for cluster-scoped kinds), or None if not an object."""
    if not isinstance(obj, dict) or not isinstance(obj.get("kind"), str):
        return None
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str):
        return None
    namespace = metadata.get("namespace")
    if obj["kind"] in CLUSTER_SCOPED_KINDS or not isinstance(namespace, str):
        return f"{obj['kind']}/{metadata['name']}"
    return f"{obj['kind']}/{namespace}/{metadata['name']}"


def _merge_keyed(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in overlay.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def _overlay_dns(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """Resolvers by name: null drops one, a records mapping merges into the base's records."""
    resolvers = dict(base)
    for resolver, spec in overlay.items():
        old = resolvers.get(resolver)
        if spec is None:
            resolvers.pop(resolver, None)
        elif isinstance(spec, dict) and isinstance(old, dict) and isinstance(spec.get("records"), dict):
            resolvers[resolver] = {
                **old,
                **spec,
                "records": _merge_keyed(old.get("records") or {}, spec["records"]),
            }
        else:
            resolvers[resolver] = spec
    return resolvers


def _overlay_edges(base: list[Any], overlay: list[Any]) -> list[Any]:
    """An overlay edge replaces the base's edge of the same address, or is added."""
    edges = list(base)
    for entry in overlay:
        address = entry.get("address") if isinstance(entry, dict) else None
        same = [
            i for i, edge in enumerate(edges) if isinstance(edge, dict) and edge.get("address") == address
        ]
        if same and address is not None:
            edges[same[0]] = entry
        else:
            edges.append(entry)
    return edges


# Sections an overlay merges into the base's section of the same type rather than replacing it.
_OVERLAY_MERGES: dict[str, tuple[type, Any]] = {
    "dns": (dict, lambda base, value, label: _overlay_dns(base, value)),
    "edges": (list, lambda base, value, label: _overlay_edges(base, value)),
    "kubernetes": (dict, lambda base, value, label: _overlay_kubernetes(base, value, label)),
    "application": (dict, lambda base, value, label: merge_patch(base, value)),
}


def _overlay(base: dict[str, Any], overlay: dict[str, Any], label: str) -> dict[str, Any]:
    result = copy.deepcopy(base)
    for key, value in overlay.items():
        section_type, merge = _OVERLAY_MERGES.get(key, (None, None))
        if (
            merge is not None
            and isinstance(value, section_type)
            and isinstance(result.get(key), section_type)
        ):
            result[key] = merge(result[key], value, label)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _remove_objects(objects: list[Any], removals: Any, label: str) -> list[Any]:
    if not isinstance(removals, list) or not all(isinstance(item, str) for item in removals):
        raise ScenarioError(
            f"{label}: kubernetes.remove: expected a list of Kind/namespace/name, got {_describe(removals)}"
        )
    for index, identity in enumerate(removals):
        kept = [obj for obj in objects if object_identity(obj) != identity]
        if len(kept) == len(objects):
            raise ScenarioError(
                f"{label}: kubernetes.remove[{index}]: expected an object of the base, got {identity!r}"
            )
        objects = kept
    return objects


def _patch_objects(objects: list[Any], patches: Any, label: str) -> list[Any]:
    """Merge-patch each manifest into the base's object of the same identity, or add it."""
    if not isinstance(patches, list):
        raise ScenarioError(
            f"{label}: kubernetes.objects: expected a list of manifests, got {_describe(patches)}"
        )
    for patch in patches:
        identity = object_identity(patch)
        same = [
            i for i, obj in enumerate(objects) if identity is not None and object_identity(obj) == identity
        ]
        if same:
            objects[same[0]] = merge_patch(objects[same[0]], patch)
        else:
            objects.append(copy.deepcopy(patch))
    return objects


def _overlay_kubernetes(base: dict[str, Any], overlay: dict[str, Any], label: str) -> dict[str, Any]:
    result = dict(base)
    objects = _remove_objects(list(base.get("objects") or []), overlay.get("remove") or [], label)
    patches = overlay.get("objects")
    if patches is not None:
        objects = _patch_objects(objects, patches, label)
    result["objects"] = objects
    if "logs" in overlay:
        logs = overlay["logs"]
        result["logs"] = _merge_keyed(base.get("logs") or {}, logs) if isinstance(logs, dict) else logs
    if "deny" in overlay:
        result["deny"] = overlay["deny"]
    for key, value in overlay.items():
        if key not in ("remove", "objects", "logs", "deny"):
            result[key] = value
    return result


# -- validation ---------------------------------------------------------------------------------


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return repr(text)
    return repr(value)


def parse_duration(text: str) -> float | None:
    """``'300ms'`` -> 0.3, ``'2s'`` -> 2.0; None if not a duration."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if not match:
        return None
    value = float(match.group(1))
    return value / 1000 if match.group(2) == "ms" else value


def client_model(api_version: str, kind: str) -> Any:
    """The official client's model class for ``apiVersion``/``kind`` (``V1Pod``, ``CoreV1Event``), or None."""
    import kubernetes.client

    group, _, version = api_version.rpartition("/")
    version = version[:1].upper() + version[1:]
    names = [f"{version}{kind}"]
    if kind == "Event":
        names = ["CoreV1Event"] if not group else [f"Events{version}Event"]
    for name in names:
        model = getattr(kubernetes.client, name, None)
        if model is not None and (hasattr(model, "model_validate") or hasattr(model, "openapi_types")):
            return model
    return None


_SCALARS: dict[str, tuple[str, Any]] = {
    "str": ("a valid string", lambda v: isinstance(v, str)),
    "int": ("a valid integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "float": ("a valid number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
    "bool": ("a valid boolean", lambda v: isinstance(v, bool)),
    "datetime": ("a valid datetime", lambda v: isinstance(v, (str, datetime.datetime))),
    "date": ("a valid date", lambda v: isinstance(v, (str, datetime.date))),
}


_Mismatch = tuple[tuple[Any, ...], str, Any]


def _type_error(value: Any, type_name: str, where: tuple[Any, ...]) -> _Mismatch | None:
    """The first place where ``value`` does not fit the client's type string ``type_name``, or None.

    Clients before the pydantic models (kubernetes < 35) describe each model only by ``openapi_types``
    (``'int'``, ``'list[V1Container]'``, ``'dict(str, str)'``, ``'V1ObjectMeta'``); this walks a manifest
    against them so a malformed scenario is refused the same way whichever client is installed.
    """
    if value is None or type_name == "object":
        return None
    if type_name in _SCALARS:
        expected, fits = _SCALARS[type_name]
        return None if fits(value) else (where, expected, value)
    if type_name.startswith("list[") and type_name.endswith("]"):
        if not isinstance(value, list):
            return (where, "a valid list", value)
        return _first_type_error((item, type_name[5:-1], (*where, index)) for index, item in enumerate(value))
    if type_name.startswith("dict(") and type_name.endswith(")"):
        if not isinstance(value, dict):
            return (where, "a valid dictionary", value)
        item_type = type_name[5:-1].partition(",")[2].strip()
        return _first_type_error((item, item_type, (*where, key)) for key, item in value.items())
    return _model_type_error(value, type_name, where)


def _first_type_error(checks: Any) -> _Mismatch | None:
    for value, type_name, where in checks:
        found = _type_error(value, type_name, where)
        if found:
            return found
    return None


def _model_type_error(value: Any, type_name: str, where: tuple[Any, ...]) -> _Mismatch | None:
    import kubernetes.client

    model = getattr(kubernetes.client, type_name, None)
    if model is None or not hasattr(model, "openapi_types"):
        return None
    if not isinstance(value, dict):
        return (where, f"a valid dictionary or instance of {type_name}", value)
    by_json_name = {json_name: attribute for attribute, json_name in model.attribute_map.items()}
    return _first_type_error(
        (item, model.openapi_types[by_json_name[key]], (*where, key))
        for key, item in value.items()
        if key in by_json_name
    )


def is_hostname(text: Any) -> bool:
    if not isinstance(text, str) or not text or len(text) > 253:
        return False
    return all(_HOST_LABEL.match(label) for label in text.lower().rstrip(".").split("."))


def is_record_name(text: Any) -> bool:
    """A host name, or a wildcard owner name: ``*.`` then a host name (RFC 4592: ``*`` is a whole label)."""
    return is_hostname(text) or (isinstance(text, str) and text.startswith("*.") and is_hostname(text[2:]))


def _is_int_between(value: Any, low: int, high: int) -> bool:
    """An integer (not a bool) from ``low`` to ``high`` inclusive."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


class _Validator:
    def __init__(self, label: str) -> None:
        self.label = label

    def fail(self, path: str, expected: str, value: Any) -> ScenarioError:
        return ScenarioError(f"{self.label}: {path}: expected {expected}, got {_describe(value)}")

    def mapping(
        self, value: Any, path: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()
    ) -> dict:
        if not isinstance(value, dict):
            raise self.fail(path, "a mapping", value)
        for key in value:
            if key not in allowed:
                raise ScenarioError(
                    f"{self.label}: {path}.{key}: expected one of the keys {', '.join(allowed)}, got "
                    f"{_describe(key)}"
                    if path
                    else f"{self.label}: {key}: expected one of the keys {', '.join(allowed)}, got "
                    f"{_describe(key)}"
                )
        for key in required:
            if key not in value:
                where = f"{path}.{key}" if path else key
                raise self.fail(where, "a value (required)", None)
        return value

    def string(self, value: Any, path: str, what: str = "a string") -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(path, what, value)
        return value

    # -- top level

    def scenario(self, doc: dict[str, Any], path: str) -> Scenario:
        self.mapping(
            doc,
            "",
            (
                "name",
                "description",
                "target",
                "namespace",
                "dns",
                "edges",
                "in_cluster",
                "kubernetes",
                "application",
                "postgres",
                "expect",
                "changes",
                "latency",
            ),
            ("name", "description", "target", "dns"),
        )
        name = self.string(doc["name"], "name")
        if not _NAME.match(name):
            raise self.fail("name", "lower-case letters, digits, '.' and '-'", name)
        description = self.string(doc["description"], "description", "a one-line description")
        if "\n" in description.strip():
            raise self.fail("description", "a one-line description", "several lines")
        target = self.target(doc["target"])
        namespace = doc.get("namespace", "production")
        if not isinstance(namespace, str) or not re.match(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", namespace):
            raise self.fail("namespace", "a namespace name", namespace)
        resolvers = self.resolvers(doc["dns"])
        edges = self.edges(doc.get("edges", []))
        in_cluster, in_cluster_health = Behaviour("healthy"), None
        if "in_cluster" in doc:
            self.mapping(doc["in_cluster"], "in_cluster", ("behaviour", "health"), ("behaviour",))
            in_cluster = self.behaviour(doc["in_cluster"]["behaviour"], "in_cluster.behaviour")
            if in_cluster.kind in ("refuse", "blackhole"):
                raise self.fail(
                    "in_cluster.behaviour",
                    "a behaviour of a listening server (not refuse or blackhole)",
                    in_cluster.kind,
                )
            if "health" in doc["in_cluster"]:
                in_cluster_health = self.health(doc["in_cluster"]["health"], "in_cluster.health")
        objects, logs, deny = self.kubernetes(doc.get("kubernetes", {}), {edge.address for edge in edges})
        application = self.application(doc.get("application", {}))
        postgres, database = self.postgres(doc.get("postgres", True))
        expect = self.expect(doc["expect"]) if "expect" in doc else None
        authoritative, changes = self.timed(doc, resolvers, edges)
        latency = self.latency(doc.get("latency", "0ms"))
        return Scenario(
            name=name,
            description=description.strip(),
            path=path,
            target=target,
            namespace=namespace,
            resolvers=resolvers,
            edges=edges,
            in_cluster=in_cluster,
            in_cluster_health=in_cluster_health,
            objects=objects,
            logs=logs,
            deny=deny,
            application=application,
            postgres=postgres,
            database=database,
            expect=expect,
            authoritative=authoritative,
            changes=changes,
            latency=latency,
        )

    def latency(self, value: Any) -> LatencySpec:
        """One duration for all, or ``{dns, edges, apiserver}`` each a duration (missing ones are 0)."""
        expected = f"a duration such as 50ms (at most {MAX_LATENCY * 1000:g}ms)"
        if not isinstance(value, dict):
            delay = parse_duration(value)
            if delay is None or delay > MAX_LATENCY:
                parts = ", ".join(LATENCY_PARTS)
                raise self.fail("latency", f"{expected}, or a mapping of {parts} to one", value)
            return LatencySpec(dns=delay, edges=delay, apiserver=delay)
        self.mapping(value, "latency", LATENCY_PARTS)
        delays = {}
        for part, text in value.items():
            delay = parse_duration(text)
            if delay is None or delay > MAX_LATENCY:
                raise self.fail(f"latency.{part}", expected, text)
            delays[part] = delay
        return LatencySpec(**delays)

    def timed(
        self, doc: dict[str, Any], resolvers: list[ResolverSpec], edges: list[EdgeSpec]
    ) -> tuple[Any, list[Any]]:
        """The authoritative servers (``dns.authoritative``) and the scheduled ``changes`` (see timed.py)."""
        from . import timed

        authoritative = None
        if timed.AUTHORITATIVE_KEY in doc["dns"]:
            authoritative = timed.parse_authoritative(self, doc["dns"][timed.AUTHORITATIVE_KEY])
        if any(resolver.cache for resolver in resolvers) and authoritative is None:
            raise self.fail("dns", f"dns.{timed.AUTHORITATIVE_KEY} for the caching resolvers to ask", None)
        changeable = {resolver.name for resolver in resolvers if not resolver.cache}
        changes = timed.parse_changes(
            self,
            doc.get("changes", []),
            changeable | ({timed.AUTHORITATIVE_KEY} if authoritative else set()),
            {edge.address for edge in edges},
        )
        return authoritative, changes

    def postgres(self, value: Any) -> tuple[bool, DatabaseSpec]:
        if value is True or value is False:
            return value, DatabaseSpec()
        if not isinstance(value, dict):
            # The mapping form ({state: ..., delay: ...}) is documented above; most files mean a switch.
            raise self.fail("postgres", "true or false", value)
        self.mapping(value, "postgres", ("state", "delay"), ("state",))
        state = value["state"]
        if state not in DATABASE_STATES:
            raise self.fail("postgres.state", f"one of {', '.join(DATABASE_STATES)}", state)
        delay = 0.0
        if "delay" in value:
            parsed = parse_duration(value["delay"])
            if parsed is None or parsed > 60:
                raise self.fail(
                    "postgres.delay", "a duration such as 400ms or 2s (at most 60s)", value["delay"]
                )
            delay = parsed
        if state == "slow" and delay <= 0:
            raise self.fail("postgres.delay", "a duration above 0 for state slow", value.get("delay"))
        return True, DatabaseSpec(state=state, delay=delay)

    def expect(self, value: Any) -> ExpectSpec:
        self.mapping(value, "expect", ("top", "failing", "may_fail", "cluster"), ("top",))
        top = value["top"]
        if top is not None and (not isinstance(top, str) or not _RULE_ID.match(top)):
            raise self.fail("expect.top", "a rule id (lower-case words joined by '-') or null", top)
        lists = []
        for key in ("failing", "may_fail"):
            items = value.get(key, [])
            if not isinstance(items, list) or not all(isinstance(item, str) and item for item in items):
                raise self.fail(f"expect.{key}", "a list of section names", items)
            lists.append(tuple(items))
        cluster = value.get("cluster", True)
        if cluster is not True and cluster is not False:
            raise self.fail("expect.cluster", "true or false", cluster)
        return ExpectSpec(top=top, failing=lists[0], may_fail=lists[1], cluster=cluster)

    def health(self, value: Any, path: str) -> HealthSpec:
        self.mapping(value, path, ("path", "status", "body", "content_type"))
        health_path = value.get("path", "/health")
        if (
            not isinstance(health_path, str)
            or not health_path.startswith("/")
            or any(c.isspace() for c in health_path)
        ):
            raise self.fail(f"{path}.path", "a path starting with /", health_path)
        status = value.get("status", 200)
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise self.fail(f"{path}.status", "an HTTP status from 100 to 599", status)
        body = value.get("body", "")
        content_type = value.get("content_type")
        if isinstance(body, (dict, list)):
            try:
                text = json.dumps(body, separators=(",", ":"), allow_nan=False)
            except (TypeError, ValueError):
                raise self.fail(f"{path}.body", "a body of JSON values", body) from None
            content_type = content_type or "application/json"
        elif isinstance(body, str):
            text = body
            content_type = content_type or "text/plain"
        else:
            raise self.fail(f"{path}.body", "text, a mapping or a list", body)
        if len(text) > 65536:
            raise self.fail(f"{path}.body", "a body of at most 64 KiB", f"{len(text)} characters")
        if not isinstance(content_type, str) or not content_type.strip() or "\n" in content_type:
            raise self.fail(f"{path}.content_type", "a media type", content_type)
        return HealthSpec(path=health_path, status=status, body=text, content_type=content_type)

    def application(self, value: Any) -> dict[str, Any]:
        from ..appconfig import APP_TABLES, AppConfigError, load_app_config

        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail("application", "a mapping of application tables", value)
        for table in value:
            if table not in APP_TABLES:
                raise self.fail("application", f"tables named {', '.join(APP_TABLES)}", table)
        try:
            load_app_config(value)
        except AppConfigError as error:
            where = ".".join(part for part in ("application", error.table, error.key) if part)
            raise ScenarioError(
                f"{self.label}: {where}: expected {error.expected}, got {error.got}"
            ) from None
        return copy.deepcopy(value)

    def target(self, value: Any) -> TargetSpec:
        self.mapping(value, "target", ("host", "scheme"), ("host",))
        host = value["host"]
        if not is_hostname(host):
            raise self.fail("target.host", "a host name", host)
        scheme = value.get("scheme", "http")
        if scheme not in ("http", "https"):
            raise self.fail("target.scheme", "http or https", scheme)
        return TargetSpec(host=host.lower().rstrip("."), scheme=scheme)

    # -- dns

    def resolvers(self, value: Any) -> list[ResolverSpec]:
        if not isinstance(value, dict) or not value:
            raise self.fail("dns", "a mapping of resolver names to {records: ...}", value)
        resolvers = []
        for name, spec in value.items():
            path = f"dns.{name}"
            if name == "authoritative":
                continue  # the zone's authoritative servers (timed.py), not a resolver
            if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9_-]+$", name):
                raise self.fail("dns", "resolver names of letters, digits, '-' and '_'", name)
            if isinstance(spec, dict) and "cache" in spec:
                self.mapping(spec, path, ("cache",), ("cache",))
                if spec["cache"] is not True:
                    raise self.fail(
                        f"{path}.cache", "true (a caching resolver asking dns.authoritative)", spec["cache"]
                    )
                resolvers.append(ResolverSpec(name=name, records={}, cache=True))
                continue
            self.mapping(spec, path, ("records",), ("records",))
            records = spec["records"]
            if not isinstance(records, dict):
                raise self.fail(f"{path}.records", "a mapping of names to record specs", records)
            parsed = {}
            for record_name, record in records.items():
                if not is_record_name(record_name):
                    raise self.fail(
                        f"{path}.records", "host names or wildcards (*.name) as keys", record_name
                    )
                parsed[record_name.lower().rstrip(".")] = self.record(record, f"{path}.records.{record_name}")
            resolvers.append(ResolverSpec(name=name, records=parsed))
        return resolvers

    def record(self, value: Any, path: str) -> RecordSpec:
        self.mapping(
            value, path, ("A", "AAAA", "CNAME", "TXT", "ttl", "rcode", "no_answer", "delay_ms", "ede")
        )
        self.record_shape(value, path)
        a, aaaa, cname = self.record_answers(value, path)
        txt = value.get("TXT", [])
        if not isinstance(txt, list) or not all(isinstance(item, str) and len(item) <= 255 for item in txt):
            raise self.fail(f"{path}.TXT", "a list of strings of at most 255 characters", txt)
        rcode, no_answer = self.record_outcome(value, path)
        delay_ms = value.get("delay_ms", 0)
        if not _is_int_between(delay_ms, 0, 60000):
            raise self.fail(f"{path}.delay_ms", "milliseconds from 0 to 60000", delay_ms)
        ttl = value.get("ttl", 300)
        if not _is_int_between(ttl, 0, 2**31 - 1):
            raise self.fail(f"{path}.ttl", "seconds (a non-negative integer)", ttl)
        return RecordSpec(
            a=a,
            aaaa=aaaa,
            cname=cname.lower().rstrip(".") if cname else None,
            txt=tuple(txt),
            rcode=rcode,
            no_answer=no_answer,
            delay=delay_ms / 1000,
            ttl=ttl,
            ede=self.extended_errors(value.get("ede", []), f"{path}.ede"),
        )

    def extended_errors(self, value: Any, path: str) -> tuple[tuple[int, str], ...]:
        """``[{code: 7, text: "signature expired"}, ...]``: RFC 8914 info codes, each with optional text."""
        if not isinstance(value, list) or len(value) > 8:
            raise self.fail(path, "a list of at most 8 {code, text} entries", value)
        found = []
        for index, entry in enumerate(value):
            self.mapping(entry, f"{path}[{index}]", ("code", "text"))
            code, text = entry.get("code"), entry.get("text", "")
            if not _is_int_between(code, 0, 65535):
                raise self.fail(f"{path}[{index}].code", "an info code from 0 to 65535", code)
            if not isinstance(text, str) or len(text) > 255:
                raise self.fail(f"{path}[{index}].text", "a string of at most 255 characters", text)
            found.append((code, text))
        return tuple(found)

    def record_shape(self, value: dict[str, Any], path: str) -> None:
        """A record answers with records or with one outcome (rcode / no_answer), never both."""
        kinds = [key for key in ("A", "AAAA", "CNAME", "TXT") if key in value]
        outcome = [key for key in ("rcode", "no_answer") if key in value]
        if not kinds and not outcome:
            raise self.fail(path, "A, AAAA, CNAME, TXT, rcode or no_answer", value)
        if outcome and kinds or len(outcome) > 1:
            raise self.fail(path, "either records or one of rcode / no_answer", "both")

    def record_answers(
        self, value: dict[str, Any], path: str
    ) -> tuple[tuple[str, ...], tuple[str, ...], str | None]:
        a = tuple(self.addresses(value["A"], f"{path}.A", 4)) if "A" in value else ()
        aaaa = tuple(self.addresses(value["AAAA"], f"{path}.AAAA", 6)) if "AAAA" in value else ()
        cname = value.get("CNAME")
        if cname is not None and not is_hostname(cname):
            raise self.fail(f"{path}.CNAME", "a host name", cname)
        if cname is not None and (a or aaaa):
            raise self.fail(path, "CNAME without A or AAAA beside it", "both")
        return a, aaaa, cname

    def record_outcome(self, value: dict[str, Any], path: str) -> tuple[str | None, bool]:
        rcode = value.get("rcode")
        if rcode is not None and rcode not in RCODES:
            raise self.fail(f"{path}.rcode", f"one of {', '.join(RCODES)}", rcode)
        no_answer = value.get("no_answer", False)
        if no_answer is not False and no_answer is not True:
            raise self.fail(f"{path}.no_answer", "true or false", no_answer)
        return rcode, no_answer

    def addresses(self, value: Any, path: str, version: int) -> list[str]:
        if not isinstance(value, list) or not value:
            raise self.fail(path, f"a list of IPv{version} addresses", value)
        result = []
        for index, item in enumerate(value):
            try:
                address = ipaddress.ip_address(item)
            except ValueError:
                address = None
            if address is None or address.version != version:
                raise self.fail(f"{path}[{index}]", f"an IPv{version} address", item)
            result.append(str(address))
        return result

    # -- edges

    def edges(self, value: Any) -> list[EdgeSpec]:
        if not isinstance(value, list):
            raise self.fail("edges", "a list of edges", value)
        edges: list[EdgeSpec] = []
        seen: set[str] = set()
        for index, entry in enumerate(value):
            path = f"edges[{index}]"
            self.mapping(
                entry,
                path,
                (
                    "address",
                    "behaviour",
                    "hosts",
                    "tls",
                    "health",
                    "headers",
                    "server",
                    "plain_http",
                    "tls_hosts",
                ),
                ("address", "behaviour"),
            )
            address = self.edge_address(entry["address"], f"{path}.address", seen)
            behaviour = self.behaviour(entry["behaviour"], f"{path}.behaviour")
            hosts = self.edge_hosts(entry.get("hosts"), f"{path}.hosts")
            tls = entry.get("tls")
            if tls is not None and tls not in TLS_KINDS:
                raise self.fail(f"{path}.tls", f"one of {', '.join(TLS_KINDS)}", tls)
            health = self.health(entry["health"], f"{path}.health") if "health" in entry else None
            headers = self.edge_headers(entry.get("headers") or {}, f"{path}.headers")
            server = entry.get("server")
            if server is not None and server not in EDGE_SERVERS:
                raise self.fail(f"{path}.server", f"one of {', '.join(EDGE_SERVERS)}", server)
            plain_http = entry.get("plain_http", False)
            if plain_http is not False and (plain_http is not True or tls is None):
                raise self.fail(f"{path}.plain_http", "true or false, true only beside tls", plain_http)
            tls_hosts = self.tls_hosts(entry.get("tls_hosts"), f"{path}.tls_hosts", tls, hosts)
            edges.append(
                EdgeSpec(
                    address=address,
                    behaviour=behaviour,
                    hosts=hosts,
                    tls=tls,
                    health=health,
                    headers=headers,
                    server=server,
                    plain_http=plain_http,
                    tls_hosts=tls_hosts,
                )
            )
        return edges

    def tls_hosts(
        self, value: Any, path: str, tls: str | None, hosts: tuple[str, ...] | None
    ) -> tuple[tuple[str, str], ...]:
        """``{kind: [host, ...]}``: hosts of the edge whose certificate is of another kind than ``tls``."""
        if value is None:
            return ()
        if tls is None:
            raise self.fail(path, "nothing without tls on the edge", value)
        if not isinstance(value, dict) or not value:
            raise self.fail(path, f"a mapping of TLS kinds ({', '.join(TLS_KINDS)}) to lists of hosts", value)
        chosen: dict[str, str] = {}
        for kind, kind_hosts in value.items():
            if kind not in TLS_KINDS:
                raise self.fail(path, f"TLS kinds as keys ({', '.join(TLS_KINDS)})", kind)
            if not isinstance(kind_hosts, list) or not kind_hosts:
                raise self.fail(f"{path}.{kind}", "a list of the edge's hosts", kind_hosts)
            for index, host in enumerate(kind_hosts):
                name = host.lower().rstrip(".") if isinstance(host, str) else host
                if name not in (hosts or ()):
                    raise self.fail(f"{path}.{kind}[{index}]", "a host of the edge's hosts", host)
                if name in chosen:
                    raise self.fail(f"{path}.{kind}[{index}]", "a host named under one kind only", host)
                chosen[name] = kind
        return tuple(sorted(chosen.items()))

    def edge_address(self, value: Any, path: str, seen: set[str]) -> str:
        """A loopback address no other edge uses (and not the OS resolver's); added to ``seen``."""
        try:
            address = ipaddress.ip_address(value) if isinstance(value, str) else None
        except ValueError:
            address = None
        if address is None or (address != IPV6_EDGE and (address.version != 4 or address not in LOOPBACK_V4)):
            raise self.fail(path, "an IPv4 address in 127.0.0.0/8 or ::1", value)
        if address == OS_RESOLVER_ADDRESS:
            raise self.fail(path, "an address other than 127.0.0.53 (the OS resolver's)", str(address))
        if str(address) in seen:
            raise self.fail(path, "an address not used by another edge", str(address))
        seen.add(str(address))
        return str(address)

    def edge_hosts(self, value: Any, path: str) -> tuple[str, ...] | None:
        if value is None:
            return None
        if not isinstance(value, list) or not all(is_hostname(host) for host in value):
            raise self.fail(path, "a list of host names", value)
        return tuple(host.lower().rstrip(".") for host in value)

    def edge_headers(self, value: Any, path: str) -> tuple[tuple[str, str], ...]:
        if not isinstance(value, dict) or not all(
            isinstance(name, str)
            and re.match(r"^[A-Za-z0-9-]+$", name)
            and isinstance(header, (str, int))
            and not isinstance(header, bool)
            and "\n" not in str(header)
            and "\r" not in str(header)
            for name, header in value.items()
        ):
            raise self.fail(path, "a mapping of header names to one-line values", value)
        return tuple((name, str(header)) for name, header in value.items())

    def behaviour(self, value: Any, path: str) -> Behaviour:
        expected = (
            f"one of {', '.join(SIMPLE_BEHAVIOURS)}, {{http_status: N}}, {{slow: DURATION}}, "
            "{redirect: {location: URL}} or {intermittent: {share: F}}"
        )
        if isinstance(value, str):
            if value not in SIMPLE_BEHAVIOURS:
                raise self.fail(path, expected, value)
            return Behaviour(value)
        if not isinstance(value, dict) or len(value) != 1:
            raise self.fail(path, expected, value)
        ((kind, argument),) = value.items()
        if kind == "http_status":
            if isinstance(argument, bool) or not isinstance(argument, int) or not 100 <= argument <= 599:
                raise self.fail(f"{path}.http_status", "an HTTP status from 100 to 599", argument)
            return Behaviour("http_status", status=argument)
        if kind == "slow":
            delay = parse_duration(argument)
            if delay is None or delay > 600:
                raise self.fail(f"{path}.slow", "a duration such as 300ms or 2s (at most 600s)", argument)
            return Behaviour("slow", delay=delay)
        if kind == "redirect":
            return self.redirect(argument, f"{path}.redirect")
        if kind == "intermittent":
            return self.intermittent(argument, f"{path}.intermittent")
        raise self.fail(path, expected, value)

    def redirect(self, value: Any, path: str) -> Behaviour:
        self.mapping(value, path, ("location", "status"), ("location",))
        location = value["location"]
        if (
            not isinstance(location, str)
            or not location.strip()
            or any(c.isspace() or ord(c) < 32 for c in location)
        ):
            raise self.fail(f"{path}.location", "a URL or path without spaces", location)
        status = value.get("status", 301)
        if status not in (301, 302, 303, 307, 308):
            raise self.fail(f"{path}.status", "a redirect status (301, 302, 303, 307 or 308)", status)
        return Behaviour("redirect", status=status, location=location)

    def intermittent(self, value: Any, path: str) -> Behaviour:
        self.mapping(value, path, ("share", "fail_with"), ("share",))
        share = value["share"]
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share < 1:
            raise self.fail(f"{path}.share", "a fraction between 0 and 1 (exclusive)", share)
        fail_with = value.get("fail_with", 503)
        valid_status = (
            isinstance(fail_with, int) and not isinstance(fail_with, bool) and 400 <= fail_with <= 599
        )
        if not valid_status and fail_with not in INTERMITTENT_FAILURES:
            raise self.fail(
                f"{path}.fail_with",
                f"an HTTP status from 400 to 599 or one of {', '.join(INTERMITTENT_FAILURES)}",
                fail_with,
            )
        return Behaviour("intermittent", share=float(share), fail_with=fail_with)

    # -- kubernetes

    def model(self, obj: dict[str, Any], path: str) -> None:
        """Validate a manifest against the official client's model of its kind (types, required fields)."""
        model = client_model(str(obj.get("apiVersion")), str(obj.get("kind")))
        if model is None:
            # A kind the client has no model for (a custom resource): the API server would know its schema.
            return
        now = datetime.datetime.now(datetime.timezone.utc)
        if not hasattr(model, "model_validate"):
            found = _type_error(resolve_relative_times(obj, now), model.__name__, ())
            if found:
                where, expected, got = found
                at = path + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in where)
                raise self.fail(at, expected, got)
            return
        from pydantic import ValidationError

        try:
            model.model_validate(resolve_relative_times(obj, now))
        except ValidationError as error:
            first = error.errors()[0]
            where = path + "".join(
                f"[{part}]" if isinstance(part, int) else f".{part}" for part in first.get("loc", ())
            )
            message = str(first.get("msg") or "a valid value")
            expected = (
                "a value (required)"
                if first.get("type") == "missing"
                else (
                    message.removeprefix("Input should be ")
                    .removeprefix("Value error, ")
                    .split("[")[0]
                    .strip()
                    or "a valid value"
                )
            )
            got = _describe(first.get("input")) if first.get("type") != "missing" else "nothing"
            raise ScenarioError(f"{self.label}: {where}: expected {expected}, got {got}") from None
        except (TypeError, ValueError, AttributeError) as error:
            raise self.fail(
                path, f"a valid {obj.get('kind')} manifest", " ".join(str(error).split())[:80]
            ) from None

    def kubernetes(
        self, value: Any, edge_addresses: set[str]
    ) -> tuple[list[dict[str, Any]], dict[str, str], list[dict[str, str]]]:
        self.mapping(value, "kubernetes", ("objects", "logs", "deny"))
        objects = value.get("objects") or []
        if not isinstance(objects, list):
            raise self.fail("kubernetes.objects", "a list of manifests", objects)
        seen: set[str] = set()
        for index, obj in enumerate(objects):
            self.manifest(obj, index, seen, edge_addresses)
        pods = {
            f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
            for obj in objects
            if obj["kind"] == "Pod"
        }
        logs = value.get("logs") or {}
        if not isinstance(logs, dict):
            raise self.fail("kubernetes.logs", "a mapping of namespace/pod to log text", logs)
        for key, text in logs.items():
            if key not in pods:
                raise self.fail(
                    "kubernetes.logs", "keys naming a Pod of kubernetes.objects as namespace/pod", key
                )
            if not isinstance(text, str):
                raise self.fail(f"kubernetes.logs.{key}", "log text", text)
        deny = value.get("deny") or []
        if not isinstance(deny, list):
            raise self.fail("kubernetes.deny", "a list of {verb, resource}", deny)
        for index, rule in enumerate(deny):
            path = f"kubernetes.deny[{index}]"
            self.mapping(rule, path, ("verb", "resource", "namespace"), ("verb", "resource"))
            if rule["verb"] not in DENY_VERBS:
                raise self.fail(f"{path}.verb", f"one of {', '.join(DENY_VERBS)}", rule["verb"])
            self.string(rule["resource"], f"{path}.resource", "a resource name such as secrets or pods/log")
        return objects, dict(logs), [dict(rule) for rule in deny]

    def manifest(self, obj: Any, index: int, seen: set[str], edge_addresses: set[str]) -> None:
        path = f"kubernetes.objects[{index}]"
        if not isinstance(obj, dict):
            raise self.fail(path, "a manifest (mapping)", obj)
        self.string(obj.get("apiVersion"), f"{path}.apiVersion", "an apiVersion")
        kind = self.string(obj.get("kind"), f"{path}.kind", "a kind")
        self.metadata(obj.get("metadata"), kind, path)
        self.model(obj, path)
        identity = object_identity(obj)
        assert identity is not None
        if identity in seen:
            raise self.fail(path, "one manifest per kind, namespace and name", f"a second {identity}")
        seen.add(identity)
        if kind == "Secret":
            for key in ("data", "stringData"):
                if key in obj:
                    raise self.fail(
                        f"{path}.{key}", "no secret data (the sandbox keeps Secrets' metadata only)", "data"
                    )
        if kind in ("Service", "Ingress"):
            self.load_balancer_ingress(obj, path, edge_addresses)

    def metadata(self, metadata: Any, kind: str, path: str) -> None:
        if not isinstance(metadata, dict):
            raise self.fail(f"{path}.metadata", "a mapping", metadata)
        name = metadata.get("name")
        if not isinstance(name, str) or not re.match(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$", name):
            raise self.fail(f"{path}.metadata.name", "an object name", name)
        namespaced = kind not in CLUSTER_SCOPED_KINDS
        namespace = metadata.get("namespace")
        if namespaced and not isinstance(namespace, str):
            raise self.fail(f"{path}.metadata.namespace", f"a namespace (a {kind} is namespaced)", namespace)
        if not namespaced and namespace is not None:
            raise self.fail(
                f"{path}.metadata.namespace", f"no namespace (a {kind} is cluster-wide)", namespace
            )
        for key in ("labels", "annotations"):
            labels = metadata.get(key)
            if labels is not None and (
                not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values())
            ):
                raise self.fail(f"{path}.metadata.{key}", "a mapping of strings to strings", labels)

    def load_balancer_ingress(self, obj: dict[str, Any], path: str, edge_addresses: set[str]) -> None:
        """A Service's or Ingress's load-balancer addresses must be edges the scenario serves."""
        ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if not isinstance(ingress, list):
            raise self.fail(f"{path}.status.loadBalancer.ingress", "a list", ingress)
        for position, entry in enumerate(ingress):
            address = entry.get("ip") if isinstance(entry, dict) else None
            if address is not None and address not in edge_addresses:
                raise self.fail(
                    f"{path}.status.loadBalancer.ingress[{position}].ip",
                    "the address of an edge of this scenario",
                    address,
                )
