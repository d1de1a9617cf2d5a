"""The one place secrets are masked.

Every output (terminal, JUnit, HTML, markdown, JSON, logs, history) goes through here.

Two kinds of masking, both applied by :func:`redact`:

* by *form*: Authorization / Cookie headers, ``Bearer`` / ``Basic`` credentials, user:password in URLs
  and DSNs, ``name=value`` and ``name: value`` pairs whose name says token / key / secret / password,
  kubeconfig ``token:`` / ``client-key-data:`` lines, PEM private keys, and tokens with a known shape
  (GitHub, GitLab, Slack, JWT);
* by *value*: the secrets the run knows (:func:`collect_secrets`), masked wherever they appear, in
  their raw, URL-encoded, shell-quoted, JSON-escaped, Python-repr, HTML/XML-escaped and base64 forms.

Every pattern runs in time linear in the text: no pattern has two unbounded quantifiers that can
retry the same characters (names and schemes are bounded and possessive, the start of each candidate
is anchored by a look-behind so candidates never overlap), and URL credentials are found by a scan
that visits each character a bounded number of times. ``benchmarks/bench_masking.py`` measures it.

Example::

    >>> redact("curl -H 'Authorization: Bearer abc' https://u:pw@h/x?token=t1", secrets=["pw"])
    "curl -H 'Authorization: ***' https://***:***@h/x?token=***"
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, unquote

MASK = "***"
MIN_SECRET_LENGTH = 4  # shorter known values would mask ordinary words
_MIN_BASE64_SECRET = 8  # base64 pieces of shorter secrets are too short to be told from other base64
_NAME_CHARS = r"A-Za-z0-9_.\-"
_MAX_NAME = 128  # longer runs of name characters are not taken for a key name

# --- which names hold secrets ---------------------------------------------------------------------------

# A key, query parameter, header or YAML/JSON name is secret when it contains one of these (lower case)...
_SECRET_NAME_PARTS = (
    "token",
    "passw",
    "pwd",
    "passphrase",
    "secret",
    "api_key",
    "api-key",
    "apikey",
    "access_key",
    "access-key",
    "accesskey",
    "private_key",
    "private-key",
    "privatekey",
    "client_key",
    "client-key",
    "credential",
    "signature",
    "session_id",
    "session-id",
    "sessionid",
    "auth_key",
    "auth-key",
    "authkey",
)
# ...or is one of these.
_SECRET_NAMES = frozenset(
    {
        "key",
        "sig",
        "auth",
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x-auth-token",
        "client-key-data",
        "jwt",
        "pass",
        "pw",
    }
)
_NAME_RUN = re.compile(rf"[{_NAME_CHARS}]+")


def is_secret_name(name: str) -> bool:
    """True for a key whose value is a secret.

    For example ``password``, ``api_key``, ``X-Api-Key``, ``client-key-data``, ..."""
    return isinstance(name, str) and _is_secret_name(name)


@functools.lru_cache(maxsize=8192)  # the same few hundred keys recur in every report's evidence
def _is_secret_name(name: str) -> bool:
    if len(name) > _MAX_NAME or not _NAME_RUN.fullmatch(name):
        return False
    lowered = name.lower()
    return lowered in _SECRET_NAMES or any(part in lowered for part in _SECRET_NAME_PARTS)


# --- masking by form -------------------------------------------------------------------------------------


def _alternation(words: Iterable[str]) -> str:
    """A regex matching any of ``words``, written as a trie: one branch per first letter instead of one per
    word, which is what keeps a scan cheap at every position of the text."""
    trie: dict[str, dict] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def emit(node: dict[str, dict]) -> str:
        branches = [re.escape(char) + emit(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 and "" not in node else "(?:" + "|".join(branches) + ")"
        return body + ("?" if "" in node else "")

    return emit(trie)


_SECRET_HEADERS = (
    "proxy-authorization",
    "authorization",
    "set-cookie",
    "cookie",
    "x-api-key",
    "x-auth-token",
)
_QUOTE = r"(?:\\{0,3}[\"'])"  # a quote, possibly escaped once or twice (JSON inside JSON)
_HEADER = re.compile(
    rf"(?i)(?<![A-Za-z0-9_-])({_alternation(_SECRET_HEADERS)})"
    rf"({_QUOTE}?[ \t]*+[:=][ \t]*+{_QUOTE}?)([^\r\n'\"\\]+)"
)
_BEARER = re.compile(r"(?i)(?<![A-Za-z0-9_-])(bearer)([ \t]++|%20|\+)([A-Za-z0-9._~+/=-]{6,}+)")
_BASIC = re.compile(r"(?i)(?<![A-Za-z0-9_-])(basic)([ \t]++|%20|\+)([A-Za-z0-9+/]{8,}+={0,2})")
# name=value (query strings, DSN keywords, shell) and name: value (YAML, JSON, Python reprs): the name is
# a bounded possessive run that starts where no name character precedes it, so candidates never overlap.
_SECRET_PART_RE = _alternation(_SECRET_NAME_PARTS)
_SECRET_EXACT_RE = _alternation(_SECRET_NAMES)
_NAME_VALUE = re.compile(
    # a cheap first test: every candidate starts with a quote, a backslash or a name character
    rf"(?=[{_NAME_CHARS}\"'\\])(?P<open>{_QUOTE}?)(?<![{_NAME_CHARS}])"
    # the name: a bounded possessive run holding a secret word (looked for at most _MAX_NAME characters ahead)
    rf"(?P<name>(?:(?=[{_NAME_CHARS}]{{0,{_MAX_NAME - 1}}}?(?i:{_SECRET_PART_RE}))"
    rf"|(?=(?i:{_SECRET_EXACT_RE})(?![{_NAME_CHARS}])))"
    rf"[{_NAME_CHARS}]{{1,{_MAX_NAME}}}+)"
    rf"(?P<close>{_QUOTE}?)(?:(?P<eq>=)|(?P<colon>[ \t]*+:[ \t]*+))(?P<quote>{_QUOTE})?"
    # the value: up to the closing quote, or the end of a query value, or the end of a YAML/JSON scalar
    r"(?(quote)[^\"'\r\n\\]+|(?(eq)[^&\s'\"#;,<>\\]+|[^\s'\",}\]\\]+))"
)
_NAME_VALUE_MASK = r"\g<open>\g<name>\g<close>\g<eq>\g<colon>\g<quote>" + MASK
# Tokens whose shape gives them away, wherever they stand.
_TOKEN_SHAPES = re.compile(
    r"(?<![A-Za-z0-9_-])(?:gh[pousr]_[A-Za-z0-9]{30,}+|github_pat_[A-Za-z0-9_]{30,}+|glpat-[A-Za-z0-9_-]{20,}+"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}+|eyJ[A-Za-z0-9_-]{8,}+\.eyJ[A-Za-z0-9_-]{8,}+\.[A-Za-z0-9_-]*+)"
)
_KEEP_TWO_GROUPS = r"\1\2" + MASK
_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY[A-Z ]{0,10}-----")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]{0,40}PRIVATE KEY[A-Z ]{0,10}-----")
_URL_START = re.compile(r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]{0,31}+://")
_SCHEME = r"([A-Za-z][A-Za-z0-9+.-]{0,31}+://)"
_HOST_AHEAD = r"(?=[A-Za-z0-9\[_%])"
# user:password@ up to the last "@" before the first "/", "?" or "#": the run stops at the "/" of the next
# "://", so candidates never overlap.
_SIMPLE_USERINFO = re.compile(rf"(?<![A-Za-z0-9+.-]){_SCHEME}[^\s'\"<>/?#]*@{_HOST_AHEAD}")
# A password typed unescaped may hold "@", "/" or ":": after "user:" (not a port) the user part of a URL that
# starts a token runs to the *last* "@" of the token that a host follows (masking too much is harmless).
# Without "user:" only an "@" before the first "/" counts: https://github.com/org/repo@v4 keeps its host.
# Only a URL at the start of a whitespace-delimited token (after an optional name=) is tried, once per token.
_SLASHED_USERINFO = re.compile(
    rf"(?<![^\s'\"<>])((?:[{_NAME_CHARS}]{{1,64}}+=)?[A-Za-z][A-Za-z0-9+.-]{{0,31}}+://)"
    r"(?=[^\s'\"<>/?#@:]*+:(?![0-9]{0,5}+(?:[/?#]|$))[^\s'\"<>/?#@]*+[/?#])"
    rf"[^\s'\"<>]*@{_HOST_AHEAD}"
)
_USERINFO_MASK = r"\1" + MASK + ":" + MASK + "@"
_PRIVATE_KEY_MASK = "[private key " + MASK + "]"

# Each pattern runs only when the (lower-cased) text holds a word it needs: most strings of a run hold none,
# and a text built against one pattern does not pay for the others.
_TOKEN_PREFIXES = (
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "xoxa-",
    "xoxb-",
    "xoxp-",
    "xoxo-",
    "xoxs-",
    "xoxr-",
    "eyj",
)
_NAME_TRIGGERS = tuple(dict.fromkeys(_SECRET_NAME_PARTS + tuple(_SECRET_NAMES)))


def _mask_forms(text: str) -> str:
    # A fleet's reports repeat the same evidence strings for every target: mask each text once.
    return _mask_forms_cached(text) if len(text) <= 4096 else _mask_forms_now(text)


def _mask_forms_now(text: str) -> str:
    lowered = text.lower()
    if "private key" in lowered:
        text = _mask_private_keys(text)
    if "://" in text and "@" in text:
        text = _mask_url_credentials(text)
    if any(name in lowered for name in _SECRET_HEADERS):
        text = _HEADER.sub(_KEEP_TWO_GROUPS, text)
    if "bearer" in lowered:
        text = _BEARER.sub(_KEEP_TWO_GROUPS, text)
    if "basic" in lowered:
        text = _BASIC.sub(_KEEP_TWO_GROUPS, text)
    if ("=" in text or ":" in text) and any(name in lowered for name in _NAME_TRIGGERS):
        text = _NAME_VALUE.sub(_NAME_VALUE_MASK, text)
    if any(prefix in lowered for prefix in _TOKEN_PREFIXES):
        text = _TOKEN_SHAPES.sub(MASK, text)
    return text


_mask_forms_cached = functools.lru_cache(maxsize=65536)(_mask_forms_now)


def _mask_private_keys(text: str) -> str:
    """PEM private key blocks; a block without its END line is masked to the end of the text."""
    out: list[str] = []
    position = 0
    while True:
        begin = _PEM_BEGIN.search(text, position)
        if begin is None:
            break
        out.append(text[position : begin.start()])
        end = _PEM_END.search(text, begin.end())
        out.append(_PRIVATE_KEY_MASK)
        if end is None:
            return "".join(out)
        position = end.end()
    out.append(text[position:])
    return "".join(out)


def _mask_url_credentials(text: str) -> str:
    """``scheme://user:password@host`` -> ``scheme://***:***@host``; see :data:`_SLASHED_USERINFO`."""
    return _SIMPLE_USERINFO.sub(_USERINFO_MASK, _SLASHED_USERINFO.sub(_USERINFO_MASK, text))


