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
    edges:                             # addresses in 127.0.0.0/8 except 127.0.0.53; all share one port
      - {address: 127.0.10.53, behaviour: healthy, hosts: [97v.test]}  # other Host headers get 404
      - {address: 127.0.10.57, behaviour: empty_reply}
      - {address: 127.0.10.60, behaviour: {http_status: 503}}
      - {address: 127.0.10.61, behaviour: {slow: 300ms}}               # ms or s
      - {address: 127.0.10.62, behaviour: healthy, tls: expired}       # good|expired|wrong_host|untrusted
      # other behaviours: refuse, reset_mid_body, hang, garbage (see edges.py)
    in_cluster: {behaviour: healthy}   # what the API server's service proxy reaches behind ready pods
    kubernetes:
      objects: [...]                   # ordinary manifests; Pods carry status; Secrets carry no data
      logs: {production/api-847495fbc4-686tk: "INFO: ...\\n"}   # namespace/pod -> log text
      deny: [{verb: list, resource: secrets}]                  # answered 403 by the API server
      remove: [Ingress/production/api]  # only with base: drop base objects (Kind/name if cluster-wide)
    application:                       # the application sections' configuration, the same tables as
      database: {field: dependencies.database.status, expect: ok}   # [tool.reachability.<table>]
      results-storage: {write-path: /api/v1/results, read-path: "/api/v1/results/${id}"}
    postgres: true                     # run a real PostgreSQL for the API where the machine has one
                                       # (default true; false keeps the database simulated)

In manifests, a time field (a key ending in ``Timestamp``, ``Time`` or ``At``) may be written relative to
the moment the scenario is loaded: ``creationTimestamp: -12h`` (units d, h, m, s; ``-2d21h``), so ``kubectl``
shows the ages the scenario means whenever it runs.

