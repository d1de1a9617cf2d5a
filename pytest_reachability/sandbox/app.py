"""The healthy API application that sandbox edges and the in-cluster backend serve.

It is deliberately transport-free: :class:`ApiApplication` maps an :class:`HttpRequest` to an
:class:`HttpResponse`, and ``edges.py`` owns the wire (so fault behaviours can be byte-exact). New
endpoints are added with :meth:`ApiApplication.add_route` (``{name}`` segments match one path segment).

What it serves (what ``examples/reachability.toml`` and the scenarios' ``application:`` block use)::

    GET    /health                   200 {"status": "healthy", ...,
                                          "dependencies": {"database": {"status": "ok",
                                                                        "latency_ms": 0.4}}}
    POST   /api/v1/results           201 {"id": ..., ...the JSON object sent}    (507 when full)
    GET    /api/v1/results/{id}      200 the stored object, 404 unknown
    DELETE /api/v1/results/{id}      204, 404 unknown
    POST   /api/v1/sessions          201 {"token": ..., "user": ...}             ({"user": NAME} in the body)
    GET    /api/v1/me                200 {"user": ...} with "Authorization: Bearer <token>", else 401
    GET    /bot/health               200 {"status": "ok", "service": "bot-service"}

With a :class:`~.postgres.SandboxDatabase` the health check really runs ``SELECT 1`` and reports its latency
and the results live in PostgreSQL; without one the database is simulated (always ok, results in memory).
Everything is thread-safe (edges serve each connection on its own thread) and bounded in size.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Protocol

MAX_RESULTS = 1000
MAX_SESSIONS = 1000
MAX_ID_LENGTH = 64

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
    params: dict[str, str] = field(default_factory=dict)  # {name} segments of the matched route

    def json(self) -> Any:
        """The body as JSON; ValueError if it is not."""
        return json.loads(self.body.decode("utf-8")) if self.body else None

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


class ResultStore(Protocol):
    """Where the storage endpoint keeps results: memory, or PostgreSQL (``postgres.SandboxDatabase``)."""

    def put(self, result_id: str, body: dict[str, Any]) -> None: ...
    def get(self, result_id: str) -> dict[str, Any] | None: ...
    def delete(self, result_id: str) -> bool: ...
    def count(self) -> int: ...


class MemoryResultStore:
    """Results in a dict under a lock (the simulated database)."""

    def __init__(self) -> None:
        self._items: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def put(self, result_id: str, body: dict[str, Any]) -> None:
        with self._lock:
            self._items[result_id] = json.loads(json.dumps(body))

    def get(self, result_id: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._items.get(result_id)
            return None if found is None else json.loads(json.dumps(found))

    def delete(self, result_id: str) -> bool:
        with self._lock:
            return self._items.pop(result_id, None) is not None

    def count(self) -> int:
        with self._lock:
            return len(self._items)


def _route_pattern(path: str) -> re.Pattern[str]:
    parts = [
        f"(?P<{seg[1:-1]}>[^/]+)" if seg.startswith("{") and seg.endswith("}") else re.escape(seg)
        for seg in path.split("/")
    ]
    return re.compile("^" + "/".join(parts) + "$")


class ApiApplication:
    """The API as it behaves when everything works: health, results storage, sessions, the bot's health."""

    def __init__(self, health: dict[str, Any] | None = None, database: Any = None) -> None:
        self.health_body = dict(HEALTH_BODY if health is None else health)
        self._routes: dict[tuple[str, str], Handler] = {}
        self._patterns: list[tuple[str, str, re.Pattern[str], Handler]] = []
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, str] = OrderedDict()
        self.database: Any = None  # postgres.SandboxDatabase when the sandbox runs a real PostgreSQL
        self.results: ResultStore = MemoryResultStore()
        self.requests_seen: Counter[str] = Counter()  # "METHOD /path" -> how many were received
        self.first_seen: dict[str, float] = {}  # "METHOD /path" -> time.monotonic() of the first
        if database is not None:
            self.attach_database(database)
        self.add_route("GET", "/health", self._health)
        self.add_route("POST", "/api/v1/results", self._create_result)
        self.add_route("GET", "/api/v1/results/{id}", self._read_result)
        self.add_route("DELETE", "/api/v1/results/{id}", self._delete_result)
        self.add_route("POST", "/api/v1/sessions", self._create_session)
        self.add_route("GET", "/api/v1/me", self._me)
        self.add_route("GET", "/bot/health", self._bot_health)

    def attach_database(self, database: Any) -> None:
        """Check and store in ``database`` (a ``SandboxDatabase``) from now on."""
        self.database = database
        self.results = database

    def add_route(self, method: str, path: str, handler: Handler) -> None:
        """Serve ``handler`` for ``method path``; ``HEAD`` is answered for every ``GET`` route."""
        if "{" in path:
            self._patterns.append((method.upper(), path, _route_pattern(path), handler))
        else:
            self._routes[(method.upper(), path)] = handler

    def handle(self, request: HttpRequest) -> HttpResponse:
        with self._lock:
            self.requests_seen[f"{request.method} {request.path}"] += 1
            self.first_seen.setdefault(f"{request.method} {request.path}", time.monotonic())
        method = "GET" if request.method == "HEAD" else request.method
        handler = self._routes.get((method, request.path))
        if handler is not None:
            return handler(request)
        path_known = any(path == request.path for _, path in self._routes)
        for route_method, _, pattern, route_handler in self._patterns:
            match = pattern.match(request.path)
            if match is None:
                continue
            path_known = True
            if route_method == method:
                request.params = match.groupdict()
                return route_handler(request)
        return status_response(405 if path_known else 404)

    # -- health --------------------------------------------------------------------------------

    def _health(self, request: HttpRequest) -> HttpResponse:
        if self.database is None:
            return HttpResponse.json(200, self.health_body)
        body = json.loads(json.dumps(self.health_body))
        check = self.database.check()
        body.setdefault("dependencies", {})["database"] = check
        if check.get("status") != "ok":
            body["status"] = "degraded"
        return HttpResponse.json(200, body)

    def _bot_health(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse.json(200, {"status": "ok", "service": "bot-service"})

    # -- results storage ------------------------------------------------------------------------

    def _create_result(self, request: HttpRequest) -> HttpResponse:
        try:
            payload = request.json()
        except ValueError:
            return HttpResponse.json(400, {"detail": "body must be JSON"})
        if not isinstance(payload, dict):
            return HttpResponse.json(422, {"detail": "body must be a JSON object"})
        try:
            if self.results.count() >= MAX_RESULTS:
                return HttpResponse.json(507, {"detail": f"storage full ({MAX_RESULTS} results)"})
            result_id = secrets.token_hex(8)
            stored = {**payload, "id": result_id}
            self.results.put(result_id, stored)
        except Exception as error:  # noqa: BLE001 - a database failure is the API's 503, as in production
            return HttpResponse.json(503, {"detail": f"storage unavailable: {type(error).__name__}"})
        return HttpResponse.json(201, stored)

    def _read_result(self, request: HttpRequest) -> HttpResponse:
        result_id = request.params.get("id", "")
        if len(result_id) > MAX_ID_LENGTH:
            return status_response(404)
        try:
            found = self.results.get(result_id)
        except Exception as error:  # noqa: BLE001
            return HttpResponse.json(503, {"detail": f"storage unavailable: {type(error).__name__}"})
        return status_response(404) if found is None else HttpResponse.json(200, found)

    def _delete_result(self, request: HttpRequest) -> HttpResponse:
        result_id = request.params.get("id", "")
        if len(result_id) > MAX_ID_LENGTH:
            return status_response(404)
        try:
            deleted = self.results.delete(result_id)
        except Exception as error:  # noqa: BLE001
            return HttpResponse.json(503, {"detail": f"storage unavailable: {type(error).__name__}"})
        return HttpResponse(204, b"") if deleted else status_response(404)

    # -- an integration flow: a session token, then a request authenticated by it -----------------

    def _create_session(self, request: HttpRequest) -> HttpResponse:
        try:
            payload = request.json() or {}
        except ValueError:
            return HttpResponse.json(400, {"detail": "body must be JSON"})
        user = payload.get("user") if isinstance(payload, dict) else None
        if not isinstance(user, str) or not user or len(user) > 64:
            return HttpResponse.json(422, {"detail": "user: a name of 1 to 64 characters is required"})
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._sessions[token] = user
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        return HttpResponse.json(201, {"token": token, "user": user})

    def _me(self, request: HttpRequest) -> HttpResponse:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        with self._lock:
            user = self._sessions.get(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            return HttpResponse.json(401, {"detail": "Not authenticated"})
        return HttpResponse.json(200, {"user": user})
