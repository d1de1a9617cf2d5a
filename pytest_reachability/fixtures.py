"""The public fixtures: what a test of the built-in suite or a user's own test asks for.

``target``, ``dns``, ``probe``, ``http``, ``cluster``, ``cluster_reads``, ``target_service`` and
``evidence`` are registered by the plugin, so any test file can ask for them; they read like the
checks an engineer runs by hand::

    def test_every_address_answers(probe):
        for result in probe.health():
            assert result.ok, f"{result.address}: {result.summary} -- reproduce: {result.curl}"

    def test_resolvers_agree(dns):
        assert dns.agree, [(a.resolver, a.addresses) for a in dns.answers]

    @pytest.mark.requires("api-health")
    def test_orders_endpoint(http):
        assert http.get("/orders").status_code == 200

    def test_no_crashing_pods(cluster):
        crashing = [p.name for p in cluster.pods() if "CrashLoopBackOff" in p.waiting_reasons]
        assert not crashing, f"pods in CrashLoopBackOff: {crashing}"

    def test_api_service_has_ready_pods(target_service, evidence):
        evidence.record("target_service", target_service)
        assert [pod.name for pod in target_service.pods if pod.ready], target_service.why

The expensive probes are session-scoped; under pytest-xdist their results are computed by the
first worker that needs them and shared with the others through the session's shared directory.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from . import evidence as evidence_mod
from . import prefetch
from .atomic import write_atomically
from .evidence import Evidence
from .state import running

if TYPE_CHECKING:
    from collections.abc import Iterator

    from .appconfig import AppConfig
    from .cluster import Cluster
    from .cluster_reads import ClusterReads
    from .config import Settings, Target, TargetSpec
    from .http_session import TargetSession
    from .probes.dns import DnsReport
    from .probes.http import ProbeResult
    from .target_service import TargetService

T = TypeVar("T")


class SharedResults:
    """Results computed once per session and shared by every xdist worker.

    A result is pickled into the session's shared directory under an exclusive file lock: the first
    worker computes it, the others wait on the lock and read it. Without a directory (serial run),
    results are kept in memory.
    """

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory / "shared" if directory is not None else None
        self._memory: dict[str, Any] = {}
        self._claimed: set[str] = set()  # results this process has claimed (or seen claimed)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)

    def get(self, key: str, compute: Callable[[], T]) -> T:
        if key in self._memory:
            return self._memory[key]
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        # One computation per key in this process, even with a prefetch thread asking at the same time.
        with lock:
            if key in self._memory:
                return self._memory[key]
            value = self._compute(key, compute)
            self._memory[key] = value
            return value

    def claim(self, key: str) -> bool:
        """True once per session for each result: its first reader records it as evidence, whichever
        process (xdist worker, prefetch) computed it -- as when the first test to need it computed it."""
        with self._guard:
            if key in self._claimed:
                return False
            self._claimed.add(key)
        if self.directory is None:
            return True
        name = hashlib.sha1(key.encode()).hexdigest()[:24]
        try:  # one marker per result for the whole session: the first worker to create it records
            os.close(os.open(self.directory / f"{name}.claimed", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            return False
        except OSError:
            return True  # no marker can be written: record here rather than nowhere
        return True

    def _compute(self, key: str, compute: Callable[[], T]) -> T:
        if self.directory is None:
            return compute()
        import fcntl  # only needed with xdist's shared directory (POSIX)

        name = hashlib.sha1(key.encode()).hexdigest()[:24]
        path = self.directory / f"{name}.pickle"
        with open(self.directory / f"{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if path.exists():
                    try:
                        return pickle.loads(path.read_bytes())
                    except Exception:  # unreadable: compute it here instead
                        pass
                value = compute()
                try:
                    write_atomically(path, pickle.dumps(value))
                except Exception:  # not picklable: every worker computes its own
                    pass
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        return value


@pytest.fixture
def evidence() -> Evidence:
    """Facts this test saw, attached to its report: ``evidence.record("dns", {...})``."""
    # The running test's, which the plugin attaches to the test before its fixtures are set up. (No
    # ``request`` argument: pytest makes a fixture definition for it on every test that uses it.)
    found = evidence_mod.current()
    return found if found is not None else Evidence()  # an empty one is falsy


@pytest.fixture(scope="session")
def reachability_target() -> TargetSpec | None:
    """The target a test verifies, with its own namespace, health path and Service (a ``TargetSpec``).

    A run of several targets parametrizes every test that depends on it, one instance per target (the
    node id carries the target: ``test_target_resolves[svc-001.example.com]``); a run of one target
    does not, and its node ids stay as they are.
    """
    targets = running().settings.targets
    return targets[0] if targets else None


@pytest.fixture(scope="session")
def reachability_namespace() -> str | None:
    """The namespace a test reads: the run's (``--namespace``; None is the kubeconfig's default), or,
    in a run of several targets, the namespace of the test's target; cluster-wide checks run once per
    namespace of the run."""
    settings = running().settings
    own = settings.targets[0].namespace if len(settings.targets) == 1 else None
    return own or settings.namespace


@pytest.fixture(scope="session")
def run_settings() -> Settings:
    """The run's settings, the same for every target: for checks that are not about one target."""
    return running().settings


