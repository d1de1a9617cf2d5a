"""Target parsing: every form of the documented ``--target`` (README.md), and the ways users type it wrong."""

from __future__ import annotations

import pytest

from pytest_reachability.config import (
    Target,
    TargetError,
    _stdlib_idna_to_ascii,
    mask_credentials,
    parse_target,
)

# input, scheme, host, port, base_path, base_url
VALID = [
    ("example.com", "http", "example.com", 80, "", "http://example.com"),
    ("Example.COM", "http", "example.com", 80, "", "http://example.com"),
    ("  example.com\n", "http", "example.com", 80, "", "http://example.com"),
    ("example.com:443", "https", "example.com", 443, "", "https://example.com"),
    ("example.com:8443", "http", "example.com", 8443, "", "http://example.com:8443"),
    ("example.com:080", "http", "example.com", 80, "", "http://example.com"),
    ("97v.ru", "http", "97v.ru", 80, "", "http://97v.ru"),
    ("localhost:1", "http", "localhost", 1, "", "http://localhost:1"),
    ("localhost:65535", "http", "localhost", 65535, "", "http://localhost:65535"),
    ("127.0.0.1:8080", "http", "127.0.0.1", 8080, "", "http://127.0.0.1:8080"),
    ("138.197.254.57", "http", "138.197.254.57", 80, "", "http://138.197.254.57"),
    ("http://example.com", "http", "example.com", 80, "", "http://example.com"),
    ("http://example.com/", "http", "example.com", 80, "", "http://example.com"),
    ("https://example.com", "https", "example.com", 443, "", "https://example.com"),
    ("https://example.com:80", "https", "example.com", 80, "", "https://example.com:80"),
    ("http://example.com:443", "http", "example.com", 443, "", "http://example.com:443"),
    ("https://example.com/api/", "https", "example.com", 443, "/api", "https://example.com/api"),
    (
        "HTTPS://Example.com:8443/API/v1",
        "https",
        "example.com",
        8443,
        "/API/v1",
        "https://example.com:8443/API/v1",
    ),
    ("example.com/api", "http", "example.com", 80, "/api", "http://example.com/api"),
    ("http://example.com/my%20api", "http", "example.com", 80, "/my%20api", "http://example.com/my%20api"),
    ("http://example.com/✓", "http", "example.com", 80, "/%E2%9C%93", "http://example.com/%E2%9C%93"),
    ("[::1]:8443", "http", "::1", 8443, "", "http://[::1]:8443"),
    ("[::1]:443", "https", "::1", 443, "", "https://[::1]"),
    ("[::1]", "http", "::1", 80, "", "http://[::1]"),
    ("http://[::1]/", "http", "::1", 80, "", "http://[::1]"),
    (
        "https://[2001:DB8:0::1]:8443/api",
        "https",
        "2001:db8::1",
        8443,
        "/api",
        "https://[2001:db8::1]:8443/api",
    ),
    ("::1", "http", "::1", 80, "", "http://[::1]"),
    ("2001:db8::1", "http", "2001:db8::1", 80, "", "http://[2001:db8::1]"),
    ("2001:db8::8080", "http", "2001:db8::8080", 80, "", "http://[2001:db8::8080]"),
    ("пример.рф", "http", "xn--e1afmkfd.xn--p1ai", 80, "", "http://xn--e1afmkfd.xn--p1ai"),
    ("ПРИМЕР.РФ:443", "https", "xn--e1afmkfd.xn--p1ai", 443, "", "https://xn--e1afmkfd.xn--p1ai"),
    (
        "https://bücher.example/shop",
        "https",
        "xn--bcher-kva.example",
        443,
        "/shop",
        "https://xn--bcher-kva.example/shop",
    ),
    ("xn--e1afmkfd.xn--p1ai", "http", "xn--e1afmkfd.xn--p1ai", 80, "", "http://xn--e1afmkfd.xn--p1ai"),
    ("a" * 63 + ".com", "http", "a" * 63 + ".com", 80, "", "http://" + "a" * 63 + ".com"),
]


@pytest.mark.parametrize(("text", "scheme", "host", "port", "base_path", "base_url"), VALID)
def test_valid_targets_are_normalised(
    text: str, scheme: str, host: str, port: int, base_path: str, base_url: str
) -> None:
    target = parse_target(text)
    assert (target.scheme, target.host, target.port, target.base_path) == (scheme, host, port, base_path)
    assert target.base_url == base_url
    assert target.raw == text
    assert target.username is None and target.password is None
    assert target.display == base_url


