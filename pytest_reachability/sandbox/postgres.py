"""A throwaway PostgreSQL for the sandbox: the database the sandbox API really checks and stores in.

When the machine has PostgreSQL's server binaries (``/usr/lib/postgresql/<version>/bin`` on Debian and
Ubuntu, or ``initdb`` on PATH) and the ``psycopg`` driver is installed, :class:`PostgresServer` creates a
cluster in a fresh directory, starts ``postgres`` on 127.0.0.1 and a free port (its unix socket in that
directory), and creates the application's role and database::

    server = PostgresServer()
    dsn = server.start()        # 'postgresql://app:<password>@127.0.0.1:41234/app?connect_timeout=5'
    ...
    server.stop()               # immediate shutdown (SIGQUIT to the postmaster's PID), directory removed

PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres`` user (``nobody``
when there is none) and the server runs as that user. The superuser can log in only through the unix
socket (trust, the directory is private); over TCP only the application role with its random password
(scram-sha-256). Nothing is synced to disk: the cluster lives as long as the sandbox.

:class:`SandboxDatabase` is the application's side: one connection, used under a lock, for the health
check (``SELECT 1`` and its latency) and for the results the storage endpoint keeps.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .. import watchdog

APP_USER = "app"
APP_DATABASE = "app"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
INSTALL_HINT = "pip install pytest-reachability[postgres]"


class PostgresUnavailable(RuntimeError):
    """PostgreSQL cannot be run here; the message says why in one line."""


def find_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``postgres`` (highest installed version), or None."""
    override = os.environ.get("REACHABILITY_POSTGRES_BINDIR")
    candidates = [override] if override else []
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted(
        versions,
        key=lambda p: [int(x) if x.isdigit() else 0 for x in Path(p).parent.name.split(".")],
        reverse=True,
    )
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").is_file() and (Path(candidate) / "postgres").is_file():
            return Path(candidate)
    return None


def unavailable_reason() -> str | None:
    """Why a sandbox PostgreSQL cannot start here, or None when it can."""
    if find_bindir() is None:
        return "no PostgreSQL server binaries (looked in /usr/lib/postgresql/*/bin and PATH)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return f"the psycopg driver is not installed ({INSTALL_HINT})"
    return None


