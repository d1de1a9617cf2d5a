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
``blackhole``       bound, not listening, SYNs dropped by an nftables rule         28
``redirect``        answers its status with a ``Location``                         0 (47 -L loop)
``intermittent``    a share of requests fails (status, empty reply or reset)       0 or 22/52/56
==================  ============================================================  ==========

With ``tls`` the connection is wrapped in TLS first (certificates from ``certs.py``, chosen by the SNI name
of the handshake when the context maps names to their own); with ``plain_http`` beside it, a connection
whose first byte is not a TLS handshake record is served as plain HTTP; ``latency`` (one way) delays the
first byte after accepting, the TLS handshake and each answer by a round trip each; with ``health`` the
health path answers the scenario's status and body instead of the application's; ``headers`` are added to
every answer; ``server="nginx"`` answers error statuses with nginx's HTML pages and a ``Server: nginx``
header, as an ingress-nginx controller does. ``::1`` edges listen on IPv6. Every socket has a timeout, every
thread is joined by :meth:`EdgeServer.stop`.

``blackhole`` needs a real DROP: on loopback a SYN to a bound socket that does not listen is answered with an
RST (that is ``refuse``), and a listener whose backlog is full still completes handshakes often enough to be
useless. :class:`SynDrop` adds an nftables table with one rule dropping TCP to the edge's address and port in
the input hook of the current network namespace (root only), and deletes it on stop; a table left behind by
a killed process is recognised by the PID in its name and deleted by the next sandbox.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
import select
import shutil
import socket
import ssl
import struct
import subprocess
import threading
from collections import deque
from collections.abc import Iterable
from http import HTTPStatus

from .app import ApiApplication, HttpRequest, HttpResponse, status_response
from .scenario import Behaviour, HealthSpec

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024
MAX_REQUESTS_PER_CONNECTION = 100
ACCEPT_POLL_SECONDS = 0.2
TLS_HANDSHAKE_RECORD = b"\x16"  # the content type of the record that carries a ClientHello
# What an SSH daemon would answer: a realistic "wrong service behind the port".
GARBAGE_BYTES = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\nProtocol mismatch.\r\n"


_NOT_A_REQUEST_LINE = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\xff]")


class BadRequest(Exception):
    """The peer sent something that is not an HTTP/1.x request we can read."""


def _recv_request(conn: socket.socket, buffer: bytearray) -> HttpRequest | None:
    """Read one request from ``conn`` (``buffer`` keeps bytes of a following pipelined request).

    Returns ``None`` when the peer closed before sending anything.
    """
    while b"\r\n\r\n" not in buffer:
        if len(buffer) > MAX_HEADER_BYTES:
            raise BadRequest("header section too large")
        if _NOT_A_REQUEST_LINE.search(bytes(buffer[:256]).split(b"\r\n", 1)[0]):
            # Binary bytes (a TLS ClientHello, ...) cannot start a request: answer at once, as servers do.
            raise BadRequest("not an HTTP request line")
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
        method=parts[0].upper(),
        target=parts[1],
        headers=headers,
        body=bytes(body[:length]),
        http_version=parts[2],
    )


def serialise_response(response: HttpResponse, *, head_only: bool = False, keep_alive: bool = False) -> bytes:
    lines = [f"HTTP/1.1 {response.status} {response.reason}"]
    lines.append(f"Content-Type: {response.content_type}")
    lines.append(f"Content-Length: {len(response.body)}")
    lines.extend(f"{name}: {value}" for name, value in response.headers)
    if not any(name.lower() == "server" for name, _value in response.headers):
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


