"""A local deployment to verify against: DNS servers, a Kubernetes API server and edges, from a scenario.

Example::

    with Sandbox("incident-2025-12-08") as info:
        info.target       # 'http://97v.test:41234' (every edge listens on that port)
        info.resolvers    # ['127.0.0.1:40001'], one DNS server per resolver of the scenario
        info.kubeconfig   # path of a kubeconfig for the sandbox's API server
        info.ca_bundle    # CA that signed the edges' and the API server's certificates
        info.application  # the scenario's application tables ([tool.reachability.<table>] shape)
        info.database_dsn # DSN of the sandbox's real PostgreSQL, or None (database simulated)
        info.application_environment()  # {'REACHABILITY_DATABASE_DSN': 'postgresql://...'} for dsn-env

Where the machine has PostgreSQL's server binaries and the psycopg driver (and the scenario does not
say ``postgres: false``), the sandbox starts a throwaway PostgreSQL (``postgres.py``) beside the other
servers; the API checks it and stores results in it. Otherwise the database is simulated and
``info.database`` says why. A scenario's ``postgres: {state: ...}`` makes it fail on purpose: ``down``
(nothing listens at the DSN's address), ``slow`` (a proxy holds every answer), ``wrong_password`` or
``missing_database`` (the API and the exported DSN both get the failing DSN).

Everything listens on loopback only; :meth:`Sandbox.stop` closes every socket, joins every thread
and removes the state directory. The servers are threads of this process and end with it; PostgreSQL
and the state directory are also guarded by :mod:`pytest_reachability.watchdog`, so a process killed
without a chance to stop the sandbox (SIGKILL) leaves neither behind.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import watchdog
from ..k8s import containers_ports, find_service_port, port_declared, service_selects
from . import apiserver, timed
from . import postgres as postgres_mod
from .app import ApiApplication
from .certs import SandboxCertificates, write_sandbox_certificates
from .control_plane import ControlPlaneUnavailable, find_binaries, unavailable_message
from .control_plane_sandbox import RealApiServer
from .dns_server import DnsServer
from .edges import EdgeGroup, EdgeServer, server_tls_context
from .scenario import EdgeSpec, Scenario, ScenarioError, list_scenarios, load_scenario, scenario_names

__all__ = [
    "Sandbox",
    "SandboxInfo",
    "Scenario",
    "ScenarioError",
    "list_scenarios",
    "load_scenario",
    "scenario_names",
]

_log = logging.getLogger(__name__)

CONTEXT_NAME = "sandbox"
APISERVER_KINDS = ("embedded", "real")


@dataclass(frozen=True)
class SandboxInfo:
    """What a client needs to point at a running sandbox (plain data: survives JSON and xdist)."""

    scenario: str
    target: str
    namespace: str
    resolvers: list[str]
    ca_bundle: str
    kubeconfig: str | None
    context: str
    api_url: str | None
    edge_port: int
    state_dir: str
    edges: dict[str, str] = field(default_factory=dict)  # address -> behaviour
    application: dict[str, Any] = field(default_factory=dict)  # [tool.reachability.<table>] tables
    database_dsn: str | None = None  # the real PostgreSQL's DSN; None when the database is simulated
    database: str = "simulated"  # what serves the API's database, or why it is simulated
    authoritative_port: int | None = (
        None  # port of the zone's authoritative servers (dns.authoritative), if any
    )
    authoritative_servers: list[str] = field(default_factory=list)  # their ADDR:PORT

    def application_environment(self) -> dict[str, str]:
        """The variable the database table's ``dsn-env`` names, holding the sandbox PostgreSQL's DSN.

        Empty when no PostgreSQL runs or the scenario names no ``dsn-env``. The plugin sets these for
        the session (controller and workers) so the direct database check finds the DSN where a
        user's CI would put it.
        """
        database = self.application.get("database") if isinstance(self.application, dict) else None
        name = database.get("dsn-env") if isinstance(database, dict) else None
        if not self.database_dsn or not isinstance(name, str) or not name:
            return {}
        return {name: self.database_dsn}

    def environment(self) -> dict[str, str]:
        """The ``REACHABILITY_*`` / ``KUBECONFIG`` variables that point the tool at this sandbox."""
        env = {
            "REACHABILITY_TARGET": self.target,
            "REACHABILITY_NAMESPACE": self.namespace,
            "REACHABILITY_RESOLVERS": ",".join(self.resolvers),
            "REACHABILITY_CA_BUNDLE": self.ca_bundle,
        }
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = self.kubeconfig
        return env

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SandboxInfo:
        return cls(**data)


class Sandbox:
    """One running world from a scenario; a context manager yielding :class:`SandboxInfo`."""

    def __init__(
        self,
        scenario: str | Path | Scenario,
        *,
        io_timeout: float = 5.0,
        postgres: bool | None = None,
        apiserver: str = "embedded",
        control_plane: Any = None,
    ) -> None:
        """``postgres``: run a real PostgreSQL (True), never (False), or as the scenario says (None).

        ``apiserver``: ``embedded`` (the sandbox's own server) or ``real`` (kube-apiserver and etcd built by
        tools/control-plane/build, see control_plane.py); ``control_plane``: a running ControlPlane to load
        the scenario into (it is cleared, not stopped, when the sandbox stops).
        """
        if apiserver not in APISERVER_KINDS:
            raise ValueError(f"apiserver must be one of {', '.join(APISERVER_KINDS)}, not {apiserver!r}")
        self.scenario = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        self.apiserver_kind = "real" if control_plane is not None else apiserver
        if self.apiserver_kind == "real" and any(
            change.objects or change.remove for change in self.scenario.changes
        ):
            raise ScenarioError(
                f"{self.scenario.name}: changes of Kubernetes objects are applied by the embedded API "
                "server only (--sandbox-apiserver embedded)"
            )
        if self.apiserver_kind == "real" and self.scenario.latency.apiserver:
            raise ScenarioError(
                f"{self.scenario.name}: latency.apiserver is added by the embedded API server only "
                "(--sandbox-apiserver embedded)"
            )
        if self.apiserver_kind == "real" and control_plane is None and find_binaries() is None:
            raise ControlPlaneUnavailable(unavailable_message())  # before any server starts
        self.real: RealApiServer | None = None
        self._shared_control_plane = control_plane
        self.io_timeout = io_timeout
        self.want_postgres = self.scenario.postgres if postgres is None else postgres
        self.postgres: postgres_mod.PostgresServer | None = None
        self.database: postgres_mod.SandboxDatabase | None = None
        self.app: ApiApplication | None = None
        self.info: SandboxInfo | None = None
        self.dns_servers: dict[str, DnsServer] = {}
        self.authoritative: list[timed.AuthoritativeServer] = []
        self.changes: timed.ChangeScheduler | None = None
        self.edges: EdgeGroup | None = None
        self.in_cluster: EdgeServer | None = None
        self.api: Any = None
        self.certificates: SandboxCertificates | None = None
        self._refusing_socket: socket.socket | None = None
        self._database_refusing_socket: socket.socket | None = None
        self.delay_proxy: postgres_mod.DelayProxy | None = None
        self._state_dir: str | None = None
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> SandboxInfo:
        with self._lock:
            if self.info is not None:
                return self.info
            try:
                self.info = self._start()
            except BaseException:
                # The start error is the one to report; a component that also fails to stop is logged.
                self._stop(raise_first=False)
                raise
            return self.info

    def stop(self) -> None:
        with self._lock:
            self._stop()

    def __enter__(self) -> SandboxInfo:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _start(self) -> SandboxInfo:
        scenario = self.scenario
        self._state_dir = tempfile.mkdtemp(prefix=f"reachability-sandbox-{scenario.name}-")
        # It will hold private keys and a kubeconfig with a token: removed even if this process is killed.
        watchdog.guard_directory(self._state_dir)
        state = Path(self._state_dir)
        # PostgreSQL's initdb takes 0.6-4 s (idle to busy machine): it runs while the other servers start.
        database_start = self._start_postgres()
        self.certificates = certificates = write_sandbox_certificates(state / "pki", scenario.target.host)

        if scenario.authoritative is not None:
            self.authoritative = timed.start_authoritative(scenario.authoritative, self.io_timeout)
            for authoritative in self.authoritative:
                authoritative.latency = scenario.latency.dns
        for resolver in scenario.resolvers:
            if resolver.cache:
                upstreams = [(server.host, server.port) for server in self.authoritative]
                server = timed.CachingResolver(upstreams, name=resolver.name, io_timeout=self.io_timeout)
            else:
                server = DnsServer(resolver.records, name=f"dns {resolver.name}", io_timeout=self.io_timeout)
            server.latency = scenario.latency.dns
            self.dns_servers[resolver.name] = server
            server.start()

        self.app = app = ApiApplication()
        self.in_cluster = EdgeServer(
            "127.0.0.1",
            scenario.in_cluster,
            app=app,
            io_timeout=self.io_timeout,
            name="in-cluster backend",
            health=scenario.in_cluster_health,
            target_host=scenario.target.host,
        )
        self.in_cluster.start()
        # Where the service proxy lands when a Service's targetPort matches no container port: a bound,
        # non-listening socket, so the connection is refused as it would be by the pod.
        self._refusing_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._refusing_socket.bind(("127.0.0.1", 0))

        edges = []
        for spec in scenario.edges:
            tls = self._edge_tls_context(spec) if spec.tls is not None else None
            edges.append(
                EdgeServer(
                    spec.address,
                    spec.behaviour,
                    app=app,
                    hosts=spec.hosts,
                    tls_context=tls,
                    io_timeout=self.io_timeout,
                    health=spec.health,
                    target_host=scenario.target.host,
                    headers=spec.headers,
                    server=spec.server,
                    plain_http=spec.plain_http,
                    latency=scenario.latency.edges,
                )
            )
        self.edges = EdgeGroup(edges)
        port = self.edges.start()
        if not edges:
            port = _free_port()

        kubeconfig = str(state / "kubeconfig")
        if self.apiserver_kind == "real":
            self.real = RealApiServer(
                scenario,
                certificates,
                control_plane=self._shared_control_plane,
                in_cluster=("127.0.0.1", self.in_cluster.port),
                refusing=self._refusing_socket.getsockname(),
            )
            api_url = self.real.start(kubeconfig, context=CONTEXT_NAME)
        else:
            token = secrets.token_urlsafe(32)
            try:
                self.api = apiserver.scenario_server(
                    scenario,
                    token,
                    certificates,
                    host="127.0.0.1",
                    backend_for_service=self.backend_for_service,
                    latency=scenario.latency.apiserver,
                )
            except ValueError as error:  # a manifest the sandbox's API server cannot hold (an unserved kind)
                raise ScenarioError(f"{scenario.name}: kubernetes.objects: {error}") from None
            self.api.start()
            api_url = self.api.url
            apiserver.write_kubeconfig(
                kubeconfig,
                server_url=api_url,
                ca_file=certificates.ca_file,
                token=token,
                context=CONTEXT_NAME,
                namespace=scenario.namespace,
            )
        database_dsn, database = database_start()
        for server in self.dns_servers.values():
            if isinstance(server, timed.CachingResolver):
                server.prime([scenario.target.host], zone=scenario.authoritative.zone)
        self.changes = timed.ChangeScheduler(scenario.changes, self._apply_change)
        self.changes.start()
        return SandboxInfo(
            scenario=scenario.name,
            target=scenario.target.url(port),
            namespace=scenario.namespace,
            resolvers=[self.dns_servers[resolver.name].address for resolver in scenario.resolvers],
            ca_bundle=certificates.ca_file,
            kubeconfig=kubeconfig,
            context=CONTEXT_NAME,
            api_url=api_url,
            edge_port=port,
            state_dir=self._state_dir,
            edges={
                spec.address: str(spec.behaviour) + (f" tls:{spec.tls}" if spec.tls else "")
                for spec in scenario.edges
            },
            application=dict(scenario.application),
            database_dsn=database_dsn,
            database=database,
            authoritative_port=self.authoritative[0].port if self.authoritative else None,
            authoritative_servers=[server.address for server in self.authoritative],
        )

    def _edge_tls_context(self, spec: EdgeSpec) -> ssl.SSLContext:
        """The edge's TLS context: the target's certificate of its kind, and for a handshake naming one of its
        hosts that host's own, or the one certificate its ``tls_hosts`` kind shares among its hosts."""
        certificates = self.certificates
        assert certificates is not None and spec.tls is not None
        overridden = dict(spec.tls_hosts)
        sharing: dict[str, list[str]] = {}  # kind -> the hosts of tls_hosts sharing its certificate
        for host, kind in spec.tls_hosts:
            sharing.setdefault(kind, []).append(host)
        by_host = {}
        for host in spec.hosts or ():
            if host in overridden:
                files = certificates.for_hosts(overridden[host], *sharing[overridden[host]])
            elif host != self.scenario.target.host:
                files = certificates.for_hosts(spec.tls, host)
            else:
                continue  # the default certificate below
            by_host[host] = server_tls_context(files.cert_file, files.key_file)
        default = certificates.edges[spec.tls]
        return server_tls_context(default.cert_file, default.key_file, by_host)

    def _apply_change(self, change: timed.ChangeSpec) -> None:
        timed.apply_change(
            change,
            authoritative=self.authoritative,
            resolvers=self.dns_servers,
            edges=self.edges.edges if self.edges is not None else [],
            on_objects=self._replace_objects,
        )

    def _replace_objects(self, added: list[dict], removed: list[str]) -> None:
        if self.api is None:
            raise ValueError("kubernetes changes are applied to the embedded API server only")
        self.scenario.objects = timed.replace_objects(self.scenario.objects, added, removed)
        timed.serve_objects(self.api, self.scenario.objects)

    def _start_postgres(self) -> Callable[[], tuple[str | None, str]]:
        """Start PostgreSQL on a thread; the returned callable waits for it and gives ``(dsn, description)``.

        A PostgreSQL that cannot run here leaves the database simulated, saying why; one that should run
        but fails to start fails the sandbox (CI must not pass on a simulated database by accident).
        """
        if not self.want_postgres:
            return lambda: (None, "simulated: the scenario says postgres: false")
        reason = postgres_mod.unavailable_reason()
        if reason is not None:
            return lambda: (None, f"simulated: {reason}")
        state = self.scenario.database
        self.postgres = server = postgres_mod.PostgresServer()
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                if state.state == "down":
                    # Nothing runs: the DSN's port is bound, not listening, so connections are refused.
                    self._database_refusing_socket = refusing = socket.socket(
                        socket.AF_INET, socket.SOCK_STREAM
                    )
                    refusing.bind(("127.0.0.1", 0))
                    port = refusing.getsockname()[1]
                    outcome["dsn"] = (
                        f"postgresql://{postgres_mod.APP_USER}:{secrets.token_urlsafe(18)}@127.0.0.1:{port}/"
                        f"{postgres_mod.APP_DATABASE}?connect_timeout=5"
                    )
                else:
                    outcome["dsn"] = server.start()
            except BaseException as error:  # noqa: BLE001 - re-raised on the starting thread
                outcome["error"] = error

        thread = threading.Thread(target=run, name="sandbox postgres start", daemon=True)
        thread.start()

        def finish() -> tuple[str | None, str]:
            thread.join(server.start_timeout + 5)
            if thread.is_alive():
                raise OSError(f"PostgreSQL did not start within {server.start_timeout:g}s")
            if "error" in outcome:
                raise OSError(f"PostgreSQL did not start: {outcome['error']}")
            dsn, description = outcome["dsn"], server.describe()
            if state.state == "slow":
                assert server.port is not None
                self.delay_proxy = postgres_mod.DelayProxy(("127.0.0.1", server.port), state.delay)
                dsn = postgres_mod.dsn_for_state(dsn, "slow", proxy_port=self.delay_proxy.start())
            elif state.state in ("wrong_password", "missing_database"):
                dsn = postgres_mod.dsn_for_state(dsn, state.state)
            if state.state == "down":
                description = "PostgreSQL down: nothing listens at the DSN's address"
            elif state.state != "running":
                description += f"; failing on purpose: {state.state}" + (
                    f" ({state.delay * 1000:g} ms per answer)" if state.state == "slow" else ""
                )
            # An application's own database check gives up sooner than a client would (2 s, libpq's minimum).
            timeout = self.io_timeout if state.state == "running" else 2.0
            self.database = postgres_mod.SandboxDatabase(dsn, timeout=timeout)
            assert self.app is not None
            self.app.attach_database(self.database)
            return dsn, description

        return finish

    def _stop(self, *, raise_first: bool = True) -> None:
        """Stop every component, each on its own: one that fails to stop must not leave the others running.

        The first failure is raised once all were tried (or only logged, with ``raise_first=False``);
        later ones are logged.
        """
        failures: list[Exception] = []
        changes, self.changes = self.changes, None
        if changes is not None:
            changes.stop()  # first: no change may land on a server being stopped

        def attempt(what: str, stop: Callable[[], object]) -> None:
            try:
                stop()
            except Exception as error:
                if failures or not raise_first:
                    _log.warning("sandbox: %s did not stop cleanly: %s", what, error)
                failures.append(error)

        for server in [self.edges, self.in_cluster, *self.dns_servers.values(), *self.authoritative]:
            if server is not None:
                attempt("a server", server.request_stop)
        api, self.api = self.api, None
        real, self.real = self.real, None
        edges, self.edges = self.edges, None
        in_cluster, self.in_cluster = self.in_cluster, None
        refusing_socket, self._refusing_socket = self._refusing_socket, None
        database, self.database = self.database, None
        postgres, self.postgres = self.postgres, None
        delay_proxy, self.delay_proxy = self.delay_proxy, None
        database_refusing, self._database_refusing_socket = self._database_refusing_socket, None
        dns_servers, self.dns_servers = self.dns_servers, {}
        authoritative, self.authoritative = self.authoritative, []
        self.app = None
        if api is not None:
            attempt("the Kubernetes API server", api.stop)
        if real is not None:
            attempt("the real control plane", real.stop)
        if edges is not None:
            attempt("the edge servers", edges.stop)
        if in_cluster is not None:
            attempt("the in-cluster backend", in_cluster.stop)
        if refusing_socket is not None:
            attempt("the refusing socket", refusing_socket.close)
        if database is not None:
            attempt("the database connection", database.close)
        if delay_proxy is not None:
            attempt("the database delay proxy", delay_proxy.stop)
        if database_refusing is not None:
            attempt("the database's refusing socket", database_refusing.close)
        if postgres is not None:
            attempt("PostgreSQL", postgres.stop)
        for name, server in dns_servers.items():
            attempt(f"DNS server {name}", server.stop)
        for server in authoritative:
            attempt(f"authoritative DNS server {server.host}", server.stop)
        if self._state_dir is not None:
            shutil.rmtree(self._state_dir, ignore_errors=True)
            watchdog.release_directory(self._state_dir)
            self._state_dir = None
        self.info = None
        if failures and raise_first:
            raise failures[0]

    # -- what the API server's service proxy reaches -------------------------------------------

    def backend_for_service(
        self, namespace: str, service_name: str, port: int | str
    ) -> tuple[str, int] | None:
        """The in-cluster address behind ``namespace/service_name:port``, as kube-proxy would pick it.

        None when the Service or the port does not exist or no pod is selected; the refusing address when
        the Service's targetPort is not a port of the selected pods' containers.
        """
        if self.in_cluster is None:
            return None
        service = next(
            (
                obj
                for obj in self.scenario.objects_of_kind("Service", namespace)
                if obj["metadata"]["name"] == service_name
            ),
            None,
        )
        if service is None:
            return None
        spec = service.get("spec") or {}
        service_port = find_service_port(spec.get("ports") or [], port)
        selector = spec.get("selector") or {}
        if service_port is None or not selector:
            return None
        target_port = service_port.get("targetPort", service_port.get("port"))
        pods = [
            pod
            for pod in self.scenario.objects_of_kind("Pod", namespace)
            if service_selects(selector, pod["metadata"].get("labels"))
        ]
        if not pods:
            return None
        if any(port_declared(target_port, containers_ports(pod)) for pod in pods):
            return ("127.0.0.1", self.in_cluster.port)
        assert self._refusing_socket is not None
        return ("127.0.0.1", self._refusing_socket.getsockname()[1])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