# --- masking by value ------------------------------------------------------------------------------------

_SHELL_SPECIAL = re.compile(r"([\s!\"#$&'()*;<>?\[\\\]^`{|}~])")


def secret_forms(secret: str) -> set[str]:
    """The forms a secret takes in outputs: raw, URL-encoded, shell-quoted, JSON, repr, HTML/XML, base64."""
    forms = {secret}
    for encoded in (quote(secret, safe=""), quote(secret, safe=":/@"), quote_plus(secret, safe="")):
        forms.add(encoded)
        forms.add(re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), encoded))
    forms.add(shlex.quote(secret))
    forms.add(_SHELL_SPECIAL.sub(r"\\\1", secret))  # bash printf %q, backslash before each special
    forms.add(
        secret.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("`", "\\`")
    )  # "..." in sh
    for ensure_ascii in (True, False):
        escaped = json.dumps(secret, ensure_ascii=ensure_ascii)[1:-1]
        forms.add(escaped)
        forms.add(escaped.replace("/", "\\/"))
        forms.add(json.dumps(escaped, ensure_ascii=ensure_ascii)[1:-1])  # JSON inside a JSON string
    forms.add(repr(secret)[1:-1])
    forms.add(secret.replace("\\", "\\\\").replace("'", "\\'"))  # repr of a text holding both quotes
    forms |= _html_forms(secret)
    if len(secret.encode()) >= _MIN_BASE64_SECRET:
        forms |= _base64_forms(secret.encode())
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def _html_forms(secret: str) -> set[str]:
    if not any(ch in secret for ch in "&<>\"'\n"):
        return set()
    base = secret.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    forms = set()
    for double in ('"', "&quot;", "&#34;", "&#x22;"):
        for single in ("'", "&#x27;", "&#39;", "&apos;"):
            form = base.replace('"', double).replace("'", single)
            forms.add(form)
            forms.add(form.replace("\n", "&#10;"))  # XML attributes (JUnit messages) keep newlines so
    return forms


