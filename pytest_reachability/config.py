"""Settings and Target: what to verify and how, from CLI > environment > file > defaults.

Everything here except :func:`load_settings` is plain Python, so probes, reports and the sandbox can
parse targets and settings without pytest. Bad input raises :class:`TargetError` or
:class:`SettingsError` whose message is one line naming the input (credentials masked) and what is
expected; :func:`load_settings` turns them into ``pytest.UsageError`` (exit status 4, no traceback).
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from .redact import MIN_SECRET_LENGTH, mask_usage_error, redact_target_text

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

if TYPE_CHECKING:
    import pytest

__all__ = [
    "DEFAULT_PORTS",
    "SETTING_KEYS",
    "Settings",
    "SettingsError",
    "Target",
    "TargetError",
    "TargetSpec",
    "describe",
    "parse_shard",
    "load_settings",
    "mask_credentials",
    "parse_resolver",
    "parse_target",
    "resolve_settings",
    "resolver_endpoint",
]

DEFAULT_PORTS: dict[str, int] = {"http": 80, "https": 443}
TARGET_FORMS = "HOST, HOST:PORT, [IPv6]:PORT or http(s)://HOST[:PORT][/PATH]"

_SCHEME_PREFIX = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# "http:/x", "https:x", "http:" look like a mistyped scheme; "http:8080" stays a host named http.
_MISTYPED_SCHEME = re.compile(r"^https?:(?![0-9]+(?:[/?#]|$))", re.IGNORECASE)
_ASCII_DIGITS = re.compile(r"[0-9]+")
_HOST_NAME_CHARS = re.compile(r"[a-z0-9.-]")
_PATH_SAFE = "/:!$&'()*+,;=-._~%"
_BAD_PERCENT_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_CONTROL_OR_SPACE = re.compile(r"[\s\x00-\x1f\x7f]")
_ZONE = re.compile(r"[A-Za-z0-9_.-]{1,32}")


class TargetError(ValueError):
    """A target that cannot be used.

    ``str()`` is one line: the masked input, what is wrong, what is expected."""


class SettingsError(ValueError):
    """A setting that cannot be used; ``str()`` is one line naming where it came from and what is expected."""


def mask_credentials(text: str) -> str:
    """``text`` (a target or database URL as typed) safe to print: credentials and secret query values masked.

    Masking itself lives in :mod:`pytest_reachability.redact`, the one place secrets are masked.
    """
    return redact_target_text(text)


@dataclass(frozen=True)
class Target:
    """The service under verification, normalised.

    >>> t = parse_target("https://user:secret@Example.com/api/")
    >>> t.base_url, t.display, t.url("/health")
    ('https://example.com/api', 'https://***:***@example.com/api', 'https://example.com/api/health')
    """

    raw: str = field(repr=False)  # as typed, may hold credentials
    scheme: str  # 'http' or 'https'
    host: str  # ASCII (IDN as punycode), lowercase; IPv6 without brackets, compressed
    port: int
    base_path: str  # '' or like '/api', never a trailing slash
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    scheme_explicit: bool = False

    @property
    def is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    @property
    def url_host(self) -> str:
        """The host as written in a URL: IPv6 in brackets."""
        return f"[{self.host}]" if ":" in self.host else self.host

    @property
    def netloc(self) -> str:
        """``host[:port]``, the port left out when it is the scheme's default."""
        if self.port == DEFAULT_PORTS[self.scheme]:
            return self.url_host
        return f"{self.url_host}:{self.port}"

    @property
    def host_header(self) -> str:
        return self.netloc

    @property
    def base_url(self) -> str:
        """``scheme://netloc/base-path`` without credentials."""
        return f"{self.scheme}://{self.netloc}{self.base_path}"

    @property
    def display(self) -> str:
        """Like :attr:`base_url`, with ``***`` standing for credentials: safe to print."""
        if self.username is None:
            return self.base_url
        credentials = "***:***@" if self.password is not None else "***@"
        return f"{self.scheme}://{credentials}{self.netloc}{self.base_path}"

    @property
    def auth(self) -> tuple[str, str] | None:
        """``(username, password)`` for HTTP basic auth, or None when the target has no credentials."""
        if self.username is None:
            return None
        return (self.username, self.password or "")

    def url(self, path: str = "") -> str:
        """The URL of ``path`` under the base path: ``url('/health')`` -> ``https://host/api/health``."""
        if path and not path.startswith("/"):
            path = "/" + path
        return self.base_url + path

    def __str__(self) -> str:
        return self.display