@pytest.mark.parametrize(
    ("text", "explicit"),
    [
        ("example.com", False),
        ("example.com:443", False),
        ("http://example.com", True),
        ("https://example.com:8443", True),
    ],
)
def test_scheme_explicit_says_whether_the_user_chose_the_scheme(text: str, explicit: bool) -> None:
    assert parse_target(text).scheme_explicit is explicit


def test_longest_legal_host_name_is_accepted() -> None:
    host = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # 253 characters
    assert len(host) == 253
    assert parse_target(host).host == host


@pytest.mark.parametrize(
    ("text", "is_ip", "url_host", "netloc"),
    [
        ("example.com", False, "example.com", "example.com"),
        ("example.com:8080", False, "example.com", "example.com:8080"),
        ("10.0.0.1", True, "10.0.0.1", "10.0.0.1"),
        ("[::1]:8443", True, "[::1]", "[::1]:8443"),
        ("https://[fe80::1]", True, "[fe80::1]", "[fe80::1]"),
    ],
)
def test_url_parts(text: str, is_ip: bool, url_host: str, netloc: str) -> None:
    target = parse_target(text)
    assert target.is_ip is is_ip
    assert target.url_host == url_host
    assert target.netloc == netloc
    assert target.host_header == netloc


def test_url_joins_paths_under_the_base_path() -> None:
    target = parse_target("https://example.com:8443/api/")
    assert target.url("/health") == "https://example.com:8443/api/health"
    assert target.url("health") == "https://example.com:8443/api/health"
    assert target.url() == "https://example.com:8443/api"
    assert parse_target("example.com").url("/health") == "http://example.com/health"


@pytest.mark.parametrize(
    ("text", "username", "password", "display"),
    [
        ("https://user:s3cret@example.com/api", "user", "s3cret", "https://***:***@example.com/api"),
        ("user@example.com", "user", None, "http://***@example.com"),
        ("http://user:p%40ss%3Aw@example.com", "user", "p@ss:w", "http://***:***@example.com"),
        # An unescaped '@', '/' or ':' in the password: the last '@' ends the credentials.
        ("http://user:p@ss/w:rd@example.com:8080", "user", "p@ss/w:rd", "http://***:***@example.com:8080"),
        ("http://:token@example.com", "", "token", "http://***:***@example.com"),
        ("us%20er:pw@[::1]:443", "us er", "pw", "https://***:***@[::1]"),
    ],
)
def test_credentials_are_kept_and_never_shown(
    text: str, username: str, password: str | None, display: str
) -> None:
    target = parse_target(text)
    assert (target.username, target.password) == (username, password)
    assert target.display == display
    assert str(target) == display
    assert "@" not in target.base_url
    assert target.auth == (username, password or "")
    if password:
        for shown in (repr(target), str(target), target.base_url, target.url("/health"), target.host_header):
            assert password not in shown


def test_target_without_credentials_has_no_auth() -> None:
    assert parse_target("example.com").auth is None


def test_targets_compare_by_value_and_are_frozen() -> None:
    assert parse_target("http://example.com:80/") == parse_target("http://example.com:80/")
    with pytest.raises(AttributeError):
        parse_target("example.com").port = 1  # type: ignore[misc]
    assert isinstance(parse_target("example.com"), Target)


def test_stdlib_idna_fallback_agrees_for_common_names() -> None:
    assert _stdlib_idna_to_ascii("пример.рф") == "xn--e1afmkfd.xn--p1ai"
    assert _stdlib_idna_to_ascii("Bücher.example") == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("https://user:pw@host/x", "https://***:***@host/x"),
        ("user:pw@host", "***@host"),
        ("http://u:p@ss@host", "http://***:***@host"),
        ("u:p://x@host", "***@host"),
        ("host:80", "host:80"),
        ("postgresql://u:p/ss@db/x", "postgresql://***:***@db/x"),  # "/" in an unescaped password
        (
            "postgresql://db/x?password=Qry-Pw-5151",
            "postgresql://db/x?password=***",
        ),  # masked by redact's rules
    ],
)
def test_mask_credentials(text: str, masked: str) -> None:
    assert mask_credentials(text) == masked