def _base64_forms(data: bytes) -> set[str]:
    """Base64 pieces that occur in the encoding of *any* text holding ``data``, at any of the 3 alignments.

    Each input byte spans 8 bits of the output; a character is determined by ``data`` alone when its 6
    bits fall inside ``data``'s bits. The whole encoding (with padding) is a form too.
    """
    forms = {base64.b64encode(data).decode(), base64.b64encode(data).decode().rstrip("=")}
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + data).decode()
        first = -(-8 * shift // 6)
        last = 8 * (shift + len(data)) // 6
        forms.add(encoded[first:last])
    forms |= {form.replace("+", "-").replace("/", "_") for form in forms}
    return forms


_ASCII_ALNUM_RUN = re.compile(r"[A-Za-z0-9]{4,}")


@dataclass(frozen=True)
class _Known:
    """Every form of every known secret, longest first, each with a *gate*: a text that every occurrence of
    the form contains (the secret's longest run of ASCII letters and digits, which no escaping changes, or a
    shorter base64 piece). A text holding none of the gates is done after a few substring tests, however
    many forms there are."""

    forms: tuple[str, ...] = ()
    gates: tuple[str, ...] = ()
    unique_gates: tuple[str, ...] = ()


def _secret_values(secrets: Iterable[str]) -> tuple[str, ...]:
    values = (secret.strip() for secret in secrets if isinstance(secret, str))
    return tuple(dict.fromkeys(value for value in values if len(value) >= MIN_SECRET_LENGTH))


def _known(secrets: Iterable[str]) -> _Known:
    gate_of: dict[str, str] = {}
    for secret in _secret_values(secrets):
        runs = _ASCII_ALNUM_RUN.findall(secret)
        text_gate = max(runs, key=len) if runs else None
        forms = secret_forms(secret)
        for form in forms:
            if text_gate is not None and text_gate in form:
                gate = text_gate
            else:
                inner = [other for other in forms if other != form and other in form]
                gate = min(inner, key=len) if inner else form
            if form not in gate_of or len(gate) > len(gate_of[form]):
                gate_of[form] = gate
    # Longest first so a secret containing another is masked whole.
    ordered = sorted(gate_of, key=lambda form: (-len(form), form))
    gates = tuple(gate_of[form] for form in ordered)
    return _Known(tuple(ordered), gates, tuple(dict.fromkeys(gates)))


def _mask_known(text: str, known: _Known) -> str:
    for gate in known.unique_gates:
        if gate in text:
            break
    else:
        return text  # the common case: no known secret's gate, so none of its forms
    present = {gate for gate in known.unique_gates if gate in text}
    for form, gate in zip(known.forms, known.gates, strict=True):
        if gate in present and form in text:
            text = text.replace(form, MASK)
    return text


# --- the public entry points -----------------------------------------------------------------------------


def redact(value: Any, secrets: Iterable[str] = ()) -> Any:
    """``value`` with secrets masked: a string, or plain data (dicts, lists, tuples) walked recursively.

    ``secrets`` are known secret values masked wherever they occur, in every encoded form
    (:func:`secret_forms`). Dictionary values under secret-like keys (``authorization``, ``password``,
    ``token``, ...) are masked whole. Anything else is returned unchanged.
    """
    return _redact(value, _known(secrets))


class Redactor:
    """:func:`redact` bound to the secrets of one run: ``Redactor(secrets)(text)``.

    ``secrets`` are the secret values themselves (what another Redactor is built from); their encoded
    forms are derived once, here.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = _secret_values(secrets)
        self.known = _known(self.secrets)
        # A fleet's reports carry the same texts for every target (host names, reasons, evidence fields):
        # each short text is masked once by this redactor, its secrets being fixed.
        self._masked: dict[str, str] = {}

    def __call__(self, value: Any) -> Any:
        return _redact(value, self.known, self._masked)


_MEMO_TEXT = 1024  # longer texts (bodies, logs) seldom recur: masked each time, bounding the memo
_MEMO_ENTRIES = 65536  # then the memo starts again: bounded memory for a long run


def _redact(value: Any, known: _Known, memo: dict[str, str] | None = None) -> Any:
    # Exact built-in types first, plain evidence being made of them; anything else takes the checks below.
    kind = type(value)
    if kind is str:
        return _redact_text(value, known, memo)
    if kind is dict:
        return _redact_mapping(value, known, memo)
    if kind is list:
        return [_redact(item, known, memo) for item in value]
    if kind is tuple:
        return tuple(_redact(item, known, memo) for item in value)
    if kind is int or kind is float or kind is bool or value is None:
        return value
    return _redact_subclass(value, known, memo)


def _redact_text(value: str, known: _Known, memo: dict[str, str] | None) -> str:
    """``value`` masked, through the memo for short texts."""
    if memo is None or len(value) > _MEMO_TEXT:
        return _mask_forms(_mask_known(value, known))
    masked = memo.get(value)
    if masked is None:
        if len(memo) >= _MEMO_ENTRIES:
            memo.clear()
        masked = memo[value] = _mask_forms(_mask_known(value, known))
    return masked


def _redact_subclass(value: Any, known: _Known, memo: dict[str, str] | None) -> Any:
    """Subclasses of the plain types (a str enum, an OrderedDict, a named tuple...); anything else as is."""
    if isinstance(value, str):
        return _mask_forms(_mask_known(value, known))
    if isinstance(value, Mapping):
        return _redact_mapping(value, known, memo)
    if isinstance(value, list):
        return [_redact(item, known, memo) for item in value]
    if isinstance(value, tuple):
        return tuple(_redact(item, known, memo) for item in value)
    return value


def _redact_mapping(value: Mapping[Any, Any], known: _Known, memo: dict[str, str] | None) -> dict[Any, Any]:
    out = {}
    for key, item in value.items():
        if isinstance(key, str) and is_secret_name(key) and isinstance(item, (str, bytes)) and item:
            out[key] = MASK
        else:
            out[key] = _redact(item, known, memo)
    return out


_SCHEME_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]{0,31}+://")


def redact_target_text(text: str, secrets: Iterable[str] = ()) -> str:
    """A target or URL as typed, safe to print.

    Masked like :func:`redact`, and a scheme-less ``user:pw@host`` is masked too.

    Everything between the scheme (if any) and the *last* ``@`` becomes ``***``: an unescaped password
    may contain ``@``, ``/``, ``:`` or spaces.
    """
    at = text.rfind("@")
    if at >= 0:
        scheme = _SCHEME_PREFIX.match(text)
        prefix = scheme.group(0) if scheme and scheme.end() <= at else ""
        text = f"{prefix}{MASK}@{text[at + 1 :]}"
    return str(redact(text, secrets))


def mask_usage_error(
    message: str, given: Iterable[str] = (), environ: Mapping[str, str] | None = None
) -> str:
    """A usage error as one line with every secret masked: those in the values the user gave (``given``:
    command-line, environment and file values), those of the environment, and every secret form."""
    secrets: list[str] = []
    for value in given:
        if isinstance(value, str):
            secrets += secrets_in_value(value)
    secrets += environment_secrets(os.environ if environ is None else environ)
    return " ".join(str(redact(message, secrets)).split())


# --- the secrets a run knows -----------------------------------------------------------------------------


def collect_secrets(settings: Any, environ: Mapping[str, str] | None = None) -> list[str]:
    """Secret values the run knows of, each masked in every output in every form.

    The target's password (or its user, when it is a token with no password), the kubeconfig
    credentials in use, DSN passwords (``--results-db``, environment values, application tables),
    values of environment variables with secret-like names (:func:`is_secret_variable`), the values
    of ``--mask`` and of the variables named by ``mask-env``, and secret-named values of the
    ``[tool.reachability.*]`` tables. Never raises: an unreadable kubeconfig contributes nothing.
    """
    environ = os.environ if environ is None else environ
    found: list[str] = []
    target = getattr(settings, "target", None)
    if target is not None:
        if getattr(target, "password", None):
            found.append(target.password)
        elif getattr(target, "username", None):
            found.append(target.username)  # https://TOKEN@host: the user part is the credential
        raw = getattr(target, "raw", None)
        if isinstance(raw, str):
            found += secrets_in_value(raw)
    results_db = getattr(settings, "results_db", None)
    if isinstance(results_db, str):
        found += secrets_in_value(results_db)
    found += kubeconfig_secrets(_kubeconfig_path(getattr(settings, "kubeconfig", None), environ))
    found += environment_secrets(environ)
    found += [value for value in getattr(settings, "mask", None) or () if isinstance(value, str)]
    for name in getattr(settings, "mask_env", None) or ():
        value = environ.get(name)
        if value:
            found.append(value)
            found += secrets_in_value(value)
    for table in (getattr(settings, "tables", None) or {}).values():
        found += _table_secrets(table)
    return [
        value
        for value in dict.fromkeys(v.strip() for v in found if isinstance(v, str))
        if len(value) >= MIN_SECRET_LENGTH
    ]


def environment_secrets(environ: Mapping[str, str]) -> list[str]:
    """Values of secret-like variables, and the passwords inside every variable's URLs and DSNs."""
    found: list[str] = []
    for name, value in environ.items():
        if not value or not isinstance(value, str):
            continue
        found += secrets_in_value(value)
        if is_secret_variable(name, value):
            found.append(value)
    return found


# Words of a variable name (split at "_", "-", "." and lower-to-upper case changes) that make it a secret...
ENV_SECRET_WORDS = frozenset(
    {
        "PWD",
        "PASS",
        "PASSWD",
        "PASSWORD",
        "PASSWORDS",
        "PASSPHRASE",
        "SECRET",
        "SECRETS",
        "TOKEN",
        "TOKENS",
        "PAT",
        "KEY",
        "KEYS",
        "APIKEY",
        "JWT",
        "WEBHOOK",
        "CREDENTIAL",
        "CREDENTIALS",
        "CRED",
        "CREDS",
        "AUTH",
        "OAUTH",
        "COOKIE",
        "COOKIES",
        "SESSION",
        "SIGNATURE",
        "SALT",
        "PRIVATE",
        "BEARER",
        "OTP",
        "HMAC",
        "DSN",
    }
)
# ...and parts that make a single word secret (PGPASSWORD, MYTOKEN, SLACKWEBHOOK).
ENV_SECRET_PARTS = ("PASSWORD", "PASSWD", "PASSPHRASE", "SECRET", "TOKEN", "CREDENTIAL", "WEBHOOK", "APIKEY")
# A last word that says the value describes a secret without being one: a path, a name, a switch, a size,
# an address (TLS_SECRET_NAME=api-tls, TOKEN_TTL=3600, SSH_AUTH_SOCK=/tmp/...). URL/URI/DSN values are
# not masked whole -- the password inside them is (secrets_in_value) -- except webhooks, whose URL is
# the secret.
ENV_DESCRIBING_WORDS = frozenset(
    {
        "FILE",
        "FILES",
        "PATH",
        "DIR",
        "URL",
        "URI",
        "NAME",
        "ENABLED",
        "ENABLE",
        "DISABLED",
        "DISABLE",
        "TTL",
        "COUNT",
        "SIZE",
        "TIMEOUT",
        "LENGTH",
        "TYPE",
        "KIND",
        "MODE",
        "METHOD",
        "HOST",
        "PORT",
        "ADDR",
        "ADDRESS",
        "SOCK",
        "SOCKET",
        "USER",
        "USERNAME",
        "HEADER",
        "HEADERS",
        "PREFIX",
        "SUFFIX",
        "FORMAT",
        "VERSION",
        "LEVEL",
        "PROVIDER",
        "ISSUER",
        "AUDIENCE",
        "SCOPE",
        "SCOPES",
        "ALGORITHM",
        "EXPIRY",
        "EXPIRES",
        "LIFETIME",
        "DURATION",
        "INTERVAL",
        "REGION",
        "ENDPOINT",
        "STRATEGY",
        "BACKEND",
        "REQUIRED",
        "ALLOWED",
        "LOCATION",
    }
)
# PWD and OLDPWD are the shell's directories.
ENV_NOT_SECRET = frozenset({"PWD", "OLDPWD"})
# Shorter values, booleans and numbers are everyday words and digits: masking them everywhere hid node ids
# (SECRET_KEY=test) and ordinary output (FEATURE_TOKEN_ENABLED=true).
MIN_ENV_SECRET_LENGTH = 8
_NOT_A_SECRET_VALUE = re.compile(
    r"(?i)^(true|false|yes|no|on|off|none|null|[-+]?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?)$"
)
_NAME_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z0-9]+(?![a-z])")