With ``base`` the scenario is an overlay: ``target``, ``namespace``, ``in_cluster``, ``postgres`` and ``deny``
replace the base's; ``application`` merges as a JSON merge patch (a table set to ``null`` is removed); ``dns`` merges resolvers by name and records by name (a record or resolver set to ``null`` is
removed); ``edges`` merge by address (an entry replaces the base's edge at that address); ``logs``
merge by key (``null`` removes); ``objects`` merge by kind, namespace and name as a JSON merge patch
(RFC 7386: mappings merge, ``null`` deletes a key, lists replace), new objects are appended.

Every LoadBalancer address in a Service's or Ingress's ``status.loadBalancer.ingress`` must be one of the
scenario's edges, so a client reaching that address meets the behaviour the scenario promises.

A schema error is one line, ``<file>: <path.in.file>: expected <what>, got <what>``
(:class:`ScenarioError`, a ``ValueError``).
"""

from __future__ import annotations

import copy
import datetime
import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SCENARIOS_DIR = Path(__file__).with_name("scenarios")

BEHAVIOUR_KINDS = ("healthy", "empty_reply", "refuse", "reset_mid_body", "hang", "garbage", "http_status", "slow")
SIMPLE_BEHAVIOURS = tuple(kind for kind in BEHAVIOUR_KINDS if kind not in ("http_status", "slow"))
TLS_KINDS = ("good", "expired", "wrong_host", "untrusted")
RCODES = ("NXDOMAIN", "SERVFAIL", "REFUSED")
DENY_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
CLUSTER_SCOPED_KINDS = frozenset(
    {"Node", "Namespace", "IngressClass", "PersistentVolume", "StorageClass", "ClusterRole", "ClusterRoleBinding",
     "CustomResourceDefinition", "PriorityClass", "APIService"}
)
OS_RESOLVER_ADDRESS = ipaddress.ip_address("127.0.0.53")
LOOPBACK_V4 = ipaddress.ip_network("127.0.0.0/8")
MAX_BASE_DEPTH = 5

_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$")
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s)\s*$")
_RELATIVE_TIME = re.compile(r"^-(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_TIME_KEY = re.compile(r"(Timestamp|Time|At)$")


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message is one line naming file, path and problem."""


# -- the validated model ------------------------------------------------------------------------


@dataclass(frozen=True)
class Behaviour:
    """How an edge (or the in-cluster backend) answers; ``status`` for http_status, ``delay`` (s) for slow."""

    kind: str
    status: int | None = None
    delay: float = 0.0

    def __str__(self) -> str:
        if self.kind == "http_status":
            return f"http_status {self.status}"
        if self.kind == "slow":
            return f"slow {self.delay * 1000:g}ms"
        return self.kind


@dataclass(frozen=True)
class EdgeSpec:
    address: str
    behaviour: Behaviour
    hosts: tuple[str, ...] | None = None
    tls: str | None = None


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


@dataclass(frozen=True)
class ResolverSpec:
    name: str
    records: dict[str, RecordSpec]


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
    objects: list[dict[str, Any]] = field(default_factory=list)
    logs: dict[str, str] = field(default_factory=dict)
    deny: list[dict[str, str]] = field(default_factory=list)
    application: dict[str, Any] = field(default_factory=dict)  # [tool.reachability.<table>] tables
    postgres: bool = True

    def objects_of_kind(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return [
            obj for obj in self.objects
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
    scenario = _Validator(path.name if path.parent == SCENARIOS_DIR else str(path)).scenario(document, str(path))
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


def _overlay(base: dict[str, Any], overlay: dict[str, Any], label: str) -> dict[str, Any]:
    result = copy.deepcopy(base)
    for key, value in overlay.items():
        if key == "dns" and isinstance(value, dict) and isinstance(result.get("dns"), dict):
            resolvers = dict(result["dns"])
            for resolver, spec in value.items():
                old = resolvers.get(resolver)
                if spec is None:
                    resolvers.pop(resolver, None)
                elif isinstance(spec, dict) and isinstance(old, dict) and isinstance(spec.get("records"), dict):
                    resolvers[resolver] = {**old, **spec, "records": _merge_keyed(old.get("records") or {}, spec["records"])}
                else:
                    resolvers[resolver] = spec
            result["dns"] = resolvers
        elif key == "edges" and isinstance(value, list) and isinstance(result.get("edges"), list):
            edges = list(result["edges"])
            for entry in value:
                address = entry.get("address") if isinstance(entry, dict) else None
                same = [i for i, edge in enumerate(edges) if isinstance(edge, dict) and edge.get("address") == address]
                if same and address is not None:
                    edges[same[0]] = entry
                else:
                    edges.append(entry)
            result["edges"] = edges
        elif key == "kubernetes" and isinstance(value, dict) and isinstance(result.get("kubernetes"), dict):
            result["kubernetes"] = _overlay_kubernetes(result["kubernetes"], value, label)
        elif key == "application" and isinstance(value, dict) and isinstance(result.get("application"), dict):
            result["application"] = merge_patch(result["application"], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _overlay_kubernetes(base: dict[str, Any], overlay: dict[str, Any], label: str) -> dict[str, Any]:
    result = dict(base)
    objects = list(base.get("objects") or [])
    removals = overlay.get("remove") or []
    if not isinstance(removals, list) or not all(isinstance(item, str) for item in removals):
        raise ScenarioError(f"{label}: kubernetes.remove: expected a list of Kind/namespace/name, got {_describe(removals)}")
    for index, identity in enumerate(removals):
        kept = [obj for obj in objects if object_identity(obj) != identity]
        if len(kept) == len(objects):
            raise ScenarioError(
                f"{label}: kubernetes.remove[{index}]: expected an object of the base, got {identity!r}"
            )
        objects = kept
    patches = overlay.get("objects")
    if patches is not None:
        if not isinstance(patches, list):
            raise ScenarioError(f"{label}: kubernetes.objects: expected a list of manifests, got {_describe(patches)}")
        for patch in patches:
            identity = object_identity(patch)
            same = [i for i, obj in enumerate(objects) if identity is not None and object_identity(obj) == identity]
            if same:
                objects[same[0]] = merge_patch(objects[same[0]], patch)
            else:
                objects.append(copy.deepcopy(patch))
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


def is_hostname(text: Any) -> bool:
    if not isinstance(text, str) or not text or len(text) > 253:
        return False
    return all(_HOST_LABEL.match(label) for label in text.lower().rstrip(".").split("."))


class _Validator:
    def __init__(self, label: str) -> None:
        self.label = label

    def fail(self, path: str, expected: str, value: Any) -> ScenarioError:
        return ScenarioError(f"{self.label}: {path}: expected {expected}, got {_describe(value)}")

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
        if not isinstance(value, dict):
            raise self.fail(path, "a mapping", value)
        for key in value:
            if key not in allowed:
                raise ScenarioError(
                    f"{self.label}: {path}.{key}: expected one of the keys {', '.join(allowed)}, got {_describe(key)}"
                    if path else
                    f"{self.label}: {key}: expected one of the keys {', '.join(allowed)}, got {_describe(key)}"
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
            doc, "",
            ("name", "description", "target", "namespace", "dns", "edges", "in_cluster", "kubernetes", "application",
             "postgres"),
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
        in_cluster = Behaviour("healthy")
        if "in_cluster" in doc:
            self.mapping(doc["in_cluster"], "in_cluster", ("behaviour",), ("behaviour",))
            in_cluster = self.behaviour(doc["in_cluster"]["behaviour"], "in_cluster.behaviour")
            if in_cluster.kind == "refuse":
                raise self.fail("in_cluster.behaviour", "a behaviour of a listening server (not refuse)", "refuse")
        objects, logs, deny = self.kubernetes(doc.get("kubernetes", {}), {edge.address for edge in edges})
        application = self.application(doc.get("application", {}))
        postgres = doc.get("postgres", True)
        if postgres is not True and postgres is not False:
            raise self.fail("postgres", "true or false", postgres)
        return Scenario(
            name=name, description=description.strip(), path=path, target=target, namespace=namespace,
            resolvers=resolvers, edges=edges, in_cluster=in_cluster, objects=objects, logs=logs, deny=deny,
            application=application, postgres=postgres,
        )

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
            raise ScenarioError(f"{self.label}: {where}: expected {error.expected}, got {error.got}") from None
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
            if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9_-]+$", name):
                raise self.fail("dns", "resolver names of letters, digits, '-' and '_'", name)
            self.mapping(spec, path, ("records",), ("records",))
            records = spec["records"]
            if not isinstance(records, dict):
                raise self.fail(f"{path}.records", "a mapping of names to record specs", records)
            parsed = {}
            for record_name, record in records.items():
                if not is_hostname(record_name):
                    raise self.fail(f"{path}.records", "host names as keys", record_name)
                parsed[record_name.lower().rstrip(".")] = self.record(record, f"{path}.records.{record_name}")
            resolvers.append(ResolverSpec(name=name, records=parsed))
        return resolvers

    def record(self, value: Any, path: str) -> RecordSpec:
        self.mapping(value, path, ("A", "AAAA", "CNAME", "TXT", "ttl", "rcode", "no_answer", "delay_ms"))
        kinds = [key for key in ("A", "AAAA", "CNAME", "TXT") if key in value]
        outcome = [key for key in ("rcode", "no_answer") if key in value]
        if not kinds and not outcome:
            raise self.fail(path, "A, AAAA, CNAME, TXT, rcode or no_answer", value)
        if outcome and kinds or len(outcome) > 1:
            raise self.fail(path, "either records or one of rcode / no_answer", "both")
        a = tuple(self.addresses(value["A"], f"{path}.A", 4)) if "A" in value else ()
        aaaa = tuple(self.addresses(value["AAAA"], f"{path}.AAAA", 6)) if "AAAA" in value else ()
        cname = value.get("CNAME")
        if cname is not None and not is_hostname(cname):
            raise self.fail(f"{path}.CNAME", "a host name", cname)
        if cname is not None and (a or aaaa):
            raise self.fail(path, "CNAME without A or AAAA beside it", "both")
        txt = value.get("TXT", [])
        if not isinstance(txt, list) or not all(isinstance(item, str) and len(item) <= 255 for item in txt):
            raise self.fail(f"{path}.TXT", "a list of strings of at most 255 characters", txt)
        rcode = value.get("rcode")
        if rcode is not None and rcode not in RCODES:
            raise self.fail(f"{path}.rcode", f"one of {', '.join(RCODES)}", rcode)
        no_answer = value.get("no_answer", False)
        if no_answer is not False and no_answer is not True:
            raise self.fail(f"{path}.no_answer", "true or false", no_answer)
        delay_ms = value.get("delay_ms", 0)
        if isinstance(delay_ms, bool) or not isinstance(delay_ms, int) or not 0 <= delay_ms <= 60000:
            raise self.fail(f"{path}.delay_ms", "milliseconds from 0 to 60000", delay_ms)
        ttl = value.get("ttl", 300)
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= 2**31 - 1:
            raise self.fail(f"{path}.ttl", "seconds (a non-negative integer)", ttl)
        return RecordSpec(
            a=a, aaaa=aaaa, cname=cname.lower().rstrip(".") if cname else None, txt=tuple(txt), rcode=rcode,
            no_answer=no_answer, delay=delay_ms / 1000, ttl=ttl,
        )

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
            self.mapping(entry, path, ("address", "behaviour", "hosts", "tls"), ("address", "behaviour"))
            try:
                address = ipaddress.ip_address(entry["address"])
            except ValueError:
                address = None
            if address is None or address.version != 4 or address not in LOOPBACK_V4:
                raise self.fail(f"{path}.address", "an IPv4 address in 127.0.0.0/8", entry["address"])
            if address == OS_RESOLVER_ADDRESS:
                raise self.fail(f"{path}.address", "an address other than 127.0.0.53 (the OS resolver's)", str(address))
            if str(address) in seen:
                raise self.fail(f"{path}.address", "an address not used by another edge", str(address))
            seen.add(str(address))
            behaviour = self.behaviour(entry["behaviour"], f"{path}.behaviour")
            hosts = entry.get("hosts")
            if hosts is not None:
                if not isinstance(hosts, list) or not all(is_hostname(host) for host in hosts):
                    raise self.fail(f"{path}.hosts", "a list of host names", hosts)
                hosts = tuple(host.lower().rstrip(".") for host in hosts)
            tls = entry.get("tls")
            if tls is not None and tls not in TLS_KINDS:
                raise self.fail(f"{path}.tls", f"one of {', '.join(TLS_KINDS)}", tls)
            edges.append(EdgeSpec(address=str(address), behaviour=behaviour, hosts=hosts, tls=tls))
        return edges

    def behaviour(self, value: Any, path: str) -> Behaviour:
        expected = f"one of {', '.join(SIMPLE_BEHAVIOURS)}, {{http_status: N}} or {{slow: DURATION}}"
        if isinstance(value, str):
            if value not in SIMPLE_BEHAVIOURS:
                raise self.fail(path, expected, value)
            return Behaviour(value)
        if not isinstance(value, dict) or len(value) != 1:
            raise self.fail(path, expected, value)
        (kind, argument), = value.items()
        if kind == "http_status":
            if isinstance(argument, bool) or not isinstance(argument, int) or not 100 <= argument <= 599:
                raise self.fail(f"{path}.http_status", "an HTTP status from 100 to 599", argument)
            return Behaviour("http_status", status=argument)
        if kind == "slow":
            delay = parse_duration(argument)
            if delay is None or delay > 600:
                raise self.fail(f"{path}.slow", "a duration such as 300ms or 2s (at most 600s)", argument)
            return Behaviour("slow", delay=delay)
        raise self.fail(path, expected, value)

    # -- kubernetes

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
            f"{obj['metadata']['namespace']}/{obj['metadata']['name']}" for obj in objects if obj["kind"] == "Pod"
        }
        logs = value.get("logs") or {}
        if not isinstance(logs, dict):
            raise self.fail("kubernetes.logs", "a mapping of namespace/pod to log text", logs)
        for key, text in logs.items():
            if key not in pods:
                raise self.fail("kubernetes.logs", "keys naming a Pod of kubernetes.objects as namespace/pod", key)
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
        metadata = obj.get("metadata")
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
            raise self.fail(f"{path}.metadata.namespace", f"no namespace (a {kind} is cluster-wide)", namespace)
        for key in ("labels", "annotations"):
            labels = metadata.get(key)
            if labels is not None and (
                not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values())
            ):
                raise self.fail(f"{path}.metadata.{key}", "a mapping of strings to strings", labels)
        identity = object_identity(obj)
        assert identity is not None
        if identity in seen:
            raise self.fail(path, "one manifest per kind, namespace and name", f"a second {identity}")
        seen.add(identity)
        if kind == "Secret":
            for key in ("data", "stringData"):
                if key in obj:
                    raise self.fail(f"{path}.{key}", "no secret data (the sandbox keeps Secrets' metadata only)", "data")
        if kind in ("Service", "Ingress"):
            ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            if not isinstance(ingress, list):
                raise self.fail(f"{path}.status.loadBalancer.ingress", "a list", ingress)
            for position, entry in enumerate(ingress):
                address = entry.get("ip") if isinstance(entry, dict) else None
                if address is not None and address not in edge_addresses:
                    raise self.fail(
                        f"{path}.status.loadBalancer.ingress[{position}].ip", "the address of an edge of this scenario",
                        address,
                    )
