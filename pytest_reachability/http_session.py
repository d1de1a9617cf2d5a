"""``requests.Session`` bound to the target: the ``http`` fixture.

Example::

    def test_orders(http):
        response = http.get("/orders", params={"limit": 1})
        assert response.status_code == 200
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from . import evidence as evidence_mod

BODY_EXCERPT = 512


class PinnedAddressAdapter(HTTPAdapter):
    """curl ``--resolve`` for requests: connect to ``address`` while Host and SNI stay ``host``.

    The target's name is resolved by the configured resolvers (not necessarily the OS's), so the
    session must not ask the OS again.
    """

    def __init__(self, host: str, address: str, **kwargs: Any) -> None:
        self.host = host.lower()
        self.address = address
        super().__init__(**kwargs)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        parts = urlsplit(request.url or "")
        if (parts.hostname or "").lower() == self.host:
            pinned = f"[{self.address}]" if ":" in self.address else self.address
            if parts.port:
                pinned += f":{parts.port}"
            request.headers["Host"] = parts.netloc.rsplit("@", 1)[-1]
            request.url = urlunsplit(parts._replace(netloc=pinned))
            if parts.scheme == "https":
                self.poolmanager.connection_pool_kw.update(server_hostname=self.host, assert_hostname=self.host)
        return super().send(request, **kwargs)


class TargetSession(requests.Session):
    """Relative URLs are joined to the target's base URL; every request has a timeout.

    Only failures to *connect* are retried (twice): a request that reached the server is never sent
    again, so a write is never duplicated. Each response is recorded as ``http`` evidence.
    """

    def __init__(
        self, target: Any, *, timeout: float, ca_bundle: str | None = None, retries: int = 2, address: str | None = None
    ) -> None:
        super().__init__()
        self.target = target
        self.base_url = target.base_url
        self.timeout = timeout
        self.ca_bundle = ca_bundle
        if ca_bundle:
            self.verify = ca_bundle
        if target.username is not None:
            self.auth = (target.username, target.password or "")
        retry = Retry(total=retries, connect=retries, read=0, status=0, other=0, redirect=5, allowed_methods=None, raise_on_status=False)
        adapter = PinnedAddressAdapter(target.host, address, max_retries=retry) if address else HTTPAdapter(max_retries=retry)
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        url = url.decode() if isinstance(url, bytes) else url
        if not url.startswith(("http://", "https://")):
            url = self.base_url + ("" if url.startswith("/") else "/") + url
        kwargs.setdefault("timeout", self.timeout)
        if self.ca_bundle:
            # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override Session.verify; a request-level
            # verify wins over both, so the configured bundle is really used.
            kwargs.setdefault("verify", self.ca_bundle)
        started = time.perf_counter()
        try:
            response = super().request(method, url, *args, **kwargs)
        except requests.RequestException as exc:
            evidence_mod.record("http", {"method": str(method), "url": url, "error": f"{type(exc).__name__}: {exc}"})
            raise
        evidence_mod.record(
            "http",
            {
                "method": str(method),
                "url": url,
                "status": response.status_code,
                "ms": round((time.perf_counter() - started) * 1000, 3),
                "body_excerpt": response.text[:BODY_EXCERPT] if response.encoding or response.content[:1] in (b"{", b"[") else "",
            },
        )
        return response
