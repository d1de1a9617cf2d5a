"""The suite's independent network work, started together at session start; tests read the results.

Per target: DNS on every resolver, then -- once the addresses are known -- TCP, TLS and the health request
on every address at the same time. Targets run in a bounded pool (``--concurrency``), so a fleet costs
about as much as its slowest few targets and a distant target a few round trips, not one per check.

The cluster's reads start on the one connection the session's tests then use (its connections are already
open): every list per namespace, the server's version, whether the namespace may be read, the recent
changes. Each suite module may add the reads only it knows how to choose (the TLS Secrets its Ingresses
name, the logs of the target's pods, ...) with a module-level ``prefetch_for_target(work)`` function, run
here for each target with a :class:`TargetWork`; such a function only reads (GET), never writes.

Results land in the session's :class:`~pytest_reachability.fixtures.SharedResults` under the keys the
fixtures and the suite ask for (the functions here and in those modules are the only place those keys are
written), so a test finds its probe done or waits for the one in flight; nothing is probed twice. Work done
here records no evidence: the first test that reads a result this process computed records it
(``SharedResults.claim``), as when the test itself had computed it.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from . import evidence as evidence_mod
from .probes import run_probe

T = TypeVar("T")

JOIN_BOUND = 600.0
# How long the session's end waits for background work still in flight (a cluster read or probe the tests
# did not need): each ends within its own timeout; a daemon thread that wakes in a socket read while the
# interpreter finalizes aborts the process (CPython 3.11: SIGABRT, and the run's exit code is lost).
STOP_BOUND = 15.0

_background: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
_background_guard = threading.Lock()


def start_background(target: Callable[..., Any], name: str, args: tuple[Any, ...] = ()) -> threading.Thread:
    """A daemon thread of background network work, started and known to :func:`join_background`."""
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    with _background_guard:
        _background.add(thread)
    thread.start()
    return thread


def join_background(bound: float = STOP_BOUND) -> list[str]:
    """Wait, ``bound`` seconds in all, for the background threads still running; the names of those that
    did not end."""
    deadline = time.monotonic() + bound
    with _background_guard:
        threads = [thread for thread in _background if thread.is_alive()]
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [thread.name for thread in threads if thread.is_alive()]


CONNECT_BOUND = 60.0  # loading credentials sends no request; this only bounds a stuck loader

__all__ = [
    "GateWatch",
    "Prefetcher",
    "TargetWork",
    "cluster_outcome",
    "cluster_version",
    "dns_key",
    "dns_report",
    "flow",
    "flow_outcome",
    "health_key",
    "namespace_access",
    "run_together",
    "target_session",
    "tcp_results",
    "tls_results",
]


def dns_key(target: Any, settings: Any) -> str:
    return f"dns:{target.host}:{settings.resolvers}"


def dns_report(target: Any, settings: Any, shared: Any) -> Any:
    """The target's name resolved on every resolver (computed once per session)."""
    return shared.get(dns_key(target, settings), lambda: run_probe("dns", target, settings))


def health_key(
    target: Any, path: str, addresses: list[str] | None, extra: list[str], checks: dict[str, Any]
) -> str:
    return f"http:{target.base_url}:{path}:{addresses}:{extra}:{sorted(map(repr, checks.items()))}"


def health_results(
    target: Any,
    settings: Any,
    shared: Any,
    dns: Callable[[], Any],
    *,
    path: str | None = None,
    addresses: list[str] | None = None,
    extra: Sequence[str] = (),
    checks: dict[str, Any] | None = None,
) -> tuple[str, list[Any]]:
    """(key, results) of ``GET path`` on every address (the resolved ones unless ``addresses``)."""
    path = path or settings.health_path
    extra = list(extra)
    checks = dict(checks or {})
    key = health_key(target, path, addresses, extra, checks)

    def run() -> list[Any]:
        return run_probe(
            "http",
            target,
            settings,
            addresses=addresses,
            extra_addresses=extra,
            path=path,
            dns_report=dns() if addresses is None else None,
            **checks,
        )

    return key, shared.get(key, run)


def propagation_report(target: Any, settings: Any, port: int, shared: Any) -> Any:
    """What the zone's authoritative servers answer for the target's name against what every resolver
    caches (``probes.propagation``); once per session."""
    from .probes import propagation

    return shared.get(
        f"propagation:{target.host}:{settings.resolvers}:{port}",
        lambda: propagation.probe(target, settings, port=port),
    )