def _run_as() -> tuple[int, int] | None:
    """``(uid, gid)`` to run the server as when we are root (PostgreSQL refuses root), else None."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return entry.pw_uid, entry.pw_gid
    raise PostgresUnavailable(
        "running as root and neither a postgres nor a nobody user exists to run PostgreSQL"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """One throwaway PostgreSQL cluster; ``start()`` returns the application's DSN."""

    def __init__(self, *, start_timeout: float = START_TIMEOUT, bindir: Path | None = None) -> None:
        self.start_timeout = start_timeout
        self.bindir = bindir or find_bindir()
        self.directory: Path | None = None
        self.port: int | None = None
        self.dsn: str | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.version: str = ""
        self.started_in: float = 0.0
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def socket_dir(self) -> Path:
        assert self.directory is not None
        return self.directory / "socket"

    def describe(self) -> str:
        return f"PostgreSQL {self.version} on 127.0.0.1:{self.port} (started in {self.started_in:.2f}s)"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> str:
        with self._lock:
            if self.dsn is not None:
                return self.dsn
            began = time.monotonic()
            try:
                self.dsn = self._start(began + self.start_timeout)
            except BaseException:
                self._stop()
                raise
            self.started_in = time.monotonic() - began
            return self.dsn

    def stop(self) -> None:
        with self._lock:
            self._stop()

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _start(self, deadline: float) -> str:
        if self.bindir is None:
            raise PostgresUnavailable(
                "no PostgreSQL server binaries (looked in /usr/lib/postgresql/*/bin and PATH)"
            )
        import psycopg
        from psycopg import sql

        owner = _run_as()
        self.directory = Path(tempfile.mkdtemp(prefix="reachability-postgres-"))
        watchdog.guard_directory(self.directory)
        data = self.directory / "data"
        # Trust authentication on the socket is safe only while nobody else can reach it.
        self.socket_dir.mkdir(mode=0o700)
        os.chmod(self.socket_dir, 0o700)
        if owner is not None:
            for path in (self.directory, self.socket_dir):
                os.chown(path, *owner)
        self.version = self.bindir.parent.name if self.bindir.parent.name[:1].isdigit() else ""
        self._run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
                "--no-instructions",
                "--wal-segsize=1",
            ],  # 1 MB WAL segments: less to write for a cluster that lives minutes
            owner,
            deadline,
            "initdb",
        )
        # A port picked free may be taken before the server binds it: try a few.
        for _attempt in range(3):
            self.port = _free_port()
            if self._launch(data, owner, deadline):
                break
        else:
            raise PostgresUnavailable(f"postgres did not start: {self._log_tail()}")
        password = secrets.token_urlsafe(18)
        remaining = max(1, int(deadline - time.monotonic()))
        with psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user="postgres",
            dbname="postgres",
            connect_timeout=remaining,
            autocommit=True,
        ) as admin:
            admin.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(APP_USER), sql.Literal(password)
                )
            )
            admin.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(APP_DATABASE), sql.Identifier(APP_USER)
                )
            )
            self.version = str(admin.execute("SHOW server_version").fetchone()[0]).split()[0]
        return f"postgresql://{APP_USER}:{password}@127.0.0.1:{self.port}/{APP_DATABASE}?connect_timeout=5"

    def _launch(self, data: Path, owner: tuple[int, int] | None, deadline: float) -> bool:
        """Start the postmaster; True once it is ready, False if it exited (port taken)."""
        assert self.directory is not None and self.port is not None
        log = open(self.directory / "postgres.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            self.process = subprocess.Popen(
                [
                    str(self.bindir / "postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.socket_dir),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "unix_socket_permissions=0700",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=40",
                    "-c",
                    "shared_buffers=16MB",
                    "-c",
                    "logging_collector=off",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                **({"user": owner[0], "group": owner[1], "extra_groups": []} if owner else {}),
            )
        finally:
            log.close()
        # Its own session keeps it out of the terminal's Ctrl-C; the watchdog stops it if this process is
        # killed.
        watchdog.guard_process(self.process.pid, signal.SIGQUIT, group=True)
        pid_file = data / "postmaster.pid"
        delay = 0.01
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                watchdog.release_process(self.process.pid)
                self.process = None
                return False
            with contextlib.suppress(OSError):
                lines = pid_file.read_text().splitlines()
                # Line 8 of postmaster.pid is the postmaster's status; "ready" once it accepts connections.
                if len(lines) >= 8 and lines[7].strip() == "ready":
                    return True
            time.sleep(delay)
            delay = min(delay * 1.5, 0.1)
        raise PostgresUnavailable(f"postgres not ready within {self.start_timeout:g}s: {self._log_tail()}")

    def _run(self, argv: list[str], owner: tuple[int, int] | None, deadline: float, what: str) -> None:
        try:
            result = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=max(0.1, deadline - time.monotonic()),
                **({"user": owner[0], "group": owner[1], "extra_groups": []} if owner else {}),
            )
        except subprocess.TimeoutExpired:
            raise PostgresUnavailable(f"{what} did not finish within {self.start_timeout:g}s") from None
        if result.returncode != 0:
            last = (result.stderr or result.stdout).strip().splitlines()
            raise PostgresUnavailable(f"{what} exited {result.returncode}: {last[-1] if last else ''}")

    def _log_tail(self) -> str:
        if self.directory is None:
            return ""
        with contextlib.suppress(OSError):
            lines = (self.directory / "postgres.log").read_text(errors="replace").strip().splitlines()
            return lines[-1] if lines else "no log output"
        return "no log"

    def _stop(self) -> None:
        process, self.process = self.process, None
        # SIGQUIT is PostgreSQL's immediate shutdown (pg_ctl stop -m immediate), sent to our child's PID.
        watchdog.stop_child(process, signal.SIGQUIT, STOP_TIMEOUT)
        if process is not None:
            watchdog.release_process(process.pid)
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            watchdog.release_directory(self.directory)
            self.directory = None
        self.dsn = None


class DelayProxy:
    """A TCP proxy in front of PostgreSQL that holds every answer of the server for ``delay`` seconds.

    It makes the database slow the way a distant or overloaded server is: each round trip (the start-up
    and authentication exchange, then every query) takes ``delay`` longer.
    """

    MAX_CONNECTIONS = 32

    def __init__(self, upstream: tuple[str, int], delay: float, *, io_timeout: float = 30.0) -> None:
        self.upstream = upstream
        self.delay = delay
        self.io_timeout = io_timeout
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()

    @property
    def port(self) -> int:
        assert self._listener is not None
        return self._listener.getsockname()[1]

    def start(self) -> int:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(self.MAX_CONNECTIONS)
        listener.settimeout(0.2)
        self._listener = listener
        self._spawn(self._accept_loop)
        return self.port

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(STOP_TIMEOUT)
        for sock in sockets:
            sock.close()
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def _spawn(self, target: Any, *args: Any) -> None:
        def run() -> None:
            try:
                target(*args)
            finally:
                with self._lock:
                    self._threads.discard(threading.current_thread())

        thread = threading.Thread(target=run, name="sandbox postgres delay proxy", daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                if len(self._sockets) >= 2 * self.MAX_CONNECTIONS:
                    client.close()
                    continue
            try:
                server = socket.create_connection(self.upstream, timeout=self.io_timeout)
            except OSError:
                client.close()
                continue
            for sock in (client, server):
                sock.settimeout(self.io_timeout)
            with self._lock:
                self._sockets.update((client, server))
            self._spawn(self._pump, client, server, 0.0)
            self._spawn(self._pump, server, client, self.delay)

    def _pump(self, source: socket.socket, sink: socket.socket, delay: float) -> None:
        try:
            while not self._stopping.is_set():
                chunk = source.recv(65536)
                if not chunk or (delay and self._stopping.wait(delay)):
                    break
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def dsn_for_state(
    dsn: str, state: str, *, refusing_port: int | None = None, proxy_port: int | None = None
) -> str:
    """The DSN a client gets for a database in ``state``.

    The real one, or one that fails the way the state says."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    user, _, _password = parts.netloc.rpartition("@")[0].partition(":")
    host_port = parts.netloc.rpartition("@")[2]
    host = host_port.rsplit(":", 1)[0]
    path = parts.path
    if state == "down" and refusing_port is not None:
        host_port = f"{host}:{refusing_port}"
    elif state == "slow" and proxy_port is not None:
        host_port = f"{host}:{proxy_port}"
    elif state == "wrong_password":
        _password = secrets.token_urlsafe(18)  # a password the server never heard of: the old, rotated one
    elif state == "missing_database":
        path = f"/{APP_DATABASE}_missing"
    return urlunsplit(parts._replace(netloc=f"{user}:{_password}@{host_port}", path=path))


class SandboxDatabase:
    """The sandbox API's connection to its PostgreSQL: health check and results, one lock for both, and up
    to ``OVERFLOW`` short-lived connections for health checks arriving while the shared one is busy."""

    OVERFLOW = 8

    def __init__(self, dsn: str, *, timeout: float = 5.0) -> None:
        self.dsn = dsn
        self.timeout = timeout
        self._connection: Any = None
        self._lock = threading.Lock()
        self._overflow = threading.BoundedSemaphore(self.OVERFLOW)
        self._closed = False

    def _open(self) -> Any:
        """A new connection, given up after the API's own timeout."""
        import psycopg

        return psycopg.connect(self.dsn, autocommit=True, connect_timeout=max(1, int(self.timeout)))

    def _connect(self) -> Any:
        if self._closed:
            raise RuntimeError("database connection closed")
        if self._connection is None or self._connection.closed:
            self._connection = self._open()
            self._connection.execute(
                "CREATE TABLE IF NOT EXISTS results (id text PRIMARY KEY, body jsonb NOT NULL,"
                " created timestamptz NOT NULL DEFAULT now())"
            )
        return self._connection

    def _execute(self, query: str, params: tuple = ()) -> Any:
        with self._lock:
            return self._execute_locked(query, params)

    def _execute_locked(self, query: str, params: tuple = ()) -> Any:
        had_connection = self._connection is not None and not self._connection.closed
        try:
            return self._connect().execute(query, params)
        except Exception:
            if self._connection is not None:
                with contextlib.suppress(Exception):
                    self._connection.close()
                self._connection = None
            if not had_connection:
                raise  # connecting failed: trying again at once would only double the wait
            # One reconnect: the server may have closed an idle connection.
            return self._connect().execute(query, params)

    def _check_query(self) -> Any:
        """``SELECT 1`` on the shared connection when it is free, else on a connection of its own.

        An application's pool serves concurrent health checks side by side: a check must not wait behind
        another one's connection timeout, or a slow database would turn into health requests that time out
        one after another, depending only on how many arrived together."""
        if self._lock.acquire(blocking=False):
            try:
                return self._execute_locked("SELECT 1").fetchone()
            finally:
                self._lock.release()
        with self._overflow:
            if self._closed:
                raise RuntimeError("database connection closed")
            with self._open() as connection:
                return connection.execute("SELECT 1").fetchone()

    def check(self) -> dict[str, Any]:
        """``SELECT 1`` now.

        ``{"status": "ok", "latency_ms": ...}`` or ``{"status": "error", "error": ...}``."""
        started = time.perf_counter()
        try:
            row = self._check_query()
        except Exception as error:  # noqa: BLE001 - reported in the health body, as the real API does
            return {
                "status": "error",
                "error": f"{type(error).__name__}: "
                f"{str(error).strip().splitlines()[0] if str(error).strip() else ''}",
                "latency_ms": round((time.perf_counter() - started) * 1000, 3),
                "engine": "postgresql",
            }
        ok = row is not None and row[0] == 1
        return {
            "status": "ok" if ok else "error",
            "latency_ms": round((time.perf_counter() - started) * 1000, 3),
            "engine": "postgresql",
        }

    # -- results (the storage endpoint) --------------------------------------------------------

    def put(self, result_id: str, body: dict[str, Any]) -> None:
        self._execute("INSERT INTO results (id, body) VALUES (%s, %s::jsonb)", (result_id, json.dumps(body)))

    def get(self, result_id: str) -> dict[str, Any] | None:
        row = self._execute("SELECT body FROM results WHERE id = %s", (result_id,)).fetchone()
        return None if row is None else row[0]

    def delete(self, result_id: str) -> bool:
        return self._execute("DELETE FROM results WHERE id = %s", (result_id,)).rowcount > 0

    def count(self) -> int:
        return int(self._execute("SELECT count(*) FROM results").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._connection is not None:
                with contextlib.suppress(Exception):
                    self._connection.close()
                self._connection = None