@pytest.fixture(scope="session")
def reachability_settings(reachability_target: TargetSpec | None) -> Settings:
    """The settings in force (CLI > environment > file), validated; ``--sandbox`` values filled in; in a
    run of several targets, those of the test's target (its namespace, health path and Service)."""
    return settings_for(running().settings, reachability_target)


def settings_for(settings: Settings, spec: TargetSpec | None) -> Settings:
    """``settings`` as they apply to the target ``spec``: its own values win over the run's."""
    import dataclasses

    if spec is None or (
        len(settings.targets) <= 1 and spec.target == settings.target and spec.origin != "file"
    ):
        return settings
    tables = settings.tables
    if spec.service:
        tables = {**tables, "cluster": {**tables.get("cluster", {}), "service": spec.service}}
    return dataclasses.replace(
        settings,
        target=spec.target,
        targets=[spec],
        namespace=spec.namespace or settings.namespace,
        health_path=spec.health_path or settings.health_path,
        tables=tables,
    )


@pytest.fixture(scope="session")
def shared_results() -> SharedResults:
    """Session-wide results shared across xdist workers (see :class:`SharedResults`)."""
    return running().shared


@pytest.fixture(scope="session")
def target(reachability_settings: Settings) -> Target:
    """The service under verification (``--target``); skips the test when none is configured.

    Example::

        def test_target_is_https(target):
            assert target.scheme == "https", f"{target.display} is served over {target.scheme}"
    """
    if reachability_settings.target is None:
        pytest.skip("no target configured: pass --target HOST or set target in [tool.reachability]")
    return reachability_settings.target


@pytest.fixture(scope="session")
def dns(target: Target, reachability_settings: Settings, shared_results: SharedResults) -> DnsReport:
    """The target's name resolved on every configured resolver, concurrently (a ``DnsReport``).

    Example::

        def test_name_resolves(dns):
            assert dns.addresses, f"{dns.name} did not resolve: {[a.error for a in dns.answers]}"
    """

    return resolved(target, reachability_settings, shared_results)


def resolved(target: Target, settings: Settings, shared_results: SharedResults) -> DnsReport:
    """The ``dns`` fixture's value, recorded as evidence by the first test that asks for it. Fixtures that
    resolve only when needed call this rather than ``request.getfixturevalue("dns")``: a fixture taking
    ``request`` costs pytest a new fixture definition on every test that uses it."""
    report = prefetch.dns_report(target, settings, shared_results)
    if shared_results.claim(prefetch.dns_key(target, settings)):
        evidence_mod.record("dns", report)
    return report


class Prober:
    """Layered DNS -> TCP -> TLS -> HTTP probes of the target, one result per address, cached per session.

    Example::

        def test_loadbalancer_answers(probe, cluster):
            addresses = [a for s in cluster.services() for a in s.lb_addresses]
            for result in probe.health(addresses=addresses):
                assert result.ok, result.summary
    """

    def __init__(
        self, target: Target, settings: Settings, shared: SharedResults, dns_report: Callable[[], DnsReport]
    ) -> None:
        self.target = target
        self.settings = settings
        self.shared = shared
        self._dns_report = dns_report

    def health(
        self,
        *,
        path: str | None = None,
        addresses: Iterable[str] | None = None,
        extra_addresses: Iterable[str] = (),
        expect_status: Any = None,
        expect_body: Any = None,
    ) -> list[ProbeResult]:
        """Probe ``path`` (default the health path) on every address.

        The addresses are the resolved ones (or ``addresses``) plus ``extra_addresses``."""
        checks: dict[str, Any] = {}
        if expect_status is not None:
            checks["expect_status"] = expect_status
        if expect_body is not None:
            checks["expect_body"] = expect_body
        key, results = prefetch.health_results(
            self.target,
            self.settings,
            self.shared,
            self._dns_report,
            path=path,
            addresses=None if addresses is None else list(addresses),
            extra=list(extra_addresses),
            checks=checks,
        )
        if self.shared.claim(key):
            for result in results:
                evidence_mod.record("http_probe", result)
        return results

    __call__ = health