def nginx_error_page(status: int) -> bytes:
    """The page nginx (and so ingress-nginx) sends with an error status it generates itself."""
    try:
        title = f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        title = str(status)
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
        "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    ).encode()


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
        health: HealthSpec | None = None,
        target_host: str = "",
        headers: Iterable[tuple[str, str]] = (),
        server: str | None = None,
        plain_http: bool = False,
        latency: float = 0.0,
    ) -> None:
        """``plain_http``: with ``tls_context``, a connection whose first byte does not start a TLS record
        is served as plain HTTP. ``latency``: one-way delay (s); every exchange waits twice that."""
        self.extra_headers = list(headers)
        self.plain_http = plain_http
        self.latency = latency
        self.server = server
        self.address = address
        self.behaviour = behaviour
        self.health = health
        self.target_host = target_host
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
        self._requests = 0  # served so far: the intermittent behaviour's counter
        self._drop: SynDrop | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def listens(self) -> bool:
        return self.behaviour.kind not in ("refuse", "blackhole")

    def bind(self) -> None:
        """Take the address:port (``OSError`` if busy).

        ``refuse`` and ``blackhole`` bind without listening."""
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if self.listens:
                # A bound, non-listening socket with SO_REUSEADDR could be shared with another
                # sandbox's listener; only listeners use it (to rebind over TIME_WAIT).
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.address, self._port))
            if self.listens:
                sock.listen(64)
        except OSError:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        self._socket = sock

    def start(self) -> None:
        if self._socket is None:
            self.bind()
        if self.behaviour.kind == "blackhole":
            self._drop = SynDrop(self.address, self._port)
            self._drop.install()
        if not self.listens:
            return
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"{self.name} accept", daemon=True
        )
        self._accept_thread.start()

    def request_stop(self) -> None:
        """Tell the threads to finish without waiting for them (lets many servers stop in parallel)."""
        self._stopping.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._drop is not None:
            self._drop.remove()
            self._drop = None
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
                    target=self._serve_connection,
                    args=(conn_id, conn, peer),
                    name=f"{self.name} #{conn_id}",
                    daemon=True,
                )
                self._threads.add(thread)
            thread.start()

    def _track(self, conn_id: int, conn: socket.socket) -> None:
        with self._lock:
            self._connections[conn_id] = conn

    def _round_trip(self) -> bool:
        """Wait the round trip the scenario's latency costs; True when the sandbox is stopping."""
        return self.latency > 0 and self._stopping.wait(2 * self.latency)

    def _starts_tls(self, conn: socket.socket) -> bool:
        """Whether the client speaks TLS first: always for a TLS edge, else by its first byte
        (0x16, a TLS handshake record) when plain HTTP is served beside it."""
        if self.tls_context is None:
            return False
        if not self.plain_http:
            return True
        return conn.recv(1, socket.MSG_PEEK) == TLS_HANDSHAKE_RECORD

    def _serve_connection(self, conn_id: int, conn: socket.socket, peer: tuple[str, int]) -> None:
        try:
            conn.settimeout(self.io_timeout)
            # The TCP handshake the kernel completed at once would have cost a round trip.
            if self._round_trip():
                return
            if self._starts_tls(conn):
                assert self.tls_context is not None
                if self.latency > 0:
                    select.select([conn], [], [], self.io_timeout)  # the ClientHello is in
                    if self._round_trip():
                        return
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
        if kind in ("healthy", "http_status", "slow", "redirect", "intermittent"):
            self._serve_http(conn, peer, buffer)
            return
        request = _recv_request(conn, buffer)
        if request is None or self._round_trip():
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
            if request is None or self._round_trip():
                return
            if self.behaviour.kind == "slow" and self._stopping.wait(self.behaviour.delay):
                return
            failure = self._intermittent_failure()
            if failure in ("empty_reply", "reset_mid_body"):
                self._log(request, peer, None)
                if failure == "reset_mid_body":
                    wire = serialise_response(self._respond(request))
                    conn.sendall(wire[: max(1, len(wire) // 2)])
                    self._stopping.wait(0.05)
                    _reset(conn)
                else:
                    _close_gracefully(conn)
                return
            response = self._dress(
                status_response(int(failure)) if failure is not None else self._respond(request)
            )
            self._log(request, peer, response.status)
            keep_alive = (
                request.http_version == "HTTP/1.1"
                and request.headers.get("connection", "").lower() != "close"
                and not self._stopping.is_set()
            )
            conn.sendall(
                serialise_response(response, head_only=request.method == "HEAD", keep_alive=keep_alive)
            )
            if not keep_alive:
                break
        _close_gracefully(conn)

    def _intermittent_failure(self) -> int | str | None:
        """For ``intermittent``: how this request fails (a status or a behaviour), or None to serve it."""
        if self.behaviour.kind != "intermittent":
            return None
        with self._lock:
            served, self._requests = self._requests, self._requests + 1
        share = self.behaviour.share
        if math.floor((served + 1) * share) > math.floor(served * share):
            return self.behaviour.fail_with
        return None

    def _respond(self, request: HttpRequest) -> HttpResponse:
        if self.behaviour.kind == "http_status":
            return status_response(self.behaviour.status or 500)
        if self.behaviour.kind == "redirect":
            location = (
                (self.behaviour.location or "/")
                .replace("{port}", str(self._port))
                .replace("{host}", self.target_host or request.host)
            )
            return HttpResponse(self.behaviour.status or 301, b"", "text/plain", [("Location", location)])
        if self.hosts is not None and request.host.rstrip(".") not in self.hosts:
            return status_response(404)
        if self.health is not None and request.path == self.health.path and request.method in ("GET", "HEAD"):
            return HttpResponse(self.health.status, self.health.body.encode(), self.health.content_type)
        return self.app.handle(request)

    def _dress(self, response: HttpResponse) -> HttpResponse:
        """The edge's own headers, and for ``server: nginx`` its Server header and HTML error pages."""
        headers = list(response.headers) + self.extra_headers
        if self.server != "nginx":
            return dataclasses.replace(response, headers=headers) if self.extra_headers else response
        headers = [(name, value) for name, value in headers if name.lower() != "server"] + [
            ("Server", "nginx")
        ]
        if response.status < 400:
            return dataclasses.replace(response, headers=headers)
        return HttpResponse(response.status, nginx_error_page(response.status), "text/html", headers)

    def _log(self, request: HttpRequest, peer: tuple[str, int], status: int | None) -> None:
        self.access_log.append(
            {
                "client": f"{peer[0]}:{peer[1]}",
                "method": request.method,
                "target": request.target,
                "host": request.headers.get("host", ""),
                "status": status,
            }
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
        ordered = sorted(self.edges, key=lambda edge: not edge.listens)
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


def server_tls_context(
    cert_file: str, key_file: str, by_server_name: dict[str, ssl.SSLContext] | None = None
) -> ssl.SSLContext:
    """A server context serving ``cert_file``, or the context of ``by_server_name`` whose key is the SNI
    name of the handshake (compared in lower case without a trailing dot), as an ingress controller picks
    a host's certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    context.set_alpn_protocols(["http/1.1"])
    if by_server_name:
        chosen = {name.lower().rstrip("."): host_context for name, host_context in by_server_name.items()}

        def select_by_server_name(connection: ssl.SSLObject, server_name: str | None, _: object) -> None:
            host_context = chosen.get((server_name or "").lower().rstrip("."))
            if host_context is not None:
                connection.context = host_context

        context.sni_callback = select_by_server_name
    return context


# --- a real SYN drop for blackhole edges ---------------------------------------------------------------

NFT_TABLE_PREFIX = "reachability_sbx_"
_NFT_TABLE = re.compile(rf"^table (ip6?) ({NFT_TABLE_PREFIX}(\d+)_\w+)$")


def syn_drop_unavailable_reason() -> str | None:
    """Why a blackhole edge cannot be made here (None when it can): it needs root and the nft tool."""
    if shutil.which("nft") is None:
        return "a blackhole edge needs the nft tool (nftables) to drop SYNs, and it is not installed"
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        return "a blackhole edge needs root (CAP_NET_ADMIN) to add the nftables rule that drops its SYNs"
    return None


def _nft(args: list[str], text: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["nft", *args], input=text, capture_output=True, text=True, timeout=10, check=False)


class SynDrop:
    """One nftables table dropping TCP to ``address``:``port`` in the input hook: connects time out."""

    def __init__(self, address: str, port: int) -> None:
        self.family = "ip6" if ":" in address else "ip"
        self.address = address
        self.port = port
        suffix = re.sub(r"\W", "_", address)
        self.table = f"{NFT_TABLE_PREFIX}{os.getpid()}_{port}_{suffix}"

    def install(self) -> None:
        reason = syn_drop_unavailable_reason()
        if reason is not None:
            raise OSError(reason)
        remove_orphan_tables()
        rules = (
            f"table {self.family} {self.table} {{\n"
            "  chain input {\n"
            "    type filter hook input priority -10; policy accept;\n"
            f"    {self.family} daddr {self.address} tcp dport {self.port} drop\n"
            "  }\n"
            "}\n"
        )
        done = _nft(["-f", "-"], rules)
        if done.returncode != 0:
            raise OSError(
                f"could not add the nftables rule dropping SYNs to {self.address}:{self.port}: "
                f"{(done.stderr or done.stdout).strip().splitlines()[-1:] or ['nft failed']}"
            )

    def remove(self) -> None:
        _nft(["delete", "table", self.family, self.table])


def remove_orphan_tables() -> None:
    """Delete blackhole tables whose sandbox process is gone (killed before it could remove them)."""
    listing = _nft(["list", "tables"])
    for line in listing.stdout.splitlines():
        match = _NFT_TABLE.match(line.strip())
        if not match:
            continue
        family, table, pid = match.group(1), match.group(2), int(match.group(3))
        if pid != os.getpid() and not _alive(pid):
            _nft(["delete", "table", family, table])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
