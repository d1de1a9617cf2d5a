"""A real Kubernetes control plane on loopback: etcd and kube-apiserver, no kubelet, no controllers.

The binaries are built once by ``tools/control-plane/build`` into a cache folder keyed by their versions
(``~/.cache/pytest-reachability/control-plane/<kubernetes>-<etcd>/``); this module only starts what that
script produced. It is the peer the sandbox's own API server is compared with, and what
``--sandbox SCENARIO --sandbox-apiserver=real`` serves a scenario from.

Example::

    with ControlPlane() as plane:
        plane.kubeconfig("admin")           # system:masters
        plane.kubeconfig("nobody")          # authenticated, no rights
        plane.api("admin").get("/version")  # a small REST client (see control_plane_load.py)

kube-apiserver runs with RBAC authorization, a static token file (an admin in ``system:masters`` and the
users named in ``users``), ServiceAccount admission disabled (no controller creates the accounts' tokens),
an egress selector that sends every connection into the "cluster" (service proxy, pod logs) through
`EgressGuard` on loopback, so no address of a scenario is ever dialled,
service-account signing keys generated into the temporary folder, and an audit log of every request
(``audit_events()``), so a test can prove which requests were refused. etcd runs with
``--unsafe-no-fsync`` on a temporary data folder. Both children get a parent-death signal: if the
Python process dies (even by SIGKILL) the kernel kills them, so nothing is left behind; ``stop()`` ends
them by PID and removes the folder.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import json
import os
import secrets
import select
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .. import watchdog
from .certs import CertificateAuthority, KeyPairFiles

__all__ = [
    "BUILD_COMMAND",
    "ETCD_VERSION",
    "KUBERNETES_VERSION",
    "ControlPlane",
    "ControlPlaneError",
    "ControlPlaneUnavailable",
    "User",
    "binaries_dir",
    "find_binaries",
]

# The versions tools/control-plane/build builds (its `versions` file names the same; a test checks).
KUBERNETES_VERSION = "v1.37.2"
ETCD_VERSION = "v3.6.16"
BUILD_COMMAND = "tools/control-plane/build"
BINARIES_ENV = "REACHABILITY_CONTROL_PLANE_BIN"
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/12"  # kubeadm's default; scenarios' clusterIPs are usually inside
START_TIMEOUT = 120.0
STOP_TIMEOUT = 15.0
ADMIN = "admin"

_PR_SET_PDEATHSIG = 1
_AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived", "ResponseStarted"],
    "rules": [{"level": "Metadata"}],
}


class ControlPlaneError(OSError):
    """The control plane could not be started or did not answer."""


class ControlPlaneUnavailable(ControlPlaneError):
    """The binaries are not built; the message says how to build them."""


@dataclass(frozen=True)
class User:
    """A static-token user of the API server."""

    name: str
    token: str
    groups: tuple[str, ...] = ()


def binaries_dir() -> Path:
    """Where the build script puts (or put) the binaries of the pinned versions."""
    explicit = os.environ.get(BINARIES_ENV)
    if explicit:
        return Path(explicit).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "pytest-reachability" / "control-plane" / f"{KUBERNETES_VERSION}-{ETCD_VERSION}"


def find_binaries() -> Path | None:
    """The folder holding executable ``kube-apiserver`` and ``etcd``, or None when they are not built."""
    folder = binaries_dir()
    if all(os.access(folder / name, os.X_OK) for name in ("kube-apiserver", "etcd")):
        return folder
    return None


def unavailable_message() -> str:
    return (
        f"the real control plane (kube-apiserver {KUBERNETES_VERSION}, etcd {ETCD_VERSION}) is not built "
        f"in {binaries_dir()}: run {BUILD_COMMAND} once from a checkout (needs Go >= 1.26 and the Go "
        f"module proxy; about 15 minutes on 2 cores), or set {BINARIES_ENV} to a folder holding both"
    )


def _die_with_parent() -> None:
    """In the child before exec: the kernel sends SIGKILL when the parent dies (no orphans).

    The signal follows the thread that started the child: start a ControlPlane from a thread that lives as
    long as it should (the main thread, as pytest's hooks and fixtures do).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


Route = Callable[[str, int], "tuple[str, int] | None"]


class EgressGuard:
    """The HTTP CONNECT proxy kube-apiserver must use for every connection into the "cluster".

    Pods, nodes and Services of a loaded scenario have addresses such as 10.244.0.45 that exist nowhere
    here; kube-apiserver dials them for the service proxy and pod logs. Its egress selector sends all of
    that through this proxy, which records each destination and tunnels only to a loopback address that
    ``route(host, port)`` names; anything else is answered 503, so no packet leaves the machine.
    """

    def __init__(self, path: Path, route: Route | None = None, *, io_timeout: float = 10.0) -> None:
        """Listen on the Unix socket ``path`` (kube-apiserver's TCP transport for HTTP CONNECT needs TLS)."""
        self.route = route
        self.io_timeout = io_timeout
        self.path = path
        self.requests: list[tuple[str, int, str]] = []  # (host, port, "tunnelled" | "refused")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen(64)
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="egress-guard", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            thread = threading.Thread(
                target=self._serve, args=(connection,), name="egress-guard:conn", daemon=True
            )
            with self._lock:
                self._threads = [t for t in self._threads if t.is_alive()] + [thread]
                self._open.add(connection)
            thread.start()

    def _serve(self, connection: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            connection.settimeout(self.io_timeout)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 8192:
                chunk = connection.recv(4096)
                if not chunk:
                    return
                head += chunk
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            method, _, rest = request_line.partition(" ")
            target = rest.split(" ", 1)[0]
            host, _, port_text = target.rpartition(":")
            host = host.strip("[]")
            port = int(port_text) if port_text.isdigit() else 0
            route = self.route
            destination = route(host, port) if route and method == "CONNECT" else None
            if destination is None or not ipaddress.ip_address(destination[0]).is_loopback:
                self._record(host, port, "refused")
                connection.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
                return
            try:
                upstream = socket.create_connection(destination, timeout=self.io_timeout)
            except OSError:
                self._record(host, port, "refused")
                connection.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                return
            self._record(host, port, "tunnelled")
            with self._lock:
                self._open.add(upstream)
            connection.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            extra = head.split(b"\r\n\r\n", 1)[1]
            if extra:
                upstream.sendall(extra)
            _pipe(connection, upstream, self.io_timeout)
        except (OSError, ValueError):
            return
        finally:
            for sock in (connection, upstream):
                if sock is not None:
                    with self._lock:
                        self._open.discard(sock)
                    sock.close()

    def set_route(self, route: Route | None) -> None:
        """Route from now on, and close every open tunnel: kube-apiserver keeps connections alive, and one
        opened for the previous scenario must not reach that scenario's servers."""
        with self._lock:
            self.route = route
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _record(self, host: str, port: int, outcome: str) -> None:
        with self._lock:
            self.requests.append((host, port, outcome))

    def stop(self) -> None:
        self._stopping.set()
        self._listener.close()
        with self._lock:
            sockets, threads = list(self._open), list(self._threads)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)
        for thread in threads:
            thread.join(self.io_timeout + 5)


def _pipe(one: socket.socket, other: socket.socket, io_timeout: float) -> None:
    """Copy bytes both ways until either side closes or is idle for ``io_timeout`` seconds."""
    sockets = [one, other]
    while True:
        readable, _, _ = select.select(sockets, [], [], io_timeout)
        if not readable:
            return
        for sock in readable:
            data = sock.recv(65536)
            if not data:
                return
            (other if sock is one else one).sendall(data)


class ControlPlane:
    """etcd + kube-apiserver on loopback for one test session (see the module docstring)."""

    def __init__(
        self,
        binaries: Path | str | None = None,
        *,
        users: list[str] | tuple[str, ...] = ("nobody",),
        serving: KeyPairFiles | None = None,
        ca_file: str | None = None,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        """``serving``/``ca_file``: the serving certificate and its CA (made here when not given)."""
        self.binaries = Path(binaries) if binaries is not None else find_binaries()
        self.user_names = tuple(users)
        self.start_timeout = start_timeout
        self._serving, self._ca_file = serving, ca_file
        self.directory: Path | None = None
        self.url = ""
        self.ca_file = ""
        self.users: dict[str, User] = {}
        self.etcd: subprocess.Popen | None = None
        self.apiserver: subprocess.Popen | None = None
        self.etcd_url = ""
        self.egress: EgressGuard | None = None
        self.start_seconds: float | None = None

    # -- lifecycle

    def start(self) -> ControlPlane:
        if self.apiserver is not None:
            return self
        if self.binaries is None:
            raise ControlPlaneUnavailable(unavailable_message())
        started = time.monotonic()
        deadline = started + self.start_timeout
        self.directory = Path(tempfile.mkdtemp(prefix="reachability-control-plane-"))
        try:
            self._write_credentials()
            self.egress = EgressGuard(self.directory / "egress.sock")
            self._write_egress_selector(self.egress.path)
            self._start_etcd(deadline)
            self._start_apiserver(deadline)
            for name in (ADMIN, *self.user_names):
                self._write_kubeconfig(name)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = round(time.monotonic() - started, 2)
        return self

    def stop(self) -> None:
        """End kube-apiserver, then etcd, by PID; remove the temporary folder."""
        for attribute in ("apiserver", "etcd"):
            process: subprocess.Popen | None = getattr(self, attribute)
            setattr(self, attribute, None)
            watchdog.stop_child(process, signal.SIGTERM, STOP_TIMEOUT)
        egress, self.egress = self.egress, None
        if egress is not None:
            egress.stop()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in (self.etcd, self.apiserver) if p is not None]

    # -- what clients need

    def kubeconfig(self, user: str = ADMIN) -> str:
        assert self.directory is not None, "the control plane is not running"
        return str(self.directory / f"kubeconfig-{user}")

    def write_kubeconfig(
        self,
        path: str | Path,
        *,
        user: str,
        token: str,
        namespace: str = "default",
        context: str = "control-plane",
    ) -> str:
        """A kubeconfig for any bearer token (e.g. a ServiceAccount's from the TokenRequest API)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": [
                {"name": context, "cluster": {"server": self.url, "certificate-authority": self.ca_file}}
            ],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [
                {"name": context, "context": {"cluster": context, "user": user, "namespace": namespace}}
            ],
            "current-context": context,
        }
        descriptor = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            yaml.safe_dump(config, handle, sort_keys=False)
        return str(path)

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)

    def audit_offset(self) -> int:
        """Where the audit log ends now: pass it to `audit_events` to read only the requests after it."""
        assert self.directory is not None
        try:
            return (self.directory / "audit.log").stat().st_size
        except FileNotFoundError:
            return 0

    def audit_events(self, offset: int = 0) -> list[dict[str, Any]]:
        """The requests answered since ``offset`` (bytes into the audit log; 0: all), as the API server's
        audit log records them (Metadata level). A long session's log holds every earlier test's requests:
        reading from an offset keeps each read proportional to what the caller did."""
        assert self.directory is not None
        events = []
        path = self.directory / "audit.log"
        if path.exists():
            with path.open("rb") as handle:
                handle.seek(offset)
                text = handle.read().decode("utf-8", errors="replace")
            for line in text.splitlines():
                with contextlib.suppress(ValueError):
                    events.append(json.loads(line))
        return events

    def log_tail(self, which: str = "kube-apiserver", lines: int = 20) -> str:
        if self.directory is None:
            return ""
        with contextlib.suppress(OSError):
            text = (self.directory / f"{which}.log").read_text(encoding="utf-8", errors="replace")
            return "\n".join(text.strip().splitlines()[-lines:])
        return ""

    # -- internals

    def _write_credentials(self) -> None:
        assert self.directory is not None
        pki = self.directory / "pki"
        pki.mkdir()
        if self._serving is None or self._ca_file is None:
            authority = CertificateAuthority("pytest-reachability control plane CA")
            (pki / "ca.crt").write_bytes(authority.cert_pem)
            self._ca_file = str(pki / "ca.crt")
            self._serving = authority.write_issued(pki, "apiserver", ["127.0.0.1", "localhost"])
        self.ca_file = self._ca_file
        # The service-account signing key pair (TokenRequest signs with it, authentication verifies with it).
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (pki / "sa.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        (pki / "sa.pub").write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        (pki / "sa.key").chmod(0o600)
        self.users = {ADMIN: User(ADMIN, secrets.token_urlsafe(32), ("system:masters",))}
        for name in self.user_names:
            self.users[name] = User(name, secrets.token_urlsafe(32))
        lines = []
        for user in self.users.values():
            groups = ",".join(user.groups)
            lines.append(f"{user.token},{user.name},{user.name}" + (f',"{groups}"' if groups else ""))
        tokens = self.directory / "tokens.csv"
        descriptor = os.open(str(tokens), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        (self.directory / "audit-policy.yaml").write_text(yaml.safe_dump(_AUDIT_POLICY), encoding="utf-8")

    def _write_egress_selector(self, socket_path: Path) -> None:
        assert self.directory is not None
        config = {
            "apiVersion": "apiserver.k8s.io/v1beta1",
            "kind": "EgressSelectorConfiguration",
            "egressSelections": [
                {
                    "name": "cluster",
                    "connection": {
                        "proxyProtocol": "HTTPConnect",
                        "transport": {"uds": {"udsName": str(socket_path)}},
                    },
                }
            ],
        }
        (self.directory / "egress-selector.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        assert self.directory is not None
        log = open(self.directory / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.directory,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        finally:
            log.close()

    def _start_etcd(self, deadline: float) -> None:
        assert self.directory is not None and self.binaries is not None
        for _attempt in range(3):  # a port picked free may be taken before etcd binds it
            client, peer = _free_port(), _free_port()
            self.etcd_url = f"http://127.0.0.1:{client}"
            data = self.directory / "etcd"
            shutil.rmtree(data, ignore_errors=True)
            self.etcd = self._spawn(
                "etcd",
                [
                    str(self.binaries / "etcd"),
                    "--name=default",
                    f"--data-dir={data}",
                    f"--listen-client-urls={self.etcd_url}",
                    f"--advertise-client-urls={self.etcd_url}",
                    f"--listen-peer-urls=http://127.0.0.1:{peer}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                    f"--initial-cluster=default=http://127.0.0.1:{peer}",
                    "--unsafe-no-fsync",
                    "--log-level=warn",
                    "--quota-backend-bytes=268435456",
                ],
            )
            if self._wait(
                self.etcd,
                f"{self.etcd_url}/health",
                deadline,
                "etcd",
                ready=lambda body: b'"health":"true"' in body,
            ):
                return
        raise ControlPlaneError(f"etcd did not start: {self.log_tail('etcd', 3)}")

    def _start_apiserver(self, deadline: float) -> None:
        assert self.directory is not None and self.binaries is not None and self._serving is not None
        pki = self.directory / "pki"
        for _attempt in range(3):
            port = _free_port()
            self.url = f"https://127.0.0.1:{port}"
            self.apiserver = self._spawn(
                "kube-apiserver",
                [
                    str(self.binaries / "kube-apiserver"),
                    f"--etcd-servers={self.etcd_url}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    f"--secure-port={port}",
                    # The lease reconciler refuses a loopback advertise address (it would publish it as the
                    # `kubernetes` Service's endpoint); the Service itself is still created.
                    "--endpoint-reconciler-type=none",
                    f"--tls-cert-file={self._serving.cert_file}",
                    f"--tls-private-key-file={self._serving.key_file}",
                    f"--cert-dir={pki}",
                    f"--token-auth-file={self.directory / 'tokens.csv'}",
                    "--authorization-mode=RBAC",
                    # TaintNodesByCondition taints every new Node node.kubernetes.io/not-ready until the node
                    # lifecycle controller (not run here) sees it Ready: a scenario states its nodes' taints
                    # itself.
                    "--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                    f"--service-account-key-file={pki / 'sa.pub'}",
                    f"--service-account-signing-key-file={pki / 'sa.key'}",
                    f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                    f"--audit-policy-file={self.directory / 'audit-policy.yaml'}",
                    f"--audit-log-path={self.directory / 'audit.log'}",
                    "--audit-log-mode=blocking",
                    f"--egress-selector-config-file={self.directory / 'egress-selector.yaml'}",
                    "--profiling=false",
                    "--enable-priority-and-fairness=false",
                ],
            )
            token = self.users[ADMIN].token
            if self._wait(
                self.apiserver,
                f"{self.url}/readyz",
                deadline,
                "kube-apiserver",
                token=token,
                ready=lambda body: body.strip() == b"ok",
            ):
                return
        raise ControlPlaneError(f"kube-apiserver did not start: {self.log_tail(lines=3)}")

    def _wait(
        self,
        process: subprocess.Popen,
        url: str,
        deadline: float,
        what: str,
        *,
        ready: Any,
        token: str | None = None,
    ) -> bool:
        """Poll ``url`` until ``ready(body)``: True; False if the process exited (a port clash, retried)."""
        # No proxy handler: a loopback server is never reached through HTTPS_PROXY.
        handlers: list[Any] = [urllib.request.ProxyHandler({})]
        if url.startswith("https"):
            handlers.append(urllib.request.HTTPSHandler(context=self.ssl_context()))
        opener = urllib.request.build_opener(*handlers)
        delay = 0.1
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = self.log_tail(what, 5)
                if "address already in use" in tail:
                    return False
                raise ControlPlaneError(f"{what} exited with status {process.returncode}: {tail}")
            request = urllib.request.Request(
                url, headers={"Authorization": f"Bearer {token}"} if token else {}
            )
            with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
                with opener.open(request, timeout=5) as response:
                    if ready(response.read(4096)):
                        return True
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)
        raise ControlPlaneError(f"{what} not ready within {self.start_timeout:g}s: {self.log_tail(what, 3)}")

    def _write_kubeconfig(self, name: str) -> None:
        self.write_kubeconfig(self.kubeconfig(name), user=name, token=self.users[name].token)