def changes_key(server: str, namespace: str) -> str:
    return f"suite-changes:{server}:{namespace}"


def cluster_changes(cluster: Any, namespace: str, shared: Any) -> dict[str, Any]:
    """The namespace's recent changes (``changes.cluster_changes``), read once per namespace."""
    from .changes import cluster_changes as read

    return shared.get(changes_key(cluster.server, namespace), lambda: read(cluster, namespace))


def session_start_reads(namespaces: int) -> int:
    """How many reads ``Prefetcher`` sends the API server at once at session start, so as many connections
    are opened while the client is still being built: the server's version, and per namespace the access
    check, every kind ``ClusterReads.warm`` lists and the recent changes' lists."""
    from . import changes
    from .cluster_reads import ClusterReads

    return 1 + namespaces * (1 + ClusterReads.side_by_side() + changes.LISTS)


def cluster_outcome(shared: Any, key: str, read: Callable[[], Any]) -> tuple[Any, Any]:
    """(value, None) or (None, the ClusterError) of a cluster read, once per session under ``key``: a
    refusal is as much an observation as an answer, and the test that reads it reports it."""
    from .cluster import ClusterError

    def run() -> tuple[Any, Any]:
        try:
            return read(), None
        except ClusterError as error:
            return None, error

    return shared.get(key, run)


def cluster_version(cluster: Any, shared: Any) -> tuple[Any, Any]:
    """(``Cluster.version()``, error), once per session."""
    return cluster_outcome(shared, f"suite-version:{cluster.server}", cluster.version)


def namespace_access(cluster: Any, shared: Any) -> tuple[Any, Any]:
    """(None, error of ``Cluster.can_read_namespace()``), once per namespace."""
    return cluster_outcome(
        shared, f"suite-access:{cluster.server}:{cluster.namespace}", cluster.can_read_namespace
    )


def flow(shared: Any, key: str, compute: Callable[[], T]) -> T:
    """``compute()`` once per session under ``key``, as a test reads it: the evidence it recorded goes to
    the first test that reads it (``SharedResults.claim``), whichever thread or worker did the work, and
    what it raised is raised again here -- a flow that writes is never done twice."""
    value, records, error = flow_outcome(shared, key, compute)
    if shared.claim(key):
        for kind, data, fields in records:
            evidence_mod.record(kind, data, **fields)
    if error is not None:
        raise error
    return value


def flow_outcome(shared: Any, key: str, compute: Callable[[], Any]) -> tuple[Any, list[Any], Any]:
    """(value, evidence records, exception raised) of ``compute()``, once per session under ``key``."""

    def run() -> tuple[Any, list[Any], Any]:
        with evidence_mod.captured() as records:
            try:
                return compute(), records, None
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as error:  # noqa: BLE001 - kept and raised where it is read (skip included)
                return None, records, error

    return shared.get(key, run)


def target_session(target: Any, settings: Any, dns: Callable[[], Any]) -> Any:
    """A :class:`~pytest_reachability.http_session.TargetSession` for ``target`` (the ``http`` fixture's):
    pinned to the first address the configured resolvers answer (curl ``--resolve``) unless they are the
    system's."""
    from .http_session import TargetSession

    return TargetSession(
        target,
        timeout=settings.probe_timeout,
        ca_bundle=settings.ca_bundle,
        address=pinned_address(target, settings, dns),
    )


def pinned_address(target: Any, settings: Any, dns: Callable[[], Any]) -> str | None:
    """The address the suite's own requests go to (curl ``--resolve``): the first the configured resolvers
    answer; None (the system's resolution) for an IP target, the system resolver or no answer."""
    if target.is_ip or list(settings.resolvers) == ["system"]:
        return None
    addresses = dns().addresses
    return addresses[0] if addresses else None


def tcp_results(target: Any, addresses: Iterable[str], settings: Any, shared: Any) -> list[Any]:
    """One TCP connect per address, concurrently; once per session."""
    from .probes import tcp

    addresses = list(addresses)
    return shared.get(
        f"suite-tcp:{target.host}:{target.port}:{addresses}",
        lambda: tcp.probe_target(target, addresses=addresses, timeout=settings.probe_timeout),
    )


