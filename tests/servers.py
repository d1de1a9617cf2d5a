"""Small misbehaving servers on loopback for the probe tests: each listens on port 0 and stops by itself.

A ``LoopbackServer`` accepts connections in a thread and hands each one to a behaviour, a function
``(conn, server) -> None`` that plays one failure: close without a byte, reset mid-body, stall, answer
garbage, speak TLS on a plain port, and so on.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator

Behaviour = Callable[[socket.socket, "LoopbackServer"], None]
HOST = "97v.test"


class LoopbackServer:
    """A TCP server on 127.0.0.1 (or ::1) running ``behaviour`` per connection; use as a context manager."""

    def __init__(
        self, behaviour: Behaviour, *, tls: ssl.SSLContext | None = None, family: int = socket.AF_INET
    ) -> None:
        self.behaviour = behaviour
        self.tls = tls
        self.stopping = threading.Event()
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(0.2)
        self.address, self.port = self.listener.getsockname()[:2]
        self.bytes_sent = 0
        self.connections = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._thread.join(5)
        self.listener.close()

    def count_sent(self, size: int) -> None:
        with self._lock:
            self.bytes_sent += size

    def _accept_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _peer = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            self.behaviour(conn, self)
        except (OSError, ValueError) as error:
            self.errors.append(repr(error))
        finally:
            try:
                conn.close()
            except OSError:
                pass


def read_request(conn: socket.socket, limit: int = 65536) -> bytes:
    """Read until the end of the request head (or EOF/limit)."""
    data = b""
    while b"\r\n\r\n" not in data and len(data) < limit:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def request_path(request: bytes) -> str:
    words = request.split(b" ", 2)
    return words[1].decode() if len(words) > 1 else ""


def http_answer(
    status: int, body: bytes = b"", reason: str = "", headers: dict[str, str] | None = None
) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason or 'Whatever'}", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def reset(conn: socket.socket) -> None:
    """Close with RST rather than FIN (SO_LINGER 0)."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


# --- behaviours -------------------------------------------------------------------------------------


def healthy(body: bytes = b'{"status": "ok"}', status: int = 200) -> Behaviour:
    def behaviour(conn: socket.socket, server: LoopbackServer) -> None:
        read_request(conn)
        conn.sendall(
            http_answer(
                status, body, "OK" if status == 200 else "Status", {"Content-Type": "application/json"}
            )
        )

    return behaviour


def empty_reply(conn: socket.socket, server: LoopbackServer) -> None:
    read_request(conn)
    conn.shutdown(socket.SHUT_RDWR)


def reset_mid_body(conn: socket.socket, server: LoopbackServer) -> None:
    read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
    time.sleep(0.1)  # let the client read the head before the RST discards unread data
    reset(conn)


def stall(conn: socket.socket, server: LoopbackServer) -> None:
    read_request(conn)
    server.stopping.wait(15)


def garbage(conn: socket.socket, server: LoopbackServer) -> None:
    read_request(conn)
    conn.sendall(b"\x00\x01\x02 this is not http at all\r\n\r\n")


def plain_http_anyway(conn: socket.socket, server: LoopbackServer) -> None:
    """Answers HTTP to whatever arrives, the way a plain server on a port the client thinks is TLS does."""
    conn.recv(4096)
    conn.sendall(http_answer(400, b"bad request", "Bad Request"))


def tls_alert(conn: socket.socket, server: LoopbackServer) -> None:
    """Answers a fatal TLS alert record to plain bytes, as TLS-only listeners do."""
    conn.recv(4096)
    conn.sendall(bytes([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46]))


def redirect_loop(conn: socket.socket, server: LoopbackServer) -> None:
    path = request_path(read_request(conn))
    target = "/loop-a" if path != "/loop-a" else "/health"
    conn.sendall(http_answer(302, b"", "Found", {"Location": target}))


def redirect_once(conn: socket.socket, server: LoopbackServer) -> None:
    path = request_path(read_request(conn))
    if path == "/health":
        conn.sendall(http_answer(301, b"", "Moved Permanently", {"Location": "/healthz"}))
    else:
        conn.sendall(http_answer(200, b'{"status": "ok", "path": "%s"}' % path.encode(), "OK"))


def huge_body(size: int) -> Behaviour:
    def behaviour(conn: socket.socket, server: LoopbackServer) -> None:
        read_request(conn)
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
        chunk = b"\0" * (1 << 20)
        left = size
        while left > 0 and not server.stopping.is_set():
            piece = chunk[: min(left, len(chunk))]
            conn.sendall(piece)  # raises once the client closes: the probe stopped reading
            server.count_sent(len(piece))
            left -= len(piece)

    return behaviour


def chunked(pieces: list[bytes]) -> Behaviour:
    def behaviour(conn: socket.socket, server: LoopbackServer) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for piece in pieces:
            conn.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        conn.sendall(b"0\r\n\r\n")

    return behaviour


def forwarding(upstream: tuple[str, int]) -> Behaviour:
    """Relay each connection to ``upstream`` byte for byte (both ways, until either side closes): the
    server's ``connections`` then counts the connections a client opened to ``upstream``."""

    def relay(conn: socket.socket, server: LoopbackServer) -> None:
        with socket.create_connection(upstream, timeout=10) as far:
            _relay_both_ways(conn, far)

    return relay


