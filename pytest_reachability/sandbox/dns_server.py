"""A small authoritative-style DNS server on loopback (UDP and TCP on one port), built on dnspython.

It answers from a scenario's records: A, AAAA, CNAME (followed within the records), TXT, and on demand
NXDOMAIN, SERVFAIL, REFUSED or an empty NOERROR answer, optionally after a delay and with extended DNS
errors (RFC 8914) for a query that carries EDNS, as validating resolvers add them. Names it does not
know get NXDOMAIN. Negative answers carry a synthetic SOA so resolvers and ``dig`` show them as real
servers do.

A record named ``*.<parent>`` is a wildcard (RFC 4592 4.3): a name that does not exist, whose closest
encloser (its nearest ancestor that exists, as a record's owner or as an empty non-terminal above one)
is ``<parent>``, is answered from it, under the name asked. The parent itself, a name with its own
record and a name under an existing name are not. A name with nothing of its own but records below it (an
empty non-terminal) blocks the wildcard too, but answers NXDOMAIN like any name without records here
(a real zone says NOERROR without data, RFC 8020; scenarios deleting a host's records beside names under it
mean NXDOMAIN).

``latency`` (seconds, one way) makes every answer a round trip later, and a TCP connection a round trip
more, as a distant server would.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from collections import deque

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from .scenario import RecordSpec

POLL_SECONDS = 0.2
MAX_CNAME_CHAIN = 8
SOA_TEXT = "ns.sandbox.test. hostmaster.sandbox.test. 1 3600 600 86400 60"


class DnsServer:
    """Answers ``records`` (name -> :class:`RecordSpec`) on ``host``:``port`` over UDP and TCP."""

    def __init__(
        self,
        records: dict[str, RecordSpec],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "dns",
        io_timeout: float = 5.0,
    ) -> None:
        self.records = {key.lower().rstrip("."): value for key, value in records.items()}
        self.host = host
        self.name = name
        self.io_timeout = io_timeout
        self.query_log: deque[dict] = deque(maxlen=1000)
        self.latency = 0.0  # one way, seconds
        self._requested_port = port
        self._udp: socket.socket | None = None
        self._tcp: socket.socket | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._tcp_connections: set[socket.socket] = set()

    @property
    def port(self) -> int:
        return self._udp.getsockname()[1] if self._udp is not None else self._requested_port

    @property
    def address(self) -> str:
        """``ADDR:PORT`` as the ``--resolver`` option takes it."""
        return f"{self.host}:{self.port}"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, attempts: int = 25) -> None:
        last_error: OSError | None = None
        for _ in range(attempts):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                udp.bind((self.host, self._requested_port))
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                # The kernel picked the UDP port; TCP must get the same one or we try again.
                tcp.bind((self.host, udp.getsockname()[1]))
                tcp.listen(32)
            except OSError as error:
                udp.close()
                tcp.close()
                last_error = error
                continue
            self._udp, self._tcp = udp, tcp
            break
        else:
            raise OSError(f"no port free for DNS on UDP and TCP after {attempts} attempts: {last_error}")
        self._spawn(self._udp_loop, f"{self.name} udp")
        self._spawn(self._tcp_loop, f"{self.name} tcp")

    def request_stop(self) -> None:
        """Tell the threads to finish without waiting for them (lets many servers stop in parallel)."""
        self._stopping.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        with self._lock:
            connections = list(self._tcp_connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for _ in range(100):
            with self._lock:
                threads = list(self._threads)
            if not threads:
                break
            for thread in threads:
                thread.join(timeout)
            if any(thread.is_alive() for thread in threads):
                break
        for sock in (self._udp, self._tcp):
            if sock is not None:
                sock.close()
        self._udp = self._tcp = None

    def _spawn(self, target, name: str, *args) -> None:
        def run() -> None:
            try:
                target(*args)
            finally:
                with self._lock:
                    self._threads.discard(threading.current_thread())

        thread = threading.Thread(target=run, name=name, daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()

    # -- transports --------------------------------------------------------------------------

    def _udp_loop(self) -> None:
        udp = self._udp
        assert udp is not None
        while not self._stopping.is_set():
            readable, _, _ = select.select([udp], [], [], POLL_SECONDS)
            if not readable:
                continue
            try:
                wire, peer = udp.recvfrom(65535)
            except OSError:
                continue
            reply, delay = self._reply(wire, "udp")
            if reply is None:
                continue
            if delay > 0:
                self._spawn(self._send_udp_later, f"{self.name} delayed", udp, reply, peer, delay)
            else:
                with contextlib.suppress(OSError):
                    udp.sendto(reply, peer)

    def _send_udp_later(self, udp: socket.socket, reply: bytes, peer: tuple[str, int], delay: float) -> None:
        if not self._stopping.wait(delay):
            with contextlib.suppress(OSError):
                udp.sendto(reply, peer)

    def _tcp_loop(self) -> None:
        tcp = self._tcp
        assert tcp is not None
        while not self._stopping.is_set():
            readable, _, _ = select.select([tcp], [], [], POLL_SECONDS)
            if not readable:
                continue
            try:
                conn, _ = tcp.accept()
            except OSError:
                continue
            with self._lock:
                if self._stopping.is_set():
                    conn.close()
                    break
                self._tcp_connections.add(conn)
            self._spawn(self._serve_tcp, f"{self.name} tcp conn", conn)

    def _serve_tcp(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(self.io_timeout)
            # The TCP handshake, completed at once by the kernel, would have cost a round trip.
            if self.latency > 0 and self._stopping.wait(2 * self.latency):
                return
            for _ in range(100):  # a client may send several queries on one connection
                header = self._recv_exact(conn, 2)
                if header is None:
                    return
                wire = self._recv_exact(conn, struct.unpack("!H", header)[0])
                if wire is None:
                    return
                reply, delay = self._reply(wire, "tcp")
                if reply is None:
                    return
                if delay > 0 and self._stopping.wait(delay):
                    return
                conn.sendall(struct.pack("!H", len(reply)) + reply)
        except OSError:
            pass
        finally:
            with self._lock:
                self._tcp_connections.discard(conn)
            conn.close()

    @staticmethod
    def _recv_exact(conn: socket.socket, size: int) -> bytes | None:
        data = bytearray()
        while len(data) < size:
            chunk = conn.recv(size - len(data))
            if not chunk:
                return None
            data.extend(chunk)
        return bytes(data)

    # -- answers -----------------------------------------------------------------------------

    def _reply(self, wire: bytes, transport: str) -> tuple[bytes | None, float]:
        """The reply's wire form and how long to wait before sending it (None: stay silent)."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return self._formerr(wire), 0.0
        response, delay = self.answer(query)
        delay += 2 * self.latency
        max_size = 65535 if transport == "tcp" else max(512, query.payload if query.edns >= 0 else 512)
        try:
            return response.to_wire(max_size=max_size), delay
        except dns.exception.TooBig:
            response.answer.clear()
            response.authority.clear()
            response.flags |= dns.flags.TC
            return response.to_wire(), delay

    @staticmethod
    def _formerr(wire: bytes) -> bytes | None:
        if len(wire) < 12:
            return None
        # Echo the ID, set QR and FORMERR, no sections: what servers do with unparsable queries.
        query_id = wire[:2]
        return query_id + struct.pack("!HHHHH", 0x8000 | dns.rcode.FORMERR, 0, 0, 0, 0)

    def answer(self, query: dns.message.Message) -> tuple[dns.message.Message, float]:
        """The response to ``query`` and the delay the scenario asks for."""
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA | dns.flags.RA
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
            return response, 0.0
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response, 0.0
        question = query.question[0]
        qname = question.name.to_text(omit_final_dot=True).lower()
        qtype = question.rdtype
        spec, exists = self.lookup(qname)
        self.query_log.append(
            {"name": qname, "type": dns.rdatatype.to_text(qtype), "time": time.time(), "server": self.name}
        )
        if spec is not None and spec.ede and query.edns >= 0:  # only a query with EDNS can carry them
            options = [dns.edns.EDEOption(code, text or None) for code, text in spec.ede]
            response.use_edns(0, response.ednsflags, response.payload, options=options)
        if spec is None:
            if not exists:
                response.set_rcode(dns.rcode.NXDOMAIN)
            self._add_soa(response, question.name)
            return response, 0.0
        if spec.rcode is not None:
            response.set_rcode(dns.rcode.from_text(spec.rcode))
            return response, spec.delay
        if spec.no_answer:
            self._add_soa(response, question.name)
            return response, spec.delay
        name, current = question.name, spec
        for _ in range(MAX_CNAME_CHAIN):
            if current.cname is None or qtype == dns.rdatatype.CNAME:
                break
            response.answer.append(dns.rrset.from_text(name, current.ttl, "IN", "CNAME", current.cname + "."))
            name = dns.name.from_text(current.cname)
            following, _ = self.lookup(current.cname)
            if following is None or following.rcode is not None or following.no_answer:
                return response, spec.delay
            current = following
        values = self._values(current, qtype)
        if values:
            response.answer.append(
                dns.rrset.from_text_list(name, current.ttl, "IN", dns.rdatatype.to_text(qtype), values)
            )
        elif not response.answer:
            self._add_soa(response, question.name)
        return response, spec.delay

    def lookup(self, name: str) -> tuple[RecordSpec | None, bool]:
        """The records answering ``name`` (lower case, no trailing dot): its own, else a wildcard's by RFC
        4592's rules; and whether to answer NOERROR (False: NXDOMAIN)."""
        records = self.records
        own = records.get(name)
        if own is not None:
            return own, True
        existing = set()
        for owner in records:
            labels = owner.split(".")
            existing.update(".".join(labels[index:]) for index in range(len(labels)))
        if name in existing:
            return None, False  # an empty non-terminal: records below it, none of its own
        labels = name.split(".")
        for index in range(1, len(labels)):
            encloser = ".".join(labels[index:])
            if encloser in existing:
                # Only the wildcard child of the closest encloser may answer (RFC 4592 4.3.3).
                source = records.get("*." + encloser)
                return source, source is not None
        return None, False

    @staticmethod
    def _values(spec: RecordSpec, qtype: int) -> list[str]:
        if qtype == dns.rdatatype.A:
            return list(spec.a)
        if qtype == dns.rdatatype.AAAA:
            return list(spec.aaaa)
        if qtype == dns.rdatatype.TXT:
            return ['"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"' for text in spec.txt]
        if qtype == dns.rdatatype.CNAME and spec.cname:
            return [spec.cname + "."]
        return []

    @staticmethod
    def _add_soa(response: dns.message.Message, qname: dns.name.Name) -> None:
        zone = qname.parent() if len(qname.labels) > 2 else qname
        response.authority.append(dns.rrset.from_text(zone, 60, "IN", "SOA", SOA_TEXT))
