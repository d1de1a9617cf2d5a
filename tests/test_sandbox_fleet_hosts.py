"""Every host of the bundled ``fleet`` scenario, reached by its name as a client would: its address from the
sandbox's resolver (dnspython, CNAMEs followed by the server), a TCP connection to that address on the edges'
port, TLS with the host as SNI verified against the sandbox CA (and plain HTTP, which the edges serve
beside it), then ``GET /health``. Hosts that are not designed faults answer 2xx with a certificate naming
them; the designed faults fail where and how the scenario says. All 200 hosts on a small thread pool, every
step bounded.
"""

from __future__ import annotations

import concurrent.futures
import socket
import ssl

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from pytest_reachability.sandbox import Sandbox, load_scenario

HOSTS = [f"svc-{number:03d}.fleet.test" for number in range(200)]
HEALTH_PATH = "/health"  # the health path setting's default; the fleet scenario names no other
STEP_TIMEOUT = 5.0
WALK_TIMEOUT = 180.0
WORKERS = 8

REFUSED = "connection refused"
CLOSED = "closed without a byte"
NXDOMAIN = "NXDOMAIN"
# What the scenario designs (see the comment heading fleet.yaml), as a client meets it over each scheme.
SHARED_CAUSE = [f"svc-{number:03d}.fleet.test" for number in range(180, 192)]  # CNAME to legacy-lb
FAULTS = {
    "https": {
        "svc-013.fleet.test": NXDOMAIN,
        # ingress-nginx routes no such host: its default certificate (the target's) does not name it.
        "svc-142.fleet.test": "certificate names another host",
        "svc-150.fleet.test": REFUSED,  # stale A record where nothing listens
        "svc-197.fleet.test": REFUSED,  # its LoadBalancer's only pod is not ready
        **dict.fromkeys(SHARED_CAUSE, CLOSED),  # the decommissioned controller closes every connection
    },
    "http": {
        "svc-013.fleet.test": NXDOMAIN,
        "svc-142.fleet.test": "status 404",  # ingress-nginx answers 404 for a host it has no rule for
        "svc-150.fleet.test": REFUSED,
        "svc-197.fleet.test": REFUSED,
        **dict.fromkeys(SHARED_CAUSE, CLOSED),
    },
}


def resolve(resolver: tuple[str, int], host: str) -> list[str] | str:
    """The host's IPv4 addresses (after the CNAMEs the server followed), or the rcode's name."""
    address, port = resolver
    response = dns.query.udp(dns.message.make_query(host, "A"), address, port=port, timeout=STEP_TIMEOUT)
    if response.rcode() != dns.rcode.NOERROR:
        return dns.rcode.to_text(response.rcode())
    a_records = [rrset for rrset in response.answer if rrset.rdtype == dns.rdatatype.A]
    return sorted(item.address for rrset in a_records for item in rrset)


def read_status(connection: socket.socket) -> str:
    """``status N`` of the response's status line, or how the connection ended without one."""
    reply = b""
    for _ in range(100):
        chunk = connection.recv(65536)
        if not chunk:
            break
        reply += chunk
        if b"\r\n" in reply:
            break
    if not reply:
        return CLOSED
    return "status " + reply.split(b"\r\n", 1)[0].split(b" ")[1].decode()


def visit(sandbox, resolver: tuple[str, int], host: str, scheme: str) -> tuple[str, list[str]]:
    """What a client meets at ``host`` over ``scheme``, and the DNS names of the certificate it was shown."""
    addresses = resolve(resolver, host)
    if isinstance(addresses, str):
        return addresses, []
    if not addresses:
        return "no address", []
    request = f"GET {HEALTH_PATH} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    try:
        connection = socket.create_connection((addresses[0], sandbox.edge_port), timeout=STEP_TIMEOUT)
    except ConnectionRefusedError:
        return REFUSED, []
    with connection:
        if scheme == "http":
            connection.sendall(request)
            try:
                return read_status(connection), []
            except ConnectionResetError:
                return CLOSED, []
        context = ssl.create_default_context(cafile=sandbox.ca_bundle)
        try:
            with context.wrap_socket(connection, server_hostname=host) as tls:
                names = [value for kind, value in tls.getpeercert()["subjectAltName"] if kind == "DNS"]
                tls.sendall(request)
                return read_status(tls), names
        except ssl.SSLCertVerificationError as error:
            if error.verify_code == 62:  # X509_V_ERR_HOSTNAME_MISMATCH
                return "certificate names another host", []
            return f"certificate: {error.verify_message}", []
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionResetError):
            return CLOSED, []


@pytest.fixture(scope="module")
def outcomes():
    """``{scheme: {host: (outcome, certificate names)}}`` for all 200 hosts over both schemes."""
    with Sandbox(load_scenario("fleet"), postgres=False) as sandbox:
        address, port = sandbox.resolvers[0].rsplit(":", 1)
        resolver = (address, int(port))
        found: dict[str, dict[str, tuple[str, list[str]]]] = {"https": {}, "http": {}}
        with concurrent.futures.ThreadPoolExecutor(max_workers=WORKERS) as pool:
            futures = {
                pool.submit(visit, sandbox, resolver, host, scheme): (scheme, host)
                for scheme in found
                for host in HOSTS
            }
            for future in concurrent.futures.as_completed(futures, timeout=WALK_TIMEOUT):
                scheme, host = futures[future]
                found[scheme][host] = future.result()
        return found


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_every_host_but_the_designed_faults_answers_its_health_path_with_2xx(outcomes, scheme):
    healthy = {host: outcome for host, (outcome, _) in outcomes[scheme].items() if host not in FAULTS[scheme]}
    assert len(healthy) == 200 - len(FAULTS[scheme]) == 184
    failing = {host: outcome for host, outcome in healthy.items() if not outcome.startswith("status 2")}
    assert failing == {}


def test_each_healthy_host_is_shown_a_certificate_naming_it_alone(outcomes):
    wrong = {
        host: names
        for host, (outcome, names) in outcomes["https"].items()
        if host not in FAULTS["https"] and names != [host]
    }
    assert wrong == {}


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_the_designed_faults_fail_the_way_the_scenario_says(outcomes, scheme):
    met = {host: outcomes[scheme][host][0] for host in FAULTS[scheme]}
    assert met == FAULTS[scheme]
