"""Hostile peers on loopback for the hostile-peer matrix: DNS servers that answer badly over UDP and TCP, and
HTTP behaviours (for ``servers.LoopbackServer``) that flood, stall, bomb and redirect where they should not.

Every server binds port 0 on 127.0.0.1, serves from daemon threads bounded in time and stops when its
``with`` block ends.
"""

from __future__ import annotations

import gzip
import socket
import struct
import threading
import time
from collections.abc import Callable

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import servers

# --------------------------------------------------------------------------- DNS

UdpBehaviour = Callable[[dns.message.Message, bytes], list[bytes]]
TcpBehaviour = Callable[[socket.socket, dns.message.Message, "HostileDns"], None]


class HostileDns:
    """A DNS server on 127.0.0.1 whose UDP and TCP answers are played by ``udp`` and ``tcp`` behaviours.

    ``udp(query, wire)`` returns the datagrams to send back (none, garbage, a wrong id, a truncated
    answer, ...); ``tcp(conn, query, server)`` writes whatever it likes on the connection. Without a
    ``tcp`` behaviour nothing listens on TCP: the port refuses.
    """

    def __init__(self, udp: UdpBehaviour, tcp: TcpBehaviour | None = None) -> None:
        self.udp_behaviour = udp
        self.tcp_behaviour = tcp
        self.stopping = threading.Event()
        self.udp_queries = 0
        self.tcp_connections = 0

    def __enter__(self) -> HostileDns:
        self.port = servers.free_udp_and_tcp_port()
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        self.udp.settimeout(0.1)
        self.threads = [threading.Thread(target=self._serve_udp, daemon=True)]
        self.tcp = None
        if self.tcp_behaviour is not None:
            self.tcp = socket.socket()
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.tcp.bind(("127.0.0.1", self.port))
            self.tcp.listen(16)
            self.tcp.settimeout(0.1)
            self.threads.append(threading.Thread(target=self._serve_tcp, daemon=True))
        for thread in self.threads:
            thread.start()
        return self

    @property
    def resolver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(5)
        self.udp.close()
        if self.tcp is not None:
            self.tcp.close()

    def _serve_udp(self) -> None:
        while not self.stopping.is_set():
            try:
                wire, peer = self.udp.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.udp_queries += 1
            query = dns.message.from_wire(wire)
            for packet in self.udp_behaviour(query, wire):
                self.udp.sendto(packet, peer)

    def _serve_tcp(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _peer = self.tcp.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.tcp_connections += 1
            threading.Thread(target=self._handle_tcp, args=(conn,), daemon=True).start()

    def _handle_tcp(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            length = struct.unpack("!H", _read_exactly(conn, 2))[0]
            query = dns.message.from_wire(_read_exactly(conn, length))
            assert self.tcp_behaviour is not None
            self.tcp_behaviour(conn, query, self)
        except (OSError, ValueError, struct.error):
            pass
        finally:
            conn.close()


def _read_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ValueError("closed")
        data += chunk
    return data


def answer_with(
    query: dns.message.Message, addresses: list[str], *, truncated: bool = False
) -> dns.message.Message:
    """A NOERROR answer to ``query`` with A (or AAAA) records for ``addresses`` of the asked family."""
    response = dns.message.make_response(query)
    question = query.question[0]
    family = [a for a in addresses if (":" in a) == (question.rdtype == dns.rdatatype.AAAA)]
    if family:
        response.answer.append(dns.rrset.from_text_list(question.name, 30, "IN", question.rdtype, family))
    if truncated:
        response.flags |= dns.flags.TC
        response.answer = []
    return response


def tcp_framed(message: dns.message.Message) -> bytes:
    # Over TCP a message may fill the 16-bit frame whatever UDP payload size the query offered.
    wire = message.to_wire(max_size=65535)
    return struct.pack("!H", len(wire)) + wire


def many_addresses(count: int) -> list[str]:
    """``count`` distinct loopback addresses: 127.1.x.y."""
    return [f"127.1.{n // 250}.{n % 250 + 1}" for n in range(count)]


# --------------------------------------------------------------------------- HTTP behaviours


def raw_answer(data: bytes) -> servers.Behaviour:
    """Reads the request, sends ``data`` as it is, closes."""

    def behaviour(conn: socket.socket, server: servers.LoopbackServer) -> None:
        server.requests = [*getattr(server, "requests", []), servers.read_request(conn)]
        conn.sendall(data)

    return behaviour


def endless_body(conn: socket.socket, server: servers.LoopbackServer) -> None:
    """200 without a length, then data until the client goes away (or the server stops)."""
    servers.read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")
    chunk = b"x" * 65536
    deadline = time.monotonic() + 20
    while not server.stopping.is_set() and time.monotonic() < deadline:
        conn.sendall(chunk)  # raises once the client closed
        server.count_sent(len(chunk))


GZIP_BOMB = gzip.compress(b"\0" * (64 << 20), compresslevel=9)  # 64 MB of zeros in about 64 kB


def gzip_bomb(conn: socket.socket, server: servers.LoopbackServer) -> None:
    servers.read_request(conn)
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(GZIP_BOMB)}\r\n\r\n"
    ).encode()
    conn.sendall(head + GZIP_BOMB)


def slowloris(head_bytes: bytes, per_second: float = 1.0) -> servers.Behaviour:
    """Sends ``head_bytes`` one byte at a time, ``per_second``
    bytes a second, for as long as the client listens."""

    def behaviour(conn: socket.socket, server: servers.LoopbackServer) -> None:
        servers.read_request(conn)
        deadline = time.monotonic() + 20
        for byte in head_bytes:
            if server.stopping.is_set() or time.monotonic() > deadline:
                return
            conn.sendall(bytes([byte]))
            server.stopping.wait(1 / per_second)

    return behaviour


def interim_flood(conn: socket.socket, server: servers.LoopbackServer) -> None:
    servers.read_request(conn)
    conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n" * 1000)


def redirect_to(location: str, status: int = 302) -> servers.Behaviour:
    """Every request is answered with a redirect to ``location``; the requests are kept on the server."""

    def behaviour(conn: socket.socket, server: servers.LoopbackServer) -> None:
        server.requests = [*getattr(server, "requests", []), servers.read_request(conn)]
        conn.sendall(servers.http_answer(status, b"", "Found", {"Location": location}))

    return behaviour


def recording(body: bytes = b'{"status": "ok"}') -> servers.Behaviour:
    """200 to everything; the requests (with their headers) are kept on the server."""

    def behaviour(conn: socket.socket, server: servers.LoopbackServer) -> None:
        server.requests = [*getattr(server, "requests", []), servers.read_request(conn)]
        conn.sendall(servers.http_answer(200, body, "OK", {"Content-Type": "application/json"}))

    return behaviour


def without_edns(rcode: int, addresses: list[str], seen: list[dns.message.Message]) -> UdpBehaviour:
    """A server that does not speak EDNS (RFC 6891 section 7): ``rcode`` without an OPT record to a query
    carrying one, an answer with ``addresses`` to a query without; every query is kept in ``seen``."""

    def behaviour(query: dns.message.Message, wire: bytes) -> list[bytes]:
        seen.append(query)
        if query.edns >= 0:
            response = dns.message.make_response(query)
            response.use_edns(False)
            response.set_rcode(rcode)
            return [response.to_wire()]
        return [answer_with(query, addresses).to_wire()]

    return behaviour
