"""The one place secrets are masked: every output (terminal, JUnit, HTML, markdown, JSON) goes through here.

Two kinds of masking, both applied by :func:`redact`:

* by *form*: Authorization / Cookie headers, ``Bearer`` tokens, basic-auth and DSN passwords in URLs,
  query and ``key=value`` pairs whose name says token / key / secret / password, kubeconfig
  ``token:`` / ``client-key-data:`` / ``password:`` lines and PEM private keys;
* by *value*: secrets known to the run (the target's password, the kubeconfig token in use,
  passwords in environment DSNs), masked wherever they appear, even in free text.

Example::

    >>> redact("curl -H 'Authorization: Bearer abc' https://u:pw@h/x?token=t1", secrets=["pw"])
    "curl -H 'Authorization: ***' https://***:***@h/x?token=***"
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

MASK = "***"
MIN_SECRET_LENGTH = 4  # shorter known values would mask ordinary words

# Names whose value is a secret, in headers, query strings, key=value text, JSON and YAML.
_SECRET_NAME = r"[A-Za-z0-9_.-]*(?:token|passw(?:or)?d|pwd|secret|api[_-]?key|apikey|access[_-]?key|private[_-]?key|client[_-]?key|credential|signature|session[_-]?id|auth[_-]?key)[A-Za-z0-9_.-]*"
_SECRET_NAME_RE = re.compile(rf"^(?:{_SECRET_NAME}|key|sig|auth|authorization|proxy-authorization|cookie|set-cookie|x-api-key|client-key-data)$", re.IGNORECASE)

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # PEM private keys (kubeconfig client keys inlined, TLS keys)
    (re.compile(r"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.*?-----END \1PRIVATE KEY-----", re.DOTALL), "[private key " + MASK + "]"),
    # HTTP headers, in curl -H arguments, request dumps and repr()s
    (
        re.compile(
            r"(?i)(\b(?:proxy-)?authorization|\bset-cookie|\bcookie|\bx-api-key|\bx-auth-token)(['\"]?\s*[:=]\s*['\"]?)([^\r\n'\"]+)"
        ),
        r"\1\2" + MASK,
    ),
    (re.compile(r"(?i)\b(bearer)(\s+)[A-Za-z0-9._~+/=-]{6,}"), r"\1\2" + MASK),
    (re.compile(r"(?i)\b(basic)(\s+)[A-Za-z0-9+/]{8,}={0,2}"), r"\1\2" + MASK),
    # user:password@ in URLs and DSNs (postgresql://, redis://, https://): up to the *last* "@" that a host
    # follows, because passwords typed unescaped may hold "@", "/" or ":" (masking too much is harmless).
    # Past a "/" only after "user:" -- so https://github.com/org/repo@v4 keeps its host.
    (
        re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)(?:[^\s'\"<>/?#@]*:[^\s'\"<>]*|[^\s'\"<>/?#]*)@(?=[a-z0-9\[_%])"),
        r"\1" + MASK + ":" + MASK + "@",
    ),
    # query strings and key=value text: ?token=..., password=..., api_key: ...
    (re.compile(rf"(?i)(?<![A-Za-z0-9_.-])({_SECRET_NAME}|key|sig)=([^&\s'\"#;,<>]+)"), r"\1=" + MASK),
    # YAML / JSON / repr: token: abc, "password": "abc", 'client-key-data': 'abc'
    (
        re.compile(
            rf"(?im)(['\"]?(?:{_SECRET_NAME}|client-key-data|client-certificate-data|authorization|cookie)['\"]?\s*:\s*)(['\"]?)([^\s'\",}}\]]+)(['\"]?)"
        ),
        r"\1\2" + MASK + r"\4",
    ),
]


def redact(value: Any, secrets: Iterable[str] = ()) -> Any:
    """``value`` with secrets masked: a string, or plain data (dicts, lists, tuples) walked recursively.

    ``secrets`` are known secret values masked wherever they occur (also URL-encoded). Dictionary
    values under secret-like keys (``authorization``, ``password``, ``token``, ...) are masked whole.
    Anything else is returned unchanged.
    """
    known = _known(secrets)
    return _redact(value, known)


class Redactor:
    """:func:`redact` bound to the secrets of one run: ``Redactor(secrets)(text)``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = _known(secrets)

    def __call__(self, value: Any) -> Any:
        return _redact(value, self.secrets)


