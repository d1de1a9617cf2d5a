"""The healthy API application that sandbox edges and the in-cluster backend serve.

It is deliberately transport-free: :class:`ApiApplication` maps an :class:`HttpRequest` to an
:class:`HttpResponse`, and ``edges.py`` owns the wire (so fault behaviours can be byte-exact). New
endpoints (storage, integration flows) are added with :meth:`ApiApplication.add_route`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

HEALTH_BODY: dict[str, Any] = {
    "status": "healthy",
    "uptime": "12h",
    "version": "1.4.2",
    "dependencies": {"database": {"status": "ok", "latency_ms": 3}},
}


@dataclass
class HttpRequest:
    """One parsed HTTP/1.x request; header names are lower-case."""

    method: str
    target: str  # request-target as sent, path plus query
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    http_version: str = "HTTP/1.1"
    client: tuple[str, int] = ("", 0)

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def host(self) -> str:
        """The Host header without its port (IPv6 brackets kept), lower-case."""
        host = self.headers.get("host", "").strip().lower()
        if host.startswith("["):
            return host.split("]", 1)[0] + "]"
        return host.rsplit(":", 1)[0] if ":" in host else host


@dataclass
class HttpResponse:
    """A complete HTTP response; ``edges.py`` serialises it."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, status: int, payload: Any) -> HttpResponse:
        return cls(status, json.dumps(payload, separators=(",", ":")).encode())

    @property
    def reason(self) -> str:
        try:
            return HTTPStatus(self.status).phrase
        except ValueError:
            return "Unknown"


Handler = Callable[[HttpRequest], HttpResponse]


def status_response(status: int) -> HttpResponse:
    """A JSON error body in the style of the real API (FastAPI's ``{"detail": ...}``)."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    return HttpResponse.json(status, {"detail": phrase})


class ApiApplication:
    """The API as it behaves when everything works: ``GET /health`` and room for more routes."""

    def __init__(self, health: dict[str, Any] | None = None) -> None:
        self.health_body = dict(HEALTH_BODY if health is None else health)
        self._routes: dict[tuple[str, str], Handler] = {}
        self.add_route("GET", "/health", self._health)

    def add_route(self, method: str, path: str, handler: Handler) -> None:
        """Serve ``handler`` for ``method path``; ``HEAD`` is answered for every ``GET`` route."""
        self._routes[(method.upper(), path)] = handler

    def handle(self, request: HttpRequest) -> HttpResponse:
        method = "GET" if request.method == "HEAD" else request.method
        handler = self._routes.get((method, request.path))
        if handler is not None:
            return handler(request)
        if any(path == request.path for _, path in self._routes):
            return status_response(405)
        return status_response(404)

    def _health(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse.json(200, self.health_body)
