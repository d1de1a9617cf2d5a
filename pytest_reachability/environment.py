"""The process environment, read safely while another thread changes it.

Iterating ``os.environ`` lists the names first and reads each value after: a variable removed in between
raises KeyError. pytest sets and removes ``PYTEST_CURRENT_TEST`` around every test while the session-start
reads run in threads, and both HTTP clients in use iterate the environment on every request (urllib's
proxy lookup, through requests' ``trust_env`` and the kubernetes client's host setter). So the run reads
the environment once, in one step (:func:`snapshot`), and decides proxies from that copy
(:func:`proxies`, :func:`bypasses_proxy`), as urllib, requests and kubectl would.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from typing import TypeVar

_T = TypeVar("_T")

ATTEMPTS = 3  # copies of a changing environment tried where the one-step copy is not available


def raised_by_a_changing_environment(error: BaseException) -> bool:
    """A KeyError raised inside ``os.environ`` itself (its last frame is the ``os`` module's): a variable
    went away while the environment was iterated. Nothing about the peer: reading again is the answer."""
    if not isinstance(error, KeyError):
        return False
    last = error.__traceback__
    while last is not None and last.tb_next is not None:
        last = last.tb_next
    return last is not None and last.tb_frame.f_globals.get("__name__") == "os"


def retried(call: Callable[[], _T]) -> _T:
    """``call()``, called again (:data:`ATTEMPTS` times in all at most) while it fails only because the
    environment changed under it. For calls that change nothing when they fail, such as reads."""
    for _ in range(ATTEMPTS - 1):
        try:
            return call()
        except KeyError as error:
            if not raised_by_a_changing_environment(error):
                raise
    return call()


def snapshot() -> dict[str, str]:
    """The environment as it is now, copied in one step: CPython keeps the variables in a plain dict,
    copied at once under the GIL; elsewhere the copy is tried again when the environment changed under it."""
    data = getattr(os.environ, "_data", None)
    decode_key = getattr(os.environ, "decodekey", None)
    decode_value = getattr(os.environ, "decodevalue", None)
    if isinstance(data, dict) and callable(decode_key) and callable(decode_value):
        return {decode_key(key): decode_value(value) for key, value in data.copy().items()}
    return retried(lambda: dict(os.environ))


def proxies(environment: Mapping[str, str]) -> dict[str, str]:
    """The ``*_proxy`` variables as urllib's ``getproxies()`` reads them: {scheme: url, "no": hosts}; a
    lower-case name wins over its upper-case twin and an empty lower-case one unsets it; under CGI
    (``REQUEST_METHOD`` set) an upper-case ``HTTP_PROXY`` is ignored (a client's ``Proxy`` header)."""
    found: dict[str, str] = {}
    for name, value in environment.items():
        if value and name.lower().endswith("_proxy"):
            found[name.lower()[:-6]] = value
    if "REQUEST_METHOD" in environment:
        found.pop("http", None)
    for name, value in environment.items():
        if name.endswith("_proxy"):
            if value:
                found[name.lower()[:-6]] = value
            else:
                found.pop(name.lower()[:-6], None)
    return found


def bypasses_proxy(host: str, port: int | None, environment: Mapping[str, str]) -> bool:
    """Whether the environment's no-proxy list exempts ``host`` (``port``: the URL's explicit port), as
    requests decides it: its own reading of ``no_proxy``/``NO_PROXY``, then urllib's."""
    hostname = host.lower().strip("[]")
    if not hostname:
        return True
    listed = environment.get("no_proxy") or environment.get("NO_PROXY") or ""
    entries = [entry for entry in listed.replace(" ", "").split(",") if entry]
    return _requests_exempts(hostname, port, entries) or _urllib_exempts(
        hostname, proxies(environment).get("no")
    )


def _requests_exempts(hostname: str, port: int | None, entries: list[str]) -> bool:
    """An IPv4 address matches an equal entry or a CIDR block; a name matches an entry equal to it or a
    domain it ends in (a leading dot optional), with or without ``:port``."""
    if _is_ipv4(hostname):
        return any(_in_cidr(hostname, entry) if "/" in entry else hostname == entry for entry in entries)
    with_port = f"{hostname}:{port}" if port else hostname
    for entry in entries:
        name = entry.lstrip(".")
        if name in (hostname, with_port) or hostname.endswith("." + name) or with_port.endswith("." + name):
            return True
    return False


def _urllib_exempts(hostname: str, no_proxy: str | None) -> bool:
    """``*`` exempts every host; otherwise names and domains, in any case."""
    if no_proxy is None:
        return False
    if no_proxy == "*":
        return True
    for entry in no_proxy.split(","):
        name = entry.strip().lstrip(".").lower()
        if name and (hostname == name or hostname.endswith("." + name)):
            return True
    return False


def _in_cidr(address: str, block: str) -> bool:
    """requests' reading of a CIDR entry: one slash, a mask of 1 to 32 bits, a network inet_aton reads."""
    network, _, mask = block.partition("/")
    try:
        bits = int(mask)
        packed = socket.inet_aton(network)
    except (ValueError, OSError):
        return False
    if "/" in mask or not 1 <= bits <= 32:
        return False
    netmask = (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF
    return (
        int.from_bytes(socket.inet_aton(address), "big") & netmask == int.from_bytes(packed, "big") & netmask
    )


def _is_ipv4(text: str) -> bool:
    """requests' test: what inet_aton reads (``127.1`` included)."""
    try:
        socket.inet_aton(text)
    except OSError:
        return False
    return True