_SCHEME_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def redact_target_text(text: str, secrets: Iterable[str] = ()) -> str:
    """A target as typed, safe to print: like :func:`redact`, and a scheme-less ``user:pw@host`` is masked too.

    Everything between the scheme (if any) and the *last* ``@`` becomes ``***``: an unescaped password
    may contain ``@``, ``/`` or ``:``.
    """
    at = text.rfind("@")
    if at >= 0:
        scheme = _SCHEME_PREFIX.match(text)
        prefix = scheme.group(0) if scheme and scheme.end() <= at else ""
        text = f"{prefix}{MASK}@{text[at + 1:]}"
    return str(redact(text, secrets))


def _known(secrets: Iterable[str]) -> tuple[str, ...]:
    variants: set[str] = set()
    for secret in secrets:
        if not isinstance(secret, str):
            continue
        secret = secret.strip()
        if len(secret) < MIN_SECRET_LENGTH:
            continue
        variants.add(secret)
        variants.add(quote(secret, safe=""))
        variants.add(quote(secret, safe=":/@"))
    # Longest first so a secret containing another is masked whole.
    return tuple(sorted(variants, key=len, reverse=True))


def _redact(value: Any, known: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return _redact_text(value, known)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if isinstance(key, str) and _SECRET_NAME_RE.match(key) and isinstance(item, (str, bytes)) and item:
                out[key] = MASK
            else:
                out[key] = _redact(item, known)
        return out
    if isinstance(value, list):
        return [_redact(item, known) for item in value]
    if isinstance(value, tuple):
        return tuple(_redact(item, known) for item in value)
    return value


# Every pattern above needs one of these words (lower case) in the text: a text with none of them is
# returned without running the patterns, which keeps masking cheap on the many plain strings of a run.
_TRIGGERS = (
    "private key", "authorization", "cookie", "api-key", "auth", "bearer", "basic", "://", "token", "passw",
    "pwd", "secret", "key", "credential", "signature", "session", "sig",
)


def _redact_text(text: str, known: tuple[str, ...]) -> str:
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    lowered = text.lower()
    if not any(trigger in lowered for trigger in _TRIGGERS):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


# --- the secrets a run knows ------------------------------------------------------------------------------


def collect_secrets(settings: Any, environ: Mapping[str, str] | None = None) -> list[str]:
    """Secret values the run knows of: target password, kubeconfig credentials in use, env DSN passwords.

    Never raises: an unreadable kubeconfig simply contributes nothing.
    """
    environ = os.environ if environ is None else environ
    found: list[str] = []
    target = getattr(settings, "target", None)
    if target is not None and getattr(target, "password", None):
        found.append(target.password)
    results_db = getattr(settings, "results_db", None)
    if results_db:
        found += url_passwords(results_db)
    found += kubeconfig_secrets(_kubeconfig_path(getattr(settings, "kubeconfig", None), environ))
    for name, value in environ.items():
        if not value:
            continue
        found += url_passwords(value)
        if _is_secret_variable(name, value):
            found.append(value)
    for table in (getattr(settings, "tables", None) or {}).values():
        found += _table_secrets(table)
    return [value for value in dict.fromkeys(found) if len(value) >= MIN_SECRET_LENGTH]


_ENV_SECRET_NAME = re.compile(r"(?i)(passw(or)?d|secret|token|api_?key|access_?key|private_?key|credential)")
# PWD/OLDPWD are directories; *_FILE/_PATH/_DIR hold paths; the password part of *_URL/_DSN/_URI is taken
# separately; *_NAME, *_ENABLED, *_TTL, ... describe a secret without being one (TLS_SECRET_NAME=api-tls).
_ENV_NOT_SECRET = re.compile(
    r"(?i)(^(OLD)?PWD$|_(FILE|PATH|DIR|URL|DSN|URI|NAME|ENABLED|ENABLE|TTL|COUNT|SIZE|TIMEOUT)$)"
)
# Shorter values, booleans and numbers are everyday words and digits: masking them everywhere hid node ids
# (SECRET_KEY=test) and ordinary output (FEATURE_TOKEN_ENABLED=true).
MIN_ENV_SECRET_LENGTH = 8
_NOT_A_SECRET_VALUE = re.compile(r"(?i)^(true|false|yes|no|on|off|none|null|[-+]?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?)$")


def _is_secret_variable(name: str, value: str) -> bool:
    """A variable whose value is a secret by its name, long enough and not a flag or a number."""
    value = value.strip()
    return (bool(_ENV_SECRET_NAME.search(name)) and not _ENV_NOT_SECRET.search(name)
            and len(value) >= MIN_ENV_SECRET_LENGTH and not _NOT_A_SECRET_VALUE.match(value))


def url_passwords(text: str) -> list[str]:
    """Passwords in the URLs (``user:pw@``) and ``password=`` pairs (DSN or query) of ``text``, to mask by value."""
    out = []
    for match in re.finditer(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s]+", text):
        try:
            parts = urlsplit(match.group(0))
        except ValueError:
            continue
        if parts.password:
            out += [parts.password, unquote(parts.password)]
    for match in re.finditer(r"(?i)\bpassword\s*=\s*([^\s;&]+)", text):
        out.append(match.group(1).strip("'\""))
    return out


def _table_secrets(table: Any) -> list[str]:
    out: list[str] = []
    if isinstance(table, Mapping):
        for key, value in table.items():
            if isinstance(value, str):
                if _SECRET_NAME_RE.match(str(key)):
                    out.append(value)
                out += url_passwords(value)
            else:
                out += _table_secrets(value)
    elif isinstance(table, list):
        for item in table:
            out += _table_secrets(item)
    return out


def _kubeconfig_path(explicit: str | None, environ: Mapping[str, str]) -> list[Path]:
    if explicit:
        return [Path(explicit)]
    if environ.get("KUBECONFIG"):
        return [Path(p) for p in environ["KUBECONFIG"].split(os.pathsep) if p]
    return [Path.home() / ".kube" / "config"]


def kubeconfig_secrets(paths: Iterable[Path] = (), *, content: str | None = None) -> list[str]:
    """Credentials of every user in the kubeconfig files ``paths`` (or in ``content``, the YAML text).

    Tokens, passwords, client keys, the token a readable ``tokenFile`` holds, auth-provider (OIDC)
    ``id-token`` / ``refresh-token`` / ``client-secret``, and exec plugin ``env`` values with
    secret-like names. Unreadable or invalid input contributes nothing.
    """
    texts: list[str] = [] if content is None else [content]
    for path in paths:
        try:
            texts.append(Path(path).read_text())
        except (OSError, ValueError):
            continue
    if not any(text.strip() for text in texts):
        return []
    import yaml  # only when there is a kubeconfig to read: it costs start-up time

    out: list[str] = []
    for text in texts:
        try:
            document = yaml.safe_load(text)
        except (ValueError, yaml.YAMLError):
            continue
        if isinstance(document, Mapping):
            for entry in document.get("users") or []:
                user = entry.get("user") if isinstance(entry, Mapping) else None
                if isinstance(user, Mapping):
                    out += _kubeconfig_user_secrets(user)
    return [value for value in dict.fromkeys(out) if len(value) >= MIN_SECRET_LENGTH]


def _kubeconfig_user_secrets(user: Mapping[str, Any]) -> list[str]:
    out = [user[key] for key in ("token", "password", "client-key-data") if isinstance(user.get(key), str)]
    token_file = user.get("tokenFile")
    if isinstance(token_file, str):
        try:
            out.append(Path(token_file).read_text().strip())
        except (OSError, ValueError):
            pass  # a path, not a secret: only the token it holds is masked
    provider = user.get("auth-provider")
    if isinstance(provider, Mapping) and isinstance(provider.get("config"), Mapping):
        out += [v for k, v in provider["config"].items() if isinstance(v, str) and _SECRET_NAME_RE.match(str(k))]
    plugin = user.get("exec")
    if isinstance(plugin, Mapping):
        for variable in plugin.get("env") or []:
            if isinstance(variable, Mapping) and isinstance(variable.get("value"), str):
                name = str(variable.get("name", ""))
                if _ENV_SECRET_NAME.search(name) and not _ENV_NOT_SECRET.search(name):
                    out.append(variable["value"])
    return [value.strip() for value in out if value.strip()]