def env_name_words(name: str) -> list[str]:
    """``MYSQL_PWD`` -> ``['MYSQL', 'PWD']``; ``slackWebhookUrl`` -> ``['SLACK', 'WEBHOOK', 'URL']``."""
    return [
        word.upper() for part in re.split(r"[_\-.]+", name[:_MAX_NAME]) for word in _NAME_WORDS.findall(part)
    ]


def is_secret_variable(name: str, value: str) -> bool:
    """An environment variable whose *whole value* is a secret.

    Told by its name; the value is long enough and not a flag or a number."""
    value = value.strip()
    if (
        name.upper() in ENV_NOT_SECRET
        or len(value) < MIN_ENV_SECRET_LENGTH
        or _NOT_A_SECRET_VALUE.match(value)
    ):
        return False
    words = env_name_words(name)
    if not words:
        return False
    secret = any(word in ENV_SECRET_WORDS or any(part in word for part in ENV_SECRET_PARTS) for word in words)
    if not secret or "DSN" in words:
        return False
    return (
        words[-1] not in ENV_DESCRIBING_WORDS
        or "WEBHOOK" in words
        or any("WEBHOOK" in word for word in words)
    )


def secrets_in_value(text: str) -> list[str]:
    """The secrets inside one value (a URL, DSN, target or header as typed), to mask by value.

    URL passwords (also unescaped ones holding ``@``, ``/`` or spaces: up to the last ``@``) and their
    decoded form, the text libpq prints for a password holding ``@`` (``ss@host`` of ``p@ss@host``), a
    token given as the only user part (``https://TOKEN@host``), and values of ``password=`` /
    ``token=`` pairs (DSN keywords, query strings).
    """
    if not isinstance(text, str) or len(text) > 1 << 16:
        return []
    out: list[str] = []
    for userinfo, host in _userinfos(text):
        user, colon, password = userinfo.partition(":")
        if colon:
            out += [password, unquote(password)]
            # libpq splits at the first "@": "p@ss@db" is reported as host "ss@db".
            for index, char in enumerate(password):
                if char == "@":
                    out.append(f"{password[index + 1 :]}@{host}")
        elif len(user) >= MIN_ENV_SECRET_LENGTH:
            out += [user, unquote(user)]
    for match in _PAIR.finditer(text):
        if is_secret_name(match.group(1)):
            out.append(match.group(2).strip("'\""))
    return [value for value in out if len(value) >= MIN_SECRET_LENGTH]