@dataclass(frozen=True)
class TargetSpec:
    """One target of a run and what may differ per target: namespace, health path, Service.

    ``None`` fields take the run's value (``--namespace``, ``--health-path``, ``service`` of
    ``[tool.reachability.cluster]``). ``origin`` says where it came from: cli, env, file, discovered,
    sandbox.
    """

    target: Target
    namespace: str | None = None
    health_path: str | None = None
    service: str | None = None
    origin: str = "cli"

    @property
    def key(self) -> str:
        """The target's name in every output: its display form (credentials masked)."""
        return self.target.display

    @property
    def test_id(self) -> str:
        """The part of a node id naming the target: ``host[:port][/path]`` (never credentials)."""
        return f"{self.target.netloc}{self.target.base_path}"

    def to_dict(self) -> dict[str, Any]:
        """Plain data for xdist workers (the raw target, credentials included: workers are ours)."""
        return {
            "raw": self.target.raw,
            "namespace": self.namespace,
            "health_path": self.health_path,
            "service": self.service,
            "origin": self.origin,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TargetSpec:
        return cls(
            parse_target(data["raw"]),
            namespace=data.get("namespace"),
            health_path=data.get("health_path"),
            service=data.get("service"),
            origin=data.get("origin", "cli"),
        )


def _split_credentials(rest: str, fail: Callable[..., TargetError]) -> tuple[str, str | None, str | None]:
    """``USER[:PASSWORD]@`` taken off the front: (the rest, username, password), unquoted."""
    at = rest.rfind("@")
    if at < 0:
        return rest, None, None
    userinfo, rest = rest[:at], rest[at + 1 :]
    if not userinfo:
        raise fail("nothing before '@'", "USER[:PASSWORD]@HOST")
    user_part, colon, password_part = userinfo.partition(":")
    return rest, unquote(user_part), unquote(password_part) if colon else None


def _check_scheme(scheme: str | None, rest: str, fail: Callable[..., TargetError]) -> None:
    """Refuse a scheme other than http(s), a stray '://' and a mistyped scheme."""
    if scheme is not None and scheme not in DEFAULT_PORTS:
        raise fail(f"unsupported scheme {scheme!r}", "http:// or https://")
    if "://" in rest:
        if rest.startswith("://"):
            raise fail("no scheme before '://'", "http:// or https://")
        raise fail("'://' in an unexpected place", TARGET_FORMS)
    if scheme is None and _MISTYPED_SCHEME.match(rest):
        raise fail("malformed scheme", "'http://' or 'https://' (two slashes)")


def _split_authority(rest: str, scheme: str | None, fail: Callable[..., TargetError]) -> tuple[str, str]:
    """``host[:port]`` and the path after it; a query or fragment, or no host, is refused."""
    split_at = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    authority, path = rest[:split_at], rest[split_at:]
    if "?" in path or "#" in path:
        raise fail("a query or fragment is not part of a target", "scheme, host, port and base path only")
    if not authority:
        raise fail(f"no host after '{scheme}://'" if scheme else "the host is empty")
    return authority, path


def parse_target(text: str) -> Target:
    """Parse ``host``, ``host:port``, ``[v6]:port`` or an ``http(s)://`` URL with optional base path.

    Without a scheme, port 443 means https and anything else http (default port 80). A bare IPv6
    address without brackets is accepted only where it cannot be read as address plus port
    (``::1`` and ``2001:db8::1`` are fine, ``::1:80`` must be written ``[::1]:80`` or ``[::1:80]``);
    inside a URL brackets are required, as RFC 3986 says. Credentials (``user:pass@``) are kept on
    the Target and masked in every message.
    """
    shown = repr(mask_credentials(text))

    def fail(problem: str, expected: str = TARGET_FORMS) -> TargetError:
        return TargetError(f"invalid target {shown}: {problem}; expected {expected}")

    stripped = text.strip()
    if not stripped:
        raise fail("it is empty")
    if _CONTROL_OR_SPACE.search(stripped):
        raise fail("it contains whitespace or control characters", "no spaces inside the target")

    scheme_match = _SCHEME_PREFIX.match(stripped)
    scheme = scheme_match.group(1).lower() if scheme_match else None
    rest = stripped[scheme_match.end() :] if scheme_match else stripped
    rest, username, password = _split_credentials(rest, fail)

    # From here on `rest` holds no credentials, so its parts may be quoted in messages.
    _check_scheme(scheme, rest, fail)
    authority, path = _split_authority(rest, scheme, fail)
    host, port_text = _split_host_port(authority, url=scheme is not None, fail=fail)
    port = _parse_port(port_text, fail) if port_text is not None else None
    base_path = _normalise_base_path(path, fail)

    scheme_explicit = scheme is not None
    if scheme is None:
        scheme = "https" if port == 443 else "http"
    return Target(
        raw=text,
        scheme=scheme,
        host=host,
        port=DEFAULT_PORTS[scheme] if port is None else port,
        base_path=base_path,
        username=username,
        password=password,
        scheme_explicit=scheme_explicit,
    )


def _split_host_port(
    authority: str, *, url: bool, fail: Callable[..., TargetError]
) -> tuple[str, str | None]:
    """Split ``host[:port]`` / ``[v6][:port]`` / bare v6 into a normalised host and the port text."""
    if authority.startswith("["):
        close = authority.find("]")
        if close < 0:
            raise fail("unbalanced '[': no closing ']'", "[IPv6] or [IPv6]:PORT")
        inner, after = authority[1:close], authority[close + 1 :]
        if after and not after.startswith(":"):
            raise fail(f"unexpected text {after!r} after ']'", "[IPv6] or [IPv6]:PORT")
        if not inner:
            raise fail("empty brackets", "[IPv6] or [IPv6]:PORT")
        try:
            host = str(ipaddress.IPv6Address(inner))
        except ValueError:
            raise fail(f"{inner!r} in brackets is not an IPv6 address", "[IPv6] or [IPv6]:PORT") from None
        return host, after[1:] if after else None
    if "[" in authority or "]" in authority:
        raise fail("unbalanced brackets", "[IPv6] or [IPv6]:PORT")

    if authority.count(":") >= 2:
        if not _is_ipv6(authority):
            raise fail(
                f"more than one ':' in {authority!r}",
                "HOST:PORT (an IPv6 address goes in brackets: [::1]:8080)",
            )
        if url:
            raise fail("an IPv6 address in a URL must be in brackets", "http://[IPv6]:PORT/")
        head, _, tail = authority.rpartition(":")
        if _ASCII_DIGITS.fullmatch(tail) and _is_ipv6(head):
            raise fail(
                f"{authority!r} is ambiguous: an IPv6 address, or {head!r} plus port {tail}",
                f"[{head}]:{tail} or [{authority}]",
            )
        return str(ipaddress.IPv6Address(authority)), None

    host_text, colon, port_text = authority.partition(":")
    if not host_text:
        raise fail("the host is empty")
    return _normalise_host_name(host_text, fail), port_text if colon else None


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _parse_port(port_text: str, fail: Callable[..., TargetError]) -> int:
    if not port_text:
        raise fail("the port after ':' is empty", "a port number 1-65535")
    if not _ASCII_DIGITS.fullmatch(port_text):
        raise fail(f"port {port_text!r} is not a number", "a port number 1-65535")
    # Length first: int() refuses very long digit strings, and they are out of range anyway.
    if len(port_text) > 5 or not 1 <= int(port_text) <= 65535:
        raise fail(f"port {port_text[:12]} is out of range", "a port number 1-65535")
    return int(port_text)


def _idna_to_ascii(name: str) -> str:
    """IDNA 2008 (UTS 46 mapping) via the ``idna`` package when installed, else the stdlib IDNA 2003 codec."""
    try:
        import idna
    except ImportError:
        return _stdlib_idna_to_ascii(name)
    try:
        return idna.encode(name, uts46=True).decode("ascii")
    except idna.IDNAError as error:
        raise ValueError(str(error)) from None


def _stdlib_idna_to_ascii(name: str) -> str:
    try:
        return name.encode("idna").decode("ascii").lower()
    except UnicodeError as error:
        raise ValueError(str(error)) from None


def _punycode_label_is_valid(label: str) -> bool:
    try:
        import idna
    except ImportError:
        try:
            label.encode("ascii").decode("idna")
        except UnicodeError:
            return False
        return True
    try:
        idna.decode(label)
    except (idna.IDNAError, UnicodeError):
        return False
    return True


def _normalise_host_name(text: str, fail: Callable[..., TargetError]) -> str:
    """Lowercase ASCII host name or IPv4 address; IDN converted to punycode; RFC 1123 rules enforced."""
    host = text
    if not host.isascii():
        try:
            host = _idna_to_ascii(host)
        except ValueError as error:
            raise fail(
                f"{text!r} is not a valid internationalised host name ({error})", "a valid host name"
            ) from None
    host = host.lower()
    if re.fullmatch(r"[0-9.]+", host):
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise fail(
                f"{host!r} is not a valid IPv4 address", "four numbers 0-255 like 192.0.2.10"
            ) from None

    if host.startswith("."):
        raise fail(f"host {host!r} starts with '.'", "a host name like api.example.com")
    if host.endswith("."):
        raise fail(f"host {host!r} ends with '.'", "a host name without a trailing dot")
    bad_char = next((ch for ch in host if not _HOST_NAME_CHARS.fullmatch(ch)), None)
    if bad_char is not None:
        raise fail(
            f"character {bad_char!r} is not allowed in a host name",
            "letters, digits, '-' and '.' (or an IDN name)",
        )
    if len(host) > 253:
        raise fail(f"the host name is {len(host)} characters long", "at most 253 characters")
    for label in host.split("."):
        if not label:
            raise fail(f"host {host!r} has an empty label ('..')", "a host name like api.example.com")
        if len(label) > 63:
            raise fail(
                f"label {label[:20] + '...'!r} is {len(label)} characters long",
                "at most 63 characters per label",
            )
        if label.startswith("-") or label.endswith("-"):
            raise fail(
                f"label {label!r} starts or ends with '-'", "labels that begin and end with a letter or digit"
            )
        if label.startswith("xn--") and not _punycode_label_is_valid(label):
            raise fail(f"label {label!r} is not valid punycode", "a valid IDN label")
    return host


def _normalise_base_path(path: str, fail: Callable[..., TargetError]) -> str:
    if path in ("", "/"):
        return ""
    if not path.isascii():
        path = quote(path, safe=_PATH_SAFE)
    if _BAD_PERCENT_ESCAPE.search(path):
        raise fail(
            "a '%' in the base path is not followed by two hex digits",
            "a percent-encoded path like /my%20api",
        )
    if path.endswith("/"):
        path = path[:-1]
    segments = path[1:].split("/")
    if "" in segments:
        raise fail(f"base path {path!r} has an empty segment ('//')", "a path like /api/v1")
    if "." in segments or ".." in segments:
        raise fail(f"base path {path!r} has a '.' or '..' segment", "a path like /api/v1")
    disallowed = next((ch for ch in path if ch not in _PATH_SAFE and not ch.isalnum()), None)
    if disallowed is not None:
        raise fail(f"character {disallowed!r} is not allowed in the base path", "a percent-encoded path")
    return path


# --- DNS resolvers -------------------------------------------------------------------------------------


def parse_resolver(text: str) -> str:
    """Validate one resolver and return its canonical spelling.

    ``system`` (the OS resolver), ``ADDR``, ``ADDR:PORT``, ``[IPv6]:PORT``; a bare IPv6 address is an
    address without port. Canonical forms: ``system``, ``192.0.2.1``, ``192.0.2.1:5353``, ``2001:db8::1``,
    ``[2001:db8::1]:5353``.
    """
    value = text.strip()
    expected = "'system', ADDR, ADDR:PORT or [IPv6]:PORT with an IP address"

    def fail(problem: str) -> SettingsError:
        return SettingsError(f"invalid resolver {text!r}: {problem}; expected {expected}")

    if value.lower() == "system":
        return "system"
    if not value:
        raise fail("it is empty")
    port_text: str | None = None
    if value.startswith("["):
        close = value.find("]")
        if close < 0:
            raise fail("unbalanced '['")
        address_text, after = value[1:close], value[close + 1 :]
        if after and not after.startswith(":"):
            raise fail(f"unexpected text {after!r} after ']'")
        port_text = after[1:] if after else None
        if not _is_ipv6(address_text):
            raise fail(f"{address_text!r} is not an IPv6 address")
    elif value.count(":") >= 2:
        if not _is_ipv6(value):
            raise fail("more than one ':' (an IPv6 address with a port goes in brackets)")
        head, _, tail = value.rpartition(":")
        if _ASCII_DIGITS.fullmatch(tail) and _is_ipv6(head):
            raise fail(f"ambiguous: write [{head}]:{tail} or [{value}]")
        address_text = value
    else:
        address_text, colon, port_value = value.partition(":")
        port_text = port_value if colon else None
        try:
            ipaddress.IPv4Address(address_text)
        except ValueError:
            raise fail(f"{address_text!r} is not an IP address") from None
    address = ipaddress.ip_address(_link_local_zone(address_text, fail))
    if port_text is None:
        return str(address)
    if not _ASCII_DIGITS.fullmatch(port_text) or len(port_text) > 5 or not 1 <= int(port_text) <= 65535:
        raise fail(f"port {port_text[:12]!r} is not a number 1-65535")
    host = f"[{address}]" if address.version == 6 else str(address)
    return f"{host}:{int(port_text)}"


def _link_local_zone(address_text: str, fail: Callable[[str], SettingsError]) -> str:
    """``fe80::1%eth0`` (or RFC 6874's ``%25eth0``) names the interface of a link-local address; a zone
    means nothing on any other address, and an empty one is a typo."""
    address, percent, zone = address_text.partition("%")
    if not percent:
        return address_text
    if zone.startswith("25") and len(zone) > 2:
        zone = zone[2:]
    if not zone or not _ZONE.fullmatch(zone):
        raise fail(f"{address_text!r} has an empty or malformed zone after '%'")
    if not ipaddress.IPv6Address(address).is_link_local:
        raise fail(f"a zone ('%{zone}') is only meaningful on a link-local fe80:: address, not on {address}")
    return f"{address}%{zone}"


def resolver_endpoint(spec: str) -> tuple[str, int] | None:
    """``(address, port)`` of a resolver spec (port 53 when not given); None for ``system``."""
    canonical = parse_resolver(spec)
    if canonical == "system":
        return None
    if canonical.startswith("["):
        address, _, port = canonical[1:].partition("]:")
        return address, int(port)
    if canonical.count(":") == 1:
        address, _, port = canonical.partition(":")
        return address, int(port)
    return canonical, 53


def _split_list(text: str) -> list[str]:
    return [item for item in re.split(r"[,\s]+", text.strip()) if item]


# --- Settings --------------------------------------------------------------------------------------------

SETTING_KEYS: tuple[str, ...] = (
    "target",
    "namespace",
    "kubeconfig",
    "kube_context",
    "resolvers",
    "health_path",
    "probe_timeout",
    "ca_bundle",
    "sandbox",
    "sandbox_apiserver",
    "incident_report",
    "results_json",
    "results_db",
    "gate_timeout",
    "allow_all_skipped",
    "wait",
    "discover",
    "discover_selector",
    "shard",
    "concurrency",
)
_BOOLEAN_KEYS = ("allow_all_skipped", "discover")
TARGETS_KEY = "targets"  # the file's array of targets (strings or tables)
_TARGET_TABLE_KEYS = ("target", "namespace", "health-path", "service")
MAX_CONCURRENCY = 256
_TRUE_WORDS, _FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
_CLI_FLAGS = {key: "--" + key.replace("_", "-") for key in SETTING_KEYS} | {"resolvers": "--resolver"}
_FILE_KEYS = {key.replace("_", "-"): key for key in SETTING_KEYS}
CONFIG_ENV = "REACHABILITY_CONFIG"
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def env_name(key: str) -> str:
    """The environment variable of a setting: ``probe_timeout`` -> ``REACHABILITY_PROBE_TIMEOUT``."""
    return f"REACHABILITY_{key.upper()}"


@dataclass
class Settings:
    """The configuration in force; ``sources`` says where each value came from."""

    target: Target | None = None
    namespace: str | None = None
    kubeconfig: str | None = None
    kube_context: str | None = None
    resolvers: list[str] = field(default_factory=lambda: ["system"])
    health_path: str = "/health"
    probe_timeout: float = 5.0
    ca_bundle: str | None = None
    sandbox: str | None = None
    sandbox_apiserver: str = "embedded"
    incident_report: str | None = None
    results_json: str | None = None
    results_db: str | None = None
    gate_timeout: float = 300.0
    allow_all_skipped: bool = (
        False  # a run whose built-in checks were all skipped is accepted (exit 0, not 5)
    )
    wait: float = 0.0  # --wait: seconds to retry the gates' probes before the suite runs (0: no waiting)
    discover: bool = False  # --discover: verify every public host the cluster serves
    discover_selector: str | None = None  # --discover-selector: label selector of what discovery reads
    shard: tuple[int, int] | None = None  # --shard I/N: (I, N), I counted from 1
    concurrency: int = 8  # --concurrency: targets probed at once
    targets: list[TargetSpec] = field(default_factory=list)  # every target; ``target`` is the first
    config_file: str | None = None  # the file the [tool.reachability] values came from
    sources: dict[str, str] = field(default_factory=lambda: dict.fromkeys(SETTING_KEYS, "default"))
    tables: dict[str, dict] = field(
        default_factory=dict
    )  # [tool.reachability.<name>] for application sections
    mask: list[str] = field(default_factory=list, repr=False)  # --mask: values masked in every output
    mask_env: list[str] = field(default_factory=list)  # mask-env: variables whose values are masked

    def with_overrides(self, **values: Any) -> Settings:
        """Fill settings the user did not give (source ``default``) with ``values``; user values win.

        Used by ``--sandbox`` to point target, kubeconfig, resolvers, ... at the local deployment. Values
        are validated like user input (paths are not required to exist yet); a filled key gets source
        ``override``. None values are ignored.
        """
        changes: dict[str, Any] = {}
        sources = dict(self.sources)
        for key, value in values.items():
            if key not in SETTING_KEYS:
                raise TypeError(
                    f"with_overrides() got an unknown setting {key!r}; expected one of "
                    f"{', '.join(SETTING_KEYS)}"
                )
            if value is None or self.sources.get(key, "default") != "default":
                continue
            if key == "target" and isinstance(value, Target):
                changes[key] = value
            elif key == "resolvers" and not isinstance(value, str):
                changes[key] = _dedupe(parse_resolver(str(item)) for item in value)
            else:
                changes[key] = _convert_text(key, str(value), base_dir=None, check_exists=False)
            sources[key] = "override"
        if "target" in changes:
            changes["targets"] = [TargetSpec(changes["target"], origin="override")]
        return dataclasses.replace(self, **changes, sources=sources)


def _dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _convert_text(key: str, value: str, *, base_dir: Path | None, check_exists: bool) -> Any:
    """Validate and convert one textual value (CLI, env, or a TOML string).

    Raises ValueError without origin."""
    if key == "target":
        return parse_target(value)
    if key in _BOOLEAN_KEYS:
        return _convert_boolean(value)
    if key == "wait":
        return _parse_wait(value)
    if key == "shard":
        return parse_shard(value)
    if key == "concurrency":
        return _convert_concurrency(value)
    if key == "resolvers":
        return _convert_resolvers(value)
    if key in ("probe_timeout", "gate_timeout"):
        return _convert_seconds(key, value)
    return _convert_word(key, value, base_dir=base_dir, check_exists=check_exists)


def parse_shard(value: str) -> tuple[int, int]:
    """``I/N`` (the I-th of N shards, counted from 1, as Playwright and Jest count them) -> (I, N)."""
    match = re.fullmatch(r"\s*(\d{1,6})\s*/\s*(\d{1,6})\s*", str(value))
    if not match:
        raise SettingsError(f"{str(value)[:40]!r} is not a shard; expected I/N, like 2/4 (shard 2 of 4)")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 1 <= index <= count:
        raise SettingsError(f"shard {index}/{count} does not exist; expected I/N with 1 <= I <= N")
    return index, count


def _convert_concurrency(value: Any) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not re.fullmatch(r"\d{1,4}", text) or not 1 <= int(text) <= MAX_CONCURRENCY:
        raise SettingsError(
            f"{text[:40]!r} is not a concurrency; expected a whole number from 1 to {MAX_CONCURRENCY}"
        )
    return int(text)


def _convert_boolean(value: str) -> bool:
    word = value.strip().lower()
    if word not in _TRUE_WORDS + _FALSE_WORDS:
        raise SettingsError(
            f"{value!r} is not a yes/no value; expected one of {', '.join(_TRUE_WORDS + _FALSE_WORDS)}"
        )
    return word in _TRUE_WORDS


def _convert_resolvers(value: str) -> list[str]:
    items = _split_list(value)
    if not items:
        raise SettingsError("no resolver given; expected 'system' or IP addresses separated by commas")
    return _dedupe(parse_resolver(item) for item in items)


def _convert_seconds(key: str, value: str) -> float:
    try:
        seconds = float(value.strip())
    except ValueError:
        raise SettingsError(f"{value!r} is not a number; expected {_seconds_expectation(key)}") from None
    return _check_seconds(key, seconds)


# Paths and kubeconfig context names may legitimately hold spaces; names and URLs may not.
_MAY_HOLD_SPACES = (
    "kubeconfig",
    "ca_bundle",
    "incident_report",
    "results_json",
    "kube_context",
    "discover_selector",  # set-based selectors: ``tier in (web, api)``
)
_PATH_KEYS = ("kubeconfig", "ca_bundle", "incident_report", "results_json")


def _convert_word(key: str, value: str, *, base_dir: Path | None, check_exists: bool) -> str:
    """A name, URL or path setting: trimmed, non-empty and checked against what its key expects."""
    text = value.strip()
    if not text:
        raise SettingsError(f"it is empty; expected {_text_expectation(key)}")
    if _CONTROL_OR_SPACE.search(text) and key not in _MAY_HOLD_SPACES:
        raise SettingsError(
            f"{text!r} contains whitespace or control characters; expected {_text_expectation(key)}"
        )
    if key == "results_db":
        return _convert_results_db(text, base_dir)
    if key in _PATH_KEYS:
        return _convert_path(key, text, base_dir=base_dir, check_exists=check_exists)
    check = _WORD_CHECKS.get(key)
    if check is not None:
        check(text)
    return text  # kube_context, sandbox, and the checked words


def _check_sandbox_apiserver(text: str) -> None:
    if text not in ("embedded", "real"):
        raise SettingsError(
            f"{text!r} is not an API server kind; expected {_text_expectation('sandbox_apiserver')}"
        )


def _check_namespace(text: str) -> None:
    if len(text) > 63 or not _NAMESPACE.fullmatch(text):
        raise SettingsError(
            f"{text!r} is not a Kubernetes namespace name; expected {_text_expectation('namespace')}"
        )


def _check_health_path(text: str) -> None:
    if not text.startswith("/"):
        raise SettingsError(f"{text!r} does not start with '/'; expected {_text_expectation('health_path')}")
    if "#" in text:
        raise SettingsError(
            f"{text!r} contains a fragment ('#'); expected {_text_expectation('health_path')}"
        )


def _check_selector(text: str) -> None:
    if re.search(r"[\x00-\x1f\x7f]", text):
        raise SettingsError(
            f"it contains control characters; expected {_text_expectation('discover_selector')}"
        )


def _check_service(text: str) -> None:
    if len(text) > 63 or not _NAMESPACE.fullmatch(text):
        raise SettingsError(f"{text!r} is not a Service name; expected {_text_expectation('service')}")


_WORD_CHECKS: dict[str, Callable[[str], None]] = {
    "discover_selector": _check_selector,
    "service": _check_service,
    "sandbox_apiserver": _check_sandbox_apiserver,
    "namespace": _check_namespace,
    "health_path": _check_health_path,
}


def _convert_results_db(text: str, base_dir: Path | None) -> str:
    """An SQLite file (path or sqlite:/// URL, resolved) or a PostgreSQL URL (kept as given)."""
    scheme = _URL_SCHEME.match(text)
    if scheme and scheme.group(1).lower() == "sqlite":
        return _resolve_path(_sqlite_url_path(text), base_dir)
    if scheme:
        if scheme.group(1).lower() not in ("postgresql", "postgres"):
            shown = mask_credentials(text)
            raise SettingsError(
                f"unsupported database URL {shown!r}; expected {_text_expectation('results_db')}"
            )
        return text
    return _resolve_path(text, base_dir)


def _convert_path(key: str, text: str, *, base_dir: Path | None, check_exists: bool) -> str:
    path = _resolve_path(text, base_dir)
    if check_exists and key in ("kubeconfig", "ca_bundle") and not Path(path).is_file():
        raise SettingsError(f"file {path!r} does not exist; expected {_text_expectation(key)}")
    return path


def _parse_wait(value: Any) -> float:
    from .wait import WaitError, parse_wait

    try:
        return parse_wait(value)
    except WaitError as error:
        raise SettingsError(str(error)) from None


def _sqlite_url_path(text: str) -> str:
    """The file of ``sqlite:///relative/path`` or ``sqlite:////absolute/path`` (SQLAlchemy's spelling)."""
    path = text[len("sqlite://") :]
    if not path.startswith("/") or len(path) < 2:
        raise SettingsError(
            f"{mask_credentials(text)!r} names no file; expected sqlite:///relative/path or "
            "sqlite:////absolute/path"
        )
    return path[1:]


def _resolve_path(text: str, base_dir: Path | None) -> str:
    path = Path(text).expanduser()
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    return str(path)


def _check_seconds(key: str, seconds: float) -> float:
    limit = 300.0 if key == "probe_timeout" else 86400.0
    if not math.isfinite(seconds) or not 0 < seconds <= limit:
        raise SettingsError(f"{seconds:g} seconds is out of range; expected {_seconds_expectation(key)}")
    return seconds


def _seconds_expectation(key: str) -> str:
    return (
        "seconds, a number > 0 and <= 300" if key == "probe_timeout" else "seconds, a number > 0 and <= 86400"
    )


def _text_expectation(key: str) -> str:
    return {
        "namespace": "a Kubernetes namespace (lowercase letters, digits and '-', at most 63 characters)",
        "kubeconfig": "the path of an existing kubeconfig file",
        "ca_bundle": "the path of an existing PEM CA bundle",
        "health_path": "an HTTP path starting with '/', like /health",
        "results_db": "an SQLite file path, a sqlite:/// URL or a postgresql:// URL",
        "kube_context": "a kubeconfig context name",
        "sandbox": "a sandbox scenario name",
        "sandbox_apiserver": "embedded or real",
        "discover_selector": "a Kubernetes label selector, like app=web,tier!=internal",
        "service": "a Service name (lowercase letters, digits and '-', at most 63 characters)",
    }.get(key, "a file path")


def _toml_type(value: Any) -> str:
    for kind, name in (
        (bool, "boolean"),
        (str, "string"),
        (int, "integer"),
        (float, "float"),
        (list, "array"),
        (dict, "table"),
    ):
        if isinstance(value, kind):
            return name
    return "date/time"


def _convert_file_value(key: str, value: Any, base_dir: Path) -> Any:
    if key in _BOOLEAN_KEYS:
        if not isinstance(value, bool):
            raise SettingsError(f"expected a boolean (true or false), got {_toml_type(value)} {value!r}")
        return value
    if key == "wait":
        return _parse_wait(value)
    if key == "concurrency":
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingsError(
                f"expected a whole number from 1 to {MAX_CONCURRENCY}, got {_toml_type(value)}"
            )
        return _convert_concurrency(value)
    if key in ("probe_timeout", "gate_timeout"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SettingsError(f"expected {_seconds_expectation(key)}, got {_toml_type(value)} {value!r}")
        return _check_seconds(key, float(value))
    if key == "resolvers":
        if isinstance(value, str):
            return _convert_text(key, value, base_dir=base_dir, check_exists=True)
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise SettingsError(
                f'expected an array of strings like ["system", "1.1.1.1"], got {_toml_type(value)}'
            )
        if not value:
            raise SettingsError('the array is empty; expected at least one resolver, e.g. ["system"]')
        return _dedupe(parse_resolver(item) for item in value)
    if not isinstance(value, str):
        raise SettingsError(
            f"expected a string ({_text_expectation(key) if key != 'target' else TARGET_FORMS}), got "
            f"{_toml_type(value)}"
        )
    return _convert_text(key, value, base_dir=base_dir, check_exists=True)


def _read_toml(path: Path, origin: str) -> dict[str, Any]:
    if not path.exists():
        raise SettingsError(f"configuration file {str(path)!r} not found (given by {origin})")
    if not path.is_file():
        raise SettingsError(f"configuration file {str(path)!r} is not a file (given by {origin})")
    try:
        with path.open("rb") as stream:
            return tomllib.load(stream)
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"configuration file {str(path)!r} is not valid TOML: {error}") from None
    except UnicodeDecodeError:
        raise SettingsError(f"configuration file {str(path)!r} is not valid TOML: not UTF-8 text") from None
    except OSError as error:
        raise SettingsError(
            f"configuration file {str(path)!r} cannot be read: {error.strerror or error}"
        ) from None


def _find_file_section(
    config_option: str | None, environ: Mapping[str, str], rootpath: Path | None, invocation_dir: Path
) -> tuple[Path, str, dict[str, Any]] | None:
    """The file the settings come from, the name of its section, and the section; None without one."""
    explicit, origin = config_option, "--reachability-config"
    if explicit is None and environ.get(CONFIG_ENV, "").strip():
        explicit, origin = environ[CONFIG_ENV].strip(), CONFIG_ENV
    if explicit is not None:
        if not explicit.strip():
            raise SettingsError(f"{origin}: the file name is empty; expected a TOML file")
        path = Path(explicit).expanduser()
        if not path.is_absolute():
            path = invocation_dir / path
        document = _read_toml(path, origin)
        if "tool" not in document:
            return path, "top level", document
        tool = document["tool"]
        if not isinstance(tool, dict) or not isinstance(tool.get("reachability"), dict):
            raise SettingsError(
                f"configuration file {str(path)!r} (given by {origin}) has a [tool] table but no "
                "[tool.reachability] table; expected [tool.reachability] or settings at the top level"
            )
        return path, "[tool.reachability]", tool["reachability"]
    if rootpath is None:
        return None
    pyproject = rootpath / "pyproject.toml"
    if not pyproject.is_file():
        return None
    document = _read_toml(pyproject, "the rootdir")
    section = document.get("tool", {}).get("reachability") if isinstance(document.get("tool"), dict) else None
    if section is None:
        return None
    if not isinstance(section, dict):
        raise SettingsError(f"'tool.reachability' in {str(pyproject)!r} must be a table")
    return pyproject, "[tool.reachability]", section


def resolve_settings(
    cli: Mapping[str, Any],
    environ: Mapping[str, str],
    *,
    rootpath: Path | None = None,
    invocation_dir: Path | None = None,
    config_option: str | None = None,
) -> Settings:
    """Merge command line, environment and configuration file into Settings (CLI > env > file > default).

    ``cli`` maps setting keys (:data:`SETTING_KEYS`) to option values, None meaning not given;
    ``resolvers`` is a list of strings. Every given value is validated, even one a higher source
    overrides, so a wrong value never waits silently. Raises SettingsError or TargetError (one line).
    """
    invocation_dir = invocation_dir or Path.cwd()
    values: dict[str, Any] = {}
    sources = dict.fromkeys(SETTING_KEYS, "default")
    tables: dict[str, dict] = {}
    config_file = None
    mask_env: list[str] = []
    file_targets: list[TargetSpec] = []
    given_targets: dict[str, list[TargetSpec]] = {}  # source -> its targets

    found = _find_file_section(config_option, environ, rootpath, invocation_dir)
    if found is not None:
        path, section_name, section = found
        config_file = str(path)
        where = f"in {config_file!r} {section_name}"
        for file_key, value in section.items():
            key = _FILE_KEYS.get(file_key)
            if file_key == MASK_ENV_KEY:
                try:
                    mask_env += _mask_env_names(value)
                except ValueError as error:
                    raise SettingsError(f"{file_key!r} {where}: {error}") from None
                continue
            if file_key == TARGETS_KEY:
                file_targets = _file_targets(value, where)
                continue
            if key is None:
                if isinstance(value, dict):
                    tables[file_key] = value
                    continue
                raise SettingsError(f"unknown key {file_key!r} {where}; {_suggest(file_key)}")
            try:
                values[key] = _convert_file_value(key, value, path.parent)
            except ValueError as error:
                raise SettingsError(f"{file_key!r} {where}: {error}") from None
            sources[key] = "file"

    for key in SETTING_KEYS:
        raw = environ.get(env_name(key), "")
        if not raw.strip():  # an empty variable is how CI jobs unset a setting
            continue
        try:
            if key == "target":  # several targets separated by whitespace
                given_targets["env"] = [TargetSpec(parse_target(t), origin="env") for t in raw.split()]
                sources[key] = "env"
                continue
            values[key] = _convert_text(key, raw, base_dir=None, check_exists=True)
        except ValueError as error:
            raise SettingsError(f"{env_name(key)}: {error}") from None
        sources[key] = "env"

    for key in SETTING_KEYS:
        given = cli.get(key)
        if given is None:
            continue
        try:
            if key == "target":  # --target is repeatable
                items = [given] if isinstance(given, str) else list(given)
                given_targets["cli"] = [TargetSpec(parse_target(str(t)), origin="cli") for t in items]
                sources[key] = "cli"
                continue
            if key == "resolvers":
                items = [given] if isinstance(given, str) else list(given)
                values[key] = _dedupe(
                    resolver
                    for item in items
                    for resolver in _convert_text(key, item, base_dir=None, check_exists=True)
                )
            else:
                values[key] = _convert_text(key, str(given), base_dir=None, check_exists=True)
        except ValueError as error:
            raise SettingsError(f"{_CLI_FLAGS[key]}: {error}") from None
        sources[key] = "cli"

    mask, mask_env = _masking(cli, environ, mask_env)
    if "target" in values:  # the file's ``target = "..."``, first of the file's targets
        file_targets.insert(0, TargetSpec(values["target"], origin="file"))
    if file_targets and sources["target"] == "default":
        sources["target"] = "file"
    targets = _dedupe_targets(given_targets.get("cli") or given_targets.get("env") or file_targets)
    if targets:
        values["target"] = targets[0].target
    return Settings(
        **values,
        targets=targets,
        config_file=config_file,
        sources=sources,
        tables=tables,
        mask=mask,
        mask_env=mask_env,
    )


def _dedupe_targets(targets: Iterable[TargetSpec]) -> list[TargetSpec]:
    """Each target once (the first mention wins): a target given twice is verified once."""
    seen: dict[str, TargetSpec] = {}
    for spec in targets:
        seen.setdefault(spec.key, spec)
    return list(seen.values())


def _file_targets(value: Any, where: str) -> list[TargetSpec]:
    """``targets = ["a.example.com", {target = "https://b.example.com", namespace = "b"}]``."""
    if not isinstance(value, list):
        raise SettingsError(
            f"{TARGETS_KEY!r} {where}: expected an array of targets (strings or tables), "
            f"got {_toml_type(value)}"
        )
    found = []
    for index, entry in enumerate(value):
        place = f"{TARGETS_KEY}[{index}] {where}"
        try:
            found.append(_file_target(entry))
        except ValueError as error:
            raise SettingsError(f"{place}: {error}") from None
    return found


def _file_target(entry: Any) -> TargetSpec:
    if isinstance(entry, str):
        return TargetSpec(parse_target(entry), origin="file")
    if not isinstance(entry, dict):
        raise SettingsError(f"expected a target string or a table, got {_toml_type(entry)}")
    unknown = sorted(set(entry) - set(_TARGET_TABLE_KEYS))
    if unknown:
        raise SettingsError(f"unknown key {unknown[0]!r}; expected {', '.join(_TARGET_TABLE_KEYS)}")
    if "target" not in entry:
        raise SettingsError("the table has no 'target'; expected {target = \"HOST or URL\", ...}")
    parts: dict[str, str | None] = {}
    for file_key, key in (
        ("target", "target"),
        ("namespace", "namespace"),
        ("health-path", "health_path"),
        ("service", "service"),
    ):
        item = entry.get(file_key)
        if item is None:
            parts[key] = None
            continue
        if not isinstance(item, str):
            raise SettingsError(f"{file_key!r}: expected a string, got {_toml_type(item)}")
        parts[key] = item if key == "target" else _convert_word(key, item, base_dir=None, check_exists=False)
    return TargetSpec(
        parse_target(str(parts["target"])),
        namespace=parts["namespace"],
        health_path=parts["health_path"],
        service=parts["service"],
        origin="file",
    )


# --- what is masked besides what the run knows (--mask, mask-env) -----------------------------------------

MASK_ENV_KEY = "mask-env"
MASK_ENV_VARIABLE = "REACHABILITY_MASK_ENV"
MASK_VARIABLE = "REACHABILITY_MASK"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def _masking(
    cli: Mapping[str, Any], environ: Mapping[str, str], from_file: list[str]
) -> tuple[list[str], list[str]]:
    """``--mask`` values and ``mask-env`` names from every source, together: masking more is never wrong,
    so the lists add up instead of overriding each other. A value is never quoted in an error."""
    values: list[str] = []
    given = cli.get("mask") or []
    for origin, items in (
        ("--mask", [given] if isinstance(given, str) else list(given)),
        (MASK_VARIABLE, [environ[MASK_VARIABLE]] if environ.get(MASK_VARIABLE, "").strip() else []),
    ):
        for value in items:
            value = str(value).strip()
            if len(value) < MIN_SECRET_LENGTH:
                raise SettingsError(
                    f"{origin}: a value of {len(value)} characters is too short to mask (at least "
                    f"{MIN_SECRET_LENGTH}): "
                    "it would hide ordinary words"
                )
            values.append(value)
    names = list(from_file)
    try:
        if environ.get(MASK_ENV_VARIABLE, "").strip():
            names += _mask_env_names(environ[MASK_ENV_VARIABLE])
    except ValueError as error:
        raise SettingsError(f"{MASK_ENV_VARIABLE}: {error}") from None
    given_names = cli.get("mask_env") or []
    try:
        for item in [given_names] if isinstance(given_names, str) else list(given_names):
            names += _mask_env_names(str(item))
    except ValueError as error:
        raise SettingsError(f"--mask-env: {error}") from None
    return _dedupe(values), _dedupe(names)


def _mask_env_names(value: Any) -> list[str]:
    """Environment variable names: an array of strings, or one string separated by commas or spaces."""
    if isinstance(value, str):
        items = _split_list(value)
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        items = [item.strip() for item in value]
    else:
        raise SettingsError(
            f"expected environment variable names (an array of strings), got {_toml_type(value)}"
        )
    for name in items:
        if not _ENV_NAME.fullmatch(name):
            raise SettingsError(
                f"{name[:40]!r} is not an environment variable name; expected letters, digits and '_'"
            )
    return items


def _suggest(file_key: str) -> str:
    candidates = [*_FILE_KEYS, MASK_ENV_KEY]
    close = difflib.get_close_matches(file_key.replace("_", "-").lower(), candidates, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"expected one of {', '.join(candidates)} (or a [table] for an application section)"


def load_settings(config: pytest.Config) -> Settings:
    """Settings for a pytest run; any bad value raises ``pytest.UsageError`` with one line."""
    import pytest

    cli = {
        key: config.getoption(f"reachability_{key}", default=None)
        for key in (*SETTING_KEYS, "mask", "mask_env")
    }
    config_option = config.getoption("reachability_reachability_config", default=None)
    try:
        return resolve_settings(
            cli,
            os.environ,
            rootpath=config.rootpath,
            invocation_dir=config.invocation_params.dir,
            config_option=config_option,
        )
    except ValueError as error:
        given = given_values(cli, os.environ, config_option, config.rootpath, config.invocation_params.dir)
        raise pytest.UsageError(mask_usage_error(str(error), given)) from None


def given_values(
    cli: Mapping[str, Any],
    environ: Mapping[str, str],
    config_option: str | None = None,
    rootpath: Path | None = None,
    invocation_dir: Path | None = None,
) -> list[str]:
    """Every text the user gave (command line, ``REACHABILITY_*`` variables, the configuration file's
    strings): a usage error may quote any of them, so the secrets inside them are masked."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)

    walk(dict(cli))
    walk({name: value for name, value in environ.items() if name.startswith("REACHABILITY_")})
    try:
        found_file = _find_file_section(config_option, environ, rootpath, invocation_dir or Path.cwd())
    except (ValueError, OSError):
        found_file = None
    if found_file is not None:
        walk(found_file[2])
    return found


def describe(settings: Settings) -> list[str]:
    """Report-header lines stating the configuration in force, credentials masked.

    Lines carry no prefix: the plugin's header hook puts ``reachability:`` before each.
    """
    target = settings.target.display if settings.target is not None else "not set (--target)"
    lines = [
        f"target: {target}",
        "cluster: "
        f"namespace={settings.namespace or '(kubeconfig default)'} "
        f"context={settings.kube_context or '(current)'} "
        f"kubeconfig={settings.kubeconfig or '(default rules)'}",
        f"resolvers: {', '.join(settings.resolvers)}",
    ]
    if settings.sandbox:
        api = " (real kube-apiserver)" if settings.sandbox_apiserver == "real" else ""
        lines.append(f"sandbox: {settings.sandbox}{api}")
    if settings.wait:
        lines.append(f"wait: up to {settings.wait:g} s for the gates to pass before the suite runs")
    if settings.mask or settings.mask_env:
        lines.append(_describe_masking(settings))
    if settings.config_file:
        lines.append(f"config file: {settings.config_file}")
    return lines


def _describe_masking(settings: Settings) -> str:
    """``masked too: 2 --mask values; variables SIGNING_KEY, DEPLOY_PAT (not set)``: a misspelt name shows."""
    parts = []
    if settings.mask:
        parts.append(f"{len(settings.mask)} --mask value{'s' if len(settings.mask) != 1 else ''}")
    if settings.mask_env:
        names = [name + ("" if os.environ.get(name) else " (not set)") for name in settings.mask_env]
        parts.append("variables " + ", ".join(names))
    return "masked too: " + "; ".join(parts)
