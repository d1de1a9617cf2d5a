"""The environment read in one step, and proxies decided from that copy as urllib and requests decide them
(the standard library and requests are the oracles, over generated environments)."""

from __future__ import annotations

import contextlib
import os
import secrets
import urllib.request
from collections.abc import Callable, Iterator, Mapping

import pytest
import requests
import requests.utils
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_reachability import environment

_PROXY_VARIABLES = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
_NO_PROXY_VARIABLES = ["NO_PROXY", "no_proxy", "No_Proxy"]


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    try:
        for name in list(os.environ):
            if name.lower().endswith("_proxy") or name == "REQUEST_METHOD":
                del os.environ[name]
        os.environ.update(values)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from([*_PROXY_VARIABLES, *_NO_PROXY_VARIABLES, "Ftp_Proxy", "REQUEST_METHOD", "PATH"]),
        st.sampled_from(["", "http://127.0.0.1:3128", "http://proxy.internal:8080", "localhost,.svc"]),
    )
)
def test_proxies_are_read_as_urllib_reads_them(values: dict[str, str]) -> None:
    with _environment(values):
        assert environment.proxies(environment.snapshot()) == urllib.request.getproxies_environment()


_HOSTS = st.sampled_from(
    [
        "api.example.com",
        "example.com",
        "API.Example.com",
        "10.1.2.3",
        "10.1.2.30",
        "127.0.0.1",
        "::1",
        "127.1",
    ]
)
_ENTRIES = st.sampled_from(
    [
        "example.com",
        ".example.com",
        "EXAMPLE.com",
        "api.example.com:8443",
        "example.com:443",
        "10.1.2.3",
        "10.1.2.0/24",
        "10.1.0.0/33",
        "10.1.2.3/0",
        "127.0.0.0/8",
        "::1",
        "*",
        " example.com ",
        ".com",
        "xample.com",
        "10.1.2",
    ]
)


@settings(max_examples=500, deadline=None)
@given(
    host=_HOSTS,
    port=st.sampled_from([None, 443, 8443]),
    lists=st.dictionaries(st.sampled_from(_NO_PROXY_VARIABLES), st.lists(_ENTRIES, max_size=4).map(",".join)),
)
def test_no_proxy_exempts_a_host_as_requests_decides(
    host: str, port: int | None, lists: dict[str, str]
) -> None:
    if not _requests_reads_domains_at_dots():
        pytest.skip(
            f"requests {requests.__version__} reads a no_proxy entry as a bare suffix (xample.com exempts "
            "api.example.com), which later versions fixed: the reading followed is theirs"
        )
    netloc = f"[{host}]" if ":" in host else host
    url = f"https://{netloc}{f':{port}' if port else ''}/health"
    with _environment({"HTTPS_PROXY": "http://127.0.0.1:3128", **lists}):
        expected = requests.utils.should_bypass_proxies(url, no_proxy=None)
        assert environment.bypasses_proxy(host, port, environment.snapshot()) == expected


def _requests_reads_domains_at_dots() -> bool:
    with _environment({"HTTPS_PROXY": "http://127.0.0.1:3128", "NO_PROXY": "xample.com"}):
        return not requests.utils.should_bypass_proxies("https://api.example.com/", no_proxy=None)


def test_the_snapshot_is_the_environment() -> None:
    assert environment.snapshot() == dict(os.environ)


def test_the_snapshot_never_fails_while_another_thread_changes_the_environment(
    under_a_changing_environment: Callable[[Callable[[], None], int], list[BaseException]],
) -> None:
    def copy() -> None:
        for _ in range(2000):
            assert "PATH" in environment.snapshot()

    assert under_a_changing_environment(copy, 2) == []


def test_only_a_key_error_from_inside_the_environment_counts_as_its_change() -> None:
    missing = f"REACHABILITY_TEST_MISSING_{secrets.token_hex(4)}"
    with pytest.raises(KeyError) as inside:
        os.environ[missing]  # noqa: B018 - the lookup is what raises
    assert environment.raised_by_a_changing_environment(inside.value)
    with pytest.raises(KeyError) as elsewhere:
        {}[missing]  # noqa: B018 - the lookup is what raises
    assert not environment.raised_by_a_changing_environment(elsewhere.value)
    assert not environment.raised_by_a_changing_environment(ValueError(missing))


def test_a_read_is_tried_again_only_after_the_environment_changed_under_it() -> None:
    missing = f"REACHABILITY_TEST_MISSING_{secrets.token_hex(4)}"
    calls: list[str] = []

    def changed_once() -> str:
        calls.append("changed")
        if len(calls) == 1:
            os.environ[missing]  # noqa: B018 - as a variable removed while the environment was iterated
        return "read"

    assert environment.retried(changed_once) == "read"
    assert calls == ["changed", "changed"]

    def always_changing() -> str:
        calls.append("always")
        return os.environ[missing]

    with pytest.raises(KeyError):
        environment.retried(always_changing)
    assert calls.count("always") == environment.ATTEMPTS

    def broken() -> str:
        calls.append("broken")
        raise KeyError("cluster")

    with pytest.raises(KeyError, match="cluster"):
        environment.retried(broken)
    assert calls.count("broken") == 1