def connect_proxy(seen: list[str]) -> Behaviour:
    """An HTTP proxy that serves ``CONNECT host:port`` (to loopback addresses only) and nothing else; each
    request line goes to ``seen``."""

    def tunnel(conn: socket.socket, server: LoopbackServer) -> None:
        head = read_request(conn)
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        seen.append(line)
        method, _, rest = line.partition(" ")
        host, _, port = rest.partition(" ")[0].rpartition(":")
        if method != "CONNECT" or host.strip("[]") not in ("127.0.0.1", "::1", "localhost"):
            conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        with socket.create_connection((host.strip("[]"), int(port)), timeout=10) as far:
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            _relay_both_ways(conn, far)

    return tunnel


def _relay_both_ways(near: socket.socket, far: socket.socket) -> None:
    def pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    back = threading.Thread(target=pump, args=(far, near), daemon=True)
    back.start()
    pump(near, far)
    back.join(10)


def refused_port() -> int:
    """A loopback port nothing listens on (bound then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_curl(command: str, *extra: str, timeout: float = 30) -> int:
    """Run a probe's reproduce line (with ``extra`` options) and return curl's exit code."""
    import shlex

    words = shlex.split(command)
    completed = subprocess.run(
        [words[0], "-sS", "-o", "/dev/null", *extra, *words[1:]],
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    return completed.returncode


# --- DNS servers ------------------------------------------------------------------------------------


class Dnsmasq:
    """A real dnsmasq on 127.0.0.1 with a free port, answering only from its command line; stopped by PID."""

    def __init__(self, *records: str, local: bool = True) -> None:
        self.records = records
        self.local = local
        self.process: subprocess.Popen | None = None
        self.port = 0

    @property
    def resolver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> Dnsmasq:
        import dns.message
        import dns.query

        for _attempt in range(5):  # the free port may be taken between probing and binding; try another
            self.port = free_udp_and_tcp_port()
            command = [
                "dnsmasq",
                "--no-daemon",
                "--port",
                str(self.port),
                "--listen-address",
                "127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                "--pid-file",
                "--log-facility=/dev/null",
                "--user=root",
                *(["--local=/test/"] if self.local else []),
                *self.records,
            ]
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for _poll in range(50):
                if self.process.poll() is not None:
                    break
                try:
                    dns.query.udp(
                        dns.message.make_query("ready.invalid", "A"), "127.0.0.1", port=self.port, timeout=0.1
                    )
                    return self
                except Exception:
                    time.sleep(0.05)
            self._stop()
        raise RuntimeError("dnsmasq did not start on a free port after 5 attempts")

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process is not None and self.process.stderr:
            self.process.stderr.close()


def free_udp_and_tcp_port() -> int:
    """A loopback port free for both UDP and TCP at the time of asking."""
    for _attempt in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket() as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port for both UDP and TCP")


class SilentResolver:
    """A UDP (and TCP) port that takes queries and never answers: a dead resolver behind a drop."""

    def __enter__(self) -> SilentResolver:
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.port = self.udp.getsockname()[1]
        return self

    @property
    def resolver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.udp.close()


def require_tool(name: str) -> str | None:
    """Path of ``name``; None when missing outside CI (caller skips), an error in CI where it must run."""
    import os
    import shutil

    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None and os.environ.get("CI", "").lower() == "true":
        raise RuntimeError(f"{name} is required in CI (CI=true) but is not installed")
    return path


class RcodeResolver:
    """A UDP DNS server answering every query with one rcode (e.g. SERVFAIL) and no records."""

    def __init__(self, rcode: int) -> None:
        self.rcode = rcode
        self.stopping = threading.Event()

    def __enter__(self) -> RcodeResolver:
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.settimeout(0.1)
        self.port = self.udp.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    @property
    def resolver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _serve(self) -> None:
        import dns.message

        while not self.stopping.is_set():
            try:
                data, peer = self.udp.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            query = dns.message.from_wire(data)
            response = dns.message.make_response(query)
            response.set_rcode(self.rcode)
            self.udp.sendto(response.to_wire(), peer)

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._thread.join(2)
        self.udp.close()


class SlowResolver:
    """A UDP DNS server answering A queries with ``address``
    after ``delay`` seconds (each query on its own timer)."""

    def __init__(self, address: str, delay: float) -> None:
        self.address = address
        self.delay = delay
        self.stopping = threading.Event()

    def __enter__(self) -> SlowResolver:
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.settimeout(0.1)
        self.port = self.udp.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    @property
    def resolver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _serve(self) -> None:
        import dns.message
        import dns.rdatatype
        import dns.rrset

        while not self.stopping.is_set():
            try:
                data, peer = self.udp.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            query = dns.message.from_wire(data)
            response = dns.message.make_response(query)
            question = query.question[0]
            if question.rdtype == dns.rdatatype.A:
                response.answer.append(dns.rrset.from_text(question.name, 30, "IN", "A", self.address))
            timer = threading.Timer(self.delay, self._send, args=(response.to_wire(), peer))
            timer.daemon = True
            timer.start()

    def _send(self, wire: bytes, peer) -> None:
        try:
            self.udp.sendto(wire, peer)
        except OSError:
            pass  # stopped meanwhile

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._thread.join(2)
        self.udp.close()


def interruptible() -> None:
    """``preexec_fn`` for a child a test stops with SIGINT: its SIGINT as a terminal's Ctrl-C finds it.

    A process started from a non-interactive shell in the background (``cmd &``, as CI runners and nohup do)
    inherits SIGINT *ignored*, every descendant with it, and Python then installs no KeyboardInterrupt
    handler: the test's SIGINT would be dropped, and the run it means to interrupt would go on.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@contextlib.contextmanager
def network_namespace(prefix: str) -> Iterator[str]:
    """A network namespace of a unique name with only loopback up, deleted afterwards (needs root)."""
    name = f"{prefix}-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=20)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, timeout=20)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], timeout=20)