_PAIR = re.compile(
    rf"(?<![{_NAME_CHARS}])([{_NAME_CHARS}]{{1,{_MAX_NAME}}}+)[ \t]*+=[ "
    r"\t]*+('[^'\r\n]*'|\"[^\"\r\n]*\"|[^&;\s]+)"
)


def _userinfos(text: str) -> list[tuple[str, str]]:
    """``(userinfo, host)`` of each URL in ``text`` (and of a scheme-less ``user:pw@host`` value)."""
    found = []
    starts = [match.end() for match in _URL_START.finditer(text)]
    if (
        not starts
        and "@" in text
        and ":" in text.partition("@")[0]
        and not any(c.isspace() for c in text.strip())
    ):
        starts = [0]
    for index, start in enumerate(starts):
        end = starts[index + 1] if index + 1 < len(starts) else len(text)
        segment = text[start:end]
        slash = segment.find("/")
        at = segment.rfind("@")
        if at < 0:
            continue
        if 0 <= slash < at and ":" not in segment[:slash]:
            at = segment.rfind("@", 0, slash)  # github.com/org/repo@v4: "@" in the path
            if at < 0:
                continue
        host = re.split(r"[:/?#\s]", segment[at + 1 :], maxsplit=1)[0]
        found.append((segment[:at], host))
    return found


