"""Edge servers: what a client reaches at a LoadBalancer address, healthy or failing on purpose.

Each :class:`EdgeServer` listens on one loopback address and behaves as its scenario says, byte-exact,
so that a real client fails the way it fails in production:

==================  ============================================================  ==========
behaviour           on the wire                                                   curl exits
==================  ============================================================  ==========
``healthy``         the API application (``app.py``); a Host not in ``hosts`` 404  0
``http_status``     reads the request, answers that status                        22 with -f
``slow``            waits, then answers like ``healthy``                          28 if short
``empty_reply``     reads the request, closes with zero bytes written (FIN)        52
``reset_mid_body``  headers and part of the body, then RST (SO_LINGER 0)           56
``hang``            reads the request, never answers until the sandbox stops       28
``garbage``         answers bytes that are not HTTP                                1
``refuse``          address:port bound but not listening, so SYN gets RST          7
==================  ============================================================  ==========

With ``tls`` the connection is wrapped in TLS first (certificates from ``certs.py``).
Every socket has a timeout, every thread is joined by :meth:`EdgeServer.stop`.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import struct
import threading
from collections import deque
from collections.abc import Iterable

from .app import ApiApplication, HttpRequest, HttpResponse, status_response
from .scenario import Behaviour

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024
MAX_REQUESTS_PER_CONNECTION = 100
ACCEPT_POLL_SECONDS = 0.2
# What an SSH daemon would answer: a realistic "wrong service behind the port".
GARBAGE_BYTES = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\nProtocol mismatch.\r\n"


class BadRequest(Exception):
    """The peer sent something that is not an HTTP/1.x request we can read."""


def _recv_request(conn: socket.socket, buffer: bytearray) -> HttpRequest | None:
    """Read one request from ``conn`` (``buffer`` keeps bytes of a following pipelined request).

    Returns ``None`` when the peer closed before sending anything.
    """
    while b"\r\n\r\n" not in buffer:
        if len(buffer) > MAX_HEADER_BYTES:
            raise BadRequest("header section too large")
        chunk = conn.recv(65536)
        if not chunk:
            if buffer:
                raise BadRequest("connection closed inside the header section")
            return None
        buffer.extend(chunk)
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(f"bad request line {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise BadRequest("header line without a colon")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise BadRequest("chunked request bodies are not supported")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError as error:
        raise BadRequest("bad Content-Length") from error
    if length < 0 or length > MAX_BODY_BYTES:
        raise BadRequest("Content-Length out of range")
    body = bytearray(rest)
    while len(body) < length:
        chunk = conn.recv(min(65536, length - len(body)))
        if not chunk:
            raise BadRequest("connection closed inside the body")
        body.extend(chunk)
    buffer[:] = body[length:]
    return HttpRequest(
        method=parts[0].upper(), target=parts[1], headers=headers, body=bytes(body[:length]), http_version=parts[2]
    )


def serialise_response(response: HttpResponse, *, head_only: bool = False, keep_alive: bool = False) -> bytes:
    lines = [f"HTTP/1.1 {response.status} {response.reason}"]
    lines.append(f"Content-Type: {response.content_type}")
    lines.append(f"Content-Length: {len(response.body)}")
    lines.extend(f"{name}: {value}" for name, value in response.headers)
    lines.append("Server: uvicorn")
    lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + response.body


def _close_gracefully(conn: socket.socket) -> None:
    """FIN after our last byte, then drain so unread client bytes do not turn the close into an RST."""
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(0.5)
        for _ in range(64):
            if not conn.recv(65536):
                break


def _reset(conn: socket.socket) -> None:
    """Close with RST instead of FIN: SO_LINGER on with a zero timeout."""
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


class EdgeServer:
    """One address:port behaving as ``behaviour``; see the module docstring for the behaviours."""

    def __init__(
        self,
        address: str,
        behaviour: Behaviour,
        *,
        port: int = 0,
        app: ApiApplication | None = None,
        hosts: Iterable[str] | None = None,
        tls_context: ssl.SSLContext | None = None,
        io_timeout: float = 5.0,
        name: str = "",
    ) -> None:
        self.address = address
        self.behaviour = behaviour
        self.app = app or ApiApplication()
        self.hosts = None if hosts is None else {host.lower().rstrip(".") for host in hosts}
        self.tls_context = tls_context
        self.io_timeout = io_timeout
        self.name = name or f"edge {address} {behaviour.kind}"
        self.access_log: deque[dict] = deque(maxlen=1000)
        self._port = port
        self._socket: socket.socket | None = None
        self._stopping = threading.Event()
        self._accept_thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._connections: dict[int, socket.socket] = {}
        self._threads: set[threading.Thread] = set()
        self._next_id = 0

    @property
    def port(self) -> int:
        return self._port

    def bind(self) -> None:
        """Take the address:port (``OSError`` if busy). ``refuse`` binds without listening."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if self.behaviour.kind != "refuse":
                # A bound, non-listening socket with SO_REUSEADDR could be shared with another
                # sandbox's listener; only listeners use it (to rebind over TIME_WAIT).
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.address, self._port))
            if self.behaviour.kind != "refuse":
                sock.listen(64)
        except OSError:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        self._socket = sock

    def start(self) -> None:
        if self._socket is None:
            self.bind()
        if self.behaviour.kind == "refuse":
            return
        self._accept_thread = threading.Thread(target=self._accept_loop, name=f"{self.name} accept", daemon=True)
        self._accept_thread.start()

    def request_stop(self) -> None:
        """Tell the threads to finish without waiting for them (lets many servers stop in parallel)."""
        self._stopping.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._accept_thread is not None:
            self._accept_thread.join(timeout)
            self._accept_thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        with self._lock:
            connections = list(self._connections.values())
            threads = list(self._threads)
        for conn in connections:
            # shutdown wakes a thread blocked in recv on this socket; close alone would not.
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(timeout)

    # -- connections -------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        listener = self._socket
        assert listener is not None
        while not self._stopping.is_set():
            readable, _, _ = select.select([listener], [], [], ACCEPT_POLL_SECONDS)
            if not readable:
                continue
            try:
                conn, peer = listener.accept()
            except OSError:
                continue
            with self._lock:
                if self._stopping.is_set():
                    conn.close()
                    break
                self._next_id += 1
                conn_id = self._next_id
                self._connections[conn_id] = conn
                thread = threading.Thread(
                    target=self._serve_connection, args=(conn_id, conn, peer), name=f"{self.name} #{conn_id}", daemon=True
                )
                self._threads.add(thread)
            thread.start()

    def _track(self, conn_id: int, conn: socket.socket) -> None:
        with self._lock:
            self._connections[conn_id] = conn

    def _serve_connection(self, conn_id: int, conn: socket.socket, peer: tuple[str, int]) -> None:
        try:
            conn.settimeout(self.io_timeout)
            if self.tls_context is not None:
                conn = self.tls_context.wrap_socket(conn, server_side=True)
                self._track(conn_id, conn)
            self._behave(conn, peer)
        except (OSError, ssl.SSLError, BadRequest):
            pass  # the client gave up, a handshake failed on purpose, or the sandbox is stopping
        finally:
            with contextlib.suppress(OSError):
                conn.close()
            with self._lock:
                self._connections.pop(conn_id, None)
                self._threads.discard(threading.current_thread())

    def _behave(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        kind = self.behaviour.kind
        buffer = bytearray()
        if kind in ("healthy", "http_status", "slow"):
            self._serve_http(conn, peer, buffer)
            return
        request = _recv_request(conn, buffer)
        if request is None:
            return
        self._log(request, peer, None)
        if kind == "empty_reply":
            _close_gracefully(conn)
        elif kind == "hang":
            self._stopping.wait()
        elif kind == "garbage":
            conn.sendall(GARBAGE_BYTES)
            _close_gracefully(conn)
        elif kind == "reset_mid_body":
            response = self._respond(request)
            wire = serialise_response(response)
            conn.sendall(wire[: len(wire) - max(1, len(response.body) // 2)])
            # Let the partial response reach the client before the RST overtakes it.
            self._stopping.wait(0.05)
            _reset(conn)
        else:
            raise ValueError(f"unknown edge behaviour {kind!r}")

    def _serve_http(self, conn: socket.socket, peer: tuple[str, int], buffer: bytearray) -> None:
        for _ in range(MAX_REQUESTS_PER_CONNECTION):
            try:
                request = _recv_request(conn, buffer)
            except BadRequest:
                conn.sendall(serialise_response(status_response(400)))
                break
            if request is None:
                return
            if self.behaviour.kind == "slow" and self._stopping.wait(self.behaviour.delay):
                return
            response = self._respond(request)
            self._log(request, peer, response.status)
            keep_alive = (
                request.http_version == "HTTP/1.1"
                and request.headers.get("connection", "").lower() != "close"
                and not self._stopping.is_set()
            )
            conn.sendall(serialise_response(response, head_only=request.method == "HEAD", keep_alive=keep_alive))
            if not keep_alive:
                break
        _close_gracefully(conn)

    def _respond(self, request: HttpRequest) -> HttpResponse:
        if self.behaviour.kind == "http_status":
            return status_response(self.behaviour.status or 500)
        if self.hosts is not None and request.host.rstrip(".") not in self.hosts:
            return status_response(404)
        return self.app.handle(request)

    def _log(self, request: HttpRequest, peer: tuple[str, int], status: int | None) -> None:
        self.access_log.append(
            {"client": f"{peer[0]}:{peer[1]}", "method": request.method, "target": request.target,
             "host": request.headers.get("host", ""), "status": status}
        )


class EdgeGroup:
    """Edges on several addresses sharing one port, as LoadBalancers of one cluster share port 80."""

    def __init__(self, edges: list[EdgeServer]) -> None:
        self.edges = edges
        self.port = 0

    def start(self, attempts: int = 25) -> int:
        """Bind every edge on one port free on all their addresses (bounded retries), start them."""
        if not self.edges:
            return 0
        last_error: OSError | None = None
        for _ in range(attempts):
            try:
                self._bind_all()
                break
            except OSError as error:
                last_error = error
        else:
            raise OSError(f"no port free on all edge addresses after {attempts} attempts: {last_error}")
        for edge in self.edges:
            edge.start()
        return self.port

    def _bind_all(self) -> None:
        # Listeners first: the kernel picks the port on the first, the rest must get the same one.
        ordered = sorted(self.edges, key=lambda edge: edge.behaviour.kind == "refuse")
        bound: list[EdgeServer] = []
        try:
            port = 0
            for edge in ordered:
                edge._port = port
                edge.bind()
                bound.append(edge)
                port = edge.port
        except OSError:
            for edge in bound:
                if edge._socket is not None:
                    edge._socket.close()
                    edge._socket = None
            raise
        self.port = port

    def request_stop(self) -> None:
        for edge in self.edges:
            edge.request_stop()

    def stop(self) -> None:
        self.request_stop()
        for edge in self.edges:
            edge.stop()

    def by_address(self) -> dict[str, EdgeServer]:
        return {edge.address: edge for edge in self.edges}


def server_tls_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    context.set_alpn_protocols(["http/1.1"])
    return context