# input, words the message must contain
BAD = [
    ("", "empty"),
    ("   ", "empty"),
    ("\t\n", "empty"),
    ("http://", "no host after 'http://'"),
    ("https://", "no host after 'https://'"),
    ("ftp://x", "unsupported scheme 'ftp'"),
    ("gopher://example.com:70", "unsupported scheme 'gopher'"),
    ("example.com:0", "port 0 is out of range"),
    ("example.com:99999", "port 99999 is out of range"),
    ("example.com:65536", "port 65536 is out of range"),
    ("example.com:" + "9" * 5000, "out of range"),
    ("example.com:http", "port 'http' is not a number"),
    ("example.com:-1", "port '-1' is not a number"),
    ("example.com:+80", "port '+80' is not a number"),
    ("example.com:８０", "is not a number"),
    ("example.com:", "port after ':' is empty"),
    ("http://[::1]:", "port after ':' is empty"),
    ("exam ple.com", "whitespace"),
    ("example.com/a b", "whitespace"),
    ("exam\x00ple.com", "control characters"),
    ("[::1", "unbalanced '['"),
    ("http://[::1/api", "unbalanced '['"),
    ("::1]:80", "unbalanced"),
    ("exa]mple.com", "unbalanced"),
    ("::1:80", "ambiguous"),
    ("2001:db8::1:443", "ambiguous"),
    ("http://::1/", "must be in brackets"),
    ("[]:80", "empty brackets"),
    ("[example.com]:80", "not an IPv6 address"),
    ("[::1]x", "unexpected text 'x' after ']'"),
    ("[::1]:80x", "port '80x' is not a number"),
    ("http://example.com/?q=1", "query or fragment"),
    ("example.com?x", "query or fragment"),
    ("https://example.com/api#top", "query or fragment"),
    ("exa$mple.com", "character '$' is not allowed"),
    ("exa_mple.com", "character '_' is not allowed"),
    ("http://host%20name", "character '%' is not allowed"),
    ("a" * 64 + ".com", "64 characters long"),
    (".".join(["a" * 63] * 4) + ".com", "characters long; expected at most 253"),
    (".example.com", "starts with '.'"),
    ("example.com.", "ends with '.'"),
    ("example..com", "empty label"),
    ("-example.com", "label '-example' starts or ends with '-'"),
    ("example-.com", "label 'example-' starts or ends with '-'"),
    ("xn--zz.com", "not valid punycode"),
    ("💩.example", "not a valid internationalised host name"),
    ("999.1.1.1", "not a valid IPv4 address"),
    ("1.2.3", "not a valid IPv4 address"),
    ("http:/example.com", "malformed scheme"),
    ("https:example.com", "malformed scheme"),
    ("://example.com", "no scheme before '://'"),
    ("http://http://example.com", "'://' in an unexpected place"),
    (":80", "host is empty"),
    ("http://:80", "host is empty"),
    ("example.com:80:90", "more than one ':'"),
    ("example.com::80", "more than one ':'"),
    ("@example.com", "nothing before '@'"),
    ("http://example.com/a//b", "empty segment"),
    ("http://example.com/a/../b", "'..' segment"),
    ("http://example.com/a%zz", "'%' in the base path"),
    ('http://example.com/a"b', "character '\"' is not allowed in the base path"),
]


def test_at_least_25_distinct_bad_inputs_are_covered() -> None:
    assert len({text for text, _ in BAD}) == len(BAD) >= 25


@pytest.mark.parametrize(("text", "words"), BAD)
def test_bad_target_is_one_clear_line(text: str, words: str) -> None:
    with pytest.raises(TargetError) as caught:
        parse_target(text)
    message = str(caught.value)
    assert "\n" not in message and "\r" not in message
    assert message.startswith("invalid target ")
    assert f"invalid target {mask_credentials(text)!r}: " in message  # names the input as typed
    assert words in message
    assert "; expected " in message


@pytest.mark.parametrize(
    "text",
    [
        "http://admin:s3cret@example.com:99999",
        "https://admin:s3cret@ftp//example.com",
        "ftp://admin:s3cret@example.com",
        "admin:s3cret@exa mple.com",
        "admin:s3cret@[::1",
        "admin:s3cret@example.com/?q",
        "http://admin:s3cret@",
        "http://admin:s3c/ret@@exa$mple.com",
        "admin:s3cret://x@:80",
        "http://admin:s3cret@example.com:0",
    ],
)
def test_error_messages_never_contain_credentials(text: str) -> None:
    with pytest.raises(TargetError) as caught:
        parse_target(text)
    message = str(caught.value)
    assert "s3cret" not in message and "s3c" not in message
    assert "admin" not in message
    assert "***@" in message