def tls_results(target: Any, addresses: Iterable[str], settings: Any, shared: Any) -> list[Any]:
    """One TLS handshake per address as the target's host (SNI and verification); once per session."""
    from .probes import tls

    addresses = list(addresses)
    return shared.get(
        f"suite-tls:{target.host}:{target.port}:{addresses}",
        lambda: tls.probe_target(
            target, addresses=addresses, timeout=settings.probe_timeout, ca_bundle=settings.ca_bundle
        ),
    )


class GateWatch:
    """Whether a target's gates passed, as the session's gate tests record them (``gating.GateStore``): in
    this process a recorded outcome wakes the waiters at once, from other xdist workers it is read again
    every quarter of a second."""

    POLL = 0.25

    def __init__(self, plan: Any, store: Any, keys: dict[str, dict[str, str]], bound: float) -> None:
        self.plan = plan
        self.store = store
        self.keys = keys  # target key -> gate name -> the gate key its tests require
        self.bound = bound
        self._changed = threading.Condition()

    def changed(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def passed(self, target: Any, names: Sequence[str], stopped: threading.Event) -> bool:
        """True once every gate in ``names`` passed for ``target``; False as soon as one failed or was
        skipped, when none of the target's tests requires one of them (nobody would read the work), or at
        the session's end."""
        from .gating import PASSED, aggregate

        required = self.keys.get(target.display, {})
        if any(name not in required for name in names):
            return False
        keys = [required[name] for name in names]
        deadline = time.monotonic() + self.bound
        # The session's end stops the wait; so does the main thread's, should the session end unannounced
        # (the pool's threads are joined at interpreter exit).
        main = threading.main_thread()
        while not stopped.is_set() and main.is_alive() and time.monotonic() < deadline:
            states = [
                aggregate(key, self.plan.members.get(key, ()), self.store.results(key)).state for key in keys
            ]
            if any(state not in (PASSED, "unknown") for state in states):
                return False
            if all(state == PASSED for state in states):
                return True
            with self._changed:
                self._changed.wait(self.POLL)
        return False


class _GateFailed(Exception):
    """A gate the work waited for did not pass: nothing is sent (the test is BLOCKED and reads nothing)."""


class TargetWork:
    """What a suite module's ``prefetch_for_target`` works from: one target, its settings and DNS answer,
    and -- waited for, None without a cluster -- the cluster view and reads of its namespace and the
    target's Service as the ``target_service`` fixture finds it."""

    def __init__(
        self,
        prefetcher: Prefetcher,
        target: Any,
        settings: Any,
        dns: Any,
        pending: Callable[[], bool] | None = None,
    ) -> None:
        self.prefetcher = prefetcher
        # Work behind several gates starts once the first passed; this waits for the others (False: one
        # failed) before anything is sent.
        self._pending = pending
        self.target = target
        self.settings = settings
        self.dns = dns
        self.shared = prefetcher.shared
        self.app_config = prefetcher.app_config
        self._lock = threading.Lock()
        self._service: Any = None
        self._service_read = False

    def cluster(self) -> Any:
        self._wait_for_gates()
        connection = self.prefetcher.connection()
        return None if connection is None else connection.in_namespace(self.settings.namespace)

    def cluster_reads(self) -> Any:
        from .cluster_reads import ClusterReads

        cluster = self.cluster()
        return None if cluster is None else ClusterReads(cluster, self.shared)

    def target_service(self) -> Any:
        """The target's Service (``target_service.find_target_service``), found once per target."""
        with self._lock:
            if not self._service_read:
                self._service_read = True
                reads = self.cluster_reads()
                if reads is not None:
                    from .target_service import find_target_service

                    dns = self.dns
                    self._service = find_target_service(
                        reads, self.target, self.settings, lambda: dns.addresses
                    )
            return self._service

    @contextlib.contextmanager
    def session(self) -> Iterator[Any]:
        """A ``TargetSession`` to the target for this work alone, kept for the target's next work: a flow
        that waits for the database gate reuses the connection the database's health request opened, as
        the ``http`` fixture's one session serves every test of a target. Closed by ``Prefetcher.stop()``."""
        dns = self.dns
        with self.prefetcher.target_session(
            self.target, lambda: target_session(self.target, self.settings, lambda: dns)
        ) as http:
            if self._pending is not None:
                # The handshakes while the last gates are decided: a connection, not a request.
                with contextlib.suppress(Exception):
                    http.preconnect()
                self._wait_for_gates()
            yield http

    def _wait_for_gates(self) -> None:
        if self._pending is not None and not self._pending():
            raise _GateFailed()

    def preconnect(self) -> None:
        """A target session whose connection is opened now (handshakes only, nothing sent), left idle for
        the first work behind gates: that work's first request then costs one round trip, not two or
        three, when its gates pass."""
        with self.session() as http:
            http.preconnect()

    def flow(self, key: str, compute: Callable[[Any], Any]) -> None:
        """``compute(http)`` under ``key`` (read by the test with :func:`flow`), on a target session."""
        with self.session() as http:
            flow_outcome(self.shared, key, lambda: compute(http))

    def health(self, **options: Any) -> list[Any]:
        """``probe.health(**options)`` ahead of the test: the same key, so the test reads this answer."""
        self._wait_for_gates()
        dns = self.dns
        return health_results(self.target, self.settings, self.shared, lambda: dns, **options)[1]


class Prefetcher:
    """A bounded pool probing targets ahead of their tests. ``stop()`` waits for nothing: a probe in
    flight ends within its own timeout, its thread is a daemon, and its result is simply not read."""

    def __init__(
        self,
        shared: Any,
        concurrency: int,
        *,
        authoritative_port: int | None = None,
        per_target: Sequence[Callable[[TargetWork], Any]] = (),
        app_config: Any = None,
        after_gates: Sequence[tuple[Callable[[TargetWork], Any], tuple[str, ...]]] = (),
        gates: Any = None,
    ) -> None:
        self.shared = shared
        self.app_config = app_config  # the [tool.reachability.<section>] tables
        # (prefetch_for_target, the gates it waits for) of modules whose work is behind gates
        self.after_gates = list(after_gates)
        self.gates = gates  # GateWatch: the session's gate plan and outcomes
        self._sessions: dict[str, list[Any]] = {}  # target -> idle TargetSessions of work after gates
        self._gated = ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="reachability-after-gates")
        self.authoritative_port = authoritative_port  # where the zone's authoritative servers answer
        self.per_target = list(per_target)  # the suite modules' prefetch_for_target functions
        self._pool = ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="reachability-prefetch")
        self._futures: list[Future] = []
        self._stopped = threading.Event()
        self._connection: Any = None  # the session's cluster connection, closed by stop()
        self._guard = threading.Lock()  # the connection is handed over or closed, never both
        self._connected = threading.Event()  # set once the connection is made or found impossible
        self._connected.set()  # until start() is given a cluster

    def start(self, targets: Iterable[tuple[Any, Any]], cluster: tuple[Any, list[Any]] | None = None) -> None:
        """Probe each ``(target, settings)``, in order (the order the tests will want them); ``cluster`` is
        (the run's settings, the namespaces to read) when the suite will read the cluster."""
        if cluster is not None:
            self._connected.clear()
            start_background(self._read_cluster, "reachability-prefetch-cluster", cluster)
        targets = list(targets)
        for target, settings in targets:
            self._futures.append(self._pool.submit(self._warm, target, settings))
        if self.gates is not None:
            for target, settings in targets:
                for read, gates in self.after_gates:
                    self._futures.append(self._gated.submit(self._after_gates, target, settings, read, gates))

    @contextlib.contextmanager
    def target_session(self, target: Any, make: Callable[[], Any]) -> Iterator[Any]:
        """An idle session to ``target`` (else a new one from ``make``), taken for the block's time."""
        with self._guard:
            idle = self._sessions.setdefault(target.display, [])
            session = idle.pop() if idle else None
        session = session or make()
        try:
            yield session
        finally:
            with self._guard:
                stopped = self._stopped.is_set()
                if not stopped:
                    self._sessions[target.display].append(session)
            if stopped:
                session.close()

    def gate_recorded(self) -> None:
        """A gate test's outcome was recorded in this process: work waiting for that gate looks again."""
        if self.gates is not None:
            self.gates.changed()

    def _after_gates(self, target: Any, settings: Any, read: Callable[[TargetWork], Any], gates: Any) -> None:
        """Once ``gates`` have passed for this target, the module's work (writes included): what its tests
        would do first once unblocked, started as soon as they may be, not when the test's turn comes."""
        # Behind several gates, the module starts once the first ones passed: what it will send waits for
        # the last (TargetWork._wait_for_gates), but its connection is opened meanwhile.
        first = tuple(gates[:-1]) or tuple(gates)
        if self._stopped.is_set() or not self.gates.passed(target, first, self._stopped):
            return

        def pending() -> bool:  # at once when decided
            return self.gates.passed(target, gates, self._stopped)

        with evidence_mod.suppressed():
            try:
                report = dns_report(target, settings, self.shared)
                work = TargetWork(self, target, settings, report, pending if first != tuple(gates) else None)
                _quietly(lambda: read(work))
            except Exception:  # noqa: BLE001 - the test asking for it computes it again and reports why
                return

    def connection(self) -> Any:
        """The session's cluster connection (``Cluster``), None when there is none: the tests share it, so
        its pooled connections, opened by the reads here, are not opened again. Closed by ``stop()``."""
        self._connected.wait(CONNECT_BOUND)
        return self._connection

    def _read_cluster(self, settings: Any, namespaces: list[Any]) -> None:
        from .cluster import Cluster
        from .cluster_reads import ClusterReads

        try:
            try:
                connection = Cluster.from_settings(settings, preconnect=session_start_reads(len(namespaces)))
            except Exception:  # noqa: BLE001 - not configured or unreachable: the tests say so themselves
                return
            with self._guard:
                if self._stopped.is_set():
                    connection.close()
                    return
                self._connection = connection
        finally:
            self._connected.set()
        views = [ClusterReads(connection.in_namespace(namespace), self.shared) for namespace in namespaces]
        with evidence_mod.suppressed():
            run_together(
                [
                    lambda: cluster_version(connection, self.shared),
                    *(lambda view=view: namespace_access(view.cluster, self.shared) for view in views),
                    *(view.warm for view in views),
                    *(
                        lambda view=view: cluster_changes(view.cluster, view.namespace, self.shared)
                        for view in views
                    ),
                ]
            )

    def _warm(self, target: Any, settings: Any) -> None:
        if self._stopped.is_set():
            return
        with evidence_mod.suppressed():
            try:
                report = dns_report(target, settings, self.shared)
                addresses = [target.host] if target.is_ip else list(report.addresses)
                work: list[Callable[[], Any]] = [
                    lambda: health_results(target, settings, self.shared, lambda: report),
                ]
                if not target.is_ip and self.authoritative_port is not None:
                    port = self.authoritative_port
                    work.append(lambda: propagation_report(target, settings, port, self.shared))
                if addresses:
                    work.append(lambda: tcp_results(target, addresses, settings, self.shared))
                    if target.scheme == "https":
                        work.append(lambda: tls_results(target, addresses, settings, self.shared))
                ahead = TargetWork(self, target, settings, report)
                work += [lambda read=read: read(ahead) for read in self.per_target]
                if self.after_gates and self.gates is not None:
                    work.append(ahead.preconnect)
                run_together(work)
            except Exception:  # noqa: BLE001 - the test asking for it computes it again and reports why
                return

    def stop(self) -> None:
        """At session end, after the tests (and their fixtures) are done with the connection."""
        self._stopped.set()
        for future in self._futures:
            future.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._gated.shutdown(wait=False, cancel_futures=True)
        if self.gates is not None:
            self.gates.changed()  # what waits for a gate sees the stop
        with self._guard:
            connection, self._connection = self._connection, None
            sessions = [session for idle in self._sessions.values() for session in idle]
            self._sessions.clear()
        for session in sessions:
            session.close()
        if connection is not None:
            # Its credentials folder goes now; a read still in flight fails on its own and is not read.
            connection.close()
        join_background()


def run_together(work: list[Callable[[], Any]]) -> None:
    """Run each piece of work at the same time, each bounded by its own probe or cluster timeout; a piece
    that fails is left for the test that asks, which does it again and reports why."""
    if not work:
        return
    threads = [start_background(_quietly, "reachability-prefetch-probe", (piece,)) for piece in work[1:]]
    _quietly(work[0])
    for thread in threads:
        thread.join(timeout=JOIN_BOUND)  # each probe ends within its own timeout; this only bounds the wait


def _quietly(piece: Callable[[], Any]) -> None:
    with evidence_mod.suppressed():
        try:
            piece()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:  # noqa: BLE001 - see Prefetcher._warm (a skip or fail outcome included)
            pass
