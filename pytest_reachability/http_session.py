"""``requests.Session`` bound to the target: the ``http`` fixture.

Example::

    def test_orders(http):
        response = http.get("/orders", params={"limit": 1})
        assert response.status_code == 200
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from . import environment
from . import evidence as evidence_mod
from .idle_connections import TicketTolerantHTTPSConnection, open_idle, replace_stock_pools

BODY_EXCERPT = 512
# A response body is read up to this many (decoded) bytes; a larger one -- a gzip bomb, an endless stream --
# raises ResponseTooLarge instead of filling the memory.
MAX_BODY = 10 << 20
MAX_REDIRECTS = 5
_READ_SIZE = 64 * 1024


class ResponseTooLarge(requests.RequestException):
    """The response body is larger than :data:`MAX_BODY`."""


# --- a deadline for the whole exchange ---------------------------------------------------------------------
# requests' timeout bounds each connect and each read, not the exchange: a peer sending one byte a second
# never trips it. The sockets of a request are registered with its deadline, which shuts them down when
# the time is up, and the request then fails as a read timeout.

_CURRENT = threading.local()


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.fired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        _CURRENT.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
        _CURRENT.deadline = None

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            if self.fired:
                _shut(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    try:  # the base class's shutdown: on a TLS socket it must not drop the SSL object a reader still uses
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


def _watch(sock: socket.socket | None) -> None:
    deadline = getattr(_CURRENT, "deadline", None)
    if deadline is not None:
        deadline.watch(sock)


class _WatchedHTTPConnection(urllib3.connection.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _watch(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self.sock)  # a kept-alive connection: already connected
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(TicketTolerantHTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _watch(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self.sock)
        super().request(*args, **kwargs)


class _WatchedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class BoundedAdapter(HTTPAdapter):
    """An adapter whose connections a request's deadline can cut (see :class:`TargetSession`)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        """Through a proxy too, the request's deadline can cut its connections, and a connection opened
        ahead survives the server's TLS 1.3 tickets (a SOCKS proxy's own pool classes are kept)."""
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        replace_stock_pools(manager, {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool})
        return manager


class PinnedAddressAdapter(BoundedAdapter):
    """curl ``--resolve`` for requests: connect to ``address`` while Host and SNI stay ``host``.

    The target's name is resolved by the configured resolvers (not necessarily the OS's), so the
    session must not ask the OS again.
    """

    def __init__(self, host: str, address: str, **kwargs: Any) -> None:
        self.host = host.lower()
        self.address = address
        super().__init__(**kwargs)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.pin(request)
        return super().send(request, **kwargs)

    def pin(self, request: requests.PreparedRequest) -> None:
        """Send ``request`` (to the pinned host) to the pinned address, keeping its Host and SNI."""
        parts = urlsplit(request.url or "")
        if (parts.hostname or "").lower() == self.host:
            pinned = f"[{self.address}]" if ":" in self.address else self.address
            if parts.port:
                pinned += f":{parts.port}"
            request.headers["Host"] = parts.netloc.rsplit("@", 1)[-1]
            request.url = urlunsplit(parts._replace(netloc=pinned))
            if parts.scheme == "https":
                self.poolmanager.connection_pool_kw.update(
                    server_hostname=self.host, assert_hostname=self.host
                )


def read_environment_once(session: requests.Session, url: str) -> None:
    """Give ``session`` what requests' ``trust_env`` takes from the environment for ``url``'s host -- the
    proxy (unless no-proxy exempts the host), the ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` bundle, .netrc
    credentials -- read now, once, and turn ``trust_env`` off: requests would read them again on every
    request, iterating ``os.environ``, which raises KeyError while another thread changes it (see
    :mod:`pytest_reachability.environment`). The session must only ever talk to that host."""
    session.trust_env = False
    variables = environment.snapshot()
    bundle = variables.get("REQUESTS_CA_BUNDLE") or variables.get("CURL_CA_BUNDLE")
    if bundle and session.verify is True:
        session.verify = bundle
    parts = urlsplit(url)
    proxies = environment.proxies(variables)
    if proxies and not environment.bypasses_proxy(parts.hostname or "", parts.port, variables):
        session.proxies.update({scheme: proxy for scheme, proxy in proxies.items() if scheme != "no"})
    if session.auth is None:
        session.auth = requests.utils.get_netrc_auth(url)


class TargetSession(requests.Session):
    """Relative URLs are joined to the target's base URL; every request has a timeout.

    Only failures to *connect* are retried (twice): a request that reached the server is never sent
    again, so a write is never duplicated. Each response is recorded as ``http`` evidence.

    Bounded against a peer that misbehaves: the whole exchange (redirects included) takes at most twice
    the timeout, a body is read up to :data:`MAX_BODY` decoded bytes, at most :data:`MAX_REDIRECTS`
    redirects are followed and only to the target's own host over http(s) -- a redirect elsewhere is
    returned as it is, not followed -- and credentials never go to another host, port or scheme
    (requests strips them; cookies follow their domain).
    """

    def __init__(
        self,
        target: Any,
        *,
        timeout: float,
        ca_bundle: str | None = None,
        retries: int = 2,
        address: str | None = None,
    ) -> None:
        super().__init__()
        self.target = target
        self.base_url = target.base_url
        self.timeout = timeout
        self.ca_bundle = ca_bundle
        if target.username is not None:
            self.auth = (target.username, target.password or "")
        read_environment_once(self, self.base_url)
        if ca_bundle:
            self.verify = ca_bundle
        self.max_redirects = MAX_REDIRECTS
        retry = Retry(
            total=retries,
            connect=retries,
            read=0,
            status=0,
            other=0,
            redirect=0,
            allowed_methods=None,
            raise_on_status=False,
        )
        adapter = (
            PinnedAddressAdapter(target.host, address, max_retries=retry)
            if address
            else BoundedAdapter(max_retries=retry)
        )
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def preconnect(self) -> None:
        """Open one connection to the target's base URL (TCP, and TLS for https, verified as a request
        would be) and leave it idle in the session's pool: the session's first request then pays no
        handshake. Nothing is sent. Bounded by the session's timeout; a failure is left for the first
        request, which connects (and fails) on its own."""
        request = requests.Request("GET", self.base_url).prepare()
        adapter = self.get_adapter(self.base_url)
        pin = getattr(adapter, "pin", None)
        if pin is not None:
            pin(request)
        # Through the proxy the requests will take (read once from the environment), tunnel and all.
        proxies = dict(self.proxies) or None
        if hasattr(adapter, "get_connection_with_tls_context"):  # requests >= 2.32
            pool = adapter.get_connection_with_tls_context(
                request, self.verify, proxies=proxies, cert=self.cert
            )
        else:  # requests 2.31: what its send() does
            pool = adapter.get_connection(request.url, proxies)
            adapter.cert_verify(pool, request.url, self.verify, self.cert)
        open_idle(pool, self.timeout)

    def get_redirect_target(self, response: requests.Response) -> str | None:
        """Follow a redirect only over http(s) to the target's own host; anything else ends the exchange."""
        location = super().get_redirect_target(response)
        if location is None:
            return None
        parts = urlsplit(requests.compat.urljoin(response.url, location))
        if (
            parts.scheme not in ("http", "https")
            or (parts.hostname or "").lower() != self.target.host.lower()
        ):
            return None
        if parts.scheme == "http" and urlsplit(response.url).scheme == "https":
            return None  # never down from https to http
        if not response._content_consumed:  # noqa: SLF001 - requests reads a redirect's body whole: read it bounded first
            _read_body(response)
        return location

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        url = url.decode() if isinstance(url, bytes) else url
        if not url.startswith(("http://", "https://")):
            url = self.base_url + ("" if url.startswith("/") else "/") + url
        kwargs.setdefault("timeout", self.timeout)
        streaming = bool(kwargs.pop("stream", False))
        started = time.perf_counter()
        budget = 2 * _longest(kwargs["timeout"])
        try:
            with _Deadline(budget) as deadline:
                try:
                    response = super().request(method, url, *args, stream=True, **kwargs)
                    if not streaming:
                        _read_body(response)
                except requests.RequestException:
                    if deadline.fired:
                        raise requests.exceptions.ReadTimeout(
                            f"no complete response from {urlsplit(url).netloc} within {budget:g}s"
                        ) from None
                    raise
        except requests.RequestException as exc:
            evidence_mod.record(
                "http", {"method": str(method), "url": url, "error": f"{type(exc).__name__}: {exc}"}
            )
            raise
        evidence_mod.record(
            "http",
            {
                "method": str(method),
                "url": url,
                "status": response.status_code,
                "ms": round((time.perf_counter() - started) * 1000, 3),
                "body_excerpt": response.text[:BODY_EXCERPT]
                if response.encoding or response.content[:1] in (b"{", b"[")
                else "",
            },
        )
        return response


def _longest(timeout: Any) -> float:
    """The largest of a requests timeout (a number or a (connect, read) pair)."""
    if isinstance(timeout, (tuple, list)):
        return max(float(part) for part in timeout if part is not None)
    return float(timeout)


def _read_body(response: requests.Response) -> None:
    """Read the body into the response, at most MAX_BODY decoded bytes (a gzip bomb stops there)."""
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_content(_READ_SIZE):
            size += len(chunk)
            if size > MAX_BODY:
                raise ResponseTooLarge(
                    f"response body larger than {MAX_BODY >> 20} MB (decoded); not read further"
                )
            chunks.append(chunk)
    finally:
        if size > MAX_BODY:
            response.close()
    response._content = b"".join(chunks)  # noqa: SLF001 - what requests itself sets after reading
    response._content_consumed = True  # noqa: SLF001
    response.close()  # back to the pool (the body is read)
