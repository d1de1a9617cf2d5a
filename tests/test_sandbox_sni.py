"""TLS edges serve each host they route its own certificate, chosen by the SNI name of the handshake, as an
ingress controller picks the Secret of the Ingress ``spec.tls`` entry listing the host; the edge's TLS kind
(a fault such as ``expired``) holds for every one of them. Checked with OpenSSL's ``s_client`` and Python's
ssl against a running sandbox.
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import ssl
import subprocess
import textwrap

import pytest

from pytest_reachability.sandbox import Sandbox, ScenarioError, load_scenario

SCENARIO = """\
name: sni-hosts
description: one TLS edge per kind, each routing several hosts
target: {host: www.shop.test, scheme: https}
postgres: false
dns:
  primary:
    records:
      www.shop.test: {A: [127.0.31.1]}
edges:
  - {address: 127.0.31.1, behaviour: healthy, tls: good, plain_http: true,
     hosts: [www.shop.test, a.shop.test, b.shop.test]}
  - {address: 127.0.31.2, behaviour: healthy, tls: expired, hosts: [c.shop.test, d.shop.test]}
  - {address: 127.0.31.3, behaviour: healthy, tls: good, hosts: [e.shop.test]}
  - {address: 127.0.31.4, behaviour: healthy, tls: good, hosts: [f.shop.test, g.shop.test, h.shop.test],
     tls_hosts: {expired: [f.shop.test, g.shop.test]}}