@pytest.fixture(scope="session")
def probe(
    target: Target,
    reachability_settings: Settings,
    shared_results: SharedResults,
) -> Prober:
    """Per-address health probes of the target (see :class:`Prober`)."""
    return Prober(
        target,
        reachability_settings,
        shared_results,
        lambda: resolved(target, reachability_settings, shared_results),
    )


@pytest.fixture(scope="session")
def http(
    target: Target, reachability_settings: Settings, shared_results: SharedResults
) -> Iterator[TargetSession]:
    """A ``requests.Session`` bound to the target's base URL: ``http.get("/orders")``.

    Timeouts default to the probe timeout; only connection errors are retried (never a request that
    reached the server); every response is recorded as evidence of the test that made it. When
    resolvers other than the OS's are configured, the session connects to the first address they
    answer (curl ``--resolve`` semantics).
    """
    session = prefetch.target_session(
        target, reachability_settings, lambda: resolved(target, reachability_settings, shared_results)
    )
    yield session
    session.close()


@pytest.fixture(scope="session")
def reachability_cluster_connection(run_settings: Settings) -> Iterator[Cluster]:
    """The session's one connection to the cluster (credentials loaded once); ``cluster`` views it per
    namespace. With the built-in suite it is the one its reads started on at session start (``prefetch``),
    closed at session end."""
    from .cluster import Cluster, ClusterError, ClusterErrorKind

    prefetcher = running().prefetcher
    shared = prefetcher.connection() if prefetcher is not None else None
    if shared is not None:
        yield shared
        return
    settings = run_settings
    try:
        view = Cluster.from_settings(settings)
    except ClusterError as exc:
        if exc.kind is ClusterErrorKind.NOT_CONFIGURED:
            pytest.skip(f"cluster not configured: {exc.message} (pass --kubeconfig or --sandbox)")
        raise
    yield view
    view.close()


@pytest.fixture(scope="session")
def cluster(reachability_cluster_connection: Cluster, reachability_namespace: str | None) -> Cluster:
    """Read-only view of the cluster (``pytest_reachability.cluster.Cluster``) in the test's namespace.

    Skips when none is configured."""
    return reachability_cluster_connection.in_namespace(reachability_namespace)


@pytest.fixture(scope="session")
def app_config() -> AppConfig:
    """The validated application sections (``[tool.reachability.<section>]`` tables)."""
    return running().app_config


@pytest.fixture(scope="session")
def cluster_reads(cluster: Cluster, shared_results: SharedResults) -> ClusterReads:
    """The namespace's objects, each kind read once per run and shared by xdist workers.

    A refused read skips the asking test, a failed one fails it. See
    :class:`~pytest_reachability.cluster_reads.ClusterReads`.

    Example::

        def test_every_deployment_is_available(cluster_reads):
            short = [d.name for d in cluster_reads.deployments() if d.available < d.desired]
            assert not short, f"Deployments below their desired replicas: {short}"
    """
    from .cluster_reads import ClusterReads

    return ClusterReads(cluster, shared_results)


@pytest.fixture(scope="session")
def target_service(
    cluster_reads: ClusterReads,
    target: Target,
    reachability_settings: Settings,
    shared_results: SharedResults,
) -> TargetService:
    """Which Service of the namespace is the target's, how that was decided, and its pods, LoadBalancers
    and Ingresses (see :mod:`pytest_reachability.target_service`).

    Example::

        def test_api_runs_two_pods(target_service):
            assert target_service.found, target_service.why
            assert len(target_service.pods) >= 2, [pod.name for pod in target_service.pods]
    """
    from .target_service import find_target_service

    return find_target_service(
        cluster_reads,
        target,
        reachability_settings,
        lambda: resolved(target, reachability_settings, shared_results).addresses,
    )
