"""Connections opened ahead of the requests that will use them, left idle in a urllib3 pool.

A distant server charges a round trip for TCP and one for TLS on every new connection. Opening them while
the run does something else (imports, other probes) leaves the first requests one round trip each. Used
for the target (``TargetSession.preconnect``) and for the API server (``Cluster.connect(preconnect=N)``).

Nothing is sent on such a connection; it is verified exactly as a request would verify it, since it is
made by the pool the request would use.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
from typing import Any

import urllib3
from urllib3.util.proxy import connection_requires_http_tunnel
from urllib3.util.wait import wait_for_read


class TicketTolerantHTTPSConnection(urllib3.connection.HTTPSConnection):
    """An HTTPS connection urllib3 may take from the pool after it idled without being read from."""

    @property
    def is_connected(self) -> bool:
        """Whether an idle connection may carry the next request. urllib3 says no as soon as the socket is
        readable, but a TLS 1.3 server sends its session tickets after the handshake: a connection opened
        ahead and not yet read from would be dropped for them (and opened again). The records waiting are
        read here first, without blocking, until the socket is quiet -- a ticket may land between the read
        and the look (two records relayed apart, or this thread paused between the two); application data
        or the end of the stream still mean the connection is not reusable."""
        sock = self.sock
        if not isinstance(sock, ssl.SSLSocket):
            return bool(super().is_connected)
        for _ in range(_MAX_QUIET_CHECKS):
            if sock.pending():  # application data already decrypted: a stray answer
                return False
            if not wait_for_read(sock, timeout=0.0):
                return True
            if not _only_handshake_records(sock):
                return False
        return False  # records still arriving: a fresh connection is the safe choice


_MAX_QUIET_CHECKS = 8  # a server sends a ticket or two (OpenSSL: 2 by default); more is not waited for


def _only_handshake_records(sock: ssl.SSLSocket) -> bool:
    """Read what is waiting on ``sock`` without blocking: True when that was only TLS handshake messages
    (tickets, consumed), False for a byte nobody asked for, the end of the stream or an error."""
    timeout = sock.gettimeout()
    try:
        sock.settimeout(0.0)
        sock.recv(1)  # returns a byte nobody asked for, or b"": closed
        return False
    except (ssl.SSLWantReadError, BlockingIOError):
        return True
    except OSError:
        return False
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(timeout)


class TicketTolerantHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = TicketTolerantHTTPSConnection


def replace_stock_pools(pool_manager: Any, classes: dict[str, type]) -> None:
    """Give ``pool_manager`` these pool classes (by scheme) when its own are urllib3's stock ones: a SOCKS
    proxy manager's pools, or any other, are left alone."""
    current = getattr(pool_manager, "pool_classes_by_scheme", None)
    if isinstance(current, dict) and current.get("https") is urllib3.HTTPSConnectionPool:
        pool_manager.pool_classes_by_scheme = {**current, **classes}


def tolerate_tickets(pool_manager: Any) -> None:
    """Make ``pool_manager``'s HTTPS pools keep connections opened ahead (see above)."""
    replace_stock_pools(pool_manager, {"https": TicketTolerantHTTPSPool})


def open_idle(pool: Any, timeout: float) -> None:
    """Open one connection of ``pool`` (TCP, TLS, a proxy's tunnel: handshakes only) and put it back idle;
    an idle connection still open is put back as it is.

    ``timeout`` bounds the connect and each handshake read. A failure is raised after the pool's slot is
    given back, as urllib3 gives it back after a failed connection: the request that comes later connects
    (and fails) on its own."""
    connection = pool._get_conn()  # an idle one that dropped comes closed
    if getattr(connection, "sock", None) is not None:
        pool._put_conn(connection)
        return
    _connect_and_return(pool, connection, timeout)


def open_many(pool: Any, count: int, timeout: float, name: str) -> list[threading.Thread]:
    """Open ``count`` new connections of ``pool`` side by side, each in a thread (named ``name``) of its
    own; the threads are returned started. The connections are taken from the pool first, so that none
    is taken twice, and each goes back idle once open; a failure is left for the request that comes
    later, as with :func:`open_idle`."""
    taken = []
    for _ in range(count):
        connection = pool._get_conn()
        if getattr(connection, "sock", None) is not None:  # one already open: nothing to do for it
            pool._put_conn(connection)
            break
        taken.append(connection)

    def connect(connection: Any) -> None:
        with contextlib.suppress(Exception):
            _connect_and_return(pool, connection, timeout)

    threads = [threading.Thread(target=connect, args=(each,), name=name, daemon=True) for each in taken]
    for thread in threads:
        thread.start()
    return threads


def _connect_and_return(pool: Any, connection: Any, timeout: float) -> None:
    try:
        connection.timeout = timeout
        if getattr(pool, "proxy", None) is not None and connection_requires_http_tunnel(
            pool.proxy, pool.proxy_config, pool.scheme
        ):
            pool._prepare_proxy(connection)  # the CONNECT tunnel, then TLS inside it, as urlopen does
        else:
            connection.connect()
    except BaseException:
        connection.close()
        pool._put_conn(None)
        raise
    pool._put_conn(connection)