"""
GOOD_HOSTS = ["www.shop.test", "a.shop.test", "b.shop.test"]
EXPIRED_HOSTS = ["c.shop.test", "d.shop.test"]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    path = tmp_path_factory.mktemp("sni") / "sni-hosts.yaml"
    path.write_text(SCENARIO)
    with Sandbox(path, postgres=False) as info:
        yield info


def handshake(sandbox, address: str, server_name: str | None, *, verify: bool = True) -> dict:
    """The peer certificate (``getpeercert`` form) after a verified handshake naming ``server_name``;
    unverified: its DNS names and serial number only."""
    context = ssl.create_default_context(cafile=sandbox.ca_bundle)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((address, sandbox.edge_port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=server_name) as tls:
            if verify:
                return tls.getpeercert()
            der = tls.getpeercert(binary_form=True)
    from cryptography import x509

    certificate = x509.load_der_x509_certificate(der)
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {
        "subjectAltName": tuple(("DNS", name) for name in names.get_values_for_type(x509.DNSName)),
        "serialNumber": f"{certificate.serial_number:X}",
    }


def names_of(certificate: dict) -> list[str]:
    return [value for kind, value in certificate["subjectAltName"] if kind == "DNS"]


@pytest.mark.parametrize("host", GOOD_HOSTS)
def test_each_host_gets_a_verified_certificate_naming_it(sandbox, host):
    assert names_of(handshake(sandbox, "127.0.31.1", host)) == [host]


def test_a_server_name_is_matched_whatever_its_case(sandbox):
    assert names_of(handshake(sandbox, "127.0.31.1", "A.Shop.Test", verify=False)) == ["a.shop.test"]


def test_a_host_the_edge_does_not_route_gets_the_default_certificate_and_fails_verification(sandbox):
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        handshake(sandbox, "127.0.31.1", "e.shop.test")
    assert names_of(handshake(sandbox, "127.0.31.1", "e.shop.test", verify=False)) == ["www.shop.test"]


@pytest.mark.parametrize("host", EXPIRED_HOSTS)
def test_the_edges_fault_holds_for_every_host_behind_it(sandbox, host):
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate has expired"):
        handshake(sandbox, "127.0.31.2", host)
    assert names_of(handshake(sandbox, "127.0.31.2", host, verify=False)) == [host]


def test_hosts_of_a_tls_hosts_kind_share_one_certificate_of_that_kind(sandbox):
    shared = [handshake(sandbox, "127.0.31.4", host, verify=False) for host in ("f.shop.test", "g.shop.test")]
    assert [names_of(certificate) for certificate in shared] == [["f.shop.test", "g.shop.test"]] * 2
    assert shared[0]["serialNumber"] == shared[1]["serialNumber"]  # one certificate, one Secret
    for host in ("f.shop.test", "g.shop.test"):
        with pytest.raises(ssl.SSLCertVerificationError, match="certificate has expired"):
            handshake(sandbox, "127.0.31.4", host)
    # The edge's other host keeps the edge's own kind.
    assert names_of(handshake(sandbox, "127.0.31.4", "h.shop.test")) == ["h.shop.test"]


def openssl(sandbox, address: str, *args: str) -> str:
    tool = shutil.which("openssl")
    if tool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("openssl is required in CI (apt-get install openssl)")
        pytest.skip("openssl is not installed")
    done = subprocess.run(
        [tool, "s_client", "-connect", f"{address}:{sandbox.edge_port}", "-CAfile", sandbox.ca_bundle, *args],
        input=b"",
        capture_output=True,
        timeout=20,
    )
    return done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")


def test_openssl_verifies_each_host_by_its_server_name(sandbox):
    for host in GOOD_HOSTS[1:]:
        output = openssl(sandbox, "127.0.31.1", "-servername", host, "-verify_hostname", host, "-brief")
        assert "Verification: OK" in output, output
        assert f"Verified peername: {host}" in output, output


def test_openssl_without_a_server_name_gets_the_targets_certificate(sandbox):
    output = openssl(sandbox, "127.0.31.1", "-noservername", "-verify_hostname", "a.shop.test", "-brief")
    assert "hostname mismatch" in output, output
    output = openssl(sandbox, "127.0.31.1", "-noservername", "-verify_hostname", "www.shop.test", "-brief")
    assert "Verification: OK" in output, output


def test_openssl_sees_the_expired_certificate_of_a_host(sandbox):
    output = openssl(sandbox, "127.0.31.2", "-servername", "d.shop.test", "-verify_hostname", "d.shop.test")
    assert "certificate has expired" in output, output
    assert "CN = d.shop.test" in output or "CN=d.shop.test" in output, output


def plain_get(sandbox, address: str, host: str) -> int:
    connection = http.client.HTTPConnection(address, sandbox.edge_port, timeout=5)
    try:
        connection.request("GET", "/health", headers={"Host": host})
        return connection.getresponse().status
    finally:
        connection.close()


def test_plain_http_and_tls_are_both_served_where_the_edge_says_so(sandbox):
    assert plain_get(sandbox, "127.0.31.1", "a.shop.test") == 200
    context = ssl.create_default_context(cafile=sandbox.ca_bundle)
    with socket.create_connection(("127.0.31.1", sandbox.edge_port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="b.shop.test") as tls:
            tls.sendall(b"GET /health HTTP/1.1\r\nHost: b.shop.test\r\nConnection: close\r\n\r\n")
            status_line = tls.makefile("rb").readline(1024)
    assert status_line.startswith(b"HTTP/1.1 200 ")


def test_a_tls_only_edge_does_not_answer_plain_http(sandbox):
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        plain_get(sandbox, "127.0.31.3", "e.shop.test")


@pytest.mark.parametrize(
    ("edge", "error"),
    [
        (
            "{address: 127.0.31.1, behaviour: healthy, plain_http: true}",
            "edges[0].plain_http: expected true or false, true only beside tls, got true",
        ),
        (
            "{address: 127.0.31.1, behaviour: healthy, hosts: [a.test], tls_hosts: {expired: [a.test]}}",
            "edges[0].tls_hosts: expected nothing without tls on the edge, got a mapping",
        ),
        (
            "{address: 127.0.31.1, behaviour: healthy, tls: good, hosts: [a.test],"
            " tls_hosts: {expired: [b.test]}}",
            "edges[0].tls_hosts.expired[0]: expected a host of the edge's hosts, got 'b.test'",
        ),
        (
            "{address: 127.0.31.1, behaviour: healthy, tls: good, hosts: [a.test],"
            " tls_hosts: {old: [a.test]}}",
            "edges[0].tls_hosts: expected TLS kinds as keys (good, expired, wrong_host, untrusted, "
            "intermediate, missing_intermediate, not_yet_valid, wildcard_parent), got 'old'",
        ),
        (
            "{address: 127.0.31.1, behaviour: healthy, tls: good, hosts: [a.test],"
            " tls_hosts: {expired: [a.test], untrusted: [a.test]}}",
            "edges[0].tls_hosts.untrusted[0]: expected a host named under one kind only, got 'a.test'",
        ),
    ],
    ids=["plain-without-tls", "tls-hosts-without-tls", "not-a-host-of-the-edge", "unknown-kind", "twice"],
)
def test_a_bad_tls_setting_of_an_edge_is_one_line(tmp_path, edge, error):
    path = tmp_path / "bad.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            name: bad
            description: a bad TLS setting
            target: {host: a.test}
            dns: {primary: {records: {a.test: {A: [127.0.31.1]}}}}
            """
        )
        + f"edges: [{edge}]\n"
    )
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)
    assert str(raised.value) == f"{path}: {error}"