def url_passwords(text: str) -> list[str]:
    """Passwords in the URLs (``user:pw@``) and ``password=`` pairs (DSN or query) of ``text``.

    They are masked by value."""
    return secrets_in_value(text)


def _table_secrets(table: Any) -> list[str]:
    out: list[str] = []
    if isinstance(table, Mapping):
        for key, value in table.items():
            if isinstance(value, str):
                if is_secret_name(str(key)):
                    out.append(value)
                out += secrets_in_value(value)
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
    out += _decoded_client_key(user)
    out += _token_file_secret(user)
    out += _auth_provider_secrets(user)
    out += _exec_env_secrets(user)
    return [value.strip() for value in out if value.strip()]


def _decoded_client_key(user: Mapping[str, Any]) -> list[str]:
    """The client key decoded too: the client writes it to a temp file, and errors may quote it."""
    if not isinstance(user.get("client-key-data"), str):
        return []
    try:
        decoded = base64.b64decode(user["client-key-data"], validate=False).decode("utf-8", "strict")
    except (ValueError, UnicodeDecodeError):
        return []
    return [decoded] if "PRIVATE KEY" in decoded else []


def _token_file_secret(user: Mapping[str, Any]) -> list[str]:
    token_file = user.get("tokenFile")
    if not isinstance(token_file, str):
        return []
    try:
        return [Path(token_file).read_text().strip()]
    except (OSError, ValueError):
        return []  # a path, not a secret: only the token it holds is masked


def _auth_provider_secrets(user: Mapping[str, Any]) -> list[str]:
    """Secret-named values of an auth-provider's config (OIDC id-token, refresh-token, client-secret)."""
    provider = user.get("auth-provider")
    if not (isinstance(provider, Mapping) and isinstance(provider.get("config"), Mapping)):
        return []
    return [v for k, v in provider["config"].items() if isinstance(v, str) and is_secret_name(str(k))]


def _exec_env_secrets(user: Mapping[str, Any]) -> list[str]:
    """Values of an exec plugin's ``env`` whose names (or values) look secret."""
    plugin = user.get("exec")
    if not isinstance(plugin, Mapping):
        return []
    return [
        variable["value"]
        for variable in plugin.get("env") or []
        if isinstance(variable, Mapping)
        and isinstance(variable.get("value"), str)
        and is_secret_variable(str(variable.get("name", "")), variable["value"])
    ]
